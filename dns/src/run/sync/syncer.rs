//! The table kept equal to the objects, independent of the watch
//! machinery: a full pass over every object (the first sync, after a
//! relist, after falling behind), and an incremental one that rebuilds only
//! the Services the changed objects name.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cluster::compact::{EndpointSlice, Objects, Service};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::ObjectRef;

use super::index::SliceIndex;
use crate::records::{
    Hosts, ServiceKey, ServiceRecords, Skipped, Table, Zone, build_service, service_key,
    slices_by_service,
};

/// The current Services and EndpointSlices by key (the reflectors'
/// stores): what an incremental pass reads.
#[derive(Clone, Copy)]
pub struct Stores<'a> {
    pub services: &'a Objects<Service>,
    pub slices: &'a Objects<EndpointSlice>,
}

/// The objects changed since the last pass (from the journals).
#[derive(Clone, Copy, Default)]
pub struct ChangedObjects<'a> {
    pub services: &'a [ObjectRef<Service>],
    pub slices: &'a [ObjectRef<EndpointSlice>],
}

/// Incremental table maintenance.
pub struct Syncer {
    zone: Arc<Zone>,
    table: Table,
    index: SliceIndex,
    namespaces: HashSet<String>,
    hosts: (Vec<Arc<Node>>, Vec<(IpAddr, String)>),
}

impl Syncer {
    pub fn new(zone: Arc<Zone>) -> Syncer {
        Syncer {
            table: Table::new(zone.clone()),
            zone,
            index: SliceIndex::default(),
            namespaces: HashSet::new(),
            hosts: Default::default(),
        }
    }

    /// A full pass over the current objects; returns the skipped parts and
    /// whether anything changed. The table is marked synced.
    pub fn apply(
        &mut self,
        services: Vec<Arc<Service>>,
        slices: Vec<Arc<EndpointSlice>>,
        namespaces: Option<Vec<String>>,
        nodes: Vec<Arc<Node>>,
        extra_hosts: Vec<(IpAddr, String)>,
    ) -> (Vec<Skipped>, bool) {
        let mut skipped = Vec::new();
        let mut changed = self.replace_services(&services, &slices, &mut skipped);
        changed |= self.set_namespaces(namespaces.unwrap_or_default());
        changed |= self.set_hosts(Some(nodes), extra_hosts, &mut skipped);
        self.finish(changed);
        (skipped, changed)
    }

    /// Every Service rebuilt from `services` and `slices`; only records
    /// that differ are replaced (the rest of the table stays shared).
    pub fn replace_services(
        &mut self,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        skipped: &mut Vec<Skipped>,
    ) -> bool {
        self.index.clear();
        for slice in slices {
            let service = slice.service_name.as_deref();
            self.index.set(slice.namespace(), slice.name(), service);
        }
        let mut by_service = slices_by_service(slices);
        let mut current = HashSet::with_capacity(services.len());
        let mut changed = false;
        for svc in services {
            let Some(key) = service_key(svc) else {
                continue;
            };
            let slices = by_service.remove(&key).unwrap_or_default();
            let records = build_service(svc, &slices, &self.zone, skipped);
            changed |= self.put(&key, records);
            current.insert(key);
        }
        for key in self.table.service_keys() {
            if !current.contains(&key) {
                changed |= self.put(&key, None);
            }
        }
        changed
    }

    /// Rebuilds the Services named by `changed`: the changed Services, and
    /// the Services a changed slice belongs to now and belonged to before.
    pub fn update_services(
        &mut self,
        stores: Stores<'_>,
        changed: ChangedObjects<'_>,
        skipped: &mut Vec<Skipped>,
    ) -> bool {
        let mut dirty: HashSet<ServiceKey> = HashSet::new();
        for r in changed.services {
            dirty.insert((r.namespace.clone().unwrap_or_default(), r.name.clone()));
        }
        for r in changed.slices {
            let ns = r.namespace.as_deref().unwrap_or_default();
            let now = stores.slices.get(r).and_then(|s| s.service_name.clone());
            dirty.extend(self.index.set(ns, &r.name, now.as_deref()));
            dirty.extend(now.map(|svc| (ns.to_owned(), svc.into())));
        }
        let mut any = false;
        for key in &dirty {
            any |= self.rebuild(stores, key, skipped);
        }
        any
    }

    fn rebuild(
        &mut self,
        stores: Stores<'_>,
        key: &ServiceKey,
        skipped: &mut Vec<Skipped>,
    ) -> bool {
        let Some(svc) = stores.services.get_named(&key.0, &key.1) else {
            return self.put(key, None);
        };
        let slices: Vec<Arc<EndpointSlice>> = self
            .index
            .slices_of(key)
            .iter()
            .filter_map(|name| stores.slices.get_named(&key.0, name))
            .collect();
        let refs: Vec<&EndpointSlice> = slices.iter().map(|s| &**s).collect();
        let records = build_service(&svc, &refs, &self.zone, skipped);
        self.put(key, records)
    }

    /// Sets the records of `key` unless equal to what the table holds;
    /// returns whether the table changed.
    fn put(&mut self, key: &ServiceKey, records: Option<ServiceRecords>) -> bool {
        let old = self.table.service(&key.0, &key.1);
        if old.map(|o| &**o) == records.as_ref() {
            return false;
        }
        self.table
            .set_service(&key.0, &key.1, records.map(Arc::new));
        true
    }

    /// The existing namespaces (from Namespace objects).
    pub fn set_namespaces(&mut self, names: Vec<String>) -> bool {
        let current: HashSet<String> = names.into_iter().collect();
        if current == self.namespaces {
            return false;
        }
        for gone in self.namespaces.difference(&current) {
            self.table.set_namespace(gone, false);
        }
        for new in current.difference(&self.namespaces) {
            self.table.set_namespace(new, true);
        }
        self.namespaces = current;
        true
    }

    /// Node names and extra host entries; `nodes` None: the Nodes are
    /// unchanged since the last call.
    pub fn set_hosts(
        &mut self,
        nodes: Option<Vec<Arc<Node>>>,
        extra: Vec<(IpAddr, String)>,
        skipped: &mut Vec<Skipped>,
    ) -> bool {
        let mut nodes = nodes.unwrap_or_else(|| self.hosts.0.clone());
        nodes.sort_by_key(|n| Arc::as_ptr(n) as usize);
        let same_nodes = nodes.len() == self.hosts.0.len()
            && nodes
                .iter()
                .zip(&self.hosts.0)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if same_nodes && extra == self.hosts.1 && self.table.is_synced() {
            return false;
        }
        let refs: Vec<&Node> = nodes.iter().map(|n| &**n).collect();
        self.table.set_hosts(Hosts::build(&refs, &extra, skipped));
        self.hosts = (nodes, extra);
        true
    }

    /// Marks the table synced, with a new serial if it changed.
    pub fn finish(&mut self, changed: bool) {
        if changed || !self.table.is_synced() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0) as u32;
            self.table
                .set_serial(now.max(self.table.serial().wrapping_add(1)));
        }
        self.table.mark_synced();
    }

    /// A snapshot to publish.
    pub fn table(&self) -> Arc<Table> {
        Arc::new(self.table.clone())
    }
}
