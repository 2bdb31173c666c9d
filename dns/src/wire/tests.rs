//! The query parser against hickory-proto's encoder, and random bytes
//! through the whole local answer path (a bounded, in-process fuzz run).

use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query as HQuery};
use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::records::{Table, Zone, ZoneConfig};
use crate::server::answer_local;

fn encoded(name: &str, edns: Option<u16>) -> Vec<u8> {
    let mut msg = Message::new(7, MessageType::Query, OpCode::Query);
    msg.add_query(HQuery::query(
        Name::from_str(name).expect("name"),
        RecordType::SRV,
    ));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg.to_vec().expect("encode")
}

#[test]
fn parses_what_hickory_encodes() {
    let raw = encoded("_http._tcp.web.default.svc.cluster.local.", Some(4000));
    let q = parse(&raw).expect("query");
    assert_eq!(q.id, 7);
    assert_eq!(q.qtype, 33);
    assert_eq!(q.name().label_count(), 7);
    assert_eq!(
        q.name().to_string(),
        "_http._tcp.web.default.svc.cluster.local."
    );
    assert_eq!(
        q.edns,
        Some(query::Edns {
            payload: 4000,
            version: 0
        })
    );
    assert_eq!(q.udp_limit(), 1232);
    let plain = parse(&encoded("a.", None)).expect("query");
    assert_eq!(plain.udp_limit(), 512);
}

#[test]
fn responses_and_bad_counts_are_rejected() {
    let mut raw = encoded("a.", None);
    raw[2] |= 0x80;
    assert_eq!(parse(&raw).err(), Some(Reject::Drop));
    let mut raw = encoded("a.", None);
    raw[5] = 2;
    assert!(matches!(
        parse(&raw),
        Err(Reject::Error {
            rcode: rcode::FORMERR,
            ..
        })
    ));
    // A compression pointer in the question.
    let mut raw = encoded("a.", None);
    raw[12] = 0xC0;
    assert!(matches!(
        parse(&raw),
        Err(Reject::Error {
            rcode: rcode::FORMERR,
            ..
        })
    ));
}

#[test]
fn random_messages_never_panic_and_answers_decode() {
    let zone = Arc::new(Zone::new(&ZoneConfig::default()).expect("zone"));
    let mut table = Table::new(zone);
    table.mark_synced();
    let seeds = [
        encoded("_http._tcp.web.default.svc.cluster.local.", Some(1232)),
        encoded("cluster.local.", None),
        encoded("1.0.0.10.in-addr.arpa.", Some(512)),
    ];
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::new();
    for i in 0..200_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut msg = seeds[i % seeds.len()].clone();
        // Flip a few bytes, and sometimes cut or extend the message.
        for k in 0..(state % 4) {
            let at = ((state >> (8 * k)) as usize) % msg.len();
            msg[at] = (state >> (16 + k)) as u8;
        }
        match state % 7 {
            0 => msg.truncate((state >> 20) as usize % msg.len()),
            1 => msg.extend_from_slice(&state.to_be_bytes()),
            _ => {}
        }
        if let Ok(q) = parse(&msg) {
            let limit = q.udp_limit();
            if answer_local(&table, &q, &msg, limit, &mut out) == crate::server::Outcome::Answered {
                assert!(out.len() <= limit, "response over the limit");
                Message::from_vec(&out).expect("our response decodes");
            }
        }
    }
}

/// A query for `name` (wire form) of type A, no EDNS.
fn query_for(name: &[u8]) -> Vec<u8> {
    let mut raw = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    raw.extend_from_slice(name);
    raw.extend_from_slice(&[0, 1, 0, 1]);
    raw
}

#[test]
fn every_byte_value_is_lower_cased_as_ascii_at_every_alignment() {
    for half in [0..128, 128..256].map(|r| r.map(|b: u16| b as u8).collect::<Vec<u8>>()) {
        for shift in 0..8 {
            let mut content = vec![b'Q'; shift];
            content.extend_from_slice(&half);
            let mut name = Vec::new();
            for label in content.chunks(60) {
                name.push(label.len() as u8);
                name.extend_from_slice(label);
            }
            name.push(0);
            let q = parse(&query_for(&name)).expect("query");
            let expected: Vec<u8> = name.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(q.name().wire(), &expected[..], "shift {shift}");
        }
    }
}

#[test]
fn a_name_cut_short_inside_a_label_is_formerr() {
    let mut raw = query_for(&[3, b'W', b'e', b'b', 0]);
    raw.truncate(HEADER_LEN + 3);
    assert_eq!(
        parse(&raw).err(),
        Some(Reject::Error {
            id: 1,
            flags: 0,
            rcode: rcode::FORMERR
        })
    );
}
