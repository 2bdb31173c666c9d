//! The records of one Service: built from the Service and its
//! EndpointSlices, immutable once built (a change builds a new one).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cluster::compact::{
    Address, AddressType, Endpoint as SliceEndpoint, EndpointPort, EndpointSlice, Protocol,
    Service, ServicePort, ServiceType,
};

use super::names::{OwnedName, is_dns_label};
use super::skip::{ObjectRef, Skipped, Skips};
use super::zone::Zone;

/// The label EndpointSlices carry to name their Service (read into
/// `EndpointSlice::service_name` on ingest).
pub const SERVICE_NAME_LABEL: &str = cluster::compact::SERVICE_NAME_LABEL;

/// Transport protocol of a port, as it appears in `_port._proto` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// Absent means TCP; None for a protocol DNS has no name for.
    fn parse(p: Option<&Protocol>) -> Option<Proto> {
        match p.unwrap_or(&Protocol::Tcp) {
            Protocol::Tcp => Some(Proto::Tcp),
            Protocol::Udp => Some(Proto::Udp),
            Protocol::Sctp => Some(Proto::Sctp),
            Protocol::Other(_) => None,
        }
    }

    /// The protocol named by a query label (`tcp` or `_tcp`), lower-case.
    pub fn from_label(label: &[u8]) -> Option<Proto> {
        match label.strip_prefix(b"_").unwrap_or(label) {
            b"tcp" => Some(Proto::Tcp),
            b"udp" => Some(Proto::Udp),
            b"sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// What kind of Service, which decides how its name answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ClusterIp,
    Headless,
    ExternalName,
}

/// One address behind the Service. Its label (the endpoint hostname, or
/// the dashed address) is read through `ServiceRecords::label_of`: a
/// generated label is not stored, and hostnames share one buffer per
/// Service, which keeps 50 000 endpoints at 22 bytes each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: IpAddr,
    /// Start of the hostname in `ServiceRecords::hostnames` (bytes of a
    /// u32: a byte array keeps the struct unpadded).
    host_at: [u8; 4],
    /// Length of the hostname; 0 for a generated label.
    host_len: u8,
}

/// Room for any generated label: an IPv6 address is at most 45
/// characters, plus two pads.
pub const MAX_DASHED: usize = 48;

/// An endpoint label spelled out without allocating.
pub struct LabelBuf {
    bytes: [u8; MAX_DASHED],
    len: usize,
}

impl LabelBuf {
    pub fn new() -> Self {
        LabelBuf {
            bytes: [0; MAX_DASHED],
            len: 0,
        }
    }
}

impl Default for LabelBuf {
    fn default() -> Self {
        LabelBuf::new()
    }
}

impl std::fmt::Write for LabelBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let room = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        room.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// One SRV record: `target` None means the Service name itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Srv {
    pub target: Option<Box<str>>,
    pub name: Box<str>,
    pub proto: Proto,
    pub port: u16,
}

/// All records of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecords {
    pub kind: Kind,
    /// Cluster IPs, or (headless) the ready endpoint addresses; deduplicated.
    pub v4: Box<[Ipv4Addr]>,
    pub v6: Box<[Ipv6Addr]>,
    /// Ready endpoints sorted by label (several may share one).
    pub endpoints: Box<[Endpoint]>,
    /// SRV records sorted by target, deduplicated.
    pub srv: Box<[Srv]>,
    /// ExternalName target.
    pub cname: Option<OwnedName>,
    /// `<svc>.<ns>.svc.<zone>`, for PTR answers.
    pub name: OwnedName,
    /// The endpoint hostnames, end to end (see `Endpoint`).
    hostnames: Box<str>,
}

impl ServiceRecords {
    /// The label of `e` (an endpoint of this Service), lower-case.
    pub fn label_of<'a>(&'a self, e: &Endpoint, buf: &'a mut LabelBuf) -> &'a [u8] {
        if e.host_len == 0 {
            return dashed_into(e.addr, buf);
        }
        let at = u32::from_le_bytes(e.host_at) as usize;
        let end = at + e.host_len as usize;
        self.hostnames.as_bytes().get(at..end).unwrap_or_default()
    }

