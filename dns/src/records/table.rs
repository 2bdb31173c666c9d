//! The immutable record table. Writers clone it (cheap: shared pointers),
//! change what one event touched and publish the clone; readers hold a
//! snapshot that never changes under them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::cowmap::CowMap;
use super::hosts::Hosts;
use super::names::OwnedName;
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

/// Who put a PTR entry there (to remove it again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtrOwner {
    Hosts,
    /// `ns/name` of a Service.
    Service(Arc<str>),
}

/// One PTR target.
#[derive(Debug, Clone)]
pub struct PtrEntry {
    pub rank: PtrRank,
    pub owner: PtrOwner,
    pub name: Arc<OwnedName>,
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
        let owner: Arc<str> = format!("{ns}/{name}").into();
        let old = self.service(ns, name).cloned();
        if let Some(old) = &old {
            for (ip, _) in service_ptrs(old) {
                self.remove_ptrs(ip, &PtrOwner::Service(owner.clone()));
            }
        }
        if let Some(new) = &records {
            for (ip, rank) in service_ptrs(new) {
                let entry = PtrEntry {
                    rank,
                    owner: PtrOwner::Service(owner.clone()),
                    name: Arc::new(ptr_name(new, rank, ip)),
                };
                self.add_ptr(ip, entry);
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
            self.remove_ptrs(*ip, &PtrOwner::Hosts);
        }
        let hosts = self.hosts.clone();
        for (ip, name) in hosts.pairs() {
            let entry = PtrEntry {
                rank: PtrRank::Host,
                owner: PtrOwner::Hosts,
                name: Arc::new(name.clone()),
            };
            self.add_ptr(*ip, entry);
        }
    }

    fn remove_ptrs(&mut self, ip: IpAddr, owner: &PtrOwner) {
        let Some(entries) = self.reverse.get(&ip) else {
            return;
        };
        let kept: Vec<PtrEntry> = entries
            .iter()
            .filter(|e| &e.owner != owner)
            .cloned()
            .collect();
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
        if entries
            .iter()
            .any(|e| e.owner == entry.owner && e.name == entry.name)
        {
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

/// The addresses a Service has PTRs for, with their rank.
fn service_ptrs(records: &ServiceRecords) -> Vec<(IpAddr, PtrRank)> {
    use super::service::Kind;
    let mut out = Vec::new();
    if records.kind == Kind::ClusterIp {
        out.extend(
            records
                .v4
                .iter()
                .map(|a| (IpAddr::V4(*a), PtrRank::ClusterIp)),
        );
        out.extend(
            records
                .v6
                .iter()
                .map(|a| (IpAddr::V6(*a), PtrRank::ClusterIp)),
        );
    }
    out.extend(
        records
            .endpoints
            .iter()
            .map(|e| (e.addr, PtrRank::Endpoint)),
    );
    out
}

/// The PTR target: the Service name for a cluster IP, else the endpoint's
/// name under the Service.
fn ptr_name(records: &ServiceRecords, rank: PtrRank, ip: IpAddr) -> OwnedName {
    if rank == PtrRank::ClusterIp {
        return records.name.clone();
    }
    let label = records
        .endpoints
        .iter()
        .find(|e| e.addr == ip)
        .map(|e| &e.label);
    label
        .and_then(|l| records.name.prepend(l).ok())
        .unwrap_or_else(|| records.name.clone())
}
