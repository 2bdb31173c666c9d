//! Overlay benchmark (issue 3, performance): pod-to-pod TCP throughput as a
//! ratio to the underlay, convergence after Nodes appear, and daemon RSS
//! with 200 remote nodes. Driven by benches/overlay/run.sh; prints one JSON
//! object per measurement.
//!
//! usage: overlay_bench throughput|convergence BACKEND (vxlan|host-gw)

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, backend) = match args.as_slice() {
        [m, b] if ["vxlan", "host-gw"].contains(&b.as_str()) => (m.clone(), b.clone()),
        _ => bail!("usage: overlay_bench throughput|convergence vxlan|host-gw"),
    };
    let mut config = LabConfig::from_target_dir(2)?;
    config.nodenet_args = vec![format!("--flannel-backend={backend}")];
    let lab = Lab::up(config).await?;
    let result = match mode.as_str() {
        "throughput" => throughput(&lab, &backend).await,
        "convergence" => convergence(&lab, &backend).await,
        other => Err(anyhow::anyhow!("unknown mode {other}")),
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

async fn throughput(lab: &Lab, backend: &str) -> anyhow::Result<()> {
    start_pod(lab, "server", "node-2").await?;
    start_pod(lab, "client", "node-1").await?;
    let server_ip = start_pod_ip(lab, "server").await?;
    let node2 = lab.node_ip("node-2").to_string();
    // Alternate to spread any drift of the machine's load over both.
    let mut pods = Vec::new();
    let mut underlay = Vec::new();
    for _ in 0..3 {
        pods.push(iperf(lab, Place::Pod("server"), Place::Pod("client"), &server_ip).await?);
        underlay.push(iperf(lab, Place::Node("node-2"), Place::Node("node-1"), &node2).await?);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, u) = (median(&mut pods), median(&mut underlay));
    println!(
        "{}",
        json!({"bench": "throughput", "backend": backend,
            "pod_gbps": p / 1e9, "underlay_gbps": u / 1e9, "ratio": p / u,
            "pod_runs_gbps": pods.iter().map(|b| b / 1e9).collect::<Vec<_>>(),
            "underlay_runs_gbps": underlay.iter().map(|b| b / 1e9).collect::<Vec<_>>()})
    );
    Ok(())
}

async fn start_pod_ip(lab: &Lab, name: &str) -> anyhow::Result<String> {
    let pod = lab.wait_pod_running("default", name, WAIT).await?;
    pod.status.and_then(|s| s.pod_ip).context("pod IP")
}

// --------------------------------------------------------------- convergence

/// The overlay objects on node-1: (routes into the cluster CIDR off cni0,
/// permanent neighbours on flannel.1, self FDB entries on flannel.1).
async fn objects(lab: &Lab) -> anyhow::Result<(usize, usize, usize)> {
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
    let neigh = json_of(&[
        "ip",
        "-j",
        "neigh",
        "show",
        "dev",
        "flannel.1",
        "nud",
        "permanent",
    ])
    .await?;
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
    Ok((routes, neigh.len(), fdb))
}

fn fake_node(i: usize, backend: &str) -> anyhow::Result<Node> {
    let mac = format!("0a:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
    let data = if backend == "vxlan" {
        format!(r#"{{"VNI":1,"VtepMAC":"{mac}"}}"#)
    } else {
        "null".into()
    };
    // host-gw needs next hops on the underlay link: 172.30.0.50..249,
    // addresses no lab node uses (they have .11, .12).
    let ann: BTreeMap<String, String> = [
        ("kube-subnet-manager", "true".to_string()),
        ("backend-type", backend.to_string()),
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
/// kernel holds `want` objects per kind; returns (create_ms, converge_ms).
async fn add_fakes(
    lab: &Lab,
    backend: &str,
    first: usize,
    n: usize,
    want: (usize, usize, usize),
) -> anyhow::Result<(f64, f64, (usize, usize, usize))> {
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
            bail!("node-1 holds {got:?} objects, want {want:?}");
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
async fn real_node_first_packet(lab: &Lab) -> anyhow::Result<Value> {
    let api: Api<Node> = Api::all(lab.client());
    let b_ip = start_pod_ip(lab, "b").await?;
    let mut saved = api.get("node-2").await?;
    saved.metadata.resource_version = None;
    saved.metadata.uid = None;
    saved.metadata.creation_timestamp = None;
    saved.metadata.managed_fields = None;
    api.delete("node-2", &DeleteParams::default()).await?;
    let deadline = Instant::now() + WAIT;
    while objects(lab).await?.0 != 0 {
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
    let vx = usize::from(backend == "vxlan");
    let pid = lab.nodenet_pid("node-1").context("nodenet pid")?;
    let rss_before = rss_kib(pid)?;
    let real = real_node_first_packet(lab).await?;
    println!(
        "{}",
        json!({"bench": "convergence_real_node", "backend": backend, "result": real})
    );
    // One fake node, then 200 more at once (201 fake + node-2 peers).
    let (c1, t1, got1) = add_fakes(lab, backend, 0, 1, (2, 2 * vx, 2 * vx)).await?;
    println!(
        "{}",
        json!({"bench": "convergence", "backend": backend, "nodes_added": 1,
        "create_ms": c1, "kernel_complete_ms": t1, "objects_on_node1": got1})
    );
    let want = 202;
    let (c200, t200, got) = add_fakes(lab, backend, 1, 200, (want, want * vx, want * vx)).await?;
    println!(
        "{}",
        json!({"bench": "convergence", "backend": backend, "nodes_added": 200,
        "create_ms": c200, "kernel_complete_ms": t200, "objects_on_node1": got,
        "one_object_per_peer": got == (want, want * vx, want * vx)})
    );
    // Let a few resync passes run before reading the memory.
    tokio::time::sleep(Duration::from_secs(12)).await;
    println!(
        "{}",
        json!({"bench": "rss", "backend": backend, "remote_nodes": want,
        "rss_kib_before": rss_before, "rss_kib_with_202_peers": rss_kib(pid)?})
    );
    Ok(())
}
