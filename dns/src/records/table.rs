//! The immutable record table. Writers clone it (cheap: shared pointers),
//! change what one event touched and publish the clone; readers hold a
//! snapshot that never changes under them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::cowmap::CowMap;
use super::hosts::Hosts;
use super::names::{MAX_NAME, OwnedName};
use super::service::{LabelBuf, ServiceRecords};
use super::zone::Zone;

/// Shards of each namespace's service map and of the reverse map.
const SERVICE_SHARDS: usize = 16;
const REVERSE_SHARDS: usize = 256;

/// Which source a PTR comes from; lower ranks shadow higher ones (host
/// names first, as the hosts plugin runs before kubernetes in K3s; then
/// cluster IPs, then endpoint addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PtrRank {
    Host,
    ClusterIp,
    Endpoint,
}

/// What a PTR points at. Service-derived targets hold the Service's
/// records and are spelled out only when answered, so 50 000 endpoint
/// PTRs cost a pointer each instead of a name each.
#[derive(Debug, Clone)]
pub enum PtrTarget {
    /// A host name (nodes, hosts list).
    Host(Arc<OwnedName>),
    /// The Service's own name (for its cluster IPs).
    Service(Arc<ServiceRecords>),
    /// `<label>.<service name>` for endpoint `index` of the Service.
    Endpoint(Arc<ServiceRecords>, u32),
}

/// One PTR target; its rank follows from the kind of target (16 bytes:
/// there is one per cluster IP and endpoint address).
#[derive(Debug, Clone)]
pub struct PtrEntry {
    pub target: PtrTarget,
}

impl PtrEntry {
    pub fn rank(&self) -> PtrRank {
        match self.target {
            PtrTarget::Host(_) => PtrRank::Host,
            PtrTarget::Service(_) => PtrRank::ClusterIp,
            PtrTarget::Endpoint(..) => PtrRank::Endpoint,
        }
    }

    /// Appends the target name in (uncompressed) wire form.
    pub fn write_name(&self, out: &mut Vec<u8>) {
        match &self.target {
            PtrTarget::Host(name) => out.extend_from_slice(name.wire()),
            PtrTarget::Service(svc) => out.extend_from_slice(svc.name.wire()),
            PtrTarget::Endpoint(svc, i) => {
                let mut buf = LabelBuf::new();
                let label = svc
                    .endpoints
                    .get(*i as usize)
                    .map(|e| svc.label_of(e, &mut buf));
                match label {
                    Some(l) if l.len() + 1 + svc.name.wire().len() <= MAX_NAME => {
                        out.push(l.len() as u8);
                        out.extend_from_slice(l);
                    }
                    _ => {}
                }
                out.extend_from_slice(svc.name.wire());
            }
        }
    }

    /// The target as a dotted name (tests, logs).
    pub fn name(&self) -> String {
        let mut wire = Vec::new();
        self.write_name(&mut wire);
        let mut out = String::new();
        let mut at = 0;
        while let Some(&len) = wire.get(at).filter(|l| **l > 0) {
            let label = wire.get(at + 1..at + 1 + len as usize).unwrap_or_default();
            out.push_str(&String::from_utf8_lossy(label));
            out.push('.');
            at += 1 + len as usize;
        }
        out
    }

    /// Whether this entry came from `records` (compared by identity).
    fn is_from(&self, records: &Arc<ServiceRecords>) -> bool {
        match &self.target {
            PtrTarget::Host(_) => false,
            PtrTarget::Service(s) | PtrTarget::Endpoint(s, _) => Arc::ptr_eq(s, records),
        }
    }

