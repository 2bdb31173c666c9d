//! Watch event to answer served, end to end through the daemon's path:
//! the lab's in-memory API server (real HTTP list/watch), the shared
//! reflectors (compact Service and EndpointSlice types, 20 ms settle), the
//! DNS component's sync loop (journal-driven: one Service rebuilt) and
//! its UDP server. Each round creates one Service through the API and
//! polls its name every millisecond until it answers; the time from the
//! create request to the first answer is recorded (so it includes the API
//! server's write and watch fan-out, an upper bound of event -> served).
//!
//! `cargo run --release -p dns --example latency -- [--services 2000]
//!  [--pods 10000] [--rounds 200]`
//!
//! Listens on 127.0.0.1 ephemeral ports only (the API server and DNS):
//! nothing in the network namespace changes.

// Shared with the serve example, which uses all of it.
#[allow(dead_code)]
#[path = "common/objects.rs"]
mod objects;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use lab::apiserver::{ApiServer, ApiServerConfig};
use tokio::net::UdpSocket;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn flag(name: &str, default: usize) -> Result<usize, Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

async fn api_server() -> Result<kube::Client, Error> {
    let server = ApiServer::new(ApiServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(server.serve(listener));
    Ok(kube::Client::try_from(kube::Config::new(url.parse()?))?)
}

fn new_service(name: &str) -> Result<Service, Error> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
    }))?)
}

async fn populate(client: &kube::Client, services: usize, pods: usize) -> Result<(), Error> {
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let per = pods.div_ceil(services.max(1));
    let pp = PostParams::default();
    for i in 0..services {
        svcs.create(&pp, &new_service(&format!("svc-{i}"))?).await?;
        let mut slice: EndpointSlice =
            serde_json::from_value(objects::slice_json(i, i * per, per))?;
        slice.metadata.uid = None;
        slice.metadata.resource_version = None;
        // The fixture's owner uid is made up; the API server's garbage
        // collector would delete the slice as an orphan.
        slice.metadata.owner_references = None;
        slices.create(&pp, &slice).await?;
    }
    Ok(())
}

fn query(name: &str, id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether `name` answers with at least one record now.
async fn answers(sock: &UdpSocket, name: &str, id: u16) -> Result<bool, Error> {
    sock.send(&query(name, id)).await?;
    let mut buf = [0u8; 1500];
    loop {
        let n = tokio::time::timeout(Duration::from_millis(200), sock.recv(&mut buf)).await??;
        if n >= 12 && buf[..2] == id.to_be_bytes() {
            return Ok(buf[3] & 0xf == 0 && u16::from_be_bytes([buf[6], buf[7]]) > 0);
        }
    }
}

async fn until_answered(sock: &UdpSocket, name: &str) -> Result<(), Error> {
    let mut id = 0u16;
    loop {
        id = id.wrapping_add(1);
        match answers(sock, name, id).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // The server is still binding: the port is closed until then.
            Err(e) if is_refused(&*e) => {}
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn is_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn start_dns(client: kube::Client) -> Result<SocketAddr, Error> {
    let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let addr = probe.local_addr()?;
    drop(probe);
    let reflectors = cluster::Reflectors::new(client);
    let views = dns::DnsViews {
        services: reflectors.shared(),
        slices: reflectors.shared(),
        nodes: reflectors.shared(),
        namespaces: None,
    };
    let config = dns::DnsConfig {
        server: dns::server::ServerConfig {
            listen: vec![addr],
            ..Default::default()
        },
        upstreams: dns::Upstreams::Static(vec!["127.0.0.1:9".parse()?]),
        ..dns::DnsConfig::default()
    };
    tokio::spawn(async move {
        let _keep = reflectors;
        let (tx, _rx) = tokio::sync::watch::channel(false);
        let metrics = Arc::new(dns::metrics::Metrics::new());
        if let Err(e) = dns::run(&config, &views, &metrics, &tx).await {
            eprintln!("dns stopped: {e}");
        }
    });
    Ok(addr)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let (services, pods, rounds) = (
        flag("--services", 2000)?,
        flag("--pods", 10_000)?,
        flag("--rounds", 200)?,
    );
    let client = api_server().await?;
    let started = Instant::now();
    populate(&client, services, pods).await?;
    eprintln!(
        "{services} Services, {pods} endpoints created in {:?}",
        started.elapsed()
    );
    let dns = start_dns(client.clone()).await?;
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(dns).await?;
    until_answered(&sock, "svc-0.default.svc.cluster.local").await?;
    eprintln!("first full sync served after {:?}", started.elapsed());
    let svcs: Api<Service> = Api::namespaced(client, "default");
    let mut took = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let name = format!("lat-{r}");
        let at = Instant::now();
        svcs.create(&PostParams::default(), &new_service(&name)?)
            .await?;
        until_answered(&sock, &format!("{name}.default.svc.cluster.local")).await?;
        took.push(at.elapsed());
        // Events spaced out, as independent changes (not one burst).
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    took.sort();
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1000.0);
    println!(
        "event -> served over {rounds} Service creations with {services} Services / {pods} endpoints: \
         min {} p50 {} p90 {} p99 {} max {} ms",
        ms(took[0]),
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.9)),
        ms(percentile(&took, 0.99)),
        ms(took[took.len() - 1]),
    );
    Ok(())
}
