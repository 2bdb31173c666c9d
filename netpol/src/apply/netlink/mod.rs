//! Element-only changes as one nf_tables netlink batch, sent from this
//! process: no `nft` child, no cache fetch of the whole table. A pod event
//! usually only adds or removes set and map elements; the kernel applies
//! the batch atomically (all messages or none), like one `nft -f`.
//!
//! Acts on the network namespace of the calling thread (the socket is
//! opened per call, on that thread).

mod encode;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use crate::plan::{ElementOp, Plan};

pub use encode::{Batch, Element, element_key};

/// Elements per message: keeps every nested attribute far below its
/// 64 KiB length limit.
const ELEMENTS_PER_MESSAGE: usize = 256;
/// Larger batches go through `nft -f` (a netlink message must fit the
/// socket's send buffer).
pub const MAX_BATCH_BYTES: usize = 128 * 1024;
/// How long to wait for the kernel's answers (it answers before `sendto`
/// returns; this only bounds a kernel that does not).
const ANSWER_TIMEOUT_SECS: i64 = 2;

/// Why a netlink batch was not applied (the caller falls back to nft).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// An element text the encoder cannot turn into key bytes.
    #[error("element {element:?} of type {key_type:?}: {reason}")]
    Element {
        element: String,
        key_type: String,
        reason: String,
    },
    /// The change names a set or map the applied plan does not have, or
    /// an interval set (its elements are ranges; nft encodes those).
    #[error("{object}: {reason}")]
    Unsupported { object: String, reason: String },
    /// The batch would exceed [`MAX_BATCH_BYTES`].
    #[error("batch of {0} bytes is too large for one netlink message")]
    TooLarge(usize),
    /// Socket setup, send or receive failed.
    #[error("netlink {step}: {source}")]
    Io {
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    /// The kernel rejected the batch (nothing was applied).
    #[error("kernel rejected the change to {object}: {source}")]
    Rejected { object: String, source: nix::Error },
    /// The kernel's answer was cut short or malformed.
    #[error("incomplete netlink answer: {0}")]
    Answer(String),
}

/// Applies `ops` to table `inet <table>` in one batch. `plan` is the plan
/// the ops were computed against (it gives each set's type).
pub fn apply_elements(table: &str, plan: &Plan, ops: &[ElementOp]) -> Result<(), NetlinkError> {
    let (bytes, objects) = encode_ops(table, plan, ops)?;
    let sock = open()?;
    sendto(
        sock.as_raw_fd(),
        &bytes,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|source| NetlinkError::Io {
        step: "send",
        source,
    })?;
    await_acks(&sock, &objects)
}

/// The batch bytes and, per acknowledged message (by sequence offset),
/// the object it changes.
fn encode_ops(
    table: &str,
    plan: &Plan,
    ops: &[ElementOp],
) -> Result<(Vec<u8>, Vec<String>), NetlinkError> {
    // Begin is sequence 1, so element message i (from 0) is i + 2.
    let mut batch = Batch::new(1);
    let mut objects = Vec::new();
    for op in ops {
        let key_type = key_type(plan, &op.object)?;
        let elements = op
            .elements
            .iter()
            .map(|(text, verdict)| encode_element(&key_type, text, verdict.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        for chunk in elements.chunks(ELEMENTS_PER_MESSAGE) {
            batch.elements(table, &op.object, op.add, chunk);
            objects.push(op.object.clone());
        }
        if batch.byte_len() > MAX_BATCH_BYTES {
            return Err(NetlinkError::TooLarge(batch.byte_len()));
        }
    }
    Ok((batch.finish(), objects))
}

fn key_type(plan: &Plan, object: &str) -> Result<String, NetlinkError> {
    let unsupported = |reason: &str| NetlinkError::Unsupported {
        object: object.to_string(),
        reason: reason.to_string(),
    };
    if let Some(set) = plan.sets.get(object) {
        if set.interval {
            return Err(unsupported("interval set"));
        }
        return Ok(set.key_type.clone());
    }
    match plan.maps.get(object) {
        Some(map) => Ok(map.key_type.clone()),
        None => Err(unsupported("not in the applied plan")),
    }
}

fn encode_element(
    key_type: &str,
    text: &str,
    verdict: Option<&str>,
) -> Result<Element, NetlinkError> {
    let key = element_key(key_type, text)?;
    let jump = match verdict {
        None => None,
        Some(v) => match v.strip_prefix("jump ") {
            Some(chain) => Some(chain.to_string()),
            None => {
                return Err(NetlinkError::Element {
                    element: format!("{text} : {v}"),
                    key_type: key_type.to_string(),
                    reason: "only jump verdicts are encoded".into(),
                });
            }
        },
    };
    Ok(Element { key, jump })
}

fn open() -> Result<OwnedFd, NetlinkError> {
    let io = |step| move |source| NetlinkError::Io { step, source };
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(io("socket"))?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(io("bind"))?;
    let timeout = TimeVal::new(ANSWER_TIMEOUT_SECS, 0);
    setsockopt(&sock, sockopt::ReceiveTimeout, &timeout).map_err(io("set timeout"))?;
    Ok(sock)
}

const NLMSG_ERROR: u16 = 2;

/// Reads one answer per element message. The kernel answers every
/// message of an aborted batch too, so success needs all of them to be
/// zero; the first error names the rejected object.
fn await_acks(sock: &OwnedFd, objects: &[String]) -> Result<(), NetlinkError> {
    let mut pending = objects.len();
    let mut first_error: Option<NetlinkError> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while pending > 0 {
        let n = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|source| {
            NetlinkError::Io {
                step: "receive",
                source,
            }
        })?;
        for (seq, errno) in parse_acks(&buf[..n])? {
            pending = pending.saturating_sub(1);
            if errno != 0 && first_error.is_none() {
                let index = seq.wrapping_sub(2) as usize;
                let object = objects.get(index).cloned().unwrap_or_default();
                let source = nix::Error::from_raw(-errno);
                first_error = Some(NetlinkError::Rejected { object, source });
                // The batch is aborted; the remaining answers change nothing.
                pending = 0;
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// (sequence number, error code) of every NLMSG_ERROR in `data`.
fn parse_acks(data: &[u8]) -> Result<Vec<(u32, i32)>, NetlinkError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= data.len() {
        let word = |o: usize| u32::from_ne_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        let len = word(at) as usize;
        let kind = u16::from_ne_bytes([data[at + 4], data[at + 5]]);
        if len < 16 || at + len > data.len() {
            return Err(NetlinkError::Answer(format!(
                "message length {len} at {at}"
            )));
        }
        if kind == NLMSG_ERROR {
            if len < 20 {
                return Err(NetlinkError::Answer("short error message".into()));
            }
            let errno = word(at + 16) as i32;
            out.push((word(at + 8), errno));
        }
        at += (len + 3) & !3;
    }
    Ok(out)
}
