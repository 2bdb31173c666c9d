//! Per-kind defaulting, applied on create and update, the way the real API
//! server's defaulting fills fields clients (kubectl describe, nodenet) read.

use serde_json::{Map, Value, json};

use super::meta;
use super::resources::ResourceType;

/// Fills defaults of `obj` (a `res`) in place.
pub fn default_fields(res: &ResourceType, obj: &mut Value) {
    if !res.group.is_empty() {
        return;
    }
    match res.kind {
        "Pod" => default_pod(obj),
        "Service" => default_service(obj),
        "Namespace" => default_namespace(obj),
        _ => {}
    }
}

fn object<'a>(obj: &'a mut Value, field: &str) -> &'a mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let root = obj.as_object_mut().expect("made an object above");
    let child = root.entry(field).or_insert_with(|| json!({}));
    if !child.is_object() {
        *child = json!({});
    }
    child.as_object_mut().expect("made an object above")
}

fn default_pod(pod: &mut Value) {
    let spec = object(pod, "spec");
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for port in container_ports(spec, list) {
            port.entry("protocol").or_insert(json!("TCP"));
        }
    }
    object(pod, "status")
        .entry("phase")
        .or_insert(json!("Pending"));
}

fn container_ports<'a>(
    spec: &'a mut Map<String, Value>,
    list: &str,
) -> Vec<&'a mut Map<String, Value>> {
    let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
        return Vec::new();
    };
    containers
        .iter_mut()
        .filter_map(|c| c.get_mut("ports")?.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
        .collect()
}

fn default_service(svc: &mut Value) {
    let spec = object(svc, "spec");
    let kind = spec.entry("type").or_insert(json!("ClusterIP")).clone();
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if kind != "ExternalName" {
        // ipFamilyPolicy and ipFamilies are decided with the ClusterIPs
        // (allocate.rs): a default here would hide "not set".
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            port.entry("protocol").or_insert(json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                port.entry("targetPort").or_insert(number);
            }
        }
    }
}

fn default_namespace(ns: &mut Value) {
    let name = meta::name(ns).to_string();
    let labels = meta::metadata_mut(ns)
        .entry("labels")
        .or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    object(ns, "spec")
        .entry("finalizers")
        .or_insert(json!(["kubernetes"]));
    let status = object(ns, "status");
    if !status.contains_key("phase") {
        status.insert("phase".into(), json!("Active"));
    }
}
