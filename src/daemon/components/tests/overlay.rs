//! Privileged: the flannel component with the VXLAN backend against the
//! lab's API server, in a fresh network namespace with an underlay veth.
//! Checks what flannel peers rely on: our annotations exactly as flannel
//! writes them (with --flannel-iface and --flannel-external-ip),
//! `flannel.1`, a peer's neighbour/FDB/route appearing with
//! its Node and going with it, and an Event naming the annotation of a
//! peer with malformed data.

use std::collections::BTreeMap;
use std::process::Command as Process;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use lab::apiserver::{ApiServer, ApiServerConfig};

use super::*;

const NODE_IP: &str = "192.168.50.1";
const EXTERNAL_IP: &str = "203.0.113.50";
const PEER_IP: &str = "192.168.50.2";
const PEER_MAC: &str = "0a:58:c0:a8:32:02";
const PREFIX: &str = "flannel.alpha.coreos.com/";

fn vxlan_config(dir: &Path) -> Config {
    let d = |name: &str| dir.join(name).display().to_string();
    let argv = [
        "nodenet",
        "run",
        "--node-name",
        "node-1",
        // The interface wins over --node-ip (an address on no interface
        // here: using it would fail), and the external IP is published.
        "--flannel-iface",
        "eth0",
        "--node-ip",
        "10.255.0.9",
        "--node-external-ip",
        EXTERNAL_IP,
        "--flannel-external-ip",
        // Only flannel: the other components have tests of their own.
        "--disable-network-policy",
        "--disable",
        "dns",
        "--data-dir",
        &d("data"),
        "--run-dir",
        &d("run"),
        "--cni-conf-dir",
        &d("net.d"),
        "--cni-bin-dir",
        &d("bin"),
    ];
    let Command::Run(args) = Cli::try_parse_from(argv).expect("flags").command else {
        panic!("not run");
    };
    Config::from_args_with(*args, None, || Ok("unused".into())).expect("valid config")
}

fn node(name: &str, pod_cidr: &str, annotations: Value) -> Node {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
    }))
    .expect("node")
}

fn peer_annotations(backend_data: &str) -> Value {
    json!({
        "flannel.alpha.coreos.com/kube-subnet-manager": "true",
        "flannel.alpha.coreos.com/backend-type": "vxlan",
        "flannel.alpha.coreos.com/backend-data": backend_data,
        "flannel.alpha.coreos.com/public-ip": PEER_IP,
    })
}

/// `ip -j` / `bridge -j` in this thread's network namespace (children
/// inherit the namespace of the thread that spawns them).
fn json_of(program: &str, args: &[&str]) -> Value {
    let out = Process::new(program)
        .arg("-j")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(if text.trim().is_empty() { "[]" } else { &text }).expect("json")
}

/// Whether flannel.1 holds the neighbour, FDB entry and route for a peer
/// with pod CIDR 10.42.1.0/24 at PEER_IP / PEER_MAC: (neigh, fdb, route).
fn peer_state() -> (bool, bool, bool) {
    let neigh = json_of("ip", &["neigh", "show", "dev", "flannel.1"]);
    let neigh = neigh.as_array().into_iter().flatten().any(|n| {
        n["dst"] == "10.42.1.0" && n["lladdr"] == PEER_MAC && n["state"] == json!(["PERMANENT"])
    });
    let fdb = json_of("bridge", &["fdb", "show", "dev", "flannel.1"]);
    let fdb = fdb
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f["mac"] == PEER_MAC && f["dst"] == PEER_IP);
    let routes = json_of("ip", &["route", "show", "dev", "flannel.1"]);
    let route = routes.as_array().into_iter().flatten().any(|r| {
        r["dst"] == "10.42.1.0/24"
            && r["gateway"] == "10.42.1.0"
            && r["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("onlink")))
    });
    (neigh, fdb, route)
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let poll = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        tokio::time::timeout(GUARD, poll).await.is_ok(),
        "never: {what}"
    );
}

async fn flannel_annotations(nodes: &Api<Node>) -> BTreeMap<String, String> {
    let me = nodes.get("node-1").await.expect("get node-1");
    let all = me.metadata.annotations.unwrap_or_default();
    all.into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect()
}

