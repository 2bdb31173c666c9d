//! The compact table layout answers exactly like the spelled-out one:
//! endpoint labels kept as hostname ranges or derived from the address,
//! PTR entries inline, one reverse map per family.

use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::records::rtype::*;
use crate::records::{Endpoint, LabelBuf, OwnedName, PtrEntry, dashed, dashed_into};

fn fixture() -> Fixture {
    Fixture {
        services: vec![headless("db", "pg", json!([{"name": "pg", "port": 5432}]))],
        slices: vec![slice(
            "db",
            "pg",
            "pg-a",
            "IPv6",
            json!([
                {"addresses": ["fd00::"], "hostname": "b"},
                {"addresses": ["fd00::1"], "hostname": "ab"},
                {"addresses": ["fd00::2"], "hostname": "ab"},
                {"addresses": ["::3"]},
                // A hostname that spells another endpoint's dashed address.
                {"addresses": ["fd00::4"], "hostname": "0--3"}
            ]),
            json!([{"name": "pg", "port": 5432}]),
        )],
        ..Fixture::default()
    }
}

#[test]
fn generated_labels_pad_leading_and_trailing_dashes() {
    let cases = [
        ("10.42.1.11", "10-42-1-11"),
        ("::1", "0--1"),
        ("fd00::", "fd00--0"),
        ("::", "0--0"),
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "ffff-ffff-ffff-ffff-ffff-ffff-ffff-ffff",
        ),
        ("::ffff:1.2.3.4", "0--ffff-1-2-3-4"),
    ];
    for (ip, want) in cases {
        let ip: IpAddr = ip.parse().expect("ip");
        let mut buf = LabelBuf::new();
        assert_eq!(dashed_into(ip, &mut buf), want.as_bytes(), "{ip}");
        assert_eq!(dashed(ip), want);
    }
}

#[test]
fn hostnames_sharing_bytes_and_generated_labels_all_resolve() {
    let t = fixture().table();
    let cases = [
        ("b", vec!["fd00::"]),
        ("ab", vec!["fd00::1", "fd00::2"]),
        ("0--3", vec!["::3", "fd00::4"]),
    ];
    for (label, want) in cases {
        let name = format!("{label}.pg.db.svc.cluster.local");
        assert_eq!(ask(&t, &name, AAAA), addrs(&want), "{name}");
    }
    assert_eq!(ask(&t, "a.pg.db.svc.cluster.local", AAAA), Got::Nx);
    let ptr = |ip: &str| {
        let ip: std::net::Ipv6Addr = ip.parse().expect("ip");
        let nibbles: String = format!("{:032x}", u128::from(ip))
            .chars()
            .rev()
            .map(|c| format!("{c}."))
            .collect();
        ask(&t, &format!("{nibbles}ip6.arpa"), PTR)
    };
    let named = |n: &str| Got::Ptr(vec![format!("{n}.pg.db.svc.cluster.local.")]);
    assert_eq!(ptr("fd00::"), named("b"));
    assert_eq!(ptr("fd00::2"), named("ab"));
    assert_eq!(ptr("::3"), named("0--3"));
    assert_eq!(ptr("fd00::4"), named("0--3"));
}

/// The sizes the memory budget was computed with (50 000 endpoints and
/// 60 000 reverse entries): a field added here costs megabytes.
#[test]
fn per_endpoint_and_per_address_structures_stay_small() {
    assert_eq!(std::mem::size_of::<Endpoint>(), 22);
    assert_eq!(std::mem::size_of::<PtrEntry>(), 16);
    assert_eq!(std::mem::size_of::<crate::records::table::Ptrs>(), 16);
    assert_eq!(std::mem::size_of::<OwnedName>(), 16);
}
