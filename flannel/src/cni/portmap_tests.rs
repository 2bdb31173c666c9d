use super::*;
use crate::cni::config::Protocol;
use serde_json::json;

fn mapping(host: u16, container: u16, protocol: Protocol, host_ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: host,
        container_port: container,
        protocol,
        host_ip: host_ip.map(|h| h.parse().expect("literal")),
    }
}

#[test]
fn add_script_builds_skeleton_container_chain_and_jump() {
    let pods: Vec<IpNet> = vec!["10.42.0.5/24".parse().expect("literal")];
    let script = add_script(
        "ctr-1",
        "cid",
        &[mapping(8080, 80, Protocol::Tcp, None)],
        &pods,
        &[7],
    );
    let expected = "\
add table inet nodenet-hostport
add chain inet nodenet-hostport hostports
add chain inet nodenet-hostport prerouting { type nat hook prerouting priority dstnat; policy accept; }
flush chain inet nodenet-hostport prerouting
add rule inet nodenet-hostport prerouting fib daddr type local jump hostports
add chain inet nodenet-hostport output { type nat hook output priority -100; policy accept; }
flush chain inet nodenet-hostport output
add rule inet nodenet-hostport output fib daddr type local jump hostports
add chain inet nodenet-hostport postrouting { type nat hook postrouting priority srcnat; policy accept; }
flush chain inet nodenet-hostport postrouting
add rule inet nodenet-hostport postrouting meta mark & 0x00002000 == 0x00002000 masquerade
delete rule inet nodenet-hostport hostports handle 7
add chain inet nodenet-hostport ctr-1
flush chain inet nodenet-hostport ctr-1
add rule inet nodenet-hostport ctr-1 meta nfproto ipv4 meta l4proto tcp th dport 8080 ip saddr 10.42.0.0/24 meta mark set meta mark | 0x00002000
add rule inet nodenet-hostport ctr-1 meta nfproto ipv4 meta l4proto tcp th dport 8080 ip saddr 127.0.0.0/8 meta mark set meta mark | 0x00002000
add rule inet nodenet-hostport ctr-1 meta nfproto ipv4 meta l4proto tcp th dport 8080 dnat ip to 10.42.0.5:80
add rule inet nodenet-hostport hostports jump ctr-1 comment \"container cid\"
";
    assert_eq!(script, expected);
}

#[test]
fn host_ip_limits_family_and_destination() {
    let pods: Vec<IpNet> = vec![
        "10.42.0.5/24".parse().expect("l"),
        "fd00:42::5/64".parse().expect("l"),
    ];
    let script = add_script(
        "c",
        "id",
        &[mapping(53, 5353, Protocol::Udp, Some("192.0.2.1"))],
        &pods,
        &[],
    );
    assert!(script.contains("meta nfproto ipv4 ip daddr 192.0.2.1 meta l4proto udp th dport 53 dnat ip to 10.42.0.5:5353"));
    assert!(
        !script.contains("ip6"),
        "a v4 hostIP maps no v6 traffic:\n{script}"
    );
    let v6 = add_script(
        "c",
        "id",
        &[mapping(80, 8080, Protocol::Tcp, None)],
        &pods,
        &[],
    );
    assert!(
        v6.contains("meta nfproto ipv6 meta l4proto tcp th dport 80 dnat ip6 to [fd00:42::5]:8080"),
        "{v6}"
    );
    assert!(v6.contains("ip6 saddr fd00:42::/64"));
}

fn table_with_jump() -> serde_json::Value {
    json!({"nftables":[
        {"metainfo":{}},
        {"table":{"family":"inet","name":"nodenet-hostport","handle":1}},
        {"chain":{"family":"inet","table":"nodenet-hostport","name":"hostports","handle":2}},
        {"chain":{"family":"inet","table":"nodenet-hostport","name":"ctr-a","handle":3}},
        {"rule":{"family":"inet","table":"nodenet-hostport","chain":"hostports","handle":10,
                 "expr":[{"jump":{"target":"ctr-a"}}]}},
        {"rule":{"family":"inet","table":"nodenet-hostport","chain":"hostports","handle":11,
                 "expr":[{"jump":{"target":"ctr-b"}}]}},
        {"rule":{"family":"inet","table":"nodenet-hostport","chain":"ctr-a","handle":12,
                 "expr":[{"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":8080}},
                         {"dnat":{"family":"ip","addr":"10.42.0.5","port":80}}]}}
    ]})
}

#[test]
fn remove_script_deletes_only_this_containers_jump_and_chain() {
    let table = table_with_jump();
    assert_eq!(jump_handles(&table, "ctr-a"), vec![10]);
    assert_eq!(
        remove_script(&table, "ctr-a").expect("something to remove"),
        "delete rule inet nodenet-hostport hostports handle 10\ndelete chain inet nodenet-hostport ctr-a\n"
    );
    assert_eq!(remove_script(&table, "ctr-zzz"), None);
}

#[test]
fn missing_reports_absent_dnat_and_jump() {
    let table = table_with_jump();
    let pods: Vec<IpNet> = vec!["10.42.0.5/24".parse().expect("l")];
    assert!(
        missing(
            Some(&table),
            "ctr-a",
            &[mapping(8080, 80, Protocol::Tcp, None)],
            &pods
        )
        .is_empty()
    );
    let gaps = missing(
        Some(&table),
        "ctr-a",
        &[mapping(9090, 90, Protocol::Tcp, None)],
        &pods,
    );
    assert_eq!(
        gaps,
        vec!["hostPort 9090/tcp DNAT to 10.42.0.5:90".to_string()]
    );
    let gaps = missing(Some(&table), "ctr-c", &[], &pods);
    assert_eq!(gaps, vec!["jump to ctr-c in chain hostports".to_string()]);
    assert_eq!(
        missing(None, "ctr-a", &[], &pods),
        vec!["nft table inet nodenet-hostport".to_string()]
    );
}
