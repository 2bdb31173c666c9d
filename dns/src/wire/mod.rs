//! The DNS wire format on the hot path: a zero-allocation query parser
//! and a response writer that compresses names against the question.
//!
//! hickory-proto's `Message` allocates per name, label and record; the
//! server answers cluster names and cache hits through this module
//! instead, and uses hickory-proto where a full message model pays off
//! (decoding upstream answers in the forwarder) and as the test client.

mod query;
mod writer;

pub use query::{Edns, Query, Reject, parse};
pub use writer::{Name, Response, Section, error_response};

/// Size of the fixed message header.
pub const HEADER_LEN: usize = 12;
/// The largest UDP payload we offer or use (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Classic UDP limit without EDNS(0).
pub const CLASSIC_UDP: usize = 512;
/// Largest message over TCP (two-byte length prefix).
pub const TCP_MAX: usize = 65535;

/// Response codes (RFC 1035 §4.1.1, RFC 6891 for BADVERS).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended rcode 16, carried in the OPT record's upper bits.
    pub const BADVERS: u16 = 16;
}

/// Header flag bits.
pub mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const CD: u16 = 0x0010;
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Skips a (possibly compressed) name starting at `at`; returns the
/// offset after it.
pub(crate) fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *buf.get(at)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(at + 1),
            0x00 => at += 1 + len as usize,
            0xC0 => return (at + 2 <= buf.len()).then_some(at + 2),
            _ => return None,
        }
    }
}

/// Appends the (possibly compressed) name at `at` to `out` uncompressed;
/// None for a malformed name (bad pointer, loop, over 255 bytes).
pub(crate) fn expand_name(buf: &[u8], mut at: usize, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    // Each pointer must go backwards, so a chain cannot loop.
    let mut limit = at;
    loop {
        let len = *buf.get(at)? as usize;
        match len & 0xC0 {
            0x00 if len == 0 => {
                out.push(0);
                return (out.len() - start <= crate::records::MAX_NAME).then_some(());
            }
            0x00 => {
                out.extend_from_slice(buf.get(at..at + 1 + len)?);
                if out.len() - start > crate::records::MAX_NAME {
                    return None;
                }
                at += 1 + len;
            }
            0xC0 => {
                let ptr = (read_u16(buf, at)? & 0x3FFF) as usize;
                if ptr >= limit {
                    return None;
                }
                limit = ptr;
                at = ptr;
            }
            _ => return None,
        }
    }
}

/// A resource record's fixed fields, found by walking a message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord {
    pub start: usize,
    pub rtype: u16,
    pub class: u16,
    /// Offset of the TTL field.
    pub ttl_at: usize,
    pub ttl: u32,
    pub end: usize,
}

/// Reads the record at `at`.
pub(crate) fn read_record(buf: &[u8], at: usize) -> Option<RawRecord> {
    let fixed = skip_name(buf, at)?;
    let rdlen = read_u16(buf, fixed + 8)? as usize;
    let end = fixed + 10 + rdlen;
    (end <= buf.len()).then_some(RawRecord {
        start: at,
        rtype: read_u16(buf, fixed)?,
        class: read_u16(buf, fixed + 2)?,
        ttl_at: fixed + 4,
        ttl: read_u32(buf, fixed + 4)?,
        end,
    })
}

#[cfg(test)]
mod tests;
