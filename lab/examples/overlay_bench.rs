//! Overlay benchmark (issue 3, performance): pod-to-pod TCP throughput as a
//! ratio to the underlay, convergence after Nodes appear, and daemon RSS
//! with 200 remote nodes. Driven by benches/overlay/run.sh; prints one JSON
//! object per measurement.
//!
//! usage: overlay_bench throughput|convergence BACKEND [RUNS]
//! (BACKEND: vxlan|host-gw|wireguard-native; RUNS: throughput runs per
//! path, default 3)

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use lab::{Lab, LabConfig};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);
const PREFIX: &str = "flannel.alpha.coreos.com/";
/// iperf3 run length per measurement.
const IPERF_SECONDS: &str = "8";
/// `--flannel-backend` values this bench drives.
const BACKENDS: [&str; 3] = ["vxlan", "host-gw", "wireguard-native"];
const USAGE: &str =
    "usage: overlay_bench throughput|convergence vxlan|host-gw|wireguard-native [RUNS]";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, backend, runs) = match args.as_slice() {
        [m, b] => (m, b, 3),
        [m, b, n] => (m, b, n.parse().context(USAGE)?),
        _ => bail!(USAGE),
    };
    if !BACKENDS.contains(&backend.as_str()) || runs == 0 {
        bail!(USAGE);
    }
    let mut config = LabConfig::from_target_dir(2)?;
    config.nodenet_args = vec![format!("--flannel-backend={backend}")];
    let lab = Lab::up(config).await?;
    let result = match mode.as_str() {
        "throughput" => throughput(&lab, backend, runs).await,
        "convergence" => convergence(&lab, backend).await,
        other => Err(anyhow::anyhow!("unknown mode {other}; {USAGE}")),
    };
    lab.down().await?;
    result
}

fn pod(name: &str, node: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nodenet/workload",
            "command": ["nodenet-workload", "serve", "--tcp", "8080", "--udp", "8081"]}]}
    }))?)
}

async fn start_pod(lab: &Lab, name: &str, node: &str) -> anyhow::Result<String> {
    let api: Api<Pod> = Api::namespaced(lab.client(), "default");
    api.create(&PostParams::default(), &pod(name, node)?)
        .await?;
    let pod = lab.wait_pod_running("default", name, WAIT).await?;
    pod.status
        .and_then(|s| s.pod_ip)
        .context("running pod has an IP")
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

// ---------------------------------------------------------------- throughput

/// Where an iperf3 end runs.
#[derive(Clone, Copy)]
enum Place<'a> {
    Pod(&'a str),
    Node(&'a str),
}

async fn exec(lab: &Lab, place: Place<'_>, argv: &[&str]) -> anyhow::Result<std::process::Output> {
    let timeout = Duration::from_secs(60);
    match place {
        Place::Pod(p) => lab.exec_in_pod("default", p, argv, timeout).await,
        Place::Node(n) => lab.exec_on_node(n, argv, timeout).await,
    }
}

/// One iperf3 run, server pinned to CPU 1, client to CPU 0; bits/s received.
async fn iperf(lab: &Lab, server: Place<'_>, client: Place<'_>, ip: &str) -> anyhow::Result<f64> {
    let server_run = async {
        exec(
            lab,
            server,
            &["iperf3", "-s", "-1", "-A", "1", "-p", "5201"],
        )
        .await
    };
    let client_run = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        exec(
            lab,
            client,
            &[
                "iperf3",
                "-c",
                ip,
                "-p",
                "5201",
                "-A",
                "0",
                "-t",
                IPERF_SECONDS,
                "-J",
            ],
        )
        .await
    };
    let (server_out, client_out) = tokio::join!(server_run, client_run);
    server_out?;
    let out = client_out?;
    let report: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output: {}", String::from_utf8_lossy(&out.stderr)))?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no sum_received in {report}"))
}

