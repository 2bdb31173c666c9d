use std::time::{Duration, Instant};

use cluster::compact::{EndpointSlice, Objects, ObjectsWriter, Service};
use cluster::store::Apply;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::*;
use crate::records::{Answer, OwnedName, Resolution, ZoneConfig, rtype};

fn svc(name: &str, ip: &str) -> Arc<Service> {
    Arc::new(
        serde_json::from_value(json!({"metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip}}))
        .expect("fixture"),
    )
}

fn headless(name: &str) -> Service {
    serde_json::from_value(json!({"metadata": {"namespace": "default", "name": name},
        "spec": {"clusterIP": "None"}}))
    .expect("fixture")
}

fn slice(name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<Value> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    serde_json::from_value(json!({"metadata": {"namespace": "default", "name": name,
            "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "endpoints": endpoints}))
    .expect("fixture")
}

fn a(table: &Table, name: &str) -> Vec<String> {
    let n = OwnedName::from_dotted(name).expect("name");
    match table.resolve(n.as_query(), rtype::A) {
        Resolution::Answer(Answer::V4(v)) => v.iter().map(|x| x.to_string()).collect(),
        Resolution::Answer(Answer::Endpoints { endpoints, .. }) => {
            let mut v: Vec<String> = endpoints.iter().map(|e| e.addr.to_string()).collect();
            v.sort();
            v
        }
        _ => Vec::new(),
    }
}

fn syncer() -> Syncer {
    Syncer::new(Arc::new(Zone::new(&ZoneConfig::default()).expect("zone")))
}

#[test]
fn only_changed_services_are_rebuilt_and_deletions_apply() {
    let mut syncer = syncer();
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

/// The compact stores fed as a reflector would feed them.
struct Views {
    services: (Objects<Service>, ObjectsWriter<Service>),
    slices: (Objects<EndpointSlice>, ObjectsWriter<EndpointSlice>),
}

impl Views {
    fn new() -> Views {
        let mut v = Views {
            services: Objects::new(),
            slices: Objects::new(),
        };
        for e in [watcher::Event::Init, watcher::Event::InitDone] {
            v.services.1.apply(e);
        }
        for e in [watcher::Event::Init, watcher::Event::InitDone] {
            v.slices.1.apply(e);
        }
        v
    }
    fn service(&mut self, s: Service) -> ObjectRef<Service> {
        self.services.1.apply(watcher::Event::Apply(s.clone()));
        cluster::journal::key_of(&s)
    }
    fn slice(&mut self, s: EndpointSlice) -> ObjectRef<EndpointSlice> {
        self.slices.1.apply(watcher::Event::Apply(s.clone()));
        cluster::journal::key_of(&s)
    }
    fn delete_slice(&mut self, s: EndpointSlice) -> ObjectRef<EndpointSlice> {
        self.slices.1.apply(watcher::Event::Delete(s.clone()));
        cluster::journal::key_of(&s)
    }
    fn stores(&self) -> Stores<'_> {
        Stores {
            services: &self.services.0,
            slices: &self.slices.0,
        }
    }
}

fn update(
    syncer: &mut Syncer,
    views: &Views,
    services: &[ObjectRef<Service>],
    slices: &[ObjectRef<EndpointSlice>],
) -> bool {
    let mut skipped = Vec::new();
    let changed = ChangedObjects { services, slices };
    let any = syncer.update_services(views.stores(), changed, &mut skipped);
    assert!(skipped.is_empty(), "{skipped:?}");
    syncer.finish(any);
    any
}

/// The incremental path: a changed Service, a slice added, moved to
/// another Service and deleted each rebuild exactly the Services they
/// touch; the others keep their records (the same Arc).
#[test]
fn journal_changes_rebuild_the_services_they_name() {
    let mut views = Views::new();
    let mut syncer = syncer();
    let (web, db) = (
        views.service(headless("web")),
        views.service(headless("db")),
    );
    assert!(update(&mut syncer, &views, &[web, db], &[]));
    let before = syncer.table();
    let s1 = views.slice(slice("web-1", "web", &["10.42.0.1"]));
    assert!(update(&mut syncer, &views, &[], &[s1]));
    let t = syncer.table();
    assert_eq!(a(&t, "web.default.svc.cluster.local"), ["10.42.0.1"]);
    assert!(Arc::ptr_eq(
        before.service("default", "db").expect("db"),
        t.service("default", "db").expect("db")
    ));
    // The slice is relabelled to db: it leaves web.
    let moved = views.slice(slice("web-1", "db", &["10.42.0.1"]));
    assert!(update(&mut syncer, &views, &[], &[moved]));
    let t = syncer.table();
    assert!(a(&t, "web.default.svc.cluster.local").is_empty());
    assert_eq!(a(&t, "db.default.svc.cluster.local"), ["10.42.0.1"]);
    // Deleted: gone from db too.
    let gone = views.delete_slice(slice("web-1", "db", &["10.42.0.1"]));
    assert!(update(&mut syncer, &views, &[], &[gone]));
    assert!(a(&syncer.table(), "db.default.svc.cluster.local").is_empty());
    // An event that changes nothing DNS serves publishes nothing.
    let same = views.service(headless("web"));
    assert!(!update(&mut syncer, &views, &[same], &[]));
}

#[test]
fn a_deleted_service_leaves_the_table_and_a_full_pass_agrees() {
    let mut views = Views::new();
    let mut syncer = syncer();
    let web = views.service(headless("web"));
    let s1 = views.slice(slice("web-1", "web", &["10.42.0.1", "10.42.0.2"]));
    update(&mut syncer, &views, std::slice::from_ref(&web), &[s1]);
    let incremental = syncer.table();
    let mut full = self::syncer();
    let services = views.services.0.state();
    let slices = views.slices.0.state();
    full.apply(services, slices, None, vec![], vec![]);
    let name = "web.default.svc.cluster.local";
    assert_eq!(a(&incremental, name), a(&full.table(), name));
    assert_eq!(a(&incremental, name), ["10.42.0.1", "10.42.0.2"]);
    views
        .services
        .1
        .apply(watcher::Event::Delete(headless("web")));
    assert!(update(&mut syncer, &views, &[web], &[]));
    assert!(syncer.table().service("default", "web").is_none());
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
