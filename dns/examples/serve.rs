//! Benchmark server: a synthetic cluster of `--services` ClusterIP Services
//! with `--pods` endpoints spread over them (one EndpointSlice each),
//! served on `--listen` by one thread, forwarding other names to
//! `--upstream`. The objects are shaped like an API server's, parsed into
//! the compact store types and held in their stores
//! (`cluster::compact::Objects`), as the daemon's shared reflectors hold
//! them. Prints `ready rss_kb=<n>`
//! once serving; on stderr the RSS and heap in use at each stage and the
//! time one Service change takes to rebuild and publish through the
//! incremental path. `--malloc-trim` returns freed heap to the system
//! after the initial build, as the daemon could after its first sync.
//!
//! `cargo run --release -p dns --example serve -- --listen 127.0.0.2:53
//!  --services 10000 --pods 50000 --upstream 127.0.0.1:53 [--names FILE]
//!  [--malloc-trim]`
//! (`--names` writes the service names, one per line, for dnsperf and
//! dnsmasq).

#[path = "common/objects.rs"]
mod objects;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use cluster::Kept;
use cluster::journal::key_of;
use cluster::store::Apply;
use dns::forward::{ForwardConfig, Forwarder};
use dns::metrics::Metrics;
use dns::records::{Zone, ZoneConfig};
use dns::run::{ChangedObjects, Stores, Syncer};
use dns::server::{Context, Server, ServerConfig};
use kube::runtime::watcher::Event;
use objects::{service, slice};

struct Args {
    listen: SocketAddr,
    services: usize,
    pods: usize,
    upstream: Option<SocketAddr>,
    names: Option<String>,
    malloc_trim: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.2:53".parse().map_err(|e| format!("{e}"))?,
        services: 10_000,
        pods: 50_000,
        upstream: None,
        names: None,
        malloc_trim: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--malloc-trim" => a.malloc_trim = true,
            _ => value_flag(&mut a, &flag, it.next())?,
        }
    }
    Ok(a)
}

fn value_flag(a: &mut Args, flag: &str, value: Option<String>) -> Result<(), String> {
    let value = value.ok_or(format!("{flag} needs a value"))?;
    let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
    match flag {
        "--listen" => a.listen = value.parse().map_err(|e| bad(&e))?,
        "--services" => a.services = value.parse().map_err(|e| bad(&e))?,
        "--pods" => a.pods = value.parse().map_err(|e| bad(&e))?,
        "--upstream" => a.upstream = Some(value.parse().map_err(|e| bad(&e))?),
        "--names" => a.names = Some(value),
        _ => return Err(format!("unknown flag {flag}")),
    }
    Ok(())
}

/// Bytes of heap in use (glibc's count: what RSS would be without
/// fragmentation and freed-but-kept memory).
fn heap_kb() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2() }.uordblks / 1024
}

fn stage(what: &str) {
    eprintln!("{what}: rss {} kB, heap in use {} kB", rss_kb(), heap_kb());
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A store filled as a reflector fills it at its first list.
fn filled<K: Kept + Clone>(objects: impl Iterator<Item = Arc<K>>) -> (K::Store, K::Writer) {
    let (store, mut writer) = K::store();
    writer.apply(Event::Init);
    for object in objects {
        // Moved in, not cloned, as the reflector does with a parsed object.
        writer.apply(Event::InitApply(Arc::unwrap_or_clone(object)));
    }
    writer.apply(Event::InitDone);
    (store, writer)
}

fn write_names(a: &Args) -> Result<(), String> {
    if let Some(path) = &a.names {
        let text: String = (0..a.services)
            .map(|i| format!("svc-{i}.default.svc.cluster.local\n"))
            .collect();
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let a = args()?;
    let zone = Arc::new(
        Zone::new(&ZoneConfig {
            ns_addrs: vec![a.listen.ip()],
            ..ZoneConfig::default()
        })
        .map_err(|e| e.to_string())?,
    );
    stage("start");
    let per = a.pods.div_ceil(a.services.max(1));
    let (services, mut service_writer) = filled((0..a.services).map(service));
    let (slices, _slice_writer) =
        filled((0..a.services).map(|i| slice(i, i * per, per.min(a.pods.saturating_sub(i * per)))));
    write_names(&a)?;
    stage("Kubernetes objects only (compact types in reflector stores)");
    let mut syncer = Syncer::new(zone);
    let started = Instant::now();
    syncer.apply(services.state(), slices.state(), None, vec![], vec![]);
    let table = Arc::new(ArcSwap::new(syncer.table()));
    eprintln!("full build: {:?}", started.elapsed());
    stage("plus the record table and sync index");
    // One Service replaced by another, rebuilt and published as the sync
    // loop does it for a watch event.
    let (gone, new) = (service(7), service(a.services + 7));
    service_writer.apply(Event::Delete((*gone).clone()));
    service_writer.apply(Event::Apply((*new).clone()));
    let started = Instant::now();
    let stores = Stores {
        services: &services,
        slices: &slices,
    };
    let refs = [key_of(&*gone), key_of(&*new)];
    let changed = ChangedObjects {
        services: &refs,
        slices: &[],
    };
    let mut skipped = Vec::new();
    let any = syncer.update_services(stores, changed, &mut skipped);
    syncer.finish(any);
    table.store(syncer.table());
    eprintln!("one change rebuilt and published: {:?}", started.elapsed());
    if a.malloc_trim {
        // SAFETY: malloc_trim only returns free heap pages to the kernel.
        unsafe { libc::malloc_trim(0) };
        stage("after malloc_trim(0)");
    }
    // The stores (and their writers) stay alive while serving, as the
    // daemon's do: the bindings live until main returns.
    serve(a, table)
}

fn serve(a: Args, table: Arc<ArcSwap<dns::records::Table>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let forward = ForwardConfig {
            upstreams: a.upstream.into_iter().collect(),
            ..ForwardConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(Context {
            table,
            forwarder: Arc::new(Forwarder::with_stats(forward, metrics.forward_stats())),
            metrics,
        });
        let config = ServerConfig {
            listen: vec![a.listen],
            ..ServerConfig::default()
        };
        let server = Server::bind(&config, ctx)
            .await
            .map_err(|e| e.to_string())?;
        println!("ready rss_kb={}", rss_kb());
        server.serve().await;
        Ok(())
    })
}