/// The 1-minute load average now (the machine is shared: every run
/// records the load it ran under).
fn load_1min() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// One measured run: Gbit/s and the load average when it started.
fn run_json(bits: f64, load: Option<f64>) -> Value {
    json!({"gbps": bits / 1e9, "load_1min": load})
}

async fn throughput(lab: &Lab, backend: &str, runs: usize) -> anyhow::Result<()> {
    start_pod(lab, "server", "node-2").await?;
    start_pod(lab, "client", "node-1").await?;
    let server_ip = start_pod_ip(lab, "server").await?;
    let node2 = lab.node_ip("node-2").to_string();
    // The sender's congestion control decides much of the result (BBR
    // paces, CUBIC does not): record the one every run used.
    let cc = exec(
        lab,
        Place::Node("node-1"),
        &["sysctl", "-n", "net.ipv4.tcp_congestion_control"],
    )
    .await?;
    // Alternate to spread any drift of the machine's load over both.
    let (mut pods, mut underlay) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let load = load_1min();
        let bits = iperf(lab, Place::Pod("server"), Place::Pod("client"), &server_ip).await?;
        pods.push((bits, load));
        let load = load_1min();
        let bits = iperf(lab, Place::Node("node-2"), Place::Node("node-1"), &node2).await?;
        underlay.push((bits, load));
    }
    let (p, u) = (median(&pods), median(&underlay));
    let runs_json =
        |v: &[(f64, Option<f64>)]| v.iter().map(|(b, l)| run_json(*b, *l)).collect::<Vec<_>>();
    println!(
        "{}",
        json!({"bench": "throughput", "backend": backend,
            "congestion_control": String::from_utf8_lossy(&cc.stdout).trim(),
            "pod_gbps": p / 1e9, "underlay_gbps": u / 1e9, "ratio": p / u,
            "pod_runs": runs_json(&pods), "underlay_runs": runs_json(&underlay)})
    );
    Ok(())
}

/// Median of the measured bits/s (upper median for an even count).
fn median(runs: &[(f64, Option<f64>)]) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(|(b, _)| *b).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn start_pod_ip(lab: &Lab, name: &str) -> anyhow::Result<String> {
    let pod = lab.wait_pod_running("default", name, WAIT).await?;
    pod.status.and_then(|s| s.pod_ip).context("pod IP")
}

// --------------------------------------------------------------- convergence

/// The overlay objects on node-1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
struct Objects {
    /// Routes into the cluster CIDR not on cni0.
    routes: usize,
    /// Permanent neighbours on flannel.1.
    neighbours: usize,
    /// Permanent self FDB entries on flannel.1.
    fdb: usize,
    /// Peers of flannel-wg that carry allowed IPs.
    wg_peers: usize,
}

impl Objects {
    /// What node-1 must hold with `peers` remote nodes: one route (and for
    /// VXLAN one neighbour and FDB entry) per peer; for WireGuard one peer
    /// each and the single cluster route.
    fn expected(backend: &str, peers: usize) -> Objects {
        match backend {
            "vxlan" => Objects {
                routes: peers,
                neighbours: peers,
                fdb: peers,
                wg_peers: 0,
            },
            "wireguard-native" => Objects {
                routes: 1,
                wg_peers: peers,
                ..Objects::default()
            },
            _ => Objects {
                routes: peers,
                ..Objects::default()
            },
        }
    }

    /// Remote nodes node-1 has programmed.
    fn peers(&self, backend: &str) -> usize {
        if backend == "wireguard-native" {
            self.wg_peers
        } else {
            self.routes
        }
    }
}

