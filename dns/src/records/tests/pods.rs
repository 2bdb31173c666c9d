//! Pod records `<a-b-c-d>.<ns>.pod.<zone>` (CoreDNS `pods insecure`).

use super::*;
use crate::records::rtype::*;

fn fixture() -> Fixture {
    Fixture {
        namespaces: Some(vec![namespace("default"), namespace("apps")]),
        ..Fixture::default()
    }
}

#[test]
fn the_address_is_read_from_the_name() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "10-42-0-5.default.pod.cluster.local", A),
        addrs(&["10.42.0.5"])
    );
    assert_eq!(
        ask(&t, "fd00-42-1--29.apps.pod.cluster.local", AAAA),
        addrs(&["fd00:42:1::29"])
    );
    assert_eq!(
        ask(&t, "10-42-0-5.default.pod.cluster.local", AAAA),
        Got::NoData
    );
}

#[test]
fn not_an_address_or_unknown_namespace_is_nxdomain() {
    let t = fixture().table();
    assert_eq!(ask(&t, "10-42-0-300.default.pod.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "web.default.pod.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "10-42-0-5.nope.pod.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "x.10-42-0-5.default.pod.cluster.local", A), Got::Nx);
}

#[test]
fn namespace_and_pod_labels_alone_are_nodata() {
    let t = fixture().table();
    assert_eq!(ask(&t, "default.pod.cluster.local", A), Got::NoData);
    assert_eq!(ask(&t, "pod.cluster.local", A), Got::NoData);
}

#[test]
fn without_namespace_objects_a_namespace_exists_through_its_services() {
    let f = Fixture {
        services: vec![cluster_ip(
            "web",
            "s",
            &["10.43.0.9"],
            serde_json::json!([]),
        )],
        ..Fixture::default()
    };
    let t = f.table();
    assert_eq!(
        ask(&t, "10-42-0-5.web.pod.cluster.local", A),
        addrs(&["10.42.0.5"])
    );
    assert_eq!(ask(&t, "10-42-0-5.default.pod.cluster.local", A), Got::Nx);
}
