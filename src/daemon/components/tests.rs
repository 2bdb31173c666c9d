//! Privileged: the flannel component end to end, all inside fresh network
//! namespaces (the sysctls it sets, the loopback it reads the MTU from and
//! the devices it creates are the namespace's, never the host's). Subnet
//! and CNI with the unbuilt WireGuard backend against a small fake API
//! server here; the VXLAN overlay against the lab's API server in
//! `overlay.rs`.

mod fake_api;
mod overlay;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::*;
use crate::cli::{Cli, Command};
use fake_api::FakeApi;

/// Upper bound for real I/O to happen; a guard against hanging, not a
/// timing assertion.
const GUARD: Duration = Duration::from_secs(20);

fn node(pod_cidr: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-1", "uid": "uid-node-1"},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
    })
}

fn config(dir: &Path) -> Config {
    let d = |name: &str| dir.join(name).display().to_string();
    let argv = [
        "nodenet",
        "run",
        "--node-name",
        "node-1",
        "--node-ip",
        "127.0.0.1",
        "--data-dir",
        &d("data"),
        "--run-dir",
        &d("run"),
        "--cni-conf-dir",
        &d("net.d"),
        "--cni-bin-dir",
        &d("bin"),
        // The user-space WireGuard backend needs no kernel module.
        "--flannel-backend",
        "wireguard-native",
        // Only flannel: the other components have tests of their own.
        "--disable-network-policy",
        "--disable",
        "dns",
    ];
    let Command::Run(args) = Cli::try_parse_from(argv).expect("flags").command else {
        panic!("not run");
    };
    Config::from_args_with(*args, None, || Ok("unused".into())).expect("valid config")
}

async fn serve(api: Arc<FakeApi>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind in netns");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let api = api.clone();
            let service = service_fn(move |req| api.clone().handle(req));
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
        }
    });
    format!("http://{addr}")
}

async fn wait_ready(rx: &mut watch::Receiver<bool>, want: bool) {
    let waited = tokio::time::timeout(GUARD, rx.wait_for(|r| *r == want)).await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "component never became ready={want}"
    );
}

async fn wait_for_file(path: &Path, want: &str) {
    let poll = async {
        while std::fs::read_to_string(path).ok().as_deref() != Some(want) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let result = tokio::time::timeout(GUARD, poll).await;
    let got = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        result.is_ok(),
        "{} never became {want:?}; it is {got:?}",
        path.display()
    );
}

fn subnet_env(subnet: &str) -> String {
    // lo's MTU 65536 minus the WireGuard overhead of 80.
    format!(
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET={subnet}\nFLANNEL_MTU=65456\nFLANNEL_IPMASQ=true\n"
    )
}

fn event_with_reason(api: &FakeApi, reason: &str) -> Option<Value> {
    let events = api.events.lock().expect("lock");
    events.iter().find(|e| e["reason"] == reason).cloned()
}

async fn scenario(dir: std::path::PathBuf) {
    let api = FakeApi::new(node("10.42.5.0/24"));
    let url = serve(api.clone()).await;
    let client =
        kube::Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");
    let reflectors = Reflectors::new(client);
    let config = config(&dir);
    let components = build(&config, &reflectors).components;
    assert_eq!(
        components.iter().map(|c| c.name()).collect::<Vec<_>>(),
        vec!["flannel"]
    );
    let (ready, mut ready_rx) = watch::channel(false);
    let running = tokio::spawn(components[0].clone().run(ready));

    wait_ready(&mut ready_rx, true).await;
    let subnet_file = dir.join("run/subnet.env");
    assert_eq!(
        std::fs::read_to_string(&subnet_file).expect("subnet.env"),
        subnet_env("10.42.5.1/24")
    );
    let conflist: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("net.d/10-nodenet.conflist")).expect("conflist"),
    )
    .expect("json");
    assert_eq!(conflist["plugins"][0]["type"], "nodenet");
    let plugin = std::fs::metadata(dir.join("bin/nodenet")).expect("plugin installed");
    assert_eq!(plugin.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        host::sysctl::read("net.ipv4.ip_forward").expect("sysctl"),
        "1"
    );
    // The overlay came up with the files, and no other backend's device did.
    assert!(
        host::link::link_exists("flannel-wg")
            .await
            .expect("netlink")
    );
    assert!(!host::link::link_exists("flannel.1").await.expect("netlink"));

    // Bad input: an Event naming the field, not ready, files untouched.
    api.modify(node("10.99.0.0/24"));
    wait_ready(&mut ready_rx, false).await;
    let event = event_with_reason(&api, "InvalidPodCIDR").expect("an Event was posted");
    assert_eq!(event["involvedObject"]["name"], "node-1");
    assert_eq!(event["involvedObject"]["kind"], "Node");
    assert_eq!(event["type"], "Warning");
    assert!(
        event["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("spec.podCIDR"),
        "{event}"
    );
    assert_eq!(
        std::fs::read_to_string(&subnet_file).expect("subnet.env"),
        subnet_env("10.42.5.1/24")
    );

    // Fixed: ready again, rewritten.
    api.modify(node("10.42.6.0/24"));
    wait_ready(&mut ready_rx, true).await;
    wait_for_file(&subnet_file, &subnet_env("10.42.6.1/24")).await;
    running.abort();
}

#[test]
fn flannel_component_writes_files_reports_bad_pod_cidr_and_recovers() {
    let uid = std::fs::metadata("/proc/self").expect("stat").uid();
    assert_eq!(
        uid, 0,
        "this test needs root (it creates a network namespace)"
    );
    let ns = host::netns::TestNetns::new("flannel").expect("netns");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    ns.block_on(move || scenario(path))
        .expect("ran inside the netns");
}

/// A node-local DNS address left by an earlier run is released when dns is
/// disabled, so it cannot capture queries meant for another DNS server.
#[test]
fn disabled_dns_releases_the_node_local_address() {
    let uid = std::fs::metadata("/proc/self").expect("stat").uid();
    assert_eq!(
        uid, 0,
        "this test needs root (it creates a network namespace)"
    );
    let ns = host::netns::TestNetns::new("dns-off").expect("netns");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    assert!(!config.enabled(crate::config::Disableable::Dns));
    let lo_has_dns = |ns: &host::netns::TestNetns| {
        let json = ns.ip_json(&["addr", "show", "dev", "lo"]).expect("ip addr");
        json.to_string().contains("\"10.43.0.10\"")
    };
    ns.block_on(|| async {
        let addr = "10.43.0.10".parse().expect("ip");
        dns::node_local::ensure(addr)
            .await
            .expect("node-local DNS set up");
    })
    .expect("enter netns");
    assert!(lo_has_dns(&ns), "set-up put the address on lo");
    ns.block_on(move || async move { release_disabled_dns(&config).await })
        .expect("enter netns");
    assert!(
        !lo_has_dns(&ns),
        "the address stayed on lo with dns disabled"
    );
}
