//! The server over real sockets on 127.0.0.1, with hickory-proto as the
//! client. Organised by what the wire must show.

mod common;

use std::time::Duration;

use common::*;
use dns::records::Table;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

async fn server() -> Running {
    let up = upstream(Duration::ZERO).await;
    start(fixture_table(), vec![up.addr]).await
}

#[tokio::test]
async fn a_record_of_a_cluster_ip_service_is_authoritative() {
    let s = server().await;
    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    assert_eq!(
        a_records(&m),
        vec!["10.43.0.20".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    assert_eq!(m.answers[0].ttl, 5);
    assert!(m.edns.is_some(), "EDNS in, EDNS out");
}

#[tokio::test]
async fn names_are_case_insensitive_and_the_question_is_echoed() {
    let s = server().await;
    let m = ask(s.udp, "WeB.DeFaUlT.sVc.ClUsTeR.LoCaL.", RecordType::A).await;
    assert_eq!(a_records(&m).len(), 1);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "WeB.DeFaUlT.sVc.ClUsTeR.LoCaL."
    );
}

#[tokio::test]
async fn srv_answers_with_target_and_additional_addresses() {
    let s = server().await;
    let m = ask(
        s.udp,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    let RData::SRV(srv) = &m.answers[0].data else {
        panic!("not SRV: {m:?}")
    };
    assert_eq!(srv.port, 80);
    assert_eq!(srv.target.to_ascii(), "web.default.svc.cluster.local.");
    assert_eq!(m.additionals.len(), 1);
    assert_eq!(
        m.additionals[0].name.to_ascii(),
        "web.default.svc.cluster.local."
    );
}

#[tokio::test]
async fn ptr_cname_txt_soa_and_ns() {
    let s = server().await;
    let m = ask(s.udp, "20.0.43.10.in-addr.arpa.", RecordType::PTR).await;
    let RData::PTR(ptr) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(ptr.0.to_ascii(), "web.default.svc.cluster.local.");

    let m = ask(s.udp, "ext.default.svc.cluster.local.", RecordType::CNAME).await;
    let RData::CNAME(c) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(c.0.to_ascii(), "foo.example.com.");

    let m = ask(s.udp, "dns-version.cluster.local.", RecordType::TXT).await;
    let RData::TXT(t) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(t.txt_data[0].as_ref(), b"1.1.0");

    let m = ask(s.udp, "cluster.local.", RecordType::SOA).await;
    let RData::SOA(soa) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(soa.serial, 42);
    assert_eq!(soa.mname.to_ascii(), "ns.dns.cluster.local.");

    let m = ask(s.udp, "cluster.local.", RecordType::NS).await;
    let RData::NS(ns) = &m.answers[0].data else {
        panic!("{m:?}")
    };
    assert_eq!(ns.0.to_ascii(), "ns.dns.cluster.local.");
    assert_eq!(m.additionals.len(), 1);
}

#[tokio::test]
async fn nxdomain_and_nodata_both_carry_the_soa() {
    let s = server().await;
    let m = ask(s.udp, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty() && has_soa(&m));
    assert_eq!(m.authorities[0].name.to_ascii(), "cluster.local.");

    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty() && has_soa(&m));
}

#[tokio::test]
async fn node_names_are_served_from_node_objects() {
    let s = server().await;
    let m = ask(s.udp, "node-1.", RecordType::A).await;
    assert_eq!(
        a_records(&m),
        vec!["192.168.50.11".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
}

#[tokio::test]
async fn oversized_udp_answer_is_truncated_and_tcp_carries_it_all() {
    let s = server().await;
    // 120 A records = 12 + 31 + 120*16 bytes: more than 512 and 1232.
    let m = udp(
        s.udp,
        &query("big.default.svc.cluster.local.", RecordType::A, None),
    )
    .await;
    assert!(m.metadata.truncation);
    assert!(m.answers.len() < 120);
    let m = udp(
        s.udp,
        &query("big.default.svc.cluster.local.", RecordType::A, Some(4096)),
    )
    .await;
    assert!(m.metadata.truncation, "EDNS is capped at 1232");
    let raw_len = m.to_vec().expect("encode").len();
    assert!(raw_len <= 1232, "{raw_len}");

    let q1 = query("big.default.svc.cluster.local.", RecordType::A, None);
    let q2 = query("web.default.svc.cluster.local.", RecordType::A, None);
    let got = tcp(s.tcp, &[q1, q2]).await;
    assert!(!got[0].metadata.truncation);
    assert_eq!(got[0].answers.len(), 120);
    assert_eq!(
        a_records(&got[1]).len(),
        1,
        "second query on the same connection"
    );
}

#[tokio::test]
async fn garbage_gets_formerr_or_nothing() {
    let s = server().await;
    // A header claiming one question but carrying none.
    let raw = udp_raw(s.udp, &[0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .expect("answer");
    let m = Message::from_vec(&raw).expect("decode");
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 0x1234);
    // Too short to answer at all: dropped; the server keeps serving.
    assert!(udp_raw(s.udp, &[1, 2, 3]).await.is_none());
    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&m).len(), 1);
}

#[tokio::test]
async fn cluster_names_are_servfail_before_the_first_sync() {
    let up = upstream(Duration::ZERO).await;
    let s = start(Table::new(zone()), vec![up.addr]).await;
    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Publishing a synced table switches answers without a restart.
    s.table.store(std::sync::Arc::new(fixture_table()));
    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
}

#[tokio::test]
async fn random_bytes_never_break_the_server() {
    let s = server().await;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 80) as usize + 12;
        let mut bytes: Vec<u8> = (0..len)
            .map(|j| (seed.rotate_left(j as u32) >> 3) as u8)
            .collect();
        bytes[2] &= 0x7F; // a query, so it is not dropped outright
        if i % 2 == 0 {
            bytes[4..6].copy_from_slice(&[0, 1]);
        }
        if let Some(raw) = udp_raw(s.udp, &bytes).await {
            assert_eq!(raw[0..2], bytes[0..2], "answers keep the ID");
        }
    }
    let m = ask(s.udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&m).len(), 1);
}