    /// Endpoints whose label is `label` (lower-case).
    pub fn endpoints_named(&self, label: &[u8]) -> &[Endpoint] {
        let mut buf = LabelBuf::new();
        let start = self
            .endpoints
            .partition_point(|e| self.label_of(e, &mut buf) < label);
        let len = self.endpoints[start..]
            .iter()
            .take_while(|e| self.label_of(e, &mut buf) == label)
            .count();
        &self.endpoints[start..start + len]
    }
}

/// Builds the records of `svc` from its slices. Returns None when the
/// Service yields no name at all (invalid name, ExternalName that is an IP
/// or not a host name); the reasons go to `skipped`.
pub fn build(
    svc: &Service,
    slices: &[&EndpointSlice],
    zone: &Zone,
    skipped: &mut Vec<Skipped>,
) -> Option<ServiceRecords> {
    let (ns, name) = (svc.namespace(), svc.name());
    let object = ObjectRef {
        kind: "Service",
        namespace: ns,
        name,
    };
    let mut skips = Skips::new(&object, skipped);
    if !is_dns_label(ns) || !is_dns_label(name) {
        skips.push("metadata", "namespace and name must be DNS labels");
        return None;
    }
    let full = zone.name().prepend(&format!("{name}.{ns}.svc")).ok()?;
    let spec = &svc.spec;
    if spec.type_ == ServiceType::ExternalName {
        return external_name(spec.external_name.as_deref(), full, &mut skips);
    }
    let endpoints = ready_endpoints(slices, skipped);
    let mut skips = Skips::new(&object, skipped);
    let ips = cluster_ips(spec.cluster_ips.field(), &mut skips);
    let headless = ips.is_none();
    let (v4, v6) = match ips {
        Some(ips) => split_families(ips.into_iter()),
        None => split_families(endpoints.iter().map(|e| e.0.addr)),
    };
    let srv = if headless {
        endpoint_srv(&endpoints)
    } else {
        service_srv(&spec.ports, &mut skips)
    };
    let (endpoints, hostnames) = pack_endpoints(endpoints.into_iter().map(|e| e.0).collect());
    Some(ServiceRecords {
        kind: if headless {
            Kind::Headless
        } else {
            Kind::ClusterIp
        },
        v4,
        v6,
        endpoints,
        srv,
        cname: None,
        name: full,
        hostnames,
    })
}

/// Endpoints sorted by label then address, deduplicated, with their
/// hostnames packed into one string.
fn pack_endpoints(mut labelled: Vec<Labelled>) -> (Box<[Endpoint]>, Box<str>) {
    labelled.sort_by(|a, b| (&a.label, a.addr).cmp(&(&b.label, b.addr)));
    labelled.dedup_by(|a, b| a.label == b.label && a.addr == b.addr);
    let mut hostnames = String::new();
    let mut out = Vec::with_capacity(labelled.len());
    for e in labelled {
        let host_len = if e.hostname { e.label.len() as u8 } else { 0 };
        if host_len > 0 && !hostnames.ends_with(&*e.label) {
            hostnames.push_str(&e.label);
        }
        // Consecutive endpoints with one hostname share its bytes.
        let at = hostnames.len() - host_len as usize;
        out.push(Endpoint {
            addr: e.addr,
            host_at: (at as u32).to_le_bytes(),
            host_len,
        });
    }
    (out.into(), hostnames.into())
}

fn external_name(
    target: Option<&str>,
    full: OwnedName,
    skips: &mut Skips,
) -> Option<ServiceRecords> {
    let target = target.unwrap_or_default();
    if target.parse::<IpAddr>().is_ok() {
        skips.push(
            "spec.externalName",
            format!("{target:?} is an IP address, not a host name"),
        );
        return None;
    }
    let cname = match OwnedName::from_dotted(target) {
        Ok(n) if n.label_count() > 0 => n,
        Ok(_) => {
            skips.push("spec.externalName", "empty");
            return None;
        }
        Err(e) => {
            skips.push("spec.externalName", e.to_string());
            return None;
        }
    };
    Some(ServiceRecords {
        kind: Kind::ExternalName,
        v4: Box::new([]),
        v6: Box::new([]),
        endpoints: Box::new([]),
        srv: Box::new([]),
        cname: Some(cname),
        name: full,
        hostnames: Box::default(),
    })
}

