//! Incremental changes: one Service change publishes a new table that
//! shares everything else with the old one, and old snapshots stay valid.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::records::build_service;
use crate::records::rtype::*;

fn many() -> Fixture {
    let services = (0..500)
        .map(|i| {
            cluster_ip(
                "default",
                &format!("s{i}"),
                &[&format!("10.43.{}.{}", i / 250, i % 250 + 1)],
                json!([]),
            )
        })
        .collect();
    Fixture {
        services,
        ..Fixture::default()
    }
}

#[test]
fn changing_one_service_copies_a_small_part_of_the_table() {
    let old = many().table();
    let mut new = old.clone();
    let svc = cluster_ip("default", "s7", &["10.43.9.9"], json!([]));
    let records = build_service(&svc, &[], &zone(), &mut Vec::new()).expect("records");
    new.set_service("default", "s7", Some(Arc::new(records)));
    assert_eq!(
        ask(&new, "s7.default.svc.cluster.local", A),
        addrs(&["10.43.9.9"])
    );
    // The old snapshot is unchanged.
    assert_eq!(
        ask(&old, "s7.default.svc.cluster.local", A),
        addrs(&["10.43.0.8"])
    );
    // Two reverse shards at most (old IP, new IP) were copied out of 512
    // (256 per family).
    assert!(new.shared_reverse_shards(&old) >= 510);
    let old_ns = old.namespaces.get("default").expect("ns");
    let new_ns = new.namespaces.get("default").expect("ns");
    assert_eq!(new_ns.services.shared_shards(&old_ns.services), 15);
    assert_eq!(
        ask(&new, "9.9.43.10.in-addr.arpa", PTR),
        Got::Ptr(vec!["s7.default.svc.cluster.local.".into()])
    );
    assert_eq!(ask(&new, "8.0.43.10.in-addr.arpa", PTR), Got::Forward);
}

#[test]
fn deleting_the_last_service_of_a_namespace_deletes_the_namespace() {
    let mut t = Fixture {
        services: vec![cluster_ip("tmp", "only", &["10.43.0.5"], json!([]))],
        ..Fixture::default()
    }
    .table();
    t.set_service("tmp", "only", None);
    assert_eq!(ask(&t, "only.tmp.svc.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "tmp.svc.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "5.0.43.10.in-addr.arpa", PTR), Got::Forward);
}

#[test]
fn a_namespace_object_keeps_the_namespace_without_services() {
    let mut t = Fixture::default().table();
    t.set_namespace("quiet", true);
    assert_eq!(ask(&t, "quiet.svc.cluster.local", A), Got::NoData);
    t.set_namespace("quiet", false);
    assert_eq!(ask(&t, "quiet.svc.cluster.local", A), Got::Nx);
}

#[test]
fn type_change_from_external_name_to_cluster_ip_is_reflected() {
    let mut t = Fixture {
        services: vec![external("default", "x", "foo.example.com")],
        ..Fixture::default()
    }
    .table();
    let svc = cluster_ip("default", "x", &["10.43.0.77"], json!([{"port": 80}]));
    let records = build_service(&svc, &[], &zone(), &mut Vec::new()).expect("records");
    t.set_service("default", "x", Some(Arc::new(records)));
    assert_eq!(
        ask(&t, "x.default.svc.cluster.local", A),
        addrs(&["10.43.0.77"])
    );
}
