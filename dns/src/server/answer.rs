//! Turning a table resolution into response bytes.

use std::net::IpAddr;

use crate::forward::Cached;
use crate::records::{
    Answer, Resolution, SCHEMA_VERSION, SOA_TIMERS, ServiceRecords, Table, VERSION_TTL, rtype,
};
use crate::wire::{HEADER_LEN, Name, Query, Response, Section, rcode};

/// What the caller must do after `answer_local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `out` holds the response.
    Answered,
    /// Not ours: ask the forwarder.
    Forward,
    /// An ExternalName chain leads out of the zone: resolve this question
    /// (lower-case name, type and class in wire form) through the
    /// forwarder, then call [`answer_chased`] with its answer.
    Chase(Box<[u8]>),
}

/// Answers `q` from `table` into `out` if it is ours.
pub fn answer_local(
    table: &Table,
    q: &Query,
    raw: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
) -> Outcome {
    answer_with(table, q, raw, limit, out, Upstream::NotAsked)
}

/// Answers `q` whose ExternalName chain ends outside the zone at
/// `question`, with the forwarder's answer for it (None: it failed, so
/// the CNAMEs go out with SERVFAIL).
pub fn answer_chased(
    table: &Table,
    q: &Query,
    raw: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    question: &[u8],
    answer: Option<&Cached>,
) -> Outcome {
    let upstream = match answer {
        Some(a) => Upstream::Got(question, a),
        None => Upstream::Failed,
    };
    answer_with(table, q, raw, limit, out, upstream)
}

/// What is known about the out-of-zone end of an ExternalName chain.
#[derive(Clone, Copy)]
pub(super) enum Upstream<'a> {
    NotAsked,
    /// The forwarder's answer to this question.
    Got(&'a [u8], &'a Cached),
    Failed,
}

fn answer_with(
    table: &Table,
    q: &Query,
    raw: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    upstream: Upstream<'_>,
) -> Outcome {
    if let Some(e) = q.edns
        && e.version > 0
    {
        let mut r = Response::start(out, q, raw, limit);
        r.set_ext_rcode(rcode::BADVERS);
        r.finish();
        return Outcome::Answered;
    }
    if q.qclass != 1 || q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
        let mut r = Response::start(out, q, raw, limit);
        r.set_rcode(rcode::REFUSED);
        r.finish();
        return Outcome::Answered;
    }
    let resolution = table.resolve(q.name(), q.qtype);
    if matches!(resolution, Resolution::Forward) {
        return Outcome::Forward;
    }
    let mut r = Response::start(out, q, raw, limit);
    let mut writer = Writer {
        table,
        q,
        r: &mut r,
        upstream,
        needs: None,
    };
    writer.write(resolution);
    if let Some(question) = writer.needs.take() {
        return Outcome::Chase(question);
    }
    r.finish();
    Outcome::Answered
}

pub(super) struct Writer<'a, 'o> {
    pub(super) table: &'a Table,
    pub(super) q: &'a Query,
    pub(super) r: &'a mut Response<'o>,
    pub(super) upstream: Upstream<'a>,
    /// Set when a chain leaves the zone and the upstream was not asked.
    pub(super) needs: Option<Box<[u8]>>,
}

