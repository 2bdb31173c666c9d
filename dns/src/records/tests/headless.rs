//! Spec §2.4: headless Services (records per ready endpoint).

use serde_json::json;

use super::*;
use crate::records::rtype::*;

fn fixture() -> Fixture {
    Fixture {
        services: vec![headless("db", "pg", json!([{"name": "pg", "port": 5432}]))],
        slices: vec![
            slice(
                "db",
                "pg",
                "pg-a",
                "IPv4",
                json!([
                    {"addresses": ["10.42.1.11"], "hostname": "pg-0", "conditions": {"ready": true}},
                    {"addresses": ["10.42.2.12"], "conditions": {}},
                    {"addresses": ["10.42.3.13"], "conditions": {"ready": false}}
                ]),
                json!([{"name": "pg", "port": 15432, "protocol": "TCP"}]),
            ),
            slice(
                "db",
                "pg",
                "pg-b",
                "IPv6",
                json!([
                    {"addresses": ["fd00:42:2::2a"], "conditions": {"ready": true}}
                ]),
                json!([{"name": "pg", "port": 15432}]),
            ),
            // The same address twice during churn must not duplicate answers.
            slice(
                "db",
                "pg",
                "pg-c",
                "IPv4",
                json!([
                    {"addresses": ["10.42.1.11"], "hostname": "pg-0"}
                ]),
                json!([{"name": "pg", "port": 15432}]),
            ),
        ],
        ..Fixture::default()
    }
}

#[test]
fn service_name_answers_ready_endpoints_of_each_family() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "pg.db.svc.cluster.local", A),
        addrs(&["10.42.1.11", "10.42.2.12"])
    );
    assert_eq!(
        ask(&t, "pg.db.svc.cluster.local", AAAA),
        addrs(&["fd00:42:2::2a"])
    );
}

#[test]
fn endpoint_names_use_hostname_or_the_dashed_address() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "pg-0.pg.db.svc.cluster.local", A),
        addrs(&["10.42.1.11"])
    );
    assert_eq!(
        ask(&t, "10-42-2-12.pg.db.svc.cluster.local", A),
        addrs(&["10.42.2.12"])
    );
    assert_eq!(
        ask(&t, "fd00-42-2--2a.pg.db.svc.cluster.local", AAAA),
        addrs(&["fd00:42:2::2a"])
    );
    assert_eq!(ask(&t, "pg-0.pg.db.svc.cluster.local", AAAA), Got::NoData);
    // Not ready: no name.
    assert_eq!(ask(&t, "10-42-3-13.pg.db.svc.cluster.local", A), Got::Nx);
}

#[test]
fn srv_has_one_record_per_endpoint_with_the_endpoint_port() {
    let t = fixture().table();
    let want = Got::Srv(vec![
        "15432 10-42-2-12".into(),
        "15432 fd00-42-2--2a".into(),
        "15432 pg-0".into(),
    ]);
    assert_eq!(ask(&t, "_pg._tcp.pg.db.svc.cluster.local", SRV), want);
}

#[test]
fn endpoint_ptr_names_the_endpoint() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "11.1.42.10.in-addr.arpa", PTR),
        Got::Ptr(vec!["pg-0.pg.db.svc.cluster.local.".into()])
    );
}

#[test]
fn publish_not_ready_shows_through_ready_conditions() {
    // With publishNotReadyAddresses the EndpointSlice controller writes
    // ready: true; the table follows the slice, not the Service field.
    let mut f = fixture();
    f.slices = vec![slice(
        "db",
        "pg",
        "pg-a",
        "IPv4",
        json!([
            {"addresses": ["10.42.3.13"], "conditions": {"ready": true, "serving": false}}
        ]),
        json!([]),
    )];
    let t = f.table();
    assert_eq!(
        ask(&t, "pg.db.svc.cluster.local", A),
        addrs(&["10.42.3.13"])
    );
    assert_eq!(ask(&t, "_pg._tcp.pg.db.svc.cluster.local", SRV), Got::Nx);
}

#[test]
fn headless_without_ready_endpoints_does_not_exist() {
    let f = Fixture {
        services: vec![headless("db", "empty", json!([]))],
        ..Fixture::default()
    };
    let t = f.table();
    assert_eq!(ask(&t, "empty.db.svc.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "empty.db.svc.cluster.local", TXT), Got::Nx);
}

#[test]
fn fqdn_slices_are_ignored() {
    let mut f = fixture();
    f.slices.push(slice(
        "db",
        "pg",
        "pg-f",
        "FQDN",
        json!([{"addresses": ["example.com"]}]),
        json!([]),
    ));
    let t = f.table();
    assert_eq!(
        ask(&t, "pg.db.svc.cluster.local", A),
        addrs(&["10.42.1.11", "10.42.2.12"])
    );
}
