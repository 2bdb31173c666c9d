//! Node names from Node objects (K3s NodeHosts without the ConfigMap), a
//! user hosts list, and reverse lookups.

use super::*;
use crate::records::rtype::*;
use crate::records::{Hosts, parse_hosts_file, reverse_ip};

fn fixture() -> Fixture {
    let mut skipped = Vec::new();
    let extra = parse_hosts_file(
        "# comment\n192.0.2.5 registry.local reg\n",
        "hosts",
        &mut skipped,
    );
    assert!(skipped.is_empty());
    Fixture {
        nodes: vec![
            node("node-1", &["192.168.50.11", "fd00:50::11"]),
            node("node-2", &["192.168.50.12"]),
        ],
        extra_hosts: extra,
        ..Fixture::default()
    }
}

#[test]
fn node_names_resolve_to_internal_ips_of_each_family() {
    let t = fixture().table();
    assert_eq!(ask(&t, "node-1", A), addrs(&["192.168.50.11"]));
    assert_eq!(ask(&t, "NODE-1.", AAAA), addrs(&["fd00:50::11"]));
    // Present without that family: NOERROR, empty, no SOA (hosts plugin).
    assert_eq!(ask(&t, "node-2", AAAA), Got::NoDataNoSoa);
    // Other types fall through to the upstreams.
    assert_eq!(ask(&t, "node-2", MX), Got::Forward);
}

const MX: u16 = 15;

#[test]
fn hosts_list_entries_and_aliases_are_served() {
    let t = fixture().table();
    assert_eq!(ask(&t, "registry.local", A), addrs(&["192.0.2.5"]));
    assert_eq!(ask(&t, "reg", A), addrs(&["192.0.2.5"]));
}

#[test]
fn node_ptr_shadows_service_ptr() {
    let mut f = fixture();
    f.services.push(cluster_ip(
        "default",
        "kubernetes",
        &["10.43.0.1"],
        serde_json::json!([]),
    ));
    f.slices.push(slice(
        "default",
        "kubernetes",
        "k",
        "IPv4",
        serde_json::json!([
            {"addresses": ["192.168.50.11"]}
        ]),
        serde_json::json!([]),
    ));
    let t = f.table();
    assert_eq!(
        ask(&t, "11.50.168.192.in-addr.arpa", PTR),
        Got::Ptr(vec!["node-1.".into()])
    );
    assert_eq!(
        ask(&t, "1.0.43.10.in-addr.arpa", PTR),
        Got::Ptr(vec!["kubernetes.default.svc.cluster.local.".into()])
    );
}

#[test]
fn replacing_hosts_drops_old_ptrs() {
    let mut t = fixture().table();
    t.set_hosts(Hosts::default());
    assert_eq!(ask(&t, "11.50.168.192.in-addr.arpa", PTR), Got::Forward);
    assert_eq!(ask(&t, "node-1", A), Got::Forward);
}

#[test]
fn reverse_names_parse_only_when_complete() {
    let q = |s: &str| reverse_ip(OwnedName::from_dotted(s).expect("name").as_query());
    assert_eq!(
        q("4.3.2.1.in-addr.arpa"),
        Some("1.2.3.4".parse().expect("ip"))
    );
    assert_eq!(q("3.2.1.in-addr.arpa"), None);
    assert_eq!(q("x.3.2.1.in-addr.arpa"), None);
    assert_eq!(
        q("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"),
        Some("::1".parse().expect("ip"))
    );
    assert_eq!(
        q("10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"),
        None
    );
}
