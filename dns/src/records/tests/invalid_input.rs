//! Invalid objects are skipped with a reason naming object and field;
//! nothing panics and the rest of the object still counts.

use serde_json::json;

use super::*;
use crate::records::rtype::*;

#[test]
fn bad_cluster_ip_is_skipped_and_the_good_one_kept() {
    let f = Fixture {
        services: vec![cluster_ip(
            "default",
            "web",
            &["10.43.0.20", "not-an-ip"],
            json!([]),
        )],
        ..Fixture::default()
    };
    let (t, skipped) = f.build();
    assert_eq!(
        ask(&t, "web.default.svc.cluster.local", A),
        addrs(&["10.43.0.20"])
    );
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].object, "Service default/web");
    assert_eq!(skipped[0].field, "spec.clusterIPs[1]");
    assert!(skipped[0].to_string().contains("not-an-ip"));
}

#[test]
fn bad_port_names_and_numbers_are_skipped() {
    let f = Fixture {
        services: vec![cluster_ip(
            "default",
            "web",
            &["10.43.0.20"],
            json!([
                {"name": "Bad_Name", "port": 80},
                {"name": "big", "port": 70000},
                {"name": "ok", "port": 81, "protocol": "QUIC"},
                {"name": "good", "port": 82}
            ]),
        )],
        ..Fixture::default()
    };
    let (t, skipped) = f.build();
    let fields: Vec<&str> = skipped.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.ports[0].name",
            "spec.ports[1].port",
            "spec.ports[2].protocol"
        ]
    );
    assert_eq!(
        ask(&t, "_good._tcp.web.default.svc.cluster.local", SRV),
        Got::Srv(vec!["82 @".into()])
    );
}

#[test]
fn bad_endpoint_addresses_and_hostnames_are_skipped() {
    let f = Fixture {
        services: vec![headless("db", "pg", json!([]))],
        slices: vec![slice(
            "db",
            "pg",
            "s1",
            "IPv4",
            json!([
                {"addresses": ["10.42.0.300"]},
                {"addresses": ["fd00::1"]},
                {"addresses": ["10.42.0.4"], "hostname": "Not_A_Label"}
            ]),
            json!([]),
        )],
        ..Fixture::default()
    };
    let (t, skipped) = f.build();
    let fields: Vec<&str> = skipped.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "endpoints[0].addresses[0]",
            "endpoints[1].addresses[0]",
            "endpoints[2].hostname"
        ]
    );
    assert!(skipped.iter().all(|s| s.object == "EndpointSlice db/s1"));
    // The endpoint with a bad hostname keeps its generated name.
    assert_eq!(
        ask(&t, "10-42-0-4.pg.db.svc.cluster.local", A),
        addrs(&["10.42.0.4"])
    );
}

#[test]
fn bad_node_address_is_skipped() {
    let f = Fixture {
        nodes: vec![node("node-1", &["192.168.50.300", "192.168.50.11"])],
        ..Fixture::default()
    };
    let (t, skipped) = f.build();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].object, "Node node-1");
    assert_eq!(skipped[0].field, "status.addresses[0].address");
    assert_eq!(ask(&t, "node-1", A), addrs(&["192.168.50.11"]));
}

#[test]
fn objects_without_spec_or_names_do_not_panic() {
    let empty: std::sync::Arc<cluster::compact::Service> =
        std::sync::Arc::new(serde_json::from_value(json!({"metadata": {}})).expect("fixture"));
    let f = Fixture {
        services: vec![empty],
        slices: vec![slice(
            "db",
            "pg",
            "s",
            "IPv4",
            json!([{"addresses": []}]),
            json!([{}]),
        )],
        ..Fixture::default()
    };
    let (t, _skipped) = f.build();
    assert_eq!(t.service_count(), 0);
}
