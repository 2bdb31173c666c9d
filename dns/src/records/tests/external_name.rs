//! Spec §2.5: ExternalName Services.

use super::*;
use crate::records::rtype::*;

fn fixture() -> Fixture {
    Fixture {
        services: vec![external("default", "ext", "Foo.Example.com.")],
        ..Fixture::default()
    }
}

#[test]
fn every_type_but_srv_answers_the_cname() {
    let t = fixture().table();
    for qtype in [A, AAAA, CNAME, TXT] {
        assert_eq!(
            ask(&t, "ext.default.svc.cluster.local", qtype),
            Got::Cname("foo.example.com.".into())
        );
    }
    assert_eq!(ask(&t, "ext.default.svc.cluster.local", SRV), Got::NoData);
}

#[test]
fn names_below_an_external_name_do_not_exist() {
    let t = fixture().table();
    assert_eq!(ask(&t, "x.ext.default.svc.cluster.local", A), Got::Nx);
    assert_eq!(
        ask(&t, "_http._tcp.ext.default.svc.cluster.local", SRV),
        Got::Nx
    );
}

#[test]
fn an_ip_address_as_external_name_gives_no_record_and_a_reason() {
    let f = Fixture {
        services: vec![external("default", "ip", "192.0.2.1")],
        ..Fixture::default()
    };
    let (t, skipped) = f.build();
    assert_eq!(ask(&t, "ip.default.svc.cluster.local", A), Got::Nx);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].object, "Service default/ip");
    assert_eq!(skipped[0].field, "spec.externalName");
}
