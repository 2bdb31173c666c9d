//! A trimmed object keeps every field its readers use (the list in the
//! module documentation) and loses the bulk. The fixtures are shaped like
//! what a K3s API server sends, managedFields and all.

use serde_json::{Value, json};

use super::*;

fn managed_fields() -> Value {
    json!([{"manager": "k3s", "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-26T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}])
}

fn meta(name: &str, extra: Value) -> Value {
    let mut m = json!({
        "name": name, "namespace": "web", "uid": "0b6f-uid", "resourceVersion": "812",
        "creationTimestamp": "2026-11-26T10:00:00Z", "generateName": "web-",
        "labels": {"app": "web", "pod-template-hash": "5d8f"},
        "annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}",
            "flannel.alpha.coreos.com/public-ip": "192.168.1.10"
        },
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "name": "web-5d8f", "uid": "rs-uid"}],
        "finalizers": ["example.com/keep"],
        "managedFields": managed_fields()
    });
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    m
}

/// Parsed from bytes, as kube's client does (from a `Value` lists would
/// get their exact length as capacity).
fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
    let bytes = serde_json::to_vec(&v).expect("serialize");
    serde_json::from_slice(&bytes).expect("fixture")
}

fn trimmed<T: Trim + serde::de::DeserializeOwned>(v: Value) -> T {
    let mut object: T = parse(v);
    object.trim();
    object
}

/// What is gone from every object's metadata, and what stays.
fn assert_meta_trimmed(m: &ObjectMeta) {
    assert_common_meta_trimmed(m);
    assert_eq!(m.uid.as_deref(), Some("0b6f-uid"), "uid (Events) lost");
    assert_eq!(m.resource_version.as_deref(), Some("812"));
}

fn assert_common_meta_trimmed(m: &ObjectMeta) {
    assert!(m.managed_fields.is_none(), "managedFields kept");
    assert!(m.owner_references.is_none() && m.finalizers.is_none());
    assert!(m.generate_name.is_none());
    let annotations = m.annotations.clone().unwrap_or_default();
    assert!(!annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert!(m.creation_timestamp.is_some());
}

#[test]
fn a_node_keeps_what_flannel_netpol_and_dns_read() {
    let node: Node = trimmed(json!({
        "metadata": meta("node-1", json!({"namespace": null})),
        "spec": {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24", "fd00:42:1::/64"],
                 "providerID": "k3s://node-1",
                 "taints": [{"key": "k", "effect": "NoSchedule"}]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"},
                          {"type": "Hostname", "address": "node-1"}],
            "images": [{"names": ["docker.io/rancher/mirrored-pause:3.6"], "sizeBytes": 301463}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "c",
                         "kernelVersion": "6.18", "kubeProxyVersion": "v1.33", "kubeletVersion": "v1.33",
                         "machineID": "m", "operatingSystem": "linux", "osImage": "Debian",
                         "systemUUID": "u"}
        }
    }));
    assert_meta_trimmed(&node.metadata);
    assert_eq!(node.metadata.name.as_deref(), Some("node-1"));
    let annotations = node.metadata.annotations.as_ref().expect("flannel's kept");
    assert_eq!(
        annotations
            .get("flannel.alpha.coreos.com/public-ip")
            .map(String::as_str),
        Some("192.168.1.10")
    );
    let spec = node.spec.as_ref().expect("spec");
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.42.1.0/24"));
    assert_eq!(spec.pod_cidrs.as_ref().map(Vec::len), Some(2));
    assert!(spec.taints.is_none());
    let status = node.status.as_ref().expect("status");
    let addresses = status.addresses.as_ref().expect("addresses");
    assert_eq!(addresses[0].type_, "InternalIP");
    assert_eq!(addresses[0].address, "192.168.1.10");
    assert!(status.images.is_none() && status.conditions.is_none() && status.node_info.is_none());
}

#[test]
fn a_node_without_kept_annotations_has_none() {
    let mut node: Node = parse(json!({"metadata": {"name": "n",
        "annotations": {"k3s.io/node-args": "[\"server\"]"}}}));
    node.trim();
    assert!(node.metadata.annotations.is_none());
}