async fn objects(lab: &Lab) -> anyhow::Result<Objects> {
    let json_of = |argv: &'static [&'static str]| async move {
        let out = lab
            .exec_on_node("node-1", argv, Duration::from_secs(10))
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let list: Vec<Value> = if out.status.success() && !text.is_empty() {
            serde_json::from_str(&text)?
        } else {
            Vec::new()
        };
        anyhow::Ok(list)
    };
    let routes = json_of(&["ip", "-j", "route", "show", "root", "10.42.0.0/16"]).await?;
    let routes = routes.iter().filter(|r| r["dev"] != "cni0").count();
    let neighbours = json_of(&[
        "ip",
        "-j",
        "neigh",
        "show",
        "dev",
        "flannel.1",
        "nud",
        "permanent",
    ])
    .await?
    .len();
    let fdb = json_of(&["bridge", "-j", "fdb", "show", "dev", "flannel.1"]).await?;
    let fdb = fdb
        .iter()
        .filter(|f| {
            f["state"] == "permanent"
                && f["flags"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("self")))
        })
        .count();
    let wg_peers = wg_peers(lab).await?;
    Ok(Objects {
        routes,
        neighbours,
        fdb,
        wg_peers,
    })
}

/// Peers with allowed IPs that node-1's user-space `flannel-wg` reports
/// over its UAPI socket (`get=1`); 0 when the node runs no such device.
async fn wg_peers(lab: &Lab) -> anyhow::Result<usize> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = lab
        .dirs()
        .node("node-1")
        .run
        .join("wireguard/flannel-wg.sock");
    let Ok(mut stream) = tokio::net::UnixStream::connect(&socket).await else {
        return Ok(0);
    };
    stream.write_all(b"get=1\n\n").await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16384];
    while !answer.ends_with(b"\n\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .with_context(|| format!("no answer on {}", socket.display()))??;
        if n == 0 {
            bail!("{} closed mid-answer", socket.display());
        }
        answer.extend_from_slice(&buf[..n]);
    }
    // A peer section starts at public_key=; count those with an allowed_ip.
    let text = String::from_utf8_lossy(&answer);
    let sections = text.split("public_key=").skip(1);
    Ok(sections.filter(|p| p.contains("allowed_ip=")).count())
}

/// A valid-length WireGuard public key (base64) unique to fake node `i`.
fn fake_wg_key(i: usize) -> String {
    let mut key = [0x5a_u8; 32];
    key[0] = (i / 256) as u8;
    key[1] = (i % 256) as u8;
    base64(&key)
}

/// Standard base64 with padding (the form flannel's annotations carry).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn fake_node(i: usize, backend: &str) -> anyhow::Result<Node> {
    let (kind, data) = match backend {
        "vxlan" => {
            let mac = format!("0a:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
            ("vxlan", format!(r#"{{"VNI":1,"VtepMAC":"{mac}"}}"#))
        }
        // flannel writes `wireguard` for --flannel-backend=wireguard-native.
        "wireguard-native" => (
            "wireguard",
            format!(r#"{{"PublicKey":"{}","Port":51820}}"#, fake_wg_key(i)),
        ),
        _ => ("host-gw", "null".into()),
    };
    // host-gw needs next hops on the underlay link: 172.30.0.50..249,
    // addresses no lab node uses (they have .11, .12).
    let ann: BTreeMap<String, String> = [
        ("kube-subnet-manager", "true".to_string()),
        ("backend-type", kind.to_string()),
        ("backend-data", data),
        ("public-ip", format!("172.30.0.{}", 50 + i)),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{PREFIX}{k}"), v))
    .collect();
    let cidr = format!("10.42.{}.0/24", 10 + i);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": format!("fake-{i:03}"), "annotations": ann},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}
    }))?)
}

