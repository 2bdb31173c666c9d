//! Privileged apply timings: real `nft -f` transactions inside network
//! namespaces this program creates (host::netns::TestNetns, removed on drop,
//! panics included). Needs root; fails (never skips) without it.
//!
//!   cargo bench -p netpol --bench apply                  # cold + events
//!   cargo bench -p netpol --bench apply -- emit-iperf DIR  # scripts for run.sh
//!
//! * cold: for 10/100/1 000 policies x 1 000/10 000 pods, in a fresh
//!   namespace each run, the daemon's first pass: the full plan
//!   (`ApiPlanner::full_plan` = convert every object + `plan::build`) ->
//!   first `Enforcer::apply` (full script, one `nft -f`); then a fresh
//!   `ApiPlanner` loads the same snapshot (its plan must equal the applied
//!   one). 5 runs, median.
//! * events: at 1 000 x 10 000, the base table applied, then pod events
//!   (add local, label change, delete local, add remote) cycled 10 times,
//!   each handled as the daemon does: `Store::state()`-like snapshot ->
//!   `ApiPlanner::sync` (only the changed pod converted and planned) ->
//!   `Enforcer::apply_delta` (one netlink batch for element-only changes,
//!   else one `nft -f`). `nft monitor` in the same namespace counts the
//!   committed transactions (generations) per event. After every event the
//!   incremental plan must equal a full `plan::build` (checked outside the
//!   timings); at the end the table is read back (`repair_drift`) and must
//!   not differ.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ApiObjects, ArcStore, Event, Views, median, node_scope};
use host::netns::TestNetns;
use netpol::ApiPlanner;
use netpol::apply::{Enforcer, Outcome};
use netpol::plan::{self, Delta, Inputs, Plan};
use serde_json::json;

const COLD_RUNS: usize = 5;
const EVENT_ROUNDS: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "this benchmark needs root (network namespaces, nft); euid is {euid}"
    );
    match args.first().map(String::as_str) {
        Some("emit-iperf") => emit_iperf(args.get(1).expect("usage: emit-iperf DIR")),
        Some("cold") => cold(),
        Some("events") => events(),
        None => {
            cold();
            events();
        }
        Some(other) => panic!("unknown mode {other:?} (cold, events, emit-iperf DIR)"),
    }
}

