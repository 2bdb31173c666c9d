//! One message in, one decision out; shared by UDP and TCP.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::answer::{Outcome, answer_chased, answer_local};
use crate::forward::Forwarder;
use crate::metrics::{Metrics, Origin, Source};
use crate::records::Table;
use crate::wire::{self, Query, Reject, Response, rcode};

/// What the listeners share.
pub struct Context {
    /// The current table, swapped whole by the sync loop.
    pub table: Arc<ArcSwap<Table>>,
    pub forwarder: Arc<Forwarder>,
    pub metrics: Arc<Metrics>,
}

/// A query waiting for the upstreams.
pub struct Pending {
    pub q: Query,
    /// Set for an ExternalName chain that leaves the zone: the question
    /// to resolve (the client's own question otherwise).
    pub chase: Option<Box<[u8]>>,
    pub started: Instant,
}

/// What to do with a message.
pub enum Handled {
    /// `out` holds the response.
    Reply,
    /// Send nothing.
    Drop,
    /// Needs the upstreams; `forward_response` writes the answer.
    Forward(Box<Pending>),
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
pub fn handle(
    ctx: &Context,
    raw: &[u8],
    transport: Transport,
    origin: Origin,
    out: &mut Vec<u8>,
) -> Handled {
    let started = Instant::now();
    let q = match wire::parse(raw) {
        Ok(q) => q,
        Err(Reject::Drop) => return Handled::Drop,
        Err(Reject::Error { id, flags, rcode }) => {
            wire::error_response(out, id, flags, rcode);
            ctx.metrics.observe_rejected(origin, out);
            return Handled::Reply;
        }
    };
    let limit = transport.limit(&q);
    let table = ctx.table.load();
    let chase = match answer_local(&table, &q, raw, limit, out) {
        Outcome::Answered => return reply(ctx, &q, origin, out, Source::Kubernetes, started),
        Outcome::Forward => None,
        Outcome::Chase(question) => Some(question),
    };
    let question = chase.as_deref();
    let hit = match question {
        Some(question) => ctx.forwarder.cached_question(question),
        None => ctx.forwarder.cached(&q),
    };
    let Some(hit) = hit else {
        return Handled::Forward(Box::new(Pending { q, chase, started }));
    };
    ctx.metrics.cache_hit(origin, hit.is_negative());
    match question {
        Some(question) => {
            chased(&table, &q, raw, limit, out, question, Some(&hit));
            reply(ctx, &q, origin, out, Source::Kubernetes, started)
        }
        None => {
            hit.write_response(&q, raw, limit, out);
            reply(ctx, &q, origin, out, Source::Cache, started)
        }
    }
}

fn reply(
    ctx: &Context,
    q: &Query,
    origin: Origin,
    out: &[u8],
    source: Source,
    started: Instant,
) -> Handled {
    ctx.metrics.observe(origin, q.qtype, out, source, started);
    Handled::Reply
}

/// Resolves a forwarded query and writes its response (SERVFAIL when no
/// upstream answered).
pub async fn forward_response(
    ctx: &Context,
    pending: &Pending,
    raw: &[u8],
    limit: usize,
    origin: Origin,
    out: &mut Vec<u8>,
) {
    let q = &pending.q;
    let source = match &pending.chase {
        Some(question) => {
            let answer = ctx.forwarder.resolve_question(question).await;
            if let Err(e) = &answer {
                tracing::debug!(name = %q.name(), error = %e, "resolving an ExternalName target failed");
            }
            let table = ctx.table.load();
            let answer = answer.ok();
            chased(&table, q, raw, limit, out, question, answer.as_deref());
            Source::Kubernetes
        }
        None => {
            match ctx.forwarder.resolve(q).await {
                Ok(answer) => answer.write_response(q, raw, limit, out),
                Err(e) => {
                    tracing::debug!(name = %q.name(), error = %e, "forwarding failed");
                    servfail(q, raw, limit, out);
                }
            }
            Source::Forward
        }
    };
    ctx.metrics
        .observe(origin, q.qtype, out, source, pending.started);
}

/// Writes the answer to `q` whose ExternalName chain left the zone at
/// `question`; SERVFAIL if the table changed so much meanwhile that the
/// name no longer ends in that chain.
fn chased(
    table: &Table,
    q: &Query,
    raw: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    question: &[u8],
    answer: Option<&crate::forward::Cached>,
) {
    if answer_chased(table, q, raw, limit, out, question, answer) != Outcome::Answered {
        servfail(q, raw, limit, out);
    }
}

fn servfail(q: &Query, raw: &[u8], limit: usize, out: &mut Vec<u8>) {
    let mut r = Response::start(out, q, raw, limit);
    r.set_rcode(rcode::SERVFAIL);
    r.finish();
}
