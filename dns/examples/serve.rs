//! Benchmark server: a synthetic cluster of `--services` ClusterIP Services
//! with `--pods` endpoints spread over them (one EndpointSlice each),
//! served on `--listen` by one thread, forwarding other names to
//! `--upstream`. Prints `ready rss_kb=<n>` once serving, and the time one
//! Service change takes to rebuild and publish.
//!
//! `cargo run --release -p dns --example serve -- --listen 127.0.0.2:53
//!  --services 10000 --pods 50000 --upstream 127.0.0.1:53 [--names FILE]`
//! (`--names` writes the service names, one per line, for dnsperf and
//! dnsmasq).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use dns::forward::{ForwardConfig, Forwarder};
use dns::metrics::Metrics;
use dns::records::{Zone, ZoneConfig};
use dns::run::Syncer;
use dns::server::{Context, Server, ServerConfig};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

struct Args {
    listen: SocketAddr,
    services: usize,
    pods: usize,
    upstream: Option<SocketAddr>,
    names: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.2:53".parse().map_err(|e| format!("{e}"))?,
        services: 10_000,
        pods: 50_000,
        upstream: None,
        names: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--listen" => a.listen = value.parse().map_err(|e| bad(&e))?,
            "--services" => a.services = value.parse().map_err(|e| bad(&e))?,
            "--pods" => a.pods = value.parse().map_err(|e| bad(&e))?,
            "--upstream" => a.upstream = Some(value.parse().map_err(|e| bad(&e))?),
            "--names" => a.names = Some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

fn ip(base: [u8; 2], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(base[0], base[1], (i >> 8) as u8, i as u8)
}

fn service(i: usize) -> Arc<Service> {
    let cip = ip([10, 43], i + 256).to_string();
    let v = json!({"metadata": {"namespace": "default", "name": format!("svc-{i}")},
        "spec": {"clusterIP": cip, "clusterIPs": [cip],
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}});
    Arc::new(serde_json::from_value(v).expect("fixture"))
}

fn slice(i: usize, first_pod: usize, count: usize) -> Arc<EndpointSlice> {
    let endpoints: Vec<_> = (first_pod..first_pod + count)
        .map(|p| json!({"addresses": [ip([10, 42], p).to_string()], "conditions": {"ready": true}}))
        .collect();
    let v = json!({"metadata": {"namespace": "default", "name": format!("svc-{i}-abc"),
            "labels": {"kubernetes.io/service-name": format!("svc-{i}")}},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]});
    Arc::new(serde_json::from_value(v).expect("fixture"))
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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
    let mut services: Vec<_> = (0..a.services).map(service).collect();
    let per = a.pods.div_ceil(a.services.max(1));
    let slices: Vec<_> = (0..a.services)
        .map(|i| slice(i, i * per, per.min(a.pods.saturating_sub(i * per))))
        .collect();
    if let Some(path) = &a.names {
        let text: String = (0..a.services)
            .map(|i| format!("svc-{i}.default.svc.cluster.local\n"))
            .collect();
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    eprintln!("rss with the Kubernetes objects only: {} kB", rss_kb());
    let mut syncer = Syncer::new(zone);
    let started = Instant::now();
    syncer.apply(services.clone(), slices.clone(), None, vec![], vec![]);
    let table = Arc::new(ArcSwap::new(syncer.table()));
    eprintln!("full build: {:?}, rss {} kB", started.elapsed(), rss_kb());
    // One changed Service: rebuild and publish, as the sync loop does.
    services[7] = service(a.services + 7);
    let started = Instant::now();
    syncer.apply(services, slices, None, vec![], vec![]);
    table.store(syncer.table());
    eprintln!("one change rebuilt and published: {:?}", started.elapsed());
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
