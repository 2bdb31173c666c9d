//! Keeping the published table equal to the views: each change rebuilds
//! only the Services whose objects changed (compared by pointer: the
//! reflector store hands out the same Arc for an unchanged object).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::watch;

use super::{DnsConfig, DnsError, DnsViews};
use crate::metrics::Metrics;
use crate::records::{
    Hosts, ServiceKey, Skipped, Table, Zone, build_service, parse_hosts_file, service_key,
    slice_service,
};

/// The inputs of one Service's records, as last built.
#[derive(Default, Clone)]
struct Inputs {
    service: Option<Arc<Service>>,
    slices: Vec<Arc<EndpointSlice>>,
}

impl Inputs {
    fn same(&self, other: &Inputs) -> bool {
        let svc = match (&self.service, &other.service) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        svc && self.slices.len() == other.slices.len()
            && self
                .slices
                .iter()
                .zip(&other.slices)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

/// Incremental table maintenance, independent of the watch machinery.
pub struct Syncer {
    zone: Arc<Zone>,
    table: Table,
    seen: HashMap<ServiceKey, Inputs>,
    namespaces: HashSet<String>,
    hosts: (Vec<Arc<Node>>, Vec<(IpAddr, String)>),
}

impl Syncer {
    pub fn new(zone: Arc<Zone>) -> Syncer {
        Syncer {
            table: Table::new(zone.clone()),
            zone,
            seen: HashMap::new(),
            namespaces: HashSet::new(),
            hosts: Default::default(),
        }
    }

    /// Applies the current objects; returns the skipped parts and whether
    /// anything changed. The table is marked synced.
    pub fn apply(
        &mut self,
        services: Vec<Arc<Service>>,
        slices: Vec<Arc<EndpointSlice>>,
        namespaces: Option<Vec<String>>,
        nodes: Vec<Arc<Node>>,
        extra_hosts: Vec<(IpAddr, String)>,
    ) -> (Vec<Skipped>, bool) {
        let mut skipped = Vec::new();
        let mut changed = self.apply_services(services, slices, &mut skipped);
        changed |= self.apply_namespaces(namespaces.unwrap_or_default());
        changed |= self.apply_hosts(nodes, extra_hosts, &mut skipped);
        if changed || !self.table.is_synced() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0) as u32;
            self.table
                .set_serial(now.max(self.table.serial().wrapping_add(1)));
        }
        self.table.mark_synced();
        (skipped, changed)
    }

    fn apply_services(
        &mut self,
        services: Vec<Arc<Service>>,
        slices: Vec<Arc<EndpointSlice>>,
        skipped: &mut Vec<Skipped>,
    ) -> bool {
        let mut current: HashMap<ServiceKey, Inputs> = HashMap::new();
        for svc in services {
            if let Some(key) = service_key(&svc) {
                current.entry(key).or_default().service = Some(svc);
            }
        }
        for slice in slices {
            if let Some(key) = slice_service(&slice) {
                current.entry(key).or_default().slices.push(slice);
            }
        }
        for inputs in current.values_mut() {
            inputs.slices.sort_by_key(|s| Arc::as_ptr(s) as usize);
        }
        let mut changed = false;
        for (key, inputs) in &current {
            if self.seen.get(key).is_some_and(|old| old.same(inputs)) {
                continue;
            }
            changed = true;
            self.rebuild(key, inputs, skipped);
        }
        for key in self.seen.keys().filter(|k| !current.contains_key(*k)) {
            changed = true;
            self.table.set_service(&key.0, &key.1, None);
        }
        self.seen = current;
        changed
    }

    fn rebuild(&mut self, key: &ServiceKey, inputs: &Inputs, skipped: &mut Vec<Skipped>) {
        let records = inputs.service.as_ref().and_then(|svc| {
            let slices: Vec<&EndpointSlice> = inputs.slices.iter().map(|s| &**s).collect();
            build_service(svc, &slices, &self.zone, skipped)
        });
        self.table
            .set_service(&key.0, &key.1, records.map(Arc::new));
    }

