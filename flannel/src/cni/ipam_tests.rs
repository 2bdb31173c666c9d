use super::*;

fn range(subnet: &str, gw: &str) -> Range {
    Range {
        subnet: subnet.parse().expect("literal"),
        gateway: gw.parse().expect("literal"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal")
}

#[test]
fn allocates_round_robin_skipping_network_gateway_broadcast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path().join("networks/cbr0"));
    let lock = ipam.lock().expect("lock");
    let r = range("10.42.0.0/29", "10.42.0.1");
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(
            ipam.allocate(&lock, r, &format!("c{i}"), "eth0")
                .expect("free")
                .address,
        );
    }
    assert_eq!(
        got,
        [
            "10.42.0.2",
            "10.42.0.3",
            "10.42.0.4",
            "10.42.0.5",
            "10.42.0.6"
        ]
        .map(ip)
    );
    let err = ipam
        .allocate(&lock, r, "c9", "eth0")
        .expect_err("exhausted");
    assert!(
        err.to_string()
            .contains("no IP addresses available in range 10.42.0.0/29"),
        "{err}"
    );

    // Release .3; round robin continues after the last reserved (.6), wraps to .2.. and finds .3.
    assert_eq!(
        ipam.release(&lock, "c1", "eth0").expect("release"),
        vec![ip("10.42.0.3")]
    );
    assert_eq!(
        ipam.allocate(&lock, r, "c10", "eth0")
            .expect("free")
            .address,
        ip("10.42.0.3")
    );
}

#[test]
fn round_robin_does_not_reuse_a_just_released_address_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path());
    let lock = ipam.lock().expect("lock");
    let r = range("10.42.0.0/24", "10.42.0.1");
    assert_eq!(
        ipam.allocate(&lock, r, "a", "eth0").expect("a").address,
        ip("10.42.0.2")
    );
    ipam.release(&lock, "a", "eth0").expect("release");
    assert_eq!(
        ipam.allocate(&lock, r, "b", "eth0").expect("b").address,
        ip("10.42.0.3")
    );
}

#[test]
fn same_container_and_ifname_twice_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path());
    let lock = ipam.lock().expect("lock");
    let r = range("10.42.0.0/24", "10.42.0.1");
    ipam.allocate(&lock, r, "a", "eth0").expect("first");
    let err = ipam.allocate(&lock, r, "a", "eth0").expect_err("duplicate");
    assert!(matches!(err, IpamError::Duplicate { .. }), "{err}");
    ipam.allocate(&lock, r, "a", "eth1")
        .expect("other interface is fine");
}

#[test]
fn release_is_idempotent_and_falls_back_to_container_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path());
    let lock = ipam.lock().expect("lock");
    let r = range("10.42.0.0/24", "10.42.0.1");
    ipam.allocate(&lock, r, "a", "eth0").expect("first");
    assert!(
        ipam.release(&lock, "unknown", "eth0")
            .expect("ok")
            .is_empty()
    );
    assert_eq!(
        ipam.release(&lock, "a", "other").expect("fallback"),
        vec![ip("10.42.0.2")]
    );
    assert!(ipam.release(&lock, "a", "eth0").expect("again").is_empty());
}

#[test]
fn files_have_host_local_layout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path());
    let lock = ipam.lock().expect("lock");
    ipam.allocate(&lock, range("10.42.0.0/24", "10.42.0.1"), "cid", "eth0")
        .expect("alloc");
    let text = std::fs::read_to_string(dir.path().join("10.42.0.2")).expect("ip file");
    assert_eq!(text, "cid\neth0");
    let last = std::fs::read_to_string(dir.path().join("last_reserved_ip.0")).expect("last");
    assert_eq!(last, "10.42.0.2");
    // host-local's CRLF form is understood too.
    std::fs::write(dir.path().join("10.42.0.9"), "other\r\neth0").expect("write");
    let owners = ipam.reservations().expect("list");
    assert!(owners.contains(&(ip("10.42.0.9"), "other".into(), "eth0".into())));
}

#[test]
fn ipv6_range_skips_gateway_and_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ipam = Ipam::new(dir.path());
    let lock = ipam.lock().expect("lock");
    let r = range("fd00:42::/64", "fd00:42::1");
    assert_eq!(
        ipam.allocate(&lock, r, "a", "eth0").expect("a").address,
        ip("fd00:42::2")
    );
}

#[test]
fn concurrent_processes_style_locking_gives_distinct_addresses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let ipam = Ipam::new(path);
                // Each thread opens its own lock file descriptor, as separate
                // plugin processes would: flock excludes across descriptors.
                let lock = ipam.lock().expect("lock");
                ipam.allocate(
                    &lock,
                    range("10.42.0.0/24", "10.42.0.1"),
                    &format!("c{i}"),
                    "eth0",
                )
                .expect("free")
                .address
            })
        })
        .collect();
    let mut got: Vec<IpAddr> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 20);
}