impl<'a> Writer<'a, '_> {
    pub(super) fn ttl(&self) -> u32 {
        self.table.zone().ttl()
    }

    /// Message offset of question label `i`.
    fn label_at(&self, i: usize) -> usize {
        HEADER_LEN + self.q.name().label_offset(i)
    }

    /// Offset of the zone apex inside the question, if the name is in zone.
    fn zone_at(&self) -> Option<usize> {
        let zone = self.table.zone().name();
        let index = self
            .q
            .name()
            .suffix_index(zone.wire(), zone.label_count())?;
        let name = self.q.name();
        Some(match index {
            i if i == name.label_count() => HEADER_LEN + name.wire().len() - 1,
            i => self.label_at(i),
        })
    }

    fn write(&mut self, resolution: Resolution<'a>) {
        match resolution {
            Resolution::Forward => {}
            Resolution::NotSynced => self.r.set_rcode(rcode::SERVFAIL),
            Resolution::NxDomain => {
                self.r.set_authoritative();
                self.r.set_rcode(rcode::NXDOMAIN);
                self.soa(Section::Authority);
            }
            Resolution::NoData { soa } => {
                self.r.set_authoritative();
                if soa {
                    self.soa(Section::Authority);
                }
            }
            Resolution::Answer(answer) => {
                self.r.set_authoritative();
                self.answer(answer);
            }
        }
    }

    fn answer(&mut self, answer: Answer<'a>) {
        let ttl = self.ttl();
        match answer {
            Answer::V4(addrs) => self.addrs(
                Name::QUESTION,
                addrs.iter().map(|a| IpAddr::V4(*a)),
                Section::Answer,
            ),
            Answer::V6(addrs) => self.addrs(
                Name::QUESTION,
                addrs.iter().map(|a| IpAddr::V6(*a)),
                Section::Answer,
            ),
            Answer::Pod(ip) => self.addrs(Name::QUESTION, std::iter::once(ip), Section::Answer),
            Answer::Endpoints { endpoints, v4 } => {
                let addrs = endpoints
                    .iter()
                    .map(|e| e.addr)
                    .filter(|a| a.is_ipv4() == v4);
                self.addrs(Name::QUESTION, addrs, Section::Answer)
            }
            Answer::Srv {
                service,
                filter,
                service_label,
            } => self.srv(service, filter, service_label),
            Answer::Cname(target) => self.cname_chain(target),
            Answer::Ptr(entries) => {
                for e in entries {
                    if !self
                        .r
                        .record(Section::Answer, Name::QUESTION, rtype::PTR, ttl, |o| {
                            e.write_name(o)
                        })
                    {
                        break;
                    }
                }
            }
            Answer::VersionTxt => {
                self.r.record(
                    Section::Answer,
                    Name::QUESTION,
                    rtype::TXT,
                    VERSION_TTL,
                    |o| {
                        o.push(SCHEMA_VERSION.len() as u8);
                        o.extend_from_slice(SCHEMA_VERSION.as_bytes());
                    },
                );
            }
            Answer::Soa => self.soa(Section::Answer),
            Answer::Ns => self.ns(),
        }
    }

    pub(super) fn addrs(
        &mut self,
        owner: Name<'_>,
        addrs: impl Iterator<Item = IpAddr>,
        section: Section,
    ) {
        let ttl = self.ttl();
        for addr in addrs {
            let written = match addr {
                IpAddr::V4(a) => self.r.record(section, owner, rtype::A, ttl, |o| {
                    o.extend_from_slice(&a.octets())
                }),
                IpAddr::V6(a) => self.r.record(section, owner, rtype::AAAA, ttl, |o| {
                    o.extend_from_slice(&a.octets())
                }),
            };
            if !written {
                return;
            }
        }
    }

    pub(super) fn soa(&mut self, section: Section) {
        let Some(zone) = self.zone_at() else { return };
        let (ttl, serial) = (self.ttl(), self.table.serial());
        self.r
            .record(section, Name::at(zone), rtype::SOA, ttl, |o| {
                Name {
                    labels: &[b"ns", b"dns"],
                    ptr: zone as u16,
                }
                .write(o);
                Name {
                    labels: &[b"hostmaster"],
                    ptr: zone as u16,
                }
                .write(o);
                for v in [serial, SOA_TIMERS[0], SOA_TIMERS[1], SOA_TIMERS[2], ttl] {
                    o.extend_from_slice(&v.to_be_bytes());
                }
            });
    }

    fn ns(&mut self) {
        let Some(zone) = self.zone_at() else { return };
        let ttl = self.ttl();
        let target = Name {
            labels: &[b"ns", b"dns"],
            ptr: zone as u16,
        };
        self.r
            .record(Section::Answer, Name::QUESTION, rtype::NS, ttl, |o| {
                target.write(o)
            });
        let zone_ref = self.table.zone();
        let v4 = zone_ref.ns_v4().iter().map(|a| IpAddr::V4(*a));
        let v6 = zone_ref.ns_v6().iter().map(|a| IpAddr::V6(*a));
        self.addrs(target, v4.chain(v6), Section::Additional);
    }

    /// SRV records (priority 0, equal weights), then the targets'
    /// addresses in the additional section.
    fn srv(
        &mut self,
        service: &ServiceRecords,
        filter: Option<(&[u8], crate::records::Proto)>,
        service_label: usize,
    ) {
        let svc_at = self.label_at(service_label) as u16;
        let matches = |s: &&crate::records::Srv| {
            filter.is_none_or(|(n, p)| s.name.as_bytes() == n && s.proto == p)
        };
        let count = service.srv.iter().filter(matches).count().max(1);
        let weight = (100 / count).max(1) as u16;
        let ttl = self.ttl();
        for s in service.srv.iter().filter(matches) {
            let label = s.target.as_deref().map(str::as_bytes);
            let labels: &[&[u8]] = match &label {
                Some(l) => std::slice::from_ref(l),
                None => &[],
            };
            let target = Name {
                labels,
                ptr: svc_at,
            };
            let wrote = self
                .r
                .record(Section::Answer, Name::QUESTION, rtype::SRV, ttl, |o| {
                    o.extend_from_slice(&[0, 0]);
                    o.extend_from_slice(&weight.to_be_bytes());
                    o.extend_from_slice(&s.port.to_be_bytes());
                    target.write(o);
                });
            if !wrote {
                return;
            }
        }
        self.srv_additional(service, &matches, svc_at);
    }

    fn srv_additional(
        &mut self,
        service: &ServiceRecords,
        matches: &dyn Fn(&&crate::records::Srv) -> bool,
        svc_at: u16,
    ) {
        let mut last: Option<Option<&str>> = None;
        for s in service.srv.iter().filter(matches) {
            let target = s.target.as_deref();
            if last == Some(target) {
                continue;
            }
            last = Some(target);
            match target {
                None => {
                    let v4 = service.v4.iter().map(|a| IpAddr::V4(*a));
                    let v6 = service.v6.iter().map(|a| IpAddr::V6(*a));
                    self.addrs(Name::at(svc_at as usize), v4.chain(v6), Section::Additional);
                }
                Some(label) => {
                    let labels: &[&[u8]] = &[label.as_bytes()];
                    let owner = Name {
                        labels,
                        ptr: svc_at,
                    };
                    let addrs = service
                        .endpoints_named(label.as_bytes())
                        .iter()
                        .map(|e| e.addr);
                    self.addrs(owner, addrs, Section::Additional);
                }
            }
        }
    }
}