    fn apply_namespaces(&mut self, names: Vec<String>) -> bool {
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

    fn apply_hosts(
        &mut self,
        mut nodes: Vec<Arc<Node>>,
        extra: Vec<(IpAddr, String)>,
        skipped: &mut Vec<Skipped>,
    ) -> bool {
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

    /// A snapshot to publish.
    pub fn table(&self) -> Arc<Table> {
        Arc::new(self.table.clone())
    }
}

/// Waits for the views, then republishes the table after every change.
pub(super) async fn keep_synced(
    zone: Arc<Zone>,
    views: &DnsViews,
    config: &DnsConfig,
    published: Arc<ArcSwap<Table>>,
    metrics: &Metrics,
    ready: &watch::Sender<bool>,
) -> Result<(), DnsError> {
    let wait = |r: Result<(), _>| r.map_err(|_| DnsError::ViewClosed);
    wait(views.services.wait_ready().await)?;
    wait(views.slices.wait_ready().await)?;
    wait(views.nodes.wait_ready().await)?;
    if let Some(ns) = &views.namespaces {
        wait(ns.wait_ready().await)?;
    }
    let mut changes = views
        .services
        .changes()
        .and(views.slices.changes())
        .and(views.nodes.changes());
    if let Some(ns) = &views.namespaces {
        changes = changes.and(ns.changes());
    }
    let mut syncer = Syncer::new(zone);
    let mut clock = EventClock::new(config.settle);
    loop {
        if sync_once(&mut syncer, views, config, &published) {
            if let Some(at) = clock.event_at.take() {
                metrics.sync_latency(at.elapsed());
            }
            metrics.set_services(published.load().service_count());
        }
        ready.send_replace(true);
        let waiting = Instant::now();
        tokio::select! {
            res = changes.changed() => {
                res.map_err(|_| DnsError::ViewClosed)?;
                clock.woke(waiting);
            }
            () = tokio::time::sleep(config.hosts_reload.max(Duration::from_secs(1))) => {
                clock.event_at = None;
            }
        }
    }
}

/// Dates the watch event behind a wake-up. `Changes::changed` returns one
/// settle window after the first change it sees, and consumes every change
/// when it returns. So a wake that took longer than the window was caused
/// by an event one window before it; a quicker one means the event was
/// already pending, i.e. it came after the previous wake: that earlier
/// bound is used, so the latency is never under-reported.
struct EventClock {
    settle: Duration,
    last_wake: Instant,
    event_at: Option<Instant>,
}

impl EventClock {
    fn new(settle: Duration) -> Self {
        EventClock {
            settle,
            last_wake: Instant::now(),
            event_at: None,
        }
    }

    fn woke(&mut self, waiting_since: Instant) {
        let now = Instant::now();
        let slack = Duration::from_millis(1);
        // Nothing unseen existed at the previous wake (it consumed all).
        let at = if now.duration_since(waiting_since) > self.settle + slack {
            (now - self.settle).max(self.last_wake)
        } else {
            self.last_wake
        };
        self.event_at = Some(self.event_at.map_or(at, |e| e.min(at)));
        self.last_wake = now;
    }
}

/// Rebuilds from the views; returns whether a new table was published.
fn sync_once(
    syncer: &mut Syncer,
    views: &DnsViews,
    config: &DnsConfig,
    published: &ArcSwap<Table>,
) -> bool {
    let namespaces = views.namespaces.as_ref().map(|ns| {
        ns.store()
            .state()
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect()
    });
    let mut skipped = Vec::new();
    let extra = read_hosts_file(config, &mut skipped);
    let (more, changed) = syncer.apply(
        views.services.store().state(),
        views.slices.store().state(),
        namespaces,
        views.nodes.store().state(),
        extra,
    );
    for s in skipped.iter().chain(&more) {
        tracing::warn!(object = %s.object, field = %s.field, reason = %s.reason, "DNS: skipped invalid input");
    }
    let publish = changed || !published.load().is_synced();
    if publish {
        published.store(syncer.table());
    }
    publish
}

fn read_hosts_file(config: &DnsConfig, skipped: &mut Vec<Skipped>) -> Vec<(IpAddr, String)> {
    let Some(path) = &config.hosts_file else {
        return Vec::new();
    };
    match std::fs::read_to_string(path) {
        Ok(text) => parse_hosts_file(&text, &path.display().to_string(), skipped),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "DNS: cannot read hosts file");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{OwnedName, Resolution, ZoneConfig, rtype};
    use serde_json::json;

    fn svc(name: &str, ip: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"namespace": "default", "name": name},
                "spec": {"clusterIP": ip}}))
            .expect("fixture"),
        )
    }

    fn a(table: &Table, name: &str) -> Vec<String> {
        let n = OwnedName::from_dotted(name).expect("name");
        match table.resolve(n.as_query(), rtype::A) {
            Resolution::Answer(crate::records::Answer::V4(v)) => {
                v.iter().map(|x| x.to_string()).collect()
            }
            _ => Vec::new(),
        }
    }

    #[test]
    fn only_changed_services_are_rebuilt_and_deletions_apply() {
        let zone = Arc::new(Zone::new(&ZoneConfig::default()).expect("zone"));
        let mut syncer = Syncer::new(zone);
        let (a1, b1) = (svc("a", "10.43.0.1"), svc("b", "10.43.0.2"));
        let (_, changed) = syncer.apply(vec![a1.clone(), b1.clone()], vec![], None, vec![], vec![]);
        assert!(changed);
        let first = syncer.table();
        assert!(first.is_synced());
        let (_, changed) = syncer.apply(vec![a1.clone(), b1.clone()], vec![], None, vec![], vec![]);
        assert!(!changed, "same objects: nothing to publish");
        let b2 = svc("b", "10.43.0.3");
        let (_, changed) = syncer.apply(vec![a1.clone(), b2], vec![], None, vec![], vec![]);
        assert!(changed);
        let second = syncer.table();
        assert!(Arc::ptr_eq(
            first.service("default", "a").expect("a"),
            second.service("default", "a").expect("a")
        ));
        assert_eq!(a(&second, "b.default.svc.cluster.local"), ["10.43.0.3"]);
        assert!(second.serial() > first.serial());
        syncer.apply(vec![a1], vec![], None, vec![], vec![]);
        assert!(a(&syncer.table(), "b.default.svc.cluster.local").is_empty());
    }

    #[test]
    fn event_clock_dates_events_one_settle_window_before_a_slow_wake() {
        let settle = Duration::from_millis(50);
        let mut clock = EventClock::new(settle);
        clock.last_wake = Instant::now() - Duration::from_secs(1);
        // Waited 200 ms: the event came one window before the wake.
        let waiting = Instant::now() - Duration::from_millis(200);
        clock.woke(waiting);
        let at = clock.event_at.expect("dated");
        let before_wake = clock.last_wake.duration_since(at);
        assert!(before_wake >= settle && before_wake < settle + Duration::from_millis(5));
        // A wake right after waiting began: the event was already pending,
        // so it is dated at the previous wake (an upper bound on latency).
        let previous = clock.last_wake;
        clock.event_at = None;
        clock.woke(Instant::now());
        assert_eq!(clock.event_at, Some(previous));
    }
}
