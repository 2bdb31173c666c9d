//! Answering one question from a table: the name grammar of the
//! Kubernetes DNS specification, deciding NXDOMAIN against NODATA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::names::QueryName;
use super::service::{Endpoint, Kind, Proto, ServiceRecords};
use super::table::{Namespace, PtrEntry, Table};

/// Record types the table knows about (RFC 1035, 3596, 2782).
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
}

/// What to do with a question.
#[derive(Debug)]
pub enum Resolution<'t> {
    /// Not a name we are authoritative for: ask the upstreams.
    Forward,
    /// A cluster name before the first full sync: SERVFAIL.
    NotSynced,
    /// The name does not exist (SOA in authority).
    NxDomain,
    /// The name exists without records of this type; `soa` says whether
    /// the zone SOA goes in authority (not for host names).
    NoData {
        soa: bool,
    },
    Answer(Answer<'t>),
}

/// A positive answer, borrowed from the table.
#[derive(Debug)]
pub enum Answer<'t> {
    V4(&'t [Ipv4Addr]),
    V6(&'t [Ipv6Addr]),
    /// A pod record: the address spelled in the name.
    Pod(IpAddr),
    /// Endpoints named by the question; only those of the asked family
    /// are answered (at least one exists).
    Endpoints {
        endpoints: &'t [Endpoint],
        v4: bool,
    },
    /// SRV records of `service`, optionally only `_port._proto`; the
    /// Service name is question label `service_label` onwards.
    Srv {
        service: &'t ServiceRecords,
        filter: Option<(&'t [u8], Proto)>,
        service_label: usize,
    },
    Cname(&'t super::names::OwnedName),
    Ptr(&'t [PtrEntry]),
    VersionTxt,
    Soa,
    Ns,
}

impl Table {
    /// Resolves one IN-class question (lower-case name).
    pub fn resolve<'t>(&'t self, name: QueryName<'t>, qtype: u16) -> Resolution<'t> {
        if let Some(res) = self.host_answer(name, qtype) {
            return res;
        }
        if let Some(ip) = reverse_ip(name) {
            let entries = self.ptrs(ip);
            if qtype == rtype::PTR && !entries.is_empty() {
                return Resolution::Answer(Answer::Ptr(entries));
            }
            // K3s falls through to the upstreams on reverse misses.
            return Resolution::Forward;
        }
        let zone = self.zone.name();
        match name.suffix_index(zone.wire(), zone.label_count()) {
            None => Resolution::Forward,
            Some(_) if !self.synced => Resolution::NotSynced,
            Some(left) => self.in_zone(name, left, qtype),
        }
    }

    fn host_answer<'t>(&'t self, name: QueryName<'t>, qtype: u16) -> Option<Resolution<'t>> {
        let addrs = self.hosts.get(name.wire())?;
        let res = match qtype {
            rtype::A if !addrs.v4.is_empty() => Resolution::Answer(Answer::V4(&addrs.v4)),
            rtype::AAAA if !addrs.v6.is_empty() => Resolution::Answer(Answer::V6(&addrs.v6)),
            rtype::A | rtype::AAAA => Resolution::NoData { soa: false },
            _ => return None,
        };
        Some(res)
    }

    /// `left` labels precede the zone.
    fn in_zone<'t>(&'t self, name: QueryName<'t>, left: usize, qtype: u16) -> Resolution<'t> {
        if left == 0 {
            return apex(qtype);
        }
        let kind = left - 1;
        match name.label(kind) {
            b"svc" => self.svc_names(name, kind, qtype),
            b"pod" => self.pod_names(name, kind, qtype),
            b"dns-version" if kind == 0 => answer_if(qtype == rtype::TXT, Answer::VersionTxt),
            b"dns" if kind == 0 => Resolution::NoData { soa: true },
            b"dns" if kind == 1 && name.label(0) == b"ns" => self.ns_addrs(qtype),
            _ => Resolution::NxDomain,
        }
    }

    fn ns_addrs(&self, qtype: u16) -> Resolution<'_> {
        match qtype {
            rtype::A if !self.zone.ns_v4().is_empty() => {
                Resolution::Answer(Answer::V4(self.zone.ns_v4()))
            }
            rtype::AAAA if !self.zone.ns_v6().is_empty() => {
                Resolution::Answer(Answer::V6(self.zone.ns_v6()))
            }
            _ => Resolution::NoData { soa: true },
        }
    }

    fn namespace(&self, label: &[u8]) -> Option<&Namespace> {
        let ns = std::str::from_utf8(label).ok()?;
        self.namespaces.get(ns).map(|n| &**n)
    }

    /// Names ending in `svc.<zone>`; label `svc_at` is the `svc` label.
    fn svc_names<'t>(&'t self, name: QueryName<'t>, svc_at: usize, qtype: u16) -> Resolution<'t> {
        if svc_at == 0 {
            return Resolution::NoData { soa: true };
        }
        let Some(ns) = self.namespace(name.label(svc_at - 1)) else {
            return Resolution::NxDomain;
        };
        if svc_at == 1 {
            return Resolution::NoData { soa: true };
        }
        let service_label = svc_at - 2;
        let found = std::str::from_utf8(name.label(service_label))
            .ok()
            .and_then(|s| ns.services.get(s));
        let Some(service) = found else {
            return Resolution::NxDomain;
        };
        match service_label {
            0 => service_name(service, qtype),
            1 => below_service(service, name.label(0), qtype),
            2 => port_name(service, name.label(0), name.label(1), qtype),
            _ => Resolution::NxDomain,
        }
    }

    /// Names ending in `pod.<zone>` (pods "insecure": the address is read
    /// from the name; no pod watch is needed).
    fn pod_names<'t>(&'t self, name: QueryName<'t>, pod_at: usize, qtype: u16) -> Resolution<'t> {
        if pod_at == 0 {
            return Resolution::NoData { soa: true };
        }
        if self.namespace(name.label(pod_at - 1)).is_none() {
            return Resolution::NxDomain;
        }
        match pod_at {
            1 => Resolution::NoData { soa: true },
            2 => match pod_ip(name.label(0)) {
                Some(IpAddr::V4(a)) if qtype == rtype::A => {
                    Resolution::Answer(Answer::Pod(IpAddr::V4(a)))
                }
                Some(IpAddr::V6(a)) if qtype == rtype::AAAA => {
                    Resolution::Answer(Answer::Pod(IpAddr::V6(a)))
                }
                Some(_) => Resolution::NoData { soa: true },
                None => Resolution::NxDomain,
            },
            _ => Resolution::NxDomain,
        }
    }
}

fn answer_if(cond: bool, answer: Answer<'_>) -> Resolution<'_> {
    if cond {
        Resolution::Answer(answer)
    } else {
        Resolution::NoData { soa: true }
    }
}

fn apex(qtype: u16) -> Resolution<'static> {
    match qtype {
        rtype::SOA => Resolution::Answer(Answer::Soa),
        rtype::NS => Resolution::Answer(Answer::Ns),
        _ => Resolution::NoData { soa: true },
    }
}

/// `<svc>.<ns>.svc.<zone>`.
fn service_name(service: &ServiceRecords, qtype: u16) -> Resolution<'_> {
    match service.kind {
        Kind::ExternalName => match (qtype, &service.cname) {
            (rtype::SRV, _) | (_, None) => Resolution::NoData { soa: true },
            (_, Some(target)) => Resolution::Answer(Answer::Cname(target)),
        },
        // The spec: a headless Service without ready endpoints has no name.
        Kind::Headless if service.endpoints.is_empty() => Resolution::NxDomain,
        _ => match qtype {
            rtype::A => answer_if(!service.v4.is_empty(), Answer::V4(&service.v4)),
            rtype::AAAA => answer_if(!service.v6.is_empty(), Answer::V6(&service.v6)),
            rtype::SRV => answer_if(
                !service.srv.is_empty(),
                Answer::Srv {
                    service,
                    filter: None,
                    service_label: 0,
                },
            ),
            _ => Resolution::NoData { soa: true },
        },
    }
}

/// One label below a Service: an endpoint name, or `_proto` (an empty
/// non-terminal above `_port._proto`, NODATA per RFC 8020).
fn below_service<'t>(service: &'t ServiceRecords, label: &'t [u8], qtype: u16) -> Resolution<'t> {
    if service.kind == Kind::ExternalName {
        return Resolution::NxDomain;
    }
    if label.starts_with(b"_")
        && let Some(proto) = Proto::from_label(label)
        && service
            .srv
            .iter()
            .any(|s| s.proto == proto && !s.name.is_empty())
    {
        return Resolution::NoData { soa: true };
    }
    let endpoints = service.endpoints_named(label);
    if endpoints.is_empty() {
        return Resolution::NxDomain;
    }
    let has = |v4: bool| endpoints.iter().any(|e| e.addr.is_ipv4() == v4);
    match qtype {
        rtype::A | rtype::AAAA if has(qtype == rtype::A) => Resolution::Answer(Answer::Endpoints {
            endpoints,
            v4: qtype == rtype::A,
        }),
        _ => Resolution::NoData { soa: true },
    }
}

/// `_<port>._<proto>.<svc>...` (underscores optional, as in CoreDNS).
fn port_name<'t>(
    service: &'t ServiceRecords,
    port: &'t [u8],
    proto: &[u8],
    qtype: u16,
) -> Resolution<'t> {
    let Some(proto) = Proto::from_label(proto) else {
        return Resolution::NxDomain;
    };
    let port = port.strip_prefix(b"_").unwrap_or(port);
    let exists = !port.is_empty()
        && service
            .srv
            .iter()
            .any(|s| s.proto == proto && s.name.as_bytes() == port);
    if !exists || service.kind == Kind::ExternalName {
        return Resolution::NxDomain;
    }
    answer_if(
        qtype == rtype::SRV,
        Answer::Srv {
            service,
            filter: Some((port, proto)),
            service_label: 2,
        },
    )
}

