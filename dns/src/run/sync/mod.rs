//! Keeping the published table equal to the views. The first pass (and
//! any after a relist, or after falling more than a journal's length
//! behind) builds every Service; every other pass rebuilds only the
//! Services the reflectors' journals name, so the work per watch event
//! does not grow with the number of objects. A pass publishes a new table
//! only when some records differ; the table is copy-on-write, so
//! publishing copies only the shards a change touched.

mod index;
mod syncer;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cluster::journal::{Changed, Cursor};
use tokio::sync::watch;

use super::{DnsConfig, DnsError, DnsViews};
use crate::metrics::Metrics;
use crate::records::{Skipped, Table, Zone, parse_hosts_file};

pub use syncer::{ChangedObjects, Stores, Syncer};

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
    // Taken before the first (full) read of the stores: whatever changes
    // during it is replayed by the next pass.
    let mut cursors = Cursors::new(views);
    let mut syncer = Syncer::new(zone);
    let mut clock = EventClock::new(config.settle);
    let mut full = true;
    loop {
        if sync_once(&mut syncer, views, &mut cursors, full, config, &published) {
            if let Some(at) = clock.event_at.take() {
                metrics.sync_latency(at.elapsed());
            }
            metrics.set_services(published.load().service_count());
        }
        full = false;
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

/// Positions in the views' journals.
struct Cursors {
    services: Cursor,
    slices: Cursor,
    nodes: Cursor,
    namespaces: Option<Cursor>,
}

impl Cursors {
    fn new(views: &DnsViews) -> Cursors {
        Cursors {
            services: views.services.journal().cursor(),
            slices: views.slices.journal().cursor(),
            nodes: views.nodes.journal().cursor(),
            namespaces: views.namespaces.as_ref().map(|ns| ns.journal().cursor()),
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

/// Brings the table up to date with the views (everything when `full`,
/// else what the journals name); returns whether a new table was
/// published.
fn sync_once(
    syncer: &mut Syncer,
    views: &DnsViews,
    cursors: &mut Cursors,
    full: bool,
    config: &DnsConfig,
    published: &ArcSwap<Table>,
) -> bool {
    let mut skipped = Vec::new();
    let extra = read_hosts_file(config, &mut skipped);
    let mut changed = sync_services(syncer, views, cursors, full, &mut skipped);
    changed |= sync_namespaces(syncer, views, cursors, full);
    let nodes_changed = !views.nodes.journal().since(&mut cursors.nodes).is_empty();
    let nodes = (full || nodes_changed).then(|| views.nodes.store().state());
    changed |= syncer.set_hosts(nodes, extra, &mut skipped);
    syncer.finish(changed);
    for s in &skipped {
        tracing::warn!(object = %s.object, field = %s.field, reason = %s.reason, "DNS: skipped invalid input");
    }
    let publish = changed || !published.load().is_synced();
    if publish {
        published.store(syncer.table());
    }
    publish
}

fn sync_services(
    syncer: &mut Syncer,
    views: &DnsViews,
    cursors: &mut Cursors,
    full: bool,
    skipped: &mut Vec<Skipped>,
) -> bool {
    let services = views.services.journal().since(&mut cursors.services);
    let slices = views.slices.journal().since(&mut cursors.slices);
    match (full, services, slices) {
        (false, Changed::Objects(services), Changed::Objects(slices)) => {
            let stores = Stores {
                services: views.services.store(),
                slices: views.slices.store(),
            };
            let changed = ChangedObjects {
                services: &services,
                slices: &slices,
            };
            syncer.update_services(stores, changed, skipped)
        }
        _ => {
            let services = views.services.store().state();
            let slices = views.slices.store().state();
            syncer.replace_services(&services, &slices, skipped)
        }
    }
}

fn sync_namespaces(
    syncer: &mut Syncer,
    views: &DnsViews,
    cursors: &mut Cursors,
    full: bool,
) -> bool {
    let (Some(view), Some(cursor)) = (&views.namespaces, &mut cursors.namespaces) else {
        // Not watched: a namespace exists while it holds a Service.
        return full && syncer.set_namespaces(Vec::new());
    };
    if view.journal().since(cursor).is_empty() && !full {
        return false;
    }
    let names = view.store().state();
    syncer.set_namespaces(
        names
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect(),
    )
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
mod tests;
