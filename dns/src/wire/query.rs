//! Parsing one query without allocating.

use super::{HEADER_LEN, RawRecord, flag, rcode, read_record, read_u16};
use crate::records::{MAX_LABELS, MAX_NAME, QueryName, rtype};

/// The EDNS(0) OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
}

/// A parsed standard query with one question.
#[derive(Clone)]
pub struct Query {
    pub id: u16,
    /// The request's header flags word.
    pub flags: u16,
    name: [u8; MAX_NAME],
    name_len: u8,
    starts: [u8; MAX_LABELS],
    labels: u8,
    pub qtype: u16,
    pub qclass: u16,
    /// Offset just past the question in the raw message.
    pub question_end: usize,
    pub edns: Option<Edns>,
}

impl Query {
    /// The question name, lower-cased.
    pub fn name(&self) -> QueryName<'_> {
        QueryName::new(
            &self.name[..self.name_len as usize],
            &self.starts[..self.labels as usize],
        )
    }

    /// The largest response we may send over UDP for this query.
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            Some(e) => (e.payload as usize).clamp(super::CLASSIC_UDP, super::EDNS_PAYLOAD as usize),
            None => super::CLASSIC_UDP,
        }
    }
}

/// Why a message gets no normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Too short to answer, or itself a response: drop silently.
    Drop,
    /// Answer with just a header carrying this rcode.
    Error { id: u16, flags: u16, rcode: u8 },
}

/// Parses `msg` as a query.
pub fn parse(msg: &[u8]) -> Result<Query, Reject> {
    if msg.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & flag::QR != 0 {
        return Err(Reject::Drop);
    }
    let error = |rcode| Reject::Error { id, flags, rcode };
    if (flags >> 11) & 0xF != 0 {
        return Err(error(rcode::NOTIMP));
    }
    let counts = [4, 6, 8, 10].map(|at| u16::from_be_bytes([msg[at], msg[at + 1]]));
    if counts[0] != 1 {
        return Err(error(rcode::FORMERR));
    }
    let mut query = Query {
        id,
        flags,
        name: [0; MAX_NAME],
        name_len: 0,
        starts: [0; MAX_LABELS],
        labels: 0,
        qtype: 0,
        qclass: 0,
        question_end: 0,
        edns: None,
    };
    let at = read_question(msg, &mut query).ok_or(error(rcode::FORMERR))?;
    query.question_end = at;
    let records = counts[1] as usize + counts[2] as usize + counts[3] as usize;
    query.edns = read_edns(msg, at, records).ok_or(error(rcode::FORMERR))?;
    if query.qtype == rtype::OPT {
        return Err(error(rcode::FORMERR));
    }
    Ok(query)
}

/// Copies the question name lower-cased; compression is not allowed in
/// the question (nothing precedes it to point at).
fn read_question(msg: &[u8], q: &mut Query) -> Option<usize> {
    let mut at = HEADER_LEN;
    let mut len = 0usize;
    loop {
        let label = *msg.get(at)? as usize;
        if label & 0xC0 != 0 || len + label + 1 > MAX_NAME {
            return None;
        }
        if label == 0 {
            len += 1;
            at += 1;
            break;
        }
        if q.labels as usize == MAX_LABELS {
            return None;
        }
        q.starts[q.labels as usize] = len as u8;
        q.labels += 1;
        len += label + 1;
        at += label + 1;
    }
    // Without compression the name is the message bytes as they stand:
    // one copy and one lower-casing pass over the whole name (length
    // octets are at most 63, below b'A', so lower-casing leaves them be)
    // cost far less than a copy-and-convert per label.
    let name = &mut q.name[..len];
    name.copy_from_slice(msg.get(HEADER_LEN..at)?);
    name.make_ascii_lowercase();
    q.name_len = len as u8;
    q.qtype = read_u16(msg, at)?;
    q.qclass = read_u16(msg, at + 2)?;
    Some(at + 4)
}

/// Walks the remaining records for the OPT record; None means malformed
/// (truncated records, or two OPT records).
fn read_edns(msg: &[u8], mut at: usize, records: usize) -> Option<Option<Edns>> {
    let mut edns = None;
    for _ in 0..records {
        let rr: RawRecord = read_record(msg, at)?;
        if rr.rtype == rtype::OPT {
            if edns.is_some() || msg[rr.start] != 0 {
                return None;
            }
            edns = Some(Edns {
                payload: rr.class,
                version: (rr.ttl >> 16) as u8,
            });
        }
        at = rr.end;
    }
    Some(edns)
}
