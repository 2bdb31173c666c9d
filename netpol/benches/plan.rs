//! Pure planner timings (no nft, no privileges), release build:
//!
//!   cargo bench -p netpol --bench plan
//!
//! * `cold/<policies>x<pods>`: what a cold start computes before nft runs:
//!   API objects -> views -> plan -> full script.
//! * `build/<policies>x<pods>`: `plan::build` alone.
//! * `cold-sync/<policies>x<pods>`: the daemon's first pass without nft
//!   (a fresh `ApiPlanner` converting and planning everything).
//! * `event-sync-pair/<kind>`: a pod event and its inverse through a
//!   warmed-up `ApiPlanner` (the daemon's CPU work per event, times two).
//! * `event/<kind>`: at 1 000 policies x 10 000 pods, one pod event the way
//!   the daemon handles it (all objects -> views -> plan -> diff against the
//!   live plan), and `event-plan-diff/<kind>` without the conversion.
//!
//! Fixtures: see `common/mod.rs` (this node owns 2 % of the pods).

mod common;

use std::time::Duration;

use common::{ApiObjects, ArcStore, Event, Views, node_scope};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use netpol::ApiPlanner;
use netpol::plan::{self, Inputs, NodeScope, Plan};

const SIZES: [(usize, usize); 6] = [
    (10, 1_000),
    (100, 1_000),
    (1_000, 1_000),
    (10, 10_000),
    (100, 10_000),
    (1_000, 10_000),
];

fn build(views: &Views, node: &NodeScope) -> Plan {
    plan::build(&Inputs {
        policies: &views.policies,
        pods: &views.pods,
        namespaces: &views.namespaces,
        node,
    })
}

fn cold(c: &mut Criterion) {
    let node = node_scope();
    let mut group = c.benchmark_group("cold");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (policies, pods) in SIZES {
        let objects = ApiObjects::new(policies, pods);
        let id = BenchmarkId::from_parameter(format!("{policies}x{pods}"));
        group.bench_with_input(id, &objects, |b, objects| {
            b.iter(|| plan::full_script(&build(&objects.views(), &node)).len())
        });
    }
    group.finish();
}

/// The daemon's first pass without nft: every object converted and
/// planned by a fresh `ApiPlanner` (what the cold start computes now).
fn cold_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("cold-sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (policies, pods) in SIZES {
        let mut store = ArcStore::default();
        store.refresh(&ApiObjects::new(policies, pods));
        let id = BenchmarkId::from_parameter(format!("{policies}x{pods}"));
        group.bench_with_input(id, &store, |b, store| {
            b.iter(|| {
                let mut planner = ApiPlanner::new(node_scope());
                planner.sync(store.snapshot());
                planner.plan().sets.len()
            })
        });
    }
    group.finish();
}

/// One pod event through a warmed-up `ApiPlanner` (snapshot + sync), at
/// 1 000 x 10 000: each iteration applies the event and its inverse, so
/// the figure is the cost of two events.
fn event_sync(c: &mut Criterion) {
    let mut group = c.benchmark_group("event-sync-pair");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let base = ApiObjects::new(1_000, 10_000);
    let mut before = ArcStore::default();
    before.refresh(&base);
    let mut planner = ApiPlanner::new(node_scope());
    planner.sync(before.snapshot());
    let pairs = [
        (Event::AddLocal, "pod-add-local + delete"),
        (Event::AddRemote, "pod-add-remote + delete"),
        (Event::AddLocalTwin, "pod-add-local-existing-class + delete"),
    ];
    for (event, name) in pairs {
        let mut objects = ApiObjects::new(0, 0);
        objects.policies = base.policies.clone();
        objects.namespaces = base.namespaces.clone();
        objects.pods = base.pods.clone();
        event.apply_to(&mut objects);
        // Same Arcs as `before` for every pod the event leaves alone.
        let mut after = before.clone();
        after.refresh(&objects);
        group.bench_function(name, |b| {
            b.iter(|| {
                planner.sync(after.snapshot());
                planner
                    .sync(before.snapshot())
                    .delta
                    .map(|d| d.after.sets.len())
            })
        });
    }
    group.finish();
}

fn build_only(c: &mut Criterion) {
    let node = node_scope();
    let mut group = c.benchmark_group("build");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    for (policies, pods) in SIZES {
        let views = ApiObjects::new(policies, pods).views();
        let id = BenchmarkId::from_parameter(format!("{policies}x{pods}"));
        group.bench_with_input(id, &views, |b, views| b.iter(|| build(views, &node)));
    }
    group.finish();
}

fn events(c: &mut Criterion) {
    let node = node_scope();
    let mut group = c.benchmark_group("event");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let mut before = ApiObjects::new(1_000, 10_000);
    for event in Event::CYCLE {
        let old = build(&before.views(), &node);
        let mut after = ApiObjects::new(0, 0);
        after.policies = before.policies.clone();
        after.namespaces = before.namespaces.clone();
        after.pods = before.pods.clone();
        event.apply_to(&mut after);
        let views = after.views();
        let bytes = plan::diff(&old, &build(&views, &node)).text.len();
        eprintln!("event {}: diff script {bytes} bytes", event.name());
        group.bench_function(BenchmarkId::new("daemon-path", event.name()), |b| {
            b.iter(|| plan::diff(&old, &build(&after.views(), &node)).text.len())
        });
        group.bench_function(BenchmarkId::new("plan-diff", event.name()), |b| {
            b.iter(|| plan::diff(&old, &build(&views, &node)).text.len())
        });
        before = after;
    }
    group.finish();
}

criterion_group!(benches, build_only, cold, cold_sync, events, event_sync);
criterion_main!(benches);
