//! ExternalName answers: the CNAME, then the target's records, as CoreDNS
//! does. A target inside our data (cluster zone or host names) is looked up
//! in the same table snapshot; one outside is resolved through the
//! forwarder (cache first), so glibc clients, which do not chase CNAMEs
//! themselves, get an address.
//!
//! Differences from CoreDNS, on purpose: an in-zone target that does not
//! exist gives the CNAME plus NXDOMAIN (RFC 6604) instead of an empty
//! NOERROR; a failed upstream gives the CNAME plus SERVFAIL.

use super::answer::{Upstream, Writer};
use crate::records::{Answer, OwnedName, Resolution, rtype};
use crate::wire::{Name, Section, rcode};

/// Longest CNAME chain followed inside our data (loops end here too).
const MAX_CHAIN: usize = 8;

/// Size of an owner written as a bare compression pointer plus the fixed
/// record fields: where the rdata of such a record starts.
const POINTER_RR_HEADER: usize = 2 + 10;

/// Query types whose ExternalName answer is chased (spec §2.5 and CoreDNS:
/// A, AAAA and TXT); others get the CNAME alone.
fn chased(qtype: u16) -> bool {
    matches!(qtype, rtype::A | rtype::AAAA | rtype::TXT)
}

impl<'a> Writer<'a, '_> {
    pub(super) fn cname_chain(&mut self, first: &'a OwnedName) {
        let (ttl, qtype) = (self.ttl(), self.q.qtype);
        let mut owner = Name::QUESTION;
        let mut target = first;
        for _ in 0..MAX_CHAIN {
            let rdata_at = self.r.len() + POINTER_RR_HEADER;
            let wrote = self
                .r
                .record(Section::Answer, owner, rtype::CNAME, ttl, |o| {
                    o.extend_from_slice(target.wire())
                });
            if !wrote || !chased(qtype) {
                return;
            }
            owner = Name::at(rdata_at);
            match self.table.resolve(target.as_query(), qtype) {
                Resolution::Answer(Answer::Cname(next)) => target = next,
                Resolution::Forward => return self.outside(owner, target),
                other => return self.inside(owner, other),
            }
        }
    }

    /// The chain ended at a name we answer for.
    fn inside(&mut self, owner: Name<'_>, resolution: Resolution<'_>) {
        use std::net::IpAddr;
        match resolution {
            Resolution::Answer(Answer::V4(a)) => {
                self.addrs(owner, a.iter().map(|x| IpAddr::V4(*x)), Section::Answer)
            }
            Resolution::Answer(Answer::V6(a)) => {
                self.addrs(owner, a.iter().map(|x| IpAddr::V6(*x)), Section::Answer)
            }
            Resolution::Answer(Answer::Pod(ip)) => {
                self.addrs(owner, std::iter::once(ip), Section::Answer)
            }
            Resolution::Answer(Answer::Endpoints { endpoints, v4 }) => {
                let addrs = endpoints.iter().map(|e| e.addr);
                self.addrs(owner, addrs.filter(|a| a.is_ipv4() == v4), Section::Answer)
            }
            Resolution::NxDomain => {
                self.r.set_rcode(rcode::NXDOMAIN);
                self.soa(Section::Authority);
            }
            Resolution::NoData { soa: true } => self.soa(Section::Authority),
            Resolution::NotSynced => self.r.set_rcode(rcode::SERVFAIL),
            // Other record kinds cannot answer A/AAAA/TXT.
            _ => {}
        }
    }

    /// The chain left our data at `target`: append the forwarder's answer
    /// or ask the caller to get one.
    fn outside(&mut self, owner: Name<'_>, target: &OwnedName) {
        let mut question = Vec::with_capacity(target.wire().len() + 4);
        question.extend_from_slice(target.wire());
        question.extend_from_slice(&self.q.qtype.to_be_bytes());
        question.extend_from_slice(&1u16.to_be_bytes());
        match self.upstream {
            Upstream::NotAsked => self.needs = Some(question.into()),
            Upstream::Failed => self.r.set_rcode(rcode::SERVFAIL),
            // The table changed between asking and answering: the answer
            // is for another name.
            Upstream::Got(asked, _) if asked != question.as_slice() => {
                self.r.set_rcode(rcode::SERVFAIL)
            }
            Upstream::Got(_, answer) => {
                if answer.rcode != rcode::NOERROR {
                    self.r.set_rcode(answer.rcode);
                }
                for rec in answer.answer_records() {
                    let wrote = if rec.owner.eq_ignore_ascii_case(target.wire()) {
                        self.r
                            .record(Section::Answer, owner, rec.rtype, rec.ttl, |o| {
                                o.extend_from_slice(&rec.data)
                            })
                    } else {
                        self.r.record_wire_owner(
                            Section::Answer,
                            &rec.owner,
                            rec.rtype,
                            rec.ttl,
                            |o| o.extend_from_slice(&rec.data),
                        )
                    };
                    if !wrote {
                        return;
                    }
                }
            }
        }
    }
}
