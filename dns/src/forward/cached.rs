//! An upstream answer kept in wire form, ready to be copied to a client
//! with its ID, question spelling and TTLs patched.

use std::time::Instant;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

use crate::records::rtype;
use crate::wire::{self, HEADER_LEN, Query, flag};

/// A decoded upstream answer.
#[derive(Debug)]
pub struct Cached {
    /// The message without its OPT record.
    bytes: Box<[u8]>,
    /// Offset of each record's TTL field and the TTL received.
    ttls: Box<[(u32, u32)]>,
    stored: Instant,
    /// Seconds this answer may be cached; 0 = not cacheable.
    pub lifetime: u32,
    pub rcode: u8,
}

/// One record of an upstream answer, names uncompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChasedRecord {
    /// Owner name in wire form (case as the upstream sent it).
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub ttl: u32,
    pub data: Vec<u8>,
}

/// Why an upstream message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// hickory-proto could not decode it.
    #[error("malformed upstream answer: {0}")]
    Malformed(String),
    /// Its question is not the one we asked.
    #[error("upstream answered another question")]
    WrongQuestion,
}

/// Caching limits applied to TTLs.
#[derive(Debug, Clone, Copy)]
pub struct TtlPolicy {
    pub max_positive: u32,
    pub max_negative: u32,
}

impl Cached {
    /// Decodes `msg`, the answer to `question` (our query's question
    /// section bytes, lower-case).
    pub fn decode(msg: &[u8], question: &[u8], policy: TtlPolicy) -> Result<Cached, DecodeError> {
        let end = HEADER_LEN + question.len();
        let same = msg
            .get(HEADER_LEN..end)
            .is_some_and(|q| q.eq_ignore_ascii_case(question));
        if !same {
            return Err(DecodeError::WrongQuestion);
        }
        let parsed = Message::from_vec(msg).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let bytes = without_opt(msg, &parsed)?;
        let ttls = ttl_fields(&bytes, end).ok_or(DecodeError::Malformed("record walk".into()))?;
        let rcode = parsed.metadata.response_code.low();
        Ok(Cached {
            lifetime: lifetime(&parsed, policy),
            bytes: bytes.into(),
            ttls: ttls.into(),
            stored: Instant::now(),
            rcode,
        })
    }

    /// NXDOMAIN, or no answer records (CoreDNS's cache "denial").
    pub fn is_negative(&self) -> bool {
        self.rcode == 3 || wire::read_u16(&self.bytes, 6) == Some(0)
    }

    /// The answer section's records with names expanded and TTLs counted
    /// down, for appending to another message (ExternalName chasing). Only
    /// types whose data holds no name (A, AAAA, TXT) or just one (CNAME)
    /// are returned, so nothing compressed is copied.
    pub fn answer_records(&self) -> Vec<ChasedRecord> {
        let elapsed = self.stored.elapsed().as_secs().min(u64::from(u32::MAX)) as u32;
        let count = wire::read_u16(&self.bytes, 6).unwrap_or(0);
        let Some(mut at) = wire::skip_name(&self.bytes, HEADER_LEN).map(|e| e + 4) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for _ in 0..count {
            let Some(rr) = wire::read_record(&self.bytes, at) else {
                break;
            };
            at = rr.end;
            if let Some(rec) = self.chased(&rr, elapsed) {
                out.push(rec);
            }
        }
        out
    }

    fn chased(&self, rr: &wire::RawRecord, elapsed: u32) -> Option<ChasedRecord> {
        let mut owner = Vec::new();
        wire::expand_name(&self.bytes, rr.start, &mut owner)?;
        let data_at = rr.ttl_at + 6;
        let data = match rr.rtype {
            rtype::A | rtype::AAAA | rtype::TXT => self.bytes.get(data_at..rr.end)?.to_vec(),
            rtype::CNAME => {
                let mut name = Vec::new();
                wire::expand_name(&self.bytes, data_at, &mut name)?;
                name
            }
            _ => return None,
        };
        Some(ChasedRecord {
            owner,
            rtype: rr.rtype,
            ttl: rr.ttl.saturating_sub(elapsed),
            data,
        })
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        now.duration_since(self.stored).as_secs() >= u64::from(self.lifetime)
    }

    /// Writes the response for client query `q` into `out`.
    pub fn write_response(&self, q: &Query, raw: &[u8], limit: usize, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        out[0..2].copy_from_slice(&q.id.to_be_bytes());
        // The client's spelling of the question (0x20 case randomisation).
        out[HEADER_LEN..q.question_end].copy_from_slice(&raw[HEADER_LEN..q.question_end]);
        let flags = (u16::from_be_bytes([out[2], out[3]]) & !(flag::RD | flag::TC))
            | (q.flags & flag::RD)
            | flag::RA;
        out[2..4].copy_from_slice(&flags.to_be_bytes());
        let elapsed = self.stored.elapsed().as_secs().min(u64::from(u32::MAX)) as u32;
        for &(at, ttl) in self.ttls.iter() {
            let at = at as usize;
            out[at..at + 4].copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
        let opt = if q.edns.is_some() { 11 } else { 0 };
        if out.len() + opt > limit {
            out.truncate(q.question_end);
            out[2..4].copy_from_slice(&(flags | flag::TC).to_be_bytes());
            out[6..12].copy_from_slice(&[0; 6]);
        }
        if q.edns.is_some() {
            let p = wire::EDNS_PAYLOAD.to_be_bytes();
            out.extend_from_slice(&[0, 0, 41, p[0], p[1], 0, 0, 0, 0, 0, 0]);
            let ar = u16::from_be_bytes([out[10], out[11]]) + 1;
            out[10..12].copy_from_slice(&ar.to_be_bytes());
        }
    }
}

/// The message with its OPT record removed (OPT is hop-by-hop and must not
/// be cached or forwarded, RFC 6891 §6.1.1).
fn without_opt(msg: &[u8], parsed: &Message) -> Result<Vec<u8>, DecodeError> {
    if parsed.edns.is_none() {
        return Ok(msg.to_vec());
    }
    let mut copy = parsed.clone();
    copy.edns = None;
    copy.to_vec()
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Offsets and values of the TTLs of every record after the question.
fn ttl_fields(msg: &[u8], question_end: usize) -> Option<Vec<(u32, u32)>> {
    let counts: usize = [6, 8, 10]
        .iter()
        .map(|&at| wire::read_u16(msg, at).unwrap_or(0) as usize)
        .sum();
    let mut at = question_end;
    let mut out = Vec::with_capacity(counts);
    for _ in 0..counts {
        let rr = wire::read_record(msg, at)?;
        if rr.rtype != rtype::OPT {
            out.push((rr.ttl_at as u32, rr.ttl));
        }
        at = rr.end;
    }
    Some(out)
}

/// How long the answer may be cached: the smallest answer TTL for
/// positive answers, the SOA's negative TTL (RFC 2308) for NXDOMAIN and
/// NODATA; errors and negatives without SOA are not cached.
fn lifetime(msg: &Message, policy: TtlPolicy) -> u32 {
    let code = msg.metadata.response_code;
    let negative =
        code == ResponseCode::NXDomain || (code == ResponseCode::NoError && msg.answers.is_empty());
    if negative {
        let soa = msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        });
        return soa.unwrap_or(0).min(policy.max_negative);
    }
    if code != ResponseCode::NoError {
        return 0;
    }
    let min = msg.answers.iter().map(|r| r.ttl).min().unwrap_or(0);
    min.min(policy.max_positive)
}
