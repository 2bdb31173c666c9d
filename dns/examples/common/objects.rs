//! Synthetic Services and EndpointSlices shaped like what a K3s API server
//! sends (managedFields, kubectl's last-applied annotation, the slice
//! controller's labels, owner references, endpoint targetRef and nodeName),
//! parsed from JSON bytes into the compact store types, as the shared
//! reflectors parse them (`cluster::compact`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use cluster::Trim;
use cluster::compact::{EndpointSlice, Service};
use serde_json::{Value, json};

pub fn ip(base: [u8; 2], i: usize) -> Ipv4Addr {
    Ipv4Addr::new(base[0], base[1], (i >> 8) as u8, i as u8)
}

/// The ClusterIP the bench's dnsmasq hosts file gives Service `i`.
pub fn cluster_ip(i: usize) -> Ipv4Addr {
    ip([10, 43], i + 256)
}

/// Parsed from bytes and trimmed, as the reflectors do before storing.
fn parse<T: Trim + k8s_openapi::serde::de::DeserializeOwned>(v: &Value) -> Arc<T> {
    let bytes = serde_json::to_vec(v).expect("fixture serializes");
    let mut object: T = serde_json::from_slice(&bytes).expect("fixture parses");
    object.trim();
    Arc::new(object)
}

fn managed_fields(manager: &str, fields: Value) -> Value {
    json!([{"manager": manager, "operation": "Update", "apiVersion": "v1",
            "time": "2026-11-26T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields}])
}

pub fn service(i: usize) -> Arc<Service> {
    parse(&service_json(i))
}

/// Service `i` as an API server sends it.
pub fn service_json(i: usize) -> Value {
    let cip = cluster_ip(i).to_string();
    let name = format!("svc-{i}");
    let spec = json!({"clusterIP": cip, "clusterIPs": [cip], "type": "ClusterIP",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
        "selector": {"app": name}, "sessionAffinity": "None", "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"});
    let applied = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                 "selector": {"app": name}}});
    let fields = json!({"f:metadata": {"f:annotations": {".": {},
        "f:kubectl.kubernetes.io/last-applied-configuration": {}},
        "f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:internalTrafficPolicy": {}, "f:ports": {".": {},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:name": {}, "f:port": {},
            "f:protocol": {}, "f:targetPort": {}}}, "f:selector": {}, "f:sessionAffinity": {},
            "f:type": {}}});
    json!({"metadata": {"namespace": "default", "name": name,
            "uid": format!("6c1f0a52-1d2e-4f7b-9a43-{i:012}"), "resourceVersion": "1200",
            "creationTimestamp": "2026-11-26T10:00:00Z", "labels": {"app": name},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()},
            "managedFields": managed_fields("kubectl-client-side-apply", fields)},
        "spec": spec, "status": {"loadBalancer": {}}})
}

pub fn slice(i: usize, first_pod: usize, count: usize) -> Arc<EndpointSlice> {
    parse(&slice_json(i, first_pod, count))
}

/// The EndpointSlice of Service `i` as an API server sends it, with
/// endpoints for pods `first_pod..first_pod + count`.
pub fn slice_json(i: usize, first_pod: usize, count: usize) -> Value {
    let name = format!("svc-{i}");
    let endpoints: Vec<_> = (first_pod..first_pod + count)
        .map(|p| json!({"addresses": [ip([10, 42], p).to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": format!("node-{}", p % 3),
            "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("{name}-7c9d8b-{p}"),
                          "uid": format!("0d4b7a9e-5f1c-4c2a-8e6d-{p:012}")}}))
        .collect();
    let fields = json!({"f:addressType": {}, "f:endpoints": {}, "f:metadata": {
        "f:annotations": {".": {}, "f:endpoints.kubernetes.io/last-change-trigger-time": {}},
        "f:generateName": {}, "f:labels": {".": {}, "f:app": {},
            "f:endpointslice.kubernetes.io/managed-by": {}, "f:kubernetes.io/service-name": {}},
        "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}}}, "f:ports": {}});
    json!({"metadata": {"namespace": "default", "name": format!("{name}-x7k2p"),
            "generateName": format!("{name}-"), "uid": format!("9a0e-{i:012}"),
            "resourceVersion": "1300", "creationTimestamp": "2026-11-26T10:00:00Z",
            "labels": {"kubernetes.io/service-name": name, "app": name,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2026-11-26T10:00:01Z"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name,
                "uid": format!("6c1f0a52-1d2e-4f7b-9a43-{i:012}"), "controller": true,
                "blockOwnerDeletion": true}],
            "managedFields": managed_fields("k3s", fields)},
        "addressType": "IPv4", "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
}