/// Creates `n` fake Nodes at once (offset `first`) and times until node-1's
/// kernel holds `want`; returns (create_ms, converge_ms, objects).
async fn add_fakes(
    lab: &Lab,
    backend: &str,
    first: usize,
    n: usize,
    want: Objects,
) -> anyhow::Result<(f64, f64, Objects)> {
    let api: Api<Node> = Api::all(lab.client());
    let nodes: Vec<Node> = (first..first + n)
        .map(|i| fake_node(i, backend))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let creates = nodes.iter().map(|node| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), node).await }
    });
    for r in futures::future::join_all(creates).await {
        r?;
    }
    let created = start.elapsed();
    loop {
        let got = objects(lab).await?;
        if got == want {
            return Ok((ms(created), ms(start.elapsed()), got));
        }
        if start.elapsed() > WAIT {
            bail!("node-1 holds {got:?}, want {want:?}");
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("VmRSS")
}

/// node-2's Node object disappears and comes back (its daemon and pods keep
/// running): time from the create call to the first UDP echo from a pod on
/// node-2 to a pod on node-1 that streams at 1 ms intervals.
async fn real_node_first_packet(lab: &Lab, backend: &str) -> anyhow::Result<Value> {
    let api: Api<Node> = Api::all(lab.client());
    let b_ip = start_pod_ip(lab, "b").await?;
    let mut saved = api.get("node-2").await?;
    saved.metadata.resource_version = None;
    saved.metadata.uid = None;
    saved.metadata.creation_timestamp = None;
    saved.metadata.managed_fields = None;
    api.delete("node-2", &DeleteParams::default()).await?;
    let deadline = Instant::now() + WAIT;
    while objects(lab).await?.peers(backend) != 0 {
        if Instant::now() > deadline {
            bail!("node-1 kept its route to node-2");
        }
    }
    let target = format!("{b_ip}:8081");
    let stream = async {
        let argv = [
            "nodenet-workload",
            "stream",
            "udp",
            &target,
            "--count",
            "3000",
            "--interval-ms",
            "1",
        ];
        lab.exec_in_pod("default", "a", &argv, Duration::from_secs(60))
            .await
    };
    let create = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = unix_ms();
        api.create(&PostParams::default(), &saved).await.map(|_| t0)
    };
    let (out, t0) = tokio::join!(stream, create);
    let (out, t0) = (out?, t0?);
    let report: Value = serde_json::from_slice(&out.stdout).context("stream report")?;
    let first = report["first_reply_unix_ms"]
        .as_u64()
        .context("no echo ever came back")?;
    Ok(json!({"first_packet_ms": first as i128 - t0 as i128, "stream": report}))
}

async fn convergence(lab: &Lab, backend: &str) -> anyhow::Result<()> {
    start_pod(lab, "a", "node-1").await?;
    start_pod(lab, "b", "node-2").await?;
    let pid = lab.nodenet_pid("node-1").context("nodenet pid")?;
    let rss_before = rss_kib(pid)?;
    let real = real_node_first_packet(lab, backend).await?;
    println!(
        "{}",
        json!({"bench": "convergence_real_node", "backend": backend, "result": real})
    );
    // One fake node, then 200 more at once (201 fake + node-2 peers).
    let want = Objects::expected(backend, 2);
    let (c1, t1, got1) = add_fakes(lab, backend, 0, 1, want).await?;
    println!(
        "{}",
        json!({"bench": "convergence", "backend": backend, "nodes_added": 1,
        "create_ms": c1, "kernel_complete_ms": t1, "objects_on_node1": got1})
    );
    let peers = 202;
    let want = Objects::expected(backend, peers);
    let (c200, t200, got) = add_fakes(lab, backend, 1, 200, want).await?;
    println!(
        "{}",
        json!({"bench": "convergence", "backend": backend, "nodes_added": 200,
        "create_ms": c200, "kernel_complete_ms": t200, "objects_on_node1": got,
        "one_object_per_peer": got == want})
    );
    // Let a few resync passes run before reading the memory.
    tokio::time::sleep(Duration::from_secs(12)).await;
    println!(
        "{}",
        json!({"bench": "rss", "backend": backend, "remote_nodes": peers,
        "rss_kib_before": rss_before, "rss_kib_with_202_peers": rss_kib(pid)?})
    );
    Ok(())
}