/// The Service's cluster IPs, or None for a headless Service.
fn cluster_ips((field, values): (&str, &[Address]), skips: &mut Skips) -> Option<Vec<IpAddr>> {
    if values.first().is_some_and(|v| v.is_text("None")) {
        return None;
    }
    let mut ips = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match value {
            Address::Ip(ip) => ips.push(*ip),
            Address::Text(text) if text.is_empty() => {}
            Address::Text(text) => {
                skips.push(format!("{field}[{i}]"), format!("invalid IP {text:?}"))
            }
        }
    }
    Some(ips)
}

fn split_families(ips: impl Iterator<Item = IpAddr>) -> (Box<[Ipv4Addr]>, Box<[Ipv6Addr]>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for ip in ips {
        match ip {
            IpAddr::V4(a) => v4.push(a),
            IpAddr::V6(a) => v6.push(a),
        }
    }
    v4.sort();
    v4.dedup();
    v6.sort();
    v6.dedup();
    (v4.into(), v6.into())
}

/// SRV records of a ClusterIP Service: one per port (named or not), the
/// service port, target the Service name.
fn service_srv(ports: &[ServicePort], skips: &mut Skips) -> Box<[Srv]> {
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let field = format!("spec.ports[{i}]");
        if let Some(srv) = port_srv(
            p.name.as_deref(),
            Some(p.port),
            p.protocol.as_ref(),
            None,
            &field,
            skips,
        ) {
            out.push(srv);
        }
    }
    out.sort();
    out.dedup();
    out.into()
}

fn port_srv(
    name: Option<&str>,
    port: Option<i32>,
    proto: Option<&Protocol>,
    target: Option<&str>,
    field: &str,
    skips: &mut Skips,
) -> Option<Srv> {
    let name = name.unwrap_or_default();
    if !name.is_empty() && !is_dns_label(name) {
        skips.push(
            format!("{field}.name"),
            format!("{name:?} is not a DNS label"),
        );
        return None;
    }
    let Some(proto) = Proto::parse(proto) else {
        skips.push(
            format!("{field}.protocol"),
            format!("unknown protocol {:?}", proto.map(Protocol::as_str)),
        );
        return None;
    };
    let port = port?;
    let Ok(port) = u16::try_from(port) else {
        skips.push(format!("{field}.port"), format!("{port} is out of range"));
        return None;
    };
    Some(Srv {
        target: target.map(Into::into),
        name: name.to_ascii_lowercase().into(),
        proto,
        port,
    })
}

/// An endpoint while the records are built: its label spelled out.
#[derive(PartialEq, Eq)]
struct Labelled {
    label: String,
    /// The label is the endpoint's hostname (not its dashed address).
    hostname: bool,
    addr: IpAddr,
}

/// A ready endpoint and the ports of the slice it came from.
struct SlicedEndpoint<'s>(Labelled, &'s [EndpointPort]);

/// SRV records of a headless Service: ready endpoint × slice port, with
/// the endpoint port (what clients connect to, as CoreDNS does).
fn endpoint_srv(endpoints: &[SlicedEndpoint]) -> Box<[Srv]> {
    let mut out = Vec::new();
    // Port problems were reported once per slice in ready_endpoints.
    let (object, mut ignored) = ("", Vec::new());
    let mut skips = Skips::new(&object, &mut ignored);
    for SlicedEndpoint(ep, ports) in endpoints {
        for p in ports.iter() {
            if let Some(srv) = port_srv(
                p.name.as_deref(),
                p.port,
                p.protocol.as_ref(),
                Some(&ep.label),
                "",
                &mut skips,
            ) {
                out.push(srv);
            }
        }
    }
    out.sort();
    out.dedup();
    out.into()
}

