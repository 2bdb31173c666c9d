use super::*;

fn key(n: u8) -> WgKey {
    WgKey([n; 32])
}

fn peer(n: u8, endpoint: &str, nets: &[&str]) -> PeerConfig {
    PeerConfig {
        public_key: key(n),
        endpoint: Some(endpoint.parse().expect("endpoint")),
        allowed_ips: nets.iter().map(|s| s.parse().expect("net")).collect(),
        keepalive: 25,
    }
}

fn map(peers: &[PeerConfig]) -> BTreeMap<WgKey, PeerConfig> {
    peers.iter().map(|p| (p.public_key, p.clone())).collect()
}

#[test]
fn renders_set_requests_with_every_field() {
    let add = render_add(&[
        peer(1, "192.168.50.2:51820", &["10.42.1.0/24"]),
        peer(2, "[fd50::3]:51821", &["fd42:0:0:2::/64"]),
    ]);
    let k1 = key(1).to_hex();
    let k2 = key(2).to_hex();
    assert_eq!(
        add,
        format!(
            "set=1\npublic_key={k1}\nendpoint=192.168.50.2:51820\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=10.42.1.0/24\npublic_key={k2}\nendpoint=[fd50::3]:51821\n\
             persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=fd42:0:0:2::/64\n\n"
        )
    );
    assert_eq!(
        render_remove(&[key(1)]),
        format!("set=1\npublic_key={k1}\nremove=true\n\n")
    );
    let private = PrivateKey::from_bytes([7; 32]);
    let text = render_interface(&private, 51820);
    assert!(text.starts_with("set=1\nprivate_key="), "{text}");
    assert!(text.ends_with("\nlisten_port=51820\n\n"), "{text}");
}

#[test]
fn parses_a_get_answer() {
    let answer = format!(
        "own_public_key={}\nlisten_port=51820\npublic_key={}\npersistent_keepalive_interval=25\n\
         endpoint=192.168.50.2:51820\nallowed_ip=10.42.1.0/24\nlast_handshake_time_sec=3\n\
         rx_bytes=10\ntx_bytes=20\npublic_key={}\nallowed_ip=10.42.2.0/24\nerrno=0\n\n",
        key(9).to_hex(),
        key(1).to_hex(),
        key(2).to_hex()
    );
    let state = parse_get(&answer).expect("parse");
    assert_eq!(state.public_key, Some(key(9)));
    assert_eq!(state.listen_port, Some(51820));
    let mut second = peer(2, "1.1.1.1:1", &["10.42.2.0/24"]);
    second.endpoint = None;
    second.keepalive = 0;
    assert_eq!(
        state.peers,
        map(&[peer(1, "192.168.50.2:51820", &["10.42.1.0/24"]), second])
    );
    assert!(parse_get("errno=22\n\n").is_err());
    assert!(parse_get("endpoint=1.2.3.4:5\nerrno=0\n\n").is_err());
    assert!(check_errno("errno=0\n\n").is_ok());
    let err = check_errno("errno=98\n\n").expect_err("EADDRINUSE");
    assert!(err.contains("errno=98"), "{err}");
}

#[test]
fn diff_removes_changed_and_gone_peers_and_adds_missing() {
    let a = peer(1, "192.168.50.2:51820", &["10.42.1.0/24"]);
    let b = peer(2, "192.168.50.3:51820", &["10.42.2.0/24"]);
    let c = peer(3, "192.168.50.4:51820", &["10.42.3.0/24"]);
    // b's node re-keyed: its subnet now comes with key 4 (k3s#5216).
    let b_new = peer(4, "192.168.50.3:51820", &["10.42.2.0/24"]);
    let desired = map(&[a.clone(), b_new.clone(), c.clone()]);
    let device = map(&[a.clone(), b.clone()]);
    let d = diff_peers(&desired, &device, &device);
    assert_eq!(d.remove, vec![key(2)]);
    assert_eq!(d.add, vec![c.clone(), b_new.clone()]);
    // Converged: nothing to do.
    assert!(diff_peers(&desired, &desired, &desired).is_empty());
}

#[test]
fn endpoint_changes_count_against_what_we_programmed_not_roaming() {
    let want = peer(1, "192.168.50.2:51820", &["10.42.1.0/24"]);
    let roamed = peer(1, "203.0.113.9:40000", &["10.42.1.0/24"]);
    let desired = map(std::slice::from_ref(&want));
    // The device learnt a NAT address: not a change of ours.
    assert!(diff_peers(&desired, &map(&[roamed]), &desired).is_empty());
    // The annotation moved: remove and add again.
    let moved = peer(1, "192.168.50.12:51820", &["10.42.1.0/24"]);
    let d = diff_peers(&map(std::slice::from_ref(&moved)), &desired, &desired);
    assert_eq!(d.remove, vec![key(1)]);
    assert_eq!(d.add, vec![moved]);
    // Allowed IPs edited behind our back: repaired.
    let edited = peer(1, "192.168.50.2:51820", &["10.42.0.0/16"]);
    let d = diff_peers(&desired, &map(&[edited]), &desired);
    assert_eq!((d.remove, d.add), (vec![key(1)], vec![want]));
}