    fn same_source(&self, other: &PtrEntry) -> bool {
        match (&self.target, &other.target) {
            (PtrTarget::Host(a), PtrTarget::Host(b)) => a == b,
            (PtrTarget::Service(a), PtrTarget::Service(b)) => Arc::ptr_eq(a, b),
            (PtrTarget::Endpoint(a, _), PtrTarget::Endpoint(b, _)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The PTR targets of one address: nearly always one, kept inline (no
/// allocation); several (a Service IP also listed in a hosts file, an
/// address in two Services) sorted by rank.
#[derive(Debug, Clone)]
pub(crate) enum Ptrs {
    One(PtrEntry),
    Many(Arc<Vec<PtrEntry>>),
}

impl Ptrs {
    fn as_slice(&self) -> &[PtrEntry] {
        match self {
            Ptrs::One(e) => std::slice::from_ref(e),
            Ptrs::Many(v) => v,
        }
    }

    /// None when `entries` is empty.
    fn from_vec(mut entries: Vec<PtrEntry>) -> Option<Ptrs> {
        entries.sort_by_key(PtrEntry::rank);
        match entries.len() {
            0 => None,
            1 => entries.pop().map(Ptrs::One),
            _ => Some(Ptrs::Many(Arc::new(entries))),
        }
    }
}

/// Reverse entries by address, one map per family so that an IPv4 key
/// takes 4 bytes, not the 17 of an `IpAddr`.
#[derive(Debug, Clone)]
pub(crate) struct Reverse {
    v4: CowMap<Ipv4Addr, Ptrs>,
    v6: CowMap<Ipv6Addr, Ptrs>,
}

impl Reverse {
    fn new() -> Self {
        Reverse {
            v4: CowMap::new(REVERSE_SHARDS),
            v6: CowMap::new(REVERSE_SHARDS),
        }
    }

    fn get(&self, ip: IpAddr) -> Option<&Ptrs> {
        match ip {
            IpAddr::V4(a) => self.v4.get(&a),
            IpAddr::V6(a) => self.v6.get(&a),
        }
    }

    /// Replaces the entries of `ip` (None removes them).
    fn set(&mut self, ip: IpAddr, ptrs: Option<Ptrs>) {
        match (ip, ptrs) {
            (IpAddr::V4(a), Some(p)) => self.v4.insert(a, p),
            (IpAddr::V6(a), Some(p)) => self.v6.insert(a, p),
            (IpAddr::V4(a), None) => drop(self.v4.remove(&a)),
            (IpAddr::V6(a), None) => drop(self.v6.remove(&a)),
        }
    }

    #[cfg(test)]
    fn shared_shards(&self, other: &Reverse) -> usize {
        self.v4.shared_shards(&other.v4) + self.v6.shared_shards(&other.v6)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Namespace {
    /// A Namespace object exists (a namespace also exists while it holds
    /// Services, for callers that do not watch Namespaces).
    pub(crate) marked: bool,
    pub(crate) services: CowMap<Arc<str>, Arc<ServiceRecords>>,
}

impl Namespace {
    fn new() -> Self {
        Namespace {
            marked: false,
            services: CowMap::new(SERVICE_SHARDS),
        }
    }
}

/// A snapshot of every name we serve.
#[derive(Debug, Clone)]
pub struct Table {
    pub(crate) zone: Arc<Zone>,
    pub(crate) synced: bool,
    pub(crate) serial: u32,
    pub(crate) namespaces: Arc<super::NameMap<Arc<str>, Arc<Namespace>>>,
    pub(crate) reverse: Reverse,
    pub(crate) hosts: Arc<Hosts>,
}

impl Table {
    /// An empty table that has not seen its first full sync: cluster names
    /// answer SERVFAIL until `mark_synced`.
    pub fn new(zone: Arc<Zone>) -> Table {
        Table {
            zone,
            synced: false,
            serial: 0,
            namespaces: Arc::default(),
            reverse: Reverse::new(),
            hosts: Arc::default(),
        }
    }

    pub fn zone(&self) -> &Zone {
        &self.zone
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    pub fn mark_synced(&mut self) {
        self.synced = true;
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn set_serial(&mut self, serial: u32) {
        self.serial = serial;
    }

    /// The records of Service `ns/name`.
    pub fn service(&self, ns: &str, name: &str) -> Option<&Arc<ServiceRecords>> {
        self.namespaces.get(ns)?.services.get(name)
    }

    /// `(namespace, name)` of every Service in the table.
    pub fn service_keys(&self) -> Vec<(String, String)> {
        let mut keys = Vec::with_capacity(self.service_count());
        for (ns, n) in self.namespaces.iter() {
            keys.extend(
                n.services
                    .keys()
                    .map(|name| (ns.to_string(), name.to_string())),
            );
        }
        keys
    }

    /// Number of Services in the table.
    pub fn service_count(&self) -> usize {
        self.namespaces.values().map(|n| n.services.len()).sum()
    }

    /// Whether namespace `ns` exists (has a Namespace object or Services).
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.namespaces.contains_key(ns)
    }

    /// Replaces (Some) or removes (None) the records of Service `ns/name`.
    pub fn set_service(&mut self, ns: &str, name: &str, records: Option<Arc<ServiceRecords>>) {
        if let Some(old) = self.service(ns, name).cloned() {
            for (ip, _) in service_ptrs(&old) {
                self.remove_ptrs(ip, |e| e.is_from(&old));
            }
        }
        if let Some(new) = &records {
            for (ip, target) in service_ptrs(new) {
                self.add_ptr(ip, PtrEntry { target });
            }
        }
        self.update_namespace(ns, |n| match records {
            Some(r) => n.services.insert(name.into(), r),
            None => {
                n.services.remove(name);
            }
        });
    }

    /// Records whether a Namespace object `ns` exists.
    pub fn set_namespace(&mut self, ns: &str, exists: bool) {
        self.update_namespace(ns, |n| n.marked = exists);
    }

    fn update_namespace(&mut self, ns: &str, change: impl FnOnce(&mut Namespace)) {
        let namespaces = Arc::make_mut(&mut self.namespaces);
        let entry = namespaces
            .entry(ns.into())
            .or_insert_with(|| Arc::new(Namespace::new()));
        let namespace = Arc::make_mut(entry);
        change(namespace);
        if !namespace.marked && namespace.services.is_empty() {
            namespaces.remove(ns);
        }
    }

    /// Replaces the host names (nodes and the hosts list) and their PTRs.
    pub fn set_hosts(&mut self, hosts: Hosts) {
        let old = std::mem::replace(&mut self.hosts, Arc::new(hosts));
        for (ip, _) in old.pairs() {
            self.remove_ptrs(*ip, |e| matches!(e.target, PtrTarget::Host(_)));
        }
        let hosts = self.hosts.clone();
        for (ip, name) in hosts.pairs() {
            let entry = PtrEntry {
                target: PtrTarget::Host(Arc::new(name.clone())),
            };
            self.add_ptr(*ip, entry);
        }
    }

    fn remove_ptrs(&mut self, ip: IpAddr, ours: impl Fn(&PtrEntry) -> bool) {
        let Some(entries) = self.reverse.get(ip).map(Ptrs::as_slice) else {
            return;
        };
        if !entries.iter().any(&ours) {
            return;
        }
        let kept: Vec<PtrEntry> = entries.iter().filter(|e| !ours(e)).cloned().collect();
        self.reverse.set(ip, Ptrs::from_vec(kept));
    }

    fn add_ptr(&mut self, ip: IpAddr, entry: PtrEntry) {
        let old = self.reverse.get(ip).map(Ptrs::as_slice).unwrap_or_default();
        if old.iter().any(|e| e.same_source(&entry)) {
            return;
        }
        let mut entries = old.to_vec();
        entries.push(entry);
        self.reverse.set(ip, Ptrs::from_vec(entries));
    }

    /// The PTR targets of `ip` of the best rank present.
    pub fn ptrs(&self, ip: IpAddr) -> &[PtrEntry] {
        let Some(entries) = self.reverse.get(ip).map(Ptrs::as_slice) else {
            return &[];
        };
        let best = entries.first().map(PtrEntry::rank);
        let n = entries
            .iter()
            .take_while(|e| Some(e.rank()) == best)
            .count();
        &entries[..n]
    }

    pub fn hosts(&self) -> &Hosts {
        &self.hosts
    }

    #[cfg(test)]
    pub(crate) fn shared_reverse_shards(&self, other: &Table) -> usize {
        self.reverse.shared_shards(&other.reverse)
    }
}

/// The addresses a Service has PTRs for, with their target: the Service
/// name for cluster IPs, else the first endpoint with that address.
fn service_ptrs(records: &Arc<ServiceRecords>) -> Vec<(IpAddr, PtrTarget)> {
    use super::service::Kind;
    let mut out = Vec::new();
    if records.kind == Kind::ClusterIp {
        let v4 = records.v4.iter().map(|a| IpAddr::V4(*a));
        let v6 = records.v6.iter().map(|a| IpAddr::V6(*a));
        out.extend(
            v4.chain(v6)
                .map(|ip| (ip, PtrTarget::Service(records.clone()))),
        );
    }
    let mut seen = std::collections::HashSet::with_capacity(records.endpoints.len());
    for (i, e) in records.endpoints.iter().enumerate() {
        if seen.insert(e.addr) {
            out.push((e.addr, PtrTarget::Endpoint(records.clone(), i as u32)));
        }
    }
    out
}
