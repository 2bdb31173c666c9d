//! Writing one response into a reused buffer. Names are written as a few
//! labels followed by a compression pointer into the question, so nothing
//! is looked up or allocated while writing.

use super::{HEADER_LEN, Query, flag};

/// The three record sections after the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// A name as `labels` followed by a pointer to offset `ptr` of the
/// message (a suffix of the question name).
#[derive(Clone, Copy)]
pub struct Name<'a> {
    pub labels: &'a [&'a [u8]],
    pub ptr: u16,
}

impl Name<'_> {
    /// The question name itself.
    pub const QUESTION: Name<'static> = Name {
        labels: &[],
        ptr: HEADER_LEN as u16,
    };

    pub fn at(ptr: usize) -> Name<'static> {
        Name {
            labels: &[],
            ptr: ptr as u16,
        }
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        for label in self.labels {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.extend_from_slice(&(0xC000 | self.ptr).to_be_bytes());
    }
}

/// Size of the OPT record we append.
const OPT_LEN: usize = 11;

/// A response under construction.
pub struct Response<'o> {
    out: &'o mut Vec<u8>,
    limit: usize,
    reserve: usize,
    counts: [u16; 3],
    flags: u16,
    full: bool,
    edns: bool,
    ext_rcode: u8,
}

impl<'o> Response<'o> {
    /// Starts a response to `q` (header and the question copied from
    /// `raw`, in the client's spelling) of at most `limit` bytes.
    pub fn start(out: &'o mut Vec<u8>, q: &Query, raw: &[u8], limit: usize) -> Self {
        out.clear();
        out.extend_from_slice(&q.id.to_be_bytes());
        let flags = flag::QR | flag::RA | (q.flags & (flag::RD | flag::CD));
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&raw[HEADER_LEN..q.question_end]);
        let edns = q.edns.is_some();
        Response {
            out,
            limit,
            reserve: if edns { OPT_LEN } else { 0 },
            counts: [0; 3],
            flags,
            full: false,
            edns,
            ext_rcode: 0,
        }
    }

    pub fn set_rcode(&mut self, rcode: u8) {
        self.flags = (self.flags & !0xF) | u16::from(rcode & 0xF);
    }

    /// Sets an extended rcode (> 15); needs EDNS.
    pub fn set_ext_rcode(&mut self, rcode: u16) {
        self.ext_rcode = (rcode >> 4) as u8;
        self.set_rcode((rcode & 0xF) as u8);
    }

    pub fn set_authoritative(&mut self) {
        self.flags |= flag::AA;
    }

    /// Current length of the message (for pointers to what was written).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Appends one record; returns false (writing nothing) once the size
    /// limit is reached. A record dropped from the answer section sets TC;
    /// dropped authority or additional records do not (RFC 2181 §9).
    pub fn record(
        &mut self,
        section: Section,
        owner: Name<'_>,
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        self.push(section, |o| owner.write(o), rtype, ttl, rdata)
    }

    /// Like [`Response::record`] with the owner given as an uncompressed
    /// wire name (a name that is not a suffix of the question).
    pub fn record_wire_owner(
        &mut self,
        section: Section,
        owner: &[u8],
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        self.push(section, |o| o.extend_from_slice(owner), rtype, ttl, rdata)
    }

    fn push(
        &mut self,
        section: Section,
        owner: impl FnOnce(&mut Vec<u8>),
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Vec<u8>),
    ) -> bool {
        if self.full {
            return false;
        }
        let start = self.out.len();
        owner(self.out);
        self.out.extend_from_slice(&rtype.to_be_bytes());
        self.out.extend_from_slice(&1u16.to_be_bytes());
        self.out.extend_from_slice(&ttl.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        rdata(self.out);
        let rdlen = self.out.len() - len_at - 2;
        if self.out.len() + self.reserve > self.limit || rdlen > u16::MAX as usize {
            self.out.truncate(start);
            self.full = true;
            if section == Section::Answer {
                self.flags |= flag::TC;
            }
            return false;
        }
        self.out[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
        self.counts[section as usize] += 1;
        true
    }

    /// Writes the header fields and the OPT record.
    pub fn finish(self) {
        let mut arcount = self.counts[2];
        if self.edns {
            arcount += 1;
            let payload = super::EDNS_PAYLOAD.to_be_bytes();
            self.out.extend_from_slice(&[
                0,
                0,
                41,
                payload[0],
                payload[1],
                self.ext_rcode,
                0,
                0,
                0,
                0,
                0,
            ]);
        }
        self.out[2..4].copy_from_slice(&self.flags.to_be_bytes());
        self.out[6..8].copy_from_slice(&self.counts[0].to_be_bytes());
        self.out[8..10].copy_from_slice(&self.counts[1].to_be_bytes());
        self.out[10..12].copy_from_slice(&arcount.to_be_bytes());
    }
}

/// A header-only error response (FORMERR, NOTIMP) to a message we could
/// not parse as a query.
pub fn error_response(out: &mut Vec<u8>, id: u16, flags: u16, rcode: u8) {
    out.clear();
    out.extend_from_slice(&id.to_be_bytes());
    let opcode = flags & 0x7800;
    let flags = flag::QR | flag::RA | opcode | (flags & flag::RD) | u16::from(rcode);
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
}
