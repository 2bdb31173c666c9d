//! The immutable record table. Writers clone it (cheap: shared pointers),
//! change what one event touched and publish the clone; readers hold a
//! snapshot that never changes under them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::cowmap::CowMap;
use super::hosts::Hosts;
use super::names::{MAX_NAME, OwnedName};
use super::service::ServiceRecords;
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

/// One PTR target.
#[derive(Debug, Clone)]
pub struct PtrEntry {
    pub rank: PtrRank,
    pub target: PtrTarget,
}

impl PtrEntry {
    /// Appends the target name in (uncompressed) wire form.
    pub fn write_name(&self, out: &mut Vec<u8>) {
        match &self.target {
            PtrTarget::Host(name) => out.extend_from_slice(name.wire()),
            PtrTarget::Service(svc) => out.extend_from_slice(svc.name.wire()),
            PtrTarget::Endpoint(svc, i) => {
                let label = svc.endpoints.get(*i as usize).map(|e| e.label.as_bytes());
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
    pub(crate) namespaces: Arc<HashMap<Arc<str>, Arc<Namespace>>>,
    pub(crate) reverse: CowMap<IpAddr, Arc<[PtrEntry]>>,
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
            reverse: CowMap::new(REVERSE_SHARDS),
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
                let rank = match target {
                    PtrTarget::Service(_) => PtrRank::ClusterIp,
                    _ => PtrRank::Endpoint,
                };
                self.add_ptr(ip, PtrEntry { rank, target });
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
                rank: PtrRank::Host,
                target: PtrTarget::Host(Arc::new(name.clone())),
            };
            self.add_ptr(*ip, entry);
        }
    }

    fn remove_ptrs(&mut self, ip: IpAddr, ours: impl Fn(&PtrEntry) -> bool) {
        let Some(entries) = self.reverse.get(&ip) else {
            return;
        };
        let kept: Vec<PtrEntry> = entries.iter().filter(|e| !ours(e)).cloned().collect();
        if kept.len() == entries.len() {
            return;
        }
        if kept.is_empty() {
            self.reverse.remove(&ip);
        } else {
            self.reverse.insert(ip, kept.into());
        }
    }

    fn add_ptr(&mut self, ip: IpAddr, entry: PtrEntry) {
        let mut entries: Vec<PtrEntry> = self
            .reverse
            .get(&ip)
            .map(|e| e.to_vec())
            .unwrap_or_default();
        let same = |e: &PtrEntry| match (&e.target, &entry.target) {
            (PtrTarget::Host(a), PtrTarget::Host(b)) => a == b,
            (PtrTarget::Service(a), PtrTarget::Service(b)) => Arc::ptr_eq(a, b),
            (PtrTarget::Endpoint(a, _), PtrTarget::Endpoint(b, _)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if entries.iter().any(same) {
            return;
        }
        entries.push(entry);
        entries.sort_by_key(|e| e.rank);
        self.reverse.insert(ip, entries.into());
    }

    /// The PTR targets of `ip` of the best rank present.
    pub fn ptrs(&self, ip: IpAddr) -> &[PtrEntry] {
        let Some(entries) = self.reverse.get(&ip) else {
            return &[];
        };
        let best = entries.first().map(|e| e.rank);
        let n = entries.iter().take_while(|e| Some(e.rank) == best).count();
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