fn ready_endpoints<'s>(
    slices: &[&'s EndpointSlice],
    skipped: &mut Vec<Skipped>,
) -> Vec<SlicedEndpoint<'s>> {
    let mut out = Vec::new();
    for slice in slices {
        let object = ObjectRef {
            kind: "EndpointSlice",
            namespace: slice.namespace(),
            name: slice.name(),
        };
        let mut skips = Skips::new(&object, skipped);
        let ports = &slice.ports;
        check_slice_ports(ports, &mut skips);
        let family = match slice.address_type {
            AddressType::IPv4 => 4,
            AddressType::IPv6 => 6,
            // FQDN slices carry no addresses DNS can serve.
            AddressType::Other => continue,
        };
        for (i, ep) in slice.endpoints.iter().enumerate() {
            for endpoint in slice_endpoint(ep, i, family, &mut skips) {
                out.push(SlicedEndpoint(endpoint, ports));
            }
        }
    }
    out
}

fn check_slice_ports(ports: &[EndpointPort], skips: &mut Skips) {
    for (i, p) in ports.iter().enumerate() {
        let field = format!("ports[{i}]");
        port_srv(
            p.name.as_deref(),
            p.port.or(Some(0)),
            p.protocol.as_ref(),
            None,
            &field,
            skips,
        );
    }
}

fn slice_endpoint(
    ep: &SliceEndpoint,
    index: usize,
    family: u8,
    skips: &mut Skips,
) -> Vec<Labelled> {
    // Ready absent means unknown, which consumers must treat as ready.
    let ready = ep.ready.unwrap_or(true);
    if !ready {
        return Vec::new();
    }
    let hostname = ep.hostname.as_deref().filter(|h| {
        let ok = is_dns_label(h);
        if !ok {
            skips.push(
                format!("endpoints[{index}].hostname"),
                format!("{h:?} is not a DNS label"),
            );
        }
        ok
    });
    let mut out = Vec::new();
    for (j, a) in ep.addresses.as_slice().iter().enumerate() {
        let field = format!("endpoints[{index}].addresses[{j}]");
        let addr = match a {
            Address::Ip(addr) if (family == 4) == addr.is_ipv4() => *addr,
            Address::Ip(_) => {
                let text = a.to_string();
                skips.push(field, format!("{text:?} is not of the slice's addressType"));
                continue;
            }
            Address::Text(text) => {
                skips.push(field, format!("invalid IP {text:?}"));
                continue;
            }
        };
        let label = match hostname {
            Some(h) => h.to_ascii_lowercase(),
            None => dashed(addr),
        };
        out.push(Labelled {
            label,
            hostname: hostname.is_some(),
            addr,
        });
    }
    out
}

/// The generated endpoint label: the address with '.' and ':' as '-'
/// (`10-42-1-11`, `fd00-42-2--2a`), padded with '0' where it would start or
/// end with '-'.
pub fn dashed(addr: IpAddr) -> String {
    let mut buf = LabelBuf::new();
    String::from_utf8_lossy(dashed_into(addr, &mut buf)).into_owned()
}

/// `dashed` written into `buf`, for lookups that must not allocate.
pub fn dashed_into(addr: IpAddr, buf: &mut LabelBuf) -> &[u8] {
    use std::fmt::Write;
    buf.len = 1; // room for a leading pad
    // 45 characters at most: the buffer holds them (the write cannot fail).
    let _ = write!(buf, "{addr}");
    for b in &mut buf.bytes[1..buf.len] {
        if *b == b'.' || *b == b':' {
            *b = b'-';
        }
    }
    if buf.bytes[buf.len - 1] == b'-' {
        buf.bytes[buf.len] = b'0';
        buf.len += 1;
    }
    let start = if buf.bytes[1] == b'-' {
        buf.bytes[0] = b'0';
        0
    } else {
        1
    };
    &buf.bytes[start..buf.len]
}