fn pod_json() -> Value {
    let container = |name: &str, ports: Value| {
        json!({"name": name, "image": "nginx:1.27", "ports": ports,
               "env": [{"name": "A", "value": "b"}],
               "resources": {"limits": {"cpu": "1"}},
               "volumeMounts": [{"name": "v", "mountPath": "/v"}]})
    };
    json!({
        "metadata": meta("web-0", json!({"deletionTimestamp": "2026-11-26T11:00:00Z"})),
        "spec": {
            "nodeName": "node-1", "hostNetwork": false,
            "containers": [container("web", json!([
                {"name": "http", "containerPort": 8080, "protocol": "TCP", "hostPort": 80},
                {"containerPort": 9000}]))],
            "initContainers": [container("init", json!([
                {"name": "dns", "containerPort": 53, "protocol": "UDP"}]))],
            "volumes": [{"name": "v", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists"}]
        },
        "status": {
            "phase": "Running", "podIP": "10.42.1.5",
            "podIPs": [{"ip": "10.42.1.5"}, {"ip": "fd00:42:1::5"}],
            "hostIP": "192.168.1.10",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "web", "image": "nginx:1.27", "imageID": "sha256:x",
                                   "ready": true, "restartCount": 0}]
        }
    })
}

#[test]
fn a_pod_keeps_what_netpol_reads() {
    let pod: Pod = trimmed(pod_json());
    assert_meta_trimmed(&pod.metadata);
    let m = &pod.metadata;
    assert_eq!(
        (m.namespace.as_deref(), m.name.as_deref()),
        (Some("web"), Some("web-0"))
    );
    assert_eq!(
        m.labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("web")
    );
    assert!(m.deletion_timestamp.is_some());
    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.node_name.as_deref(), Some("node-1"));
    assert_eq!(spec.host_network, Some(false));
    let web = &spec.containers[0];
    assert_eq!(web.name, "web");
    assert!(web.image.is_none() && web.env.is_none() && web.resources.is_none());
    let ports = web.ports.as_ref().expect("ports");
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(
        (ports[0].container_port, ports[0].protocol.as_deref()),
        (8080, Some("TCP"))
    );
    assert_eq!(ports[1].container_port, 9000);
    let init = &spec.init_containers.as_ref().expect("init containers")[0];
    let init_port = &init.ports.as_ref().expect("init ports")[0];
    assert_eq!(init_port.name.as_deref(), Some("dns"));
    assert_eq!(init_port.protocol.as_deref(), Some("UDP"));
    assert!(spec.volumes.is_none() && spec.tolerations.is_none());
    let status = pod.status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.42.1.5"));
    assert_eq!(status.pod_ips.as_ref().map(Vec::len), Some(2));
    assert!(status.conditions.is_none() && status.container_statuses.is_none());
}

#[test]
fn a_namespace_and_a_policy_keep_names_labels_and_spec() {
    let ns: Namespace = trimmed(json!({
        "metadata": meta("web", json!({"namespace": null,
            "labels": {"kubernetes.io/metadata.name": "web", "team": "a"}})),
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
    }));
    assert_meta_trimmed(&ns.metadata);
    assert_eq!(ns.metadata.labels.as_ref().map(|l| l.len()), Some(2));
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    let spec = json!({"podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": "http"}]}]});
    let policy: NetworkPolicy =
        trimmed(json!({"metadata": meta("allow", json!({})), "spec": spec}));
    assert_meta_trimmed(&policy.metadata);
    assert_eq!(policy.metadata.name.as_deref(), Some("allow"));
    let original: NetworkPolicy = parse(json!({"spec": spec}));
    assert_eq!(policy.spec, original.spec, "the policy spec must be whole");
}

/// Trimming is what makes the stores small: the serialized size of a
/// typical object shrinks severalfold.
#[test]
fn trimming_removes_most_of_a_typical_pod() {
    let full: Pod = parse(pod_json());
    let mut small = full.clone();
    small.trim();
    let size = |p: &Pod| serde_json::to_vec(p).expect("serialize").len();
    assert!(
        size(&small) * 2 < size(&full),
        "{} vs {}",
        size(&small),
        size(&full)
    );
}

/// Lists parsed from JSON own spare room; the kept ones are shrunk.
#[test]
fn kept_lists_hold_no_spare_room() {
    let node: Node = trimmed(json!({"metadata": {"name": "n"},
        "spec": {"podCIDRs": ["10.42.0.0/24"]},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.1.10"}]}}));
    let spec = node.spec.expect("spec");
    assert_eq!(spec.pod_cidrs.map(|v| v.capacity()), Some(1));
    let status = node.status.expect("status");
    assert_eq!(status.addresses.map(|v| v.capacity()), Some(1));
}
