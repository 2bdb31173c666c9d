//! The Node object of a lab node and the kubelet's status heartbeat:
//! addresses, nodeInfo, capacity, and a Ready condition that stays False
//! (NetworkPluginNotReady) until a CNI conflist exists, like a real kubelet.

use super::container::now;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Reported kubelet version (the API level the lab's objects follow).
pub const KUBELET_VERSION: &str = "v1.33.0-nodenet-lab";
/// How often the heartbeat re-checks the network and renews the condition.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Renew lastHeartbeatTime at least this often even without change.
const RENEW: Duration = Duration::from_secs(20);

/// A Node object as the lab registers it; `ips` are its InternalIPs
/// (IPv4 first, IPv6 too in a dual-stack lab).
pub fn node_object(name: &str, ips: &[IpAddr]) -> Node {
    let mut labels = BTreeMap::new();
    labels.insert("kubernetes.io/hostname".to_string(), name.to_string());
    labels.insert("kubernetes.io/os".to_string(), "linux".to_string());
    labels.insert(
        "kubernetes.io/arch".to_string(),
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
    );
    let mut node = Node::default();
    node.metadata.name = Some(name.into());
    node.metadata.labels = Some(labels);
    let mut annotations = BTreeMap::new();
    annotations.insert("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string());
    node.metadata.annotations = Some(annotations);
    node.status = Some(status(name, ips, false));
    node
}

fn network_ready(conf_dir: &Path) -> bool {
    std::fs::read_dir(conf_dir)
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "conflist"))
        })
        .unwrap_or(false)
}

fn ready_condition(ready: bool) -> NodeCondition {
    let t = now();
    let (reason, message) = if ready {
        ("KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        )
    };
    NodeCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

fn quantities() -> BTreeMap<String, Quantity> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    [
        ("cpu", cpus.to_string()),
        ("memory", "4Gi".to_string()),
        ("pods", "110".to_string()),
        ("ephemeral-storage", "10Gi".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Quantity(v)))
    .collect()
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The full node status for the given network readiness.
pub fn status(name: &str, ips: &[IpAddr], ready: bool) -> NodeStatus {
    let internal = ips.iter().map(|ip| NodeAddress {
        type_: "InternalIP".into(),
        address: ip.to_string(),
    });
    let hostname = NodeAddress {
        type_: "Hostname".into(),
        address: name.into(),
    };
    NodeStatus {
        addresses: Some(internal.chain([hostname]).collect()),
        conditions: Some(vec![ready_condition(ready)]),
        capacity: Some(quantities()),
        allocatable: Some(quantities()),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH.into(),
            boot_id: String::new(),
            container_runtime_version: "nodenet-lab://0.1.0".into(),
            kernel_version: kernel_version(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: name.into(),
            operating_system: "linux".into(),
            os_image: "nodenet lab node".into(),
            system_uuid: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Registers the Node (kept if it already exists).
pub async fn register(
    client: &kube::Client,
    name: &str,
    ips: &[IpAddr],
) -> Result<(), kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    match api
        .create(&PostParams::default(), &node_object(name, ips))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Keeps the node's status current until the task is aborted.
pub async fn heartbeat(
    client: kube::Client,
    name: String,
    ips: Vec<IpAddr>,
    conf_dir: std::path::PathBuf,
) {
    let api: Api<Node> = Api::all(client);
    let mut last: Option<(bool, tokio::time::Instant)> = None;
    loop {
        let ready = network_ready(&conf_dir);
        let due = last.is_none_or(|(r, at)| r != ready || at.elapsed() >= RENEW);
        if due {
            let body = serde_json::json!({ "status": status(&name, &ips, ready) });
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await
            {
                Ok(_) => last = Some((ready, tokio::time::Instant::now())),
                Err(e) => tracing::warn!(node = %name, error = %e, "node status update failed"),
            }
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Whether a Node object reports Ready=True.
pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_object_has_addresses_and_not_ready() {
        let ips: Vec<IpAddr> = vec!["172.30.0.11".parse().unwrap()];
        let n = node_object("node-1", &ips);
        let st = n.status.as_ref().unwrap();
        assert_eq!(st.addresses.as_ref().unwrap()[0].address, "172.30.0.11");
        assert!(!is_ready(&n));
        let mut ready = n.clone();
        ready.status = Some(status("node-1", &ips, true));
        assert!(is_ready(&ready));
        let dual: Vec<IpAddr> = vec!["172.30.0.11".parse().unwrap(), "fd30::11".parse().unwrap()];
        let st = status("node-1", &dual, false);
        let addresses: Vec<(String, String)> = st
            .addresses
            .unwrap()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        let want = [
            ("InternalIP", "172.30.0.11"),
            ("InternalIP", "fd30::11"),
            ("Hostname", "node-1"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(t, a)| (t.to_string(), a.to_string()))
            .collect();
        assert_eq!(addresses, want);
    }

    #[test]
    fn network_readiness_follows_conflist() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!network_ready(dir.path()));
        std::fs::write(dir.path().join("10-x.conflist"), "{}").unwrap();
        assert!(network_ready(dir.path()));
    }
}
