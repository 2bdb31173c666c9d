//! One message from an upstream resolver, as the forwarder receives it
//! for our example.com/A question: decode it for the cache, then copy it
//! into a client's reply. Nothing may panic, and the reply must fit the
//! client's UDP limit.
#![no_main]

use std::sync::LazyLock;

use dns::forward::Cached;
use dns::wire::{self, Query};
use libfuzzer_sys::fuzz_target;
use nodenet_fuzz::{TTL, example_com_question};

/// A client's query for example.com/A offering 1232 bytes of EDNS.
static CLIENT: LazyLock<(Vec<u8>, Query)> = LazyLock::new(|| {
    let mut raw = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
    raw.extend_from_slice(b"\x07ExAmPlE\x03com\x00\x00\x01\x00\x01");
    raw.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    let q = wire::parse(&raw).expect("the fixture query parses");
    (raw, q)
});

fuzz_target!(|data: &[u8]| {
    let question = example_com_question();
    let Ok(cached) = Cached::decode(data, &question, TTL) else {
        return;
    };
    let _ = cached.answer_records();
    let (raw, q) = &*CLIENT;
    let limit = q.udp_limit();
    let mut out = Vec::new();
    cached.write_response(q, raw, limit, &mut out);
    assert!(
        out.len() <= limit,
        "reply of {} bytes over {limit}",
        out.len()
    );
    assert_eq!(out[0..2], raw[0..2], "reply with another ID");
});