fn build(views: &Views) -> Plan {
    plan::build(&Inputs {
        policies: &views.policies,
        pods: &views.pods,
        namespaces: &views.namespaces,
        node: &node_scope(),
    })
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// Applies `plan` with `enforcer` inside `ns`; returns the enforcer, the
/// outcome and the wall time of the apply call (diff/render + nft).
fn apply_in(ns: &TestNetns, enforcer: Enforcer, plan: Plan) -> (Enforcer, Outcome, f64) {
    let (enforcer, outcome, took) = ns
        .run(move || {
            let mut enforcer = enforcer;
            let start = Instant::now();
            let outcome = enforcer
                .apply(plan)
                .unwrap_or_else(|e| panic!("apply: {e}"));
            (enforcer, outcome, ms(start))
        })
        .expect("netns thread");
    (enforcer, outcome, took)
}

fn cold() {
    println!("## cold start (median of {COLD_RUNS} runs, fresh namespace each run, ms)");
    println!(
        "| policies x pods | full plan (convert + build) | apply (render + nft -f) | **live** (plan + apply) | then: incremental load | script bytes | sets | set elements | chains | rules |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (policies, pods) in [
        (10, 1_000),
        (100, 1_000),
        (1_000, 1_000),
        (10, 10_000),
        (100, 10_000),
        (1_000, 10_000),
    ] {
        let objects = ApiObjects::new(policies, pods);
        let mut store = ArcStore::default();
        store.refresh(&objects);
        let mut parts: [Vec<f64>; 4] = Default::default();
        let mut shape = String::new();
        for _ in 0..COLD_RUNS {
            let ns = TestNetns::new("npbench").expect("netns");
            let (times, plan) = first_pass(&ns, &store);
            shape = plan_shape(&plan);
            for (part, t) in parts.iter_mut().zip(times) {
                part.push(t);
            }
        }
        let [f, a, live, load] = parts.each_mut().map(|s| median(s));
        println!("| {policies} x {pods} | {f:.1} | {a:.1} | {live:.1} | {load:.1} | {shape} |");
    }
}

/// The daemon's first pass (`first_pass` in the component): the full plan
/// applied in `ns`, then a fresh `ApiPlanner` loads the same snapshot.
/// Returns [full plan, apply, live, load] in ms and the plan.
fn first_pass(ns: &TestNetns, store: &ArcStore) -> ([f64; 4], Plan) {
    let start = Instant::now();
    let snapshot = store.snapshot();
    let full = ApiPlanner::full_plan(&snapshot);
    let full_ms = ms(start);
    let reference = full.clone();
    let (enforcer, outcome, apply_ms) = apply_in(ns, Enforcer::new(), full);
    let live_ms = ms(start);
    assert!(
        matches!(outcome, Outcome::Applied(ref s) if s.replace),
        "cold start must replace"
    );
    let t = Instant::now();
    let mut planner = ApiPlanner::new(node_scope());
    planner.sync(snapshot);
    let load_ms = ms(t);
    assert_eq!(
        enforcer.applied(),
        Some(planner.plan()),
        "planner differs from the full build"
    );
    ([full_ms, apply_ms, live_ms, load_ms], reference)
}

/// `script bytes | sets | set elements | chains | rules` of a full script.
fn plan_shape(plan: &Plan) -> String {
    let elements: usize = plan.sets.values().map(|s| s.elements.len()).sum::<usize>()
        + plan.maps.values().map(|m| m.elements.len()).sum::<usize>();
    let rules: usize = plan.chains.values().map(|c| c.rules.len()).sum();
    format!(
        "{} | {} | {elements} | {} | {rules}",
        plan::full_script(plan).len(),
        plan.sets.len(),
        plan.chains.len()
    )
}

/// `nft monitor` in `ns`, counting committed transactions.
struct Monitor {
    child: Child,
    generations: Arc<AtomicUsize>,
}

impl Monitor {
    fn start(ns: &TestNetns) -> Monitor {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "nft", "monitor"])
            .stdout(Stdio::piped())
            // It warns about elements of sets created before it started.
            .stderr(Stdio::null())
            .spawn()
            .expect("nft monitor");
        let generations = Arc::new(AtomicUsize::new(0));
        let counter = generations.clone();
        let stdout = child.stdout.take().expect("monitor stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("# new generation") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Monitor { child, generations }
    }

    /// Transactions committed since `since`, waiting for stragglers.
    fn settle(&self, since: usize) -> usize {
        let deadline = Instant::now() + Duration::from_millis(500);
        while self.generations.load(Ordering::SeqCst) == since && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.generations.load(Ordering::SeqCst) - since
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Our own child, by handle (PID).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct EventStats {
    snapshot: Vec<f64>,
    sync: Vec<f64>,
    apply: Vec<f64>,
    total: Vec<f64>,
    bytes: Vec<f64>,
    netlink: usize,
    transactions: Vec<usize>,
}

fn events() {
    let ns = TestNetns::new("npevent").expect("netns");
    let mut objects = ApiObjects::new(1_000, 10_000);
    let mut store = ArcStore::default();
    store.refresh(&objects);
    let mut planner = ApiPlanner::new(node_scope());
    planner.sync(store.snapshot());
    let (mut enforcer, _, base_ms) = apply_in(&ns, Enforcer::new(), planner.plan().clone());
    let floor_loaded = nft_floor(&ns);
    let empty = TestNetns::new("npfloor").expect("netns");
    let small = "add table inet nodenet-netpol\nadd set inet nodenet-netpol local-pods-v4 { type ipv4_addr; }\n";
    empty
        .run(move || host::nft::apply(small))
        .expect("netns thread")
        .expect("small table");
    let floor_small = nft_floor(&empty);
    drop(empty);
    let live = enforcer.applied().cloned().expect("base applied");
    let (netlink_add, netlink_delete) = netlink_floor(&ns, live);
    let monitor = Monitor::start(&ns);
    let mut stats: Vec<EventStats> = Event::CYCLE.iter().map(|_| EventStats::default()).collect();
    for _ in 0..EVENT_ROUNDS {
        for (k, event) in Event::CYCLE.iter().enumerate() {
            event.apply_to(&mut objects);
            store.refresh(&objects);
            let before = monitor.generations.load(Ordering::SeqCst);
            let (e, s) = one_event(&ns, enforcer, &mut planner, &store);
            enforcer = e;
            let st = &mut stats[k];
            st.snapshot.push(s.snapshot);
            st.sync.push(s.sync);
            st.apply.push(s.apply);
            st.total.push(s.total);
            st.bytes.push(s.bytes);
            st.netlink += usize::from(s.netlink);
            st.transactions.push(monitor.settle(before));
            // Outside the timings: the incremental plan is the full build.
            assert_eq!(
                planner.plan(),
                &build(&objects.views()),
                "{} diverged",
                event.name()
            );
        }
    }
    drop(monitor);
    let drift = ns
        .run(move || enforcer.repair_drift())
        .expect("netns thread")
        .unwrap_or_else(|e| panic!("read back: {e}"));
    assert!(
        drift.is_empty(),
        "incremental updates drifted from the plan: {drift:?}"
    );
    println!(
        "\n## pod events at 1 000 policies x 10 000 pods (base table applied in {base_ms:.1} ms; {EVENT_ROUNDS} rounds; ms, median / max)"
    );
    println!(
        "| event | snapshot (state()) | sync (convert changed + plan) | apply (netlink or nft) | total event -> live | via netlink | script bytes (nft form) | nft transactions per event |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (event, st) in Event::CYCLE.iter().zip(&mut stats) {
        let cell = |s: &mut Vec<f64>| {
            let max = s.iter().copied().fold(0.0, f64::max);
            format!("{:.2} / {max:.2}", median(s))
        };
        let tx_min = st.transactions.iter().min().copied().unwrap_or(0);
        let tx_max = st.transactions.iter().max().copied().unwrap_or(0);
        println!(
            "| {} | {} | {} | {} | {} | {}/{EVENT_ROUNDS} | {:.0} | {tx_min}..{tx_max} |",
            event.name(),
            cell(&mut st.snapshot),
            cell(&mut st.sync),
            cell(&mut st.apply),
            cell(&mut st.total),
            st.netlink,
            median(&mut st.bytes),
        );
    }
    println!(
        "(after every event the incremental plan equalled plan::build; read-back after {} events: table equals the plan)",
        EVENT_ROUNDS * Event::CYCLE.len()
    );
    println!(
        "\nnft -f floor (one-element add or delete, median of 20): {floor_loaded:.2} ms with the 1 000 x 10 000 table loaded, {floor_small:.2} ms with a one-set table"
    );
    println!(
        "netlink floor (one-element batch, 1 000 x 10 000 table loaded, median of 10 each): add {netlink_add:.3} ms, delete {netlink_delete:.3} ms"
    );
}

/// Median wall times of a one-element netlink batch in `ns`: (add, delete).
fn netlink_floor(ns: &TestNetns, live: Plan) -> (f64, f64) {
    let (mut adds, mut deletes) = ns
        .run(move || {
            let (mut adds, mut deletes) = (Vec::new(), Vec::new());
            for i in 0..20 {
                let op = plan::ElementOp {
                    add: i % 2 == 0,
                    object: "local-pods-v4".into(),
                    elements: vec![("10.42.0.254".into(), None)],
                };
                let t = Instant::now();
                netpol::apply::netlink::apply_elements("nodenet-netpol", &live, &[op])
                    .unwrap_or_else(|e| panic!("netlink floor: {e}"));
                match i % 2 {
                    0 => adds.push(ms(t)),
                    _ => deletes.push(ms(t)),
                }
            }
            (adds, deletes)
        })
        .expect("netns thread");
    (median(&mut adds), median(&mut deletes))
}

/// Median wall time of a one-element `nft -f` transaction in `ns`
/// (alternating add and delete of an address no pod has).
fn nft_floor(ns: &TestNetns) -> f64 {
    let mut samples = ns
        .run(|| {
            let mut out = Vec::new();
            for i in 0..20 {
                let verb = if i % 2 == 0 { "add" } else { "delete" };
                let script =
                    format!("{verb} element inet nodenet-netpol local-pods-v4 {{ 10.42.0.254 }}\n");
                let t = Instant::now();
                host::nft::apply(&script).unwrap_or_else(|e| panic!("floor: {e}"));
                out.push(ms(t));
            }
            out
        })
        .expect("netns thread");
    median(&mut samples)
}

/// Timings of one event, ms (bytes: the nft form of the change).
struct EventTimes {
    snapshot: f64,
    sync: f64,
    apply: f64,
    total: f64,
    bytes: f64,
    netlink: bool,
}

/// One event the daemon's way: snapshot -> sync -> apply_delta.
fn one_event(
    ns: &TestNetns,
    enforcer: Enforcer,
    planner: &mut ApiPlanner,
    store: &ArcStore,
) -> (Enforcer, EventTimes) {
    let start = Instant::now();
    let snapshot = store.snapshot();
    let snapshot_ms = ms(start);
    let t = Instant::now();
    let update = planner.sync(snapshot);
    let sync_ms = ms(t);
    let delta = update
        .delta
        .expect("every sync after the first has a delta");
    let (enforcer, outcome, apply_ms) = apply_delta_in(ns, enforcer, delta);
    let total = ms(start);
    let (bytes, netlink) = match outcome {
        Outcome::Applied(s) => {
            assert!(!s.replace, "a pod event must not replace the table");
            dump(&s.text);
            (s.text.len(), false)
        }
        Outcome::Elements(s) => {
            dump(&s.text);
            (s.text.len(), true)
        }
        Outcome::Unchanged => (0, false),
    };
    let times = EventTimes {
        snapshot: snapshot_ms,
        sync: sync_ms,
        apply: apply_ms,
        total,
        bytes: bytes as f64,
        netlink,
    };
    (enforcer, times)
}

/// Like [`apply_in`] for a delta.
fn apply_delta_in(ns: &TestNetns, enforcer: Enforcer, delta: Delta) -> (Enforcer, Outcome, f64) {
    ns.run(move || {
        let mut enforcer = enforcer;
        let start = Instant::now();
        let outcome = enforcer
            .apply_delta(&delta)
            .unwrap_or_else(|e| panic!("apply delta: {e}"));
        (enforcer, outcome, ms(start))
    })
    .expect("netns thread")
}

/// With NETPOL_BENCH_DUMP=DIR, keeps each event script as DIR/event-<n>.nft.
fn dump(script: &str) {
    static N: AtomicUsize = AtomicUsize::new(0);
    if let Some(dir) = std::env::var_os("NETPOL_BENCH_DUMP") {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = std::path::Path::new(&dir).join(format!("event-{n}.nft"));
        std::fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// Writes `p0.nft`, `p1.nft`, `p1000.nft` (full scripts for node-0 with
/// 10 000 pods, the iperf pair at 10.42.0.2 (client) and 10.42.0.3
/// (server) in namespace `iperf`) and `counter` (the allow counter of the
/// iperf policy) into `dir`.
fn emit_iperf(dir: &str) {
    std::fs::create_dir_all(dir).expect("create dir");
    let mut objects = ApiObjects::new(999, 10_000);
    // Pods 0 and 50 are node-0's first two pods (10.42.0.2, .3).
    let pair = [(0, "client", "10.42.0.2"), (50, "server", "10.42.0.3")];
    for (i, role, ip) in pair {
        objects.pods[i] = common::pod_object(
            "iperf",
            &format!("iperf-{role}"),
            0,
            ip,
            json!({"role": role}),
            false,
        );
    }
    objects.namespaces.push(
        serde_json::from_value(json!({"metadata": {"name": "iperf", "labels": {"kubernetes.io/metadata.name": "iperf"}}}))
            .expect("namespace"),
    );
    let allow = common::policy_object(
        "iperf",
        "allow-iperf",
        json!({"podSelector": {"matchLabels": {"role": "server"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                            "ports": [{"protocol": "TCP", "port": 5201}, {"protocol": "UDP", "port": 5201}, {"protocol": "UDP", "port": 5300}]}]}),
    );
    let generic = std::mem::take(&mut objects.policies);
    for (name, policies) in [
        ("p0", vec![]),
        ("p1", vec![allow.clone()]),
        ("p1000", [generic, vec![allow]].concat()),
    ] {
        objects.policies = policies;
        let views = objects.views();
        let plan = build(&views);
        let selecting = views.policies.len();
        std::fs::write(format!("{dir}/{name}.nft"), plan::full_script(&plan))
            .expect("write script");
        eprintln!("{name}: {selecting} policies, {} chains", plan.chains.len());
    }
    let counter = netpol::plan::names::policy_counter(
        "iperf/allow-iperf",
        netpol::model::Direction::Ingress,
        "allow",
    );
    std::fs::write(format!("{dir}/counter"), counter).expect("write counter");
}
