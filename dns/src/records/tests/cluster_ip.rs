//! Spec §2.3: Services with a cluster IP.

use serde_json::json;

use super::*;
use crate::records::rtype::*;

fn fixture() -> Fixture {
    Fixture {
        services: vec![
            cluster_ip(
                "default",
                "web",
                &["10.43.0.20"],
                json!([
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"port": 9000}
                ]),
            ),
            cluster_ip(
                "dual",
                "both",
                &["10.43.0.30", "fd00:43::30"],
                json!([{"name": "http", "port": 80}]),
            ),
        ],
        ..Fixture::default()
    }
}

#[test]
fn a_and_aaaa_answer_each_family_of_cluster_ips() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "web.default.svc.cluster.local", A),
        addrs(&["10.43.0.20"])
    );
    assert_eq!(ask(&t, "web.default.svc.cluster.local", AAAA), Got::NoData);
    assert_eq!(
        ask(&t, "both.dual.svc.cluster.local", A),
        addrs(&["10.43.0.30"])
    );
    assert_eq!(
        ask(&t, "both.dual.svc.cluster.local", AAAA),
        addrs(&["fd00:43::30"])
    );
}

#[test]
fn names_are_case_insensitive() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "WeB.DeFault.SVC.Cluster.LOCAL.", A),
        addrs(&["10.43.0.20"])
    );
}

#[test]
fn srv_for_named_ports_uses_the_service_port_and_name() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "_http._tcp.web.default.svc.cluster.local", SRV),
        Got::Srv(vec!["80 @".into()])
    );
    assert_eq!(
        ask(&t, "_dns._udp.web.default.svc.cluster.local", SRV),
        Got::Srv(vec!["53 @".into()])
    );
    // Underscores are optional, as in CoreDNS.
    assert_eq!(
        ask(&t, "http.tcp.web.default.svc.cluster.local", SRV),
        Got::Srv(vec!["80 @".into()])
    );
    assert_eq!(
        ask(&t, "_http._tcp.web.default.svc.cluster.local", A),
        Got::NoData
    );
}

#[test]
fn unknown_port_or_protocol_is_nxdomain() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "_http._udp.web.default.svc.cluster.local", SRV),
        Got::Nx
    );
    assert_eq!(
        ask(&t, "_nope._tcp.web.default.svc.cluster.local", SRV),
        Got::Nx
    );
    assert_eq!(
        ask(&t, "_http._xyz.web.default.svc.cluster.local", SRV),
        Got::Nx
    );
    assert_eq!(ask(&t, "a.b.c.web.default.svc.cluster.local", A), Got::Nx);
}

#[test]
fn srv_on_the_service_name_lists_every_port_including_unnamed() {
    let t = fixture().table();
    let want = Got::Srv(vec!["53 @".into(), "80 @".into(), "9000 @".into()]);
    assert_eq!(ask(&t, "web.default.svc.cluster.local", SRV), want);
}

#[test]
fn proto_label_above_a_port_is_an_empty_non_terminal() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "_tcp.web.default.svc.cluster.local", SRV),
        Got::NoData
    );
    assert_eq!(ask(&t, "_sctp.web.default.svc.cluster.local", SRV), Got::Nx);
}

#[test]
fn unknown_service_or_namespace_is_nxdomain_but_namespace_name_is_nodata() {
    let t = fixture().table();
    assert_eq!(ask(&t, "nope.default.svc.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "web.nope.svc.cluster.local", A), Got::Nx);
    assert_eq!(ask(&t, "default.svc.cluster.local", A), Got::NoData);
    assert_eq!(ask(&t, "svc.cluster.local", A), Got::NoData);
    assert_eq!(ask(&t, "web.default.other.cluster.local", A), Got::Nx);
    assert_eq!(
        ask(&t, "web.default.svc.cluster.local", MX_TYPE),
        Got::NoData
    );
}

const MX_TYPE: u16 = 15;

#[test]
fn ptr_of_a_cluster_ip_names_the_service() {
    let t = fixture().table();
    assert_eq!(
        ask(&t, "20.0.43.10.in-addr.arpa", PTR),
        Got::Ptr(vec!["web.default.svc.cluster.local.".into()])
    );
    let v6 = "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa";
    assert_eq!(
        ask(&t, v6, PTR),
        Got::Ptr(vec!["both.dual.svc.cluster.local.".into()])
    );
    assert_eq!(ask(&t, "99.0.43.10.in-addr.arpa", PTR), Got::Forward);
}

#[test]
fn endpoint_names_also_work_under_cluster_ip_services() {
    let mut f = fixture();
    f.slices.push(slice(
        "default",
        "web",
        "web-1",
        "IPv4",
        json!([
            {"addresses": ["10.42.0.7"], "conditions": {"ready": true}}
        ]),
        json!([{"name": "http", "port": 8080}]),
    ));
    let t = f.table();
    assert_eq!(
        ask(&t, "10-42-0-7.web.default.svc.cluster.local", A),
        addrs(&["10.42.0.7"])
    );
    // The Service's SRV still carries the service port, not the endpoint's.
    assert_eq!(
        ask(&t, "_http._tcp.web.default.svc.cluster.local", SRV),
        Got::Srv(vec!["80 @".into()])
    );
    assert_eq!(
        ask(&t, "7.0.42.10.in-addr.arpa", PTR),
        Got::Ptr(vec!["10-42-0-7.web.default.svc.cluster.local.".into()])
    );
}
