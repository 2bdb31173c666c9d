//! Spec §2.2 (schema version) and the zone apex (SOA, NS).

use super::*;
use crate::records::rtype::*;

#[test]
fn dns_version_txt_and_nodata_for_other_types() {
    let t = Fixture::default().table();
    assert_eq!(ask(&t, "dns-version.cluster.local", TXT), Got::Txt);
    assert_eq!(ask(&t, "dns-version.cluster.local", A), Got::NoData);
    assert_eq!(ask(&t, "x.dns-version.cluster.local", TXT), Got::Nx);
}

#[test]
fn apex_has_soa_and_ns_and_nothing_else() {
    let t = Fixture::default().table();
    assert_eq!(ask(&t, "cluster.local", SOA), Got::Soa);
    assert_eq!(ask(&t, "Cluster.Local.", NS), Got::Ns);
    assert_eq!(ask(&t, "cluster.local", A), Got::NoData);
    assert_eq!(ask(&t, "ns.dns.cluster.local", A), addrs(&["10.43.0.10"]));
    assert_eq!(ask(&t, "ns.dns.cluster.local", AAAA), Got::NoData);
}

#[test]
fn unknown_first_level_names_are_nxdomain() {
    let t = Fixture::default().table();
    assert_eq!(ask(&t, "foo.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "a.b.foo.cluster.local", A), Got::Nx);
}

#[test]
fn before_the_first_sync_cluster_names_are_not_answered() {
    let t = Table::new(zone());
    assert_eq!(ask(&t, "web.default.svc.cluster.local", A), Got::NotSynced);
    assert_eq!(ask(&t, "cluster.local", SOA), Got::NotSynced);
    assert_eq!(ask(&t, "example.com", A), Got::Forward);
}

#[test]
fn names_outside_the_zone_are_forwarded() {
    let t = Fixture::default().table();
    assert_eq!(ask(&t, "example.com", A), Got::Forward);
    assert_eq!(ask(&t, "local", A), Got::Forward);
    assert_eq!(ask(&t, "xcluster.local", A), Got::Forward);
}