/// The address in a pod label: `10-42-0-5` (exactly three dashes, none
/// doubled) is IPv4; anything else is read as IPv6 with '-' for ':'.
pub fn pod_ip(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    let dashes = text.bytes().filter(|b| *b == b'-').count();
    if dashes == 3 && !text.contains("--") {
        return text
            .replace('-', ".")
            .parse::<Ipv4Addr>()
            .ok()
            .map(IpAddr::V4);
    }
    text.replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The address of a full reverse name (`4.3.2.1.in-addr.arpa`, or 32
/// nibbles under `ip6.arpa`); None for anything else.
pub fn reverse_ip(name: QueryName<'_>) -> Option<IpAddr> {
    let n = name.label_count();
    if n < 2 || name.label_from_right(0) != b"arpa" {
        return None;
    }
    match (name.label_from_right(1), n) {
        (b"in-addr", 6) => {
            let mut octets = [0u8; 4];
            for (i, o) in octets.iter_mut().enumerate() {
                *o = std::str::from_utf8(name.label(3 - i)).ok()?.parse().ok()?;
            }
            Some(IpAddr::V4(Ipv4Addr::from(octets)))
        }
        (b"ip6", 34) => {
            let mut value: u128 = 0;
            for i in 0..32 {
                let nibble = match name.label(31 - i) {
                    [c] => (*c as char).to_digit(16)?,
                    _ => return None,
                };
                value = (value << 4) | u128::from(nibble);
            }
            Some(IpAddr::V6(Ipv6Addr::from(value)))
        }
        _ => None,
    }
}
