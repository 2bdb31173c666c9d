//! One client message, as the UDP or TCP listener hands it to the server:
//! parse, answer from the fixture table or the cache, or fail to forward
//! (no upstream) and write SERVFAIL. Nothing may panic, and every reply
//! must be a DNS header at least and fit the transport's size limit.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use dns::metrics::Origin;
use dns::server::{Context, Handled, Transport, forward_response, handle};
use dns::wire::{self, HEADER_LEN, TCP_MAX};
use libfuzzer_sys::fuzz_target;

static CONTEXT: LazyLock<Context> = LazyLock::new(nodenet_fuzz::context);

fuzz_target!(|data: &[u8]| {
    // The first byte picks the transport; the rest is the message.
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    let tcp = pick & 1 == 1;
    let transport = if tcp { Transport::Tcp } else { Transport::Udp };
    let origin = Origin::new(tcp, IpAddr::from([10, 42, 0, 7]), 0);
    let ctx = &*CONTEXT;
    let mut out = Vec::with_capacity(TCP_MAX);
    match handle(ctx, raw, transport, origin, &mut out) {
        Handled::Drop => return,
        Handled::Reply => {}
        Handled::Forward(pending) => {
            let limit = transport.limit(&pending.q);
            // No upstream: the future completes without waiting on I/O.
            futures::executor::block_on(forward_response(
                ctx, &pending, raw, limit, origin, &mut out,
            ));
        }
    }
    check_reply(raw, transport, &out);
});

fn check_reply(raw: &[u8], transport: Transport, out: &[u8]) {
    assert!(out.len() >= HEADER_LEN, "reply shorter than a header");
    assert!(out[2] & 0x80 != 0, "reply without the QR bit");
    let limit = match wire::parse(raw) {
        Ok(q) => transport.limit(&q),
        // A rejected message gets a bare header.
        Err(_) => HEADER_LEN,
    };
    assert!(
        out.len() <= limit,
        "reply of {} bytes over the {limit}-byte limit",
        out.len()
    );
}
