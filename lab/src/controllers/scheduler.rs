//! A simple scheduler: binds each unscheduled pod to the Ready node with
//! the fewest pods among those its nodeSelector and hostPorts allow.

use super::Stores;
use super::labels::{is_terminal, node_selected};
use k8s_openapi::api::core::v1::{Binding, Node, ObjectReference, Pod};
use kube::api::{Api, PostParams};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

fn wants_scheduling(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let ours = spec
        .and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n == "default-scheduler");
    ours && spec.is_some_and(|s| s.node_name.is_none())
        && pod.metadata.deletion_timestamp.is_none()
        && !is_terminal(pod)
}

fn host_ports(pod: &Pod) -> BTreeSet<(i32, String)> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some((
                p.host_port.filter(|h| *h > 0)?,
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            ))
        })
        .collect()
}

fn schedulable(node: &Node) -> bool {
    crate::kubelet::node::is_ready(node)
        && node.spec.as_ref().and_then(|s| s.unschedulable) != Some(true)
}

/// Picks a node for `pod` (pure): Ready, schedulable, nodeSelector matches,
/// no hostPort clash, then fewest non-terminal pods, then name.
pub fn choose_node(pod: &Pod, nodes: &[Arc<Node>], pods: &[Arc<Pod>]) -> Option<String> {
    let mut load: BTreeMap<&str, usize> = BTreeMap::new();
    let mut used_ports: BTreeMap<&str, BTreeSet<(i32, String)>> = BTreeMap::new();
    for p in pods.iter().filter(|p| !is_terminal(p)) {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *load.entry(n).or_default() += 1;
            used_ports.entry(n).or_default().extend(host_ports(p));
        }
    }
    let wanted = host_ports(pod);
    nodes
        .iter()
        .filter(|n| schedulable(n) && node_selected(pod.spec.as_ref(), n))
        .filter_map(|n| n.metadata.name.as_deref())
        .filter(|n| {
            used_ports
                .get(n)
                .is_none_or(|used| used.is_disjoint(&wanted))
        })
        .min_by_key(|n| (load.get(n).copied().unwrap_or(0), n.len(), n.to_string()))
        .map(String::from)
}

/// One pass: bind every pod that waits for a node.
pub async fn reconcile(client: kube::Client, stores: Stores) -> Result<(), kube::Error> {
    let nodes = stores.nodes.state();
    let mut pods = stores.pods.state();
    let waiting: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| wants_scheduling(p))
        .cloned()
        .collect();
    for pod in waiting {
        let Some(node) = choose_node(&pod, &nodes, &pods) else {
            continue;
        };
        bind(&client, &pod, &node).await?;
        // Count the new binding for the next choice in this pass.
        let mut bound = (*pod).clone();
        if let Some(spec) = bound.spec.as_mut() {
            spec.node_name = Some(node);
        }
        pods.push(Arc::new(bound));
    }
    Ok(())
}

async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut binding = Binding {
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    binding.metadata.name = Some(name.clone());
    binding.metadata.namespace = Some(ns.clone());
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    match api
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            &name,
            &PostParams::default(),
            &binding,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()), // bound or gone meanwhile
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    fn node(name: &str, ready: bool, zone: &str) -> Arc<Node> {
        let ips = ["172.30.0.11".parse().unwrap()];
        let mut n = crate::kubelet::node::node_object(name, &ips);
        n.status = Some(crate::kubelet::node::status(name, &ips, ready));
        n.metadata
            .labels
            .get_or_insert_default()
            .insert("zone".into(), zone.into());
        Arc::new(n)
    }

    fn pod(node: Option<&str>, host_port: Option<i32>, selector: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            spec: Some(PodSpec {
                node_name: node.map(String::from),
                node_selector: selector.map(|z| [("zone".to_string(), z.to_string())].into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        container_port: 80,
                        host_port,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    #[test]
    fn picks_least_loaded_ready_node() {
        let nodes = vec![
            node("node-1", true, "a"),
            node("node-2", true, "a"),
            node("node-3", false, "a"),
        ];
        let pods = vec![pod(Some("node-1"), None, None)];
        assert_eq!(
            choose_node(&pod(None, None, None), &nodes, &pods).as_deref(),
            Some("node-2")
        );
        assert_eq!(
            choose_node(&pod(None, None, None), &nodes, &[]).as_deref(),
            Some("node-1")
        );
    }

    #[test]
    fn honours_node_selector_and_host_ports() {
        let nodes = vec![node("node-1", true, "a"), node("node-2", true, "b")];
        assert_eq!(
            choose_node(&pod(None, None, Some("b")), &nodes, &[]).as_deref(),
            Some("node-2")
        );
        let pods = vec![
            pod(Some("node-1"), Some(8080), None),
            pod(Some("node-2"), None, None),
            pod(Some("node-2"), None, None),
        ];
        assert_eq!(
            choose_node(&pod(None, Some(8080), None), &nodes, &pods).as_deref(),
            Some("node-2")
        );
        assert_eq!(choose_node(&pod(None, None, Some("c")), &nodes, &[]), None);
    }
}