async fn assert_own_annotations(nodes: &Api<Node>) {
    let link = json_of("ip", &["-d", "link", "show", "dev", "flannel.1"]);
    assert_eq!(link[0]["linkinfo"]["info_kind"], "vxlan", "{link}");
    assert_eq!(link[0]["mtu"], 1450, "underlay 1500 - 50");
    let info = &link[0]["linkinfo"]["info_data"];
    assert_eq!(
        info["local"], NODE_IP,
        "tunnel source is the interface address"
    );
    assert_eq!(info["link"], "eth0", "{link}");
    let mac = link[0]["address"].as_str().expect("mac").to_string();
    let want: BTreeMap<String, String> = [
        ("kube-subnet-manager", "true".to_string()),
        ("backend-type", "vxlan".to_string()),
        ("backend-data", format!(r#"{{"VNI":1,"VtepMAC":"{mac}"}}"#)),
        // K3s's overwrite and flannel's public-ip taken from it.
        ("public-ip", EXTERNAL_IP.to_string()),
        ("public-ip-overwrite", EXTERNAL_IP.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{PREFIX}{k}"), v))
    .collect();
    assert_eq!(flannel_annotations(nodes).await, want);
}

/// The Warning Events about `node` posted so far.
async fn warnings_about(client: &kube::Client, node: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(node))
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .filter_map(|e| e.message)
        .collect()
}

async fn start_api() -> kube::Client {
    let server = ApiServer::new(ApiServerConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind in netns");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(server.serve(listener));
    kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client")
}

async fn scenario(dir: std::path::PathBuf) {
    let client = start_api().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PostParams::default();
    nodes
        .create(&pp, &node("node-1", "10.42.0.0/24", json!({})))
        .await
        .expect("create node-1");
    let reflectors = Reflectors::new(client.clone());
    let components = build(&vxlan_config(&dir), &reflectors).components;
    let (ready, mut ready_rx) = watch::channel(false);
    let running = tokio::spawn(components[0].clone().run(ready));
    wait_ready(&mut ready_rx, true).await;
    let env = std::fs::read_to_string(dir.join("run/subnet.env")).expect("subnet.env");
    assert!(
        env.contains("FLANNEL_SUBNET=10.42.0.1/24\nFLANNEL_MTU=1450\n"),
        "{env}"
    );
    assert_own_annotations(&nodes).await;

    let data = format!(r#"{{"VNI":1,"VtepMAC":"{PEER_MAC}"}}"#);
    let peer = node("node-2", "10.42.1.0/24", peer_annotations(&data));
    nodes.create(&pp, &peer).await.expect("create node-2");
    wait_until("peer neighbour, FDB entry and route", || {
        peer_state() == (true, true, true)
    })
    .await;
    // Drift with no Node change: the periodic pass puts the route back.
    let del = Process::new("ip")
        .args(["route", "del", "10.42.1.0/24", "dev", "flannel.1"])
        .status()
        .expect("ip route del");
    assert!(del.success());
    assert_eq!(peer_state(), (true, true, false));
    wait_until("route restored by the periodic pass", || {
        peer_state() == (true, true, true)
    })
    .await;
    nodes
        .delete("node-2", &DeleteParams::default())
        .await
        .expect("delete node-2");
    wait_until("peer state removed", || {
        peer_state() == (false, false, false)
    })
    .await;

    let bad = node(
        "node-3",
        "10.42.3.0/24",
        peer_annotations(r#"{"VNI":1,"VtepMAC":"not-a-mac"}"#),
    );
    nodes.create(&pp, &bad).await.expect("create node-3");
    let field = format!("metadata.annotations[{PREFIX}backend-data]: ");
    let poll = async {
        loop {
            let found = warnings_about(&client, "node-3").await;
            if found.iter().any(|m| m.starts_with(&field)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let found = tokio::time::timeout(GUARD, poll)
        .await
        .expect("Event about node-3");
    assert!(found.iter().any(|m| m.contains("not-a-mac")), "{found:?}");
    let routes = json_of("ip", &["route", "show", "10.42.3.0/24"]);
    assert_eq!(routes, json!([]), "malformed peer got a route");
    assert!(
        *ready_rx.borrow(),
        "a bad peer must not make this node unready"
    );
    assert_own_annotations(&nodes).await;
    running.abort();
}

#[test]
fn vxlan_component_annotates_programs_peers_and_reports_bad_ones() {
    let uid = std::fs::metadata("/proc/self").expect("stat").uid();
    assert_eq!(
        uid, 0,
        "this test needs root (it creates a network namespace)"
    );
    let ns = host::netns::TestNetns::new("flvxlan").expect("netns");
    for args in [
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
        ][..],
        &["addr", "add", "192.168.50.1/24", "dev", "eth0"],
        &["link", "set", "eth0", "up"],
        &["link", "set", "eth0peer", "up"],
    ] {
        ns.ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    ns.block_on(move || scenario(path))
        .expect("ran inside the netns");
}
