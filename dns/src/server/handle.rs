//! One message in, one decision out; shared by UDP and TCP.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::answer::{Outcome, answer_local};
use crate::forward::Forwarder;
use crate::records::Table;
use crate::wire::{self, Query, Reject, Response, rcode};

/// What the listeners share.
pub struct Context {
    /// The current table, swapped whole by the sync loop.
    pub table: Arc<ArcSwap<Table>>,
    pub forwarder: Arc<Forwarder>,
}

/// What to do with a message.
pub enum Handled {
    /// `out` holds the response.
    Reply,
    /// Send nothing.
    Drop,
    /// Needs the upstreams; `forward_response` writes the answer.
    Forward(Box<Query>),
}

/// How a message arrived, which bounds the response size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// 512 bytes, or the client's EDNS size capped at 1232.
    Udp,
    Tcp,
}

impl Transport {
    pub fn limit(self, q: &Query) -> usize {
        match self {
            Transport::Udp => q.udp_limit(),
            Transport::Tcp => wire::TCP_MAX,
        }
    }
}

/// Handles `raw`, writing the response to `out` when one can be given
/// right away.
pub fn handle(ctx: &Context, raw: &[u8], transport: Transport, out: &mut Vec<u8>) -> Handled {
    let q = match wire::parse(raw) {
        Ok(q) => q,
        Err(Reject::Drop) => return Handled::Drop,
        Err(Reject::Error { id, flags, rcode }) => {
            wire::error_response(out, id, flags, rcode);
            return Handled::Reply;
        }
    };
    let limit = transport.limit(&q);
    let table = ctx.table.load();
    if answer_local(&table, &q, raw, limit, out) == Outcome::Answered {
        return Handled::Reply;
    }
    match ctx.forwarder.cached(&q) {
        Some(hit) => {
            hit.write_response(&q, raw, limit, out);
            Handled::Reply
        }
        None => Handled::Forward(Box::new(q)),
    }
}

/// Resolves a forwarded query and writes its response (SERVFAIL when no
/// upstream answered).
pub async fn forward_response(
    ctx: &Context,
    q: &Query,
    raw: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) {
    match ctx.forwarder.resolve(q, raw).await {
        Ok(answer) => answer.write_response(q, raw, limit, out),
        Err(e) => {
            tracing::debug!(name = %q.name(), error = %e, "forwarding failed");
            let mut r = Response::start(out, q, raw, limit);
            r.set_rcode(rcode::SERVFAIL);
            r.finish();
        }
    }
}
