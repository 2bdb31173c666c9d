//! `meta.k8s.io/v1` Table responses for `kubectl get`, with the columns
//! kubectl shows for the kinds we serve (priority 1 columns appear with -o wide).

use serde_json::{Value, json};

use super::meta;
use super::resources::ResourceType;
use super::time;

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table of `objects`, with list metadata copied from `list_meta`.
pub fn table(
    res: &ResourceType,
    objects: &[Value],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let columns: Vec<Value> = columns(res)
        .iter()
        .map(|(name, typ, priority)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": typ, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(res, o, include)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}

fn row(res: &ResourceType, obj: &Value, include: IncludeObject) -> Value {
    let mut row = json!({"cells": cells(res, obj)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Object => row["object"] = obj.clone(),
        IncludeObject::Metadata => row["object"] = super::render::partial(obj),
    }
    row
}

/// (name, type, priority): priority 1 columns show only with `-o wide`.
type Column = (&'static str, &'static str, u8);

const fn s(name: &'static str) -> Column {
    (name, "string", 0)
}
const fn num(name: &'static str) -> Column {
    (name, "integer", 0)
}
const fn wide(name: &'static str) -> Column {
    (name, "string", 1)
}

const POD: &[Column] = &[
    s("Name"),
    s("Ready"),
    s("Status"),
    s("Restarts"),
    s("Age"),
    wide("IP"),
    wide("Node"),
    wide("Nominated Node"),
    wide("Readiness Gates"),
];
const NODE: &[Column] = &[
    s("Name"),
    s("Status"),
    s("Roles"),
    s("Age"),
    s("Version"),
    wide("Internal-IP"),
    wide("External-IP"),
    wide("OS-Image"),
    wide("Kernel-Version"),
    wide("Container-Runtime"),
];
const SERVICE: &[Column] = &[
    s("Name"),
    s("Type"),
    s("Cluster-IP"),
    s("External-IP"),
    s("Port(s)"),
    s("Age"),
    wide("Selector"),
];
const DAEMONSET: &[Column] = &[
    s("Name"),
    num("Desired"),
    num("Current"),
    num("Ready"),
    num("Up-to-date"),
    num("Available"),
    s("Node Selector"),
    s("Age"),
];
const EVENT: &[Column] = &[
    s("Last Seen"),
    s("Type"),
    s("Reason"),
    s("Object"),
    s("Message"),
];

const NAMESPACE_COLS: &[Column] = &[s("Name"), s("Status"), s("Age")];
const ENDPOINTS_COLS: &[Column] = &[s("Name"), s("Endpoints"), s("Age")];
const CONFIGMAP_COLS: &[Column] = &[s("Name"), num("Data"), s("Age")];
const SECRET_COLS: &[Column] = &[s("Name"), s("Type"), num("Data"), s("Age")];
const DEPLOYMENT_COLS: &[Column] = &[
    s("Name"),
    s("Ready"),
    num("Up-to-date"),
    num("Available"),
    s("Age"),
];
const ENDPOINTSLICE_COLS: &[Column] = &[
    s("Name"),
    s("AddressType"),
    s("Ports"),
    s("Endpoints"),
    s("Age"),
];
const NETWORKPOLICY_COLS: &[Column] = &[s("Name"), s("Pod-Selector"), s("Age")];
const INGRESS_COLS: &[Column] = &[
    s("Name"),
    s("Class"),
    s("Hosts"),
    s("Address"),
    s("Ports"),
    s("Age"),
];
const INGRESSCLASS_COLS: &[Column] = &[s("Name"), s("Controller"), s("Age")];
const LEASE_COLS: &[Column] = &[s("Name"), s("Holder"), s("Age")];
const DEFAULT_COLS: &[Column] = &[s("Name"), s("Age")];

fn columns(res: &ResourceType) -> &'static [Column] {
    match (res.group, res.kind) {
        ("", "Pod") => POD,
        ("", "Node") => NODE,
        ("", "Service") => SERVICE,
        ("", "Namespace") => NAMESPACE_COLS,
        ("", "Endpoints") => ENDPOINTS_COLS,
        ("", "ConfigMap") => CONFIGMAP_COLS,
        ("", "Secret") => SECRET_COLS,
        (_, "Event") => EVENT,
        ("apps", "Deployment") => DEPLOYMENT_COLS,
        ("apps", "DaemonSet") => DAEMONSET,
        (_, "EndpointSlice") => ENDPOINTSLICE_COLS,
        (_, "NetworkPolicy") => NETWORKPOLICY_COLS,
        (_, "Ingress") => INGRESS_COLS,
        (_, "IngressClass") => INGRESSCLASS_COLS,
        (_, "Lease") => LEASE_COLS,
        _ => DEFAULT_COLS,
    }
}

fn cells(res: &ResourceType, o: &Value) -> Vec<Value> {
    let name = json!(meta::name(o));
    let age = json!(time::age_of(meta::str_field(o, "creationTimestamp")));
    let mut out = vec![name];
    let rest: Vec<Value> = match (res.group, res.kind) {
        ("", "Pod") => pod_cells(o),
        ("", "Node") => node_cells(o),
        ("", "Service") => service_cells(o),
        ("", "Namespace") => vec![json!(text(o, "/status/phase"))],
        ("", "Endpoints") => vec![json!(endpoints_text(o))],
        ("", "ConfigMap") => vec![json!(count(o, "/data") + count(o, "/binaryData"))],
        ("", "Secret") => vec![json!(text(o, "/type")), json!(count(o, "/data"))],
        (_, "Event") => return event_cells(o),
        ("apps", "Deployment") => deployment_cells(o),
        ("apps", "DaemonSet") => daemonset_cells(o),
        (_, "EndpointSlice") => slice_cells(o),
        (_, "NetworkPolicy") => vec![json!(selector_text(
            o.pointer("/spec/podSelector/matchLabels")
        ))],
        (_, "Ingress") => ingress_cells(o),
        (_, "IngressClass") => vec![json!(text(o, "/spec/controller"))],
        (_, "Lease") => vec![json!(text(o, "/spec/holderIdentity"))],
        _ => vec![],
    };
    out.extend(rest);
    insert_age(res, &mut out, age);
    out
}

/// Age sits at the column named "Age", wherever the kind puts it.
fn insert_age(res: &ResourceType, cells: &mut Vec<Value>, age: Value) {
    if let Some(i) = columns(res).iter().position(|c| c.0 == "Age") {
        cells.insert(i.min(cells.len()), age);
    }
}

fn text(o: &Value, pointer: &str) -> String {
    o.pointer(pointer)
        .and_then(meta::scalar_string)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

fn int(o: &Value, pointer: &str) -> i64 {
    o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn count(o: &Value, pointer: &str) -> usize {
    o.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

fn items<'a>(o: &'a Value, pointer: &str) -> impl Iterator<Item = &'a Value> {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let total = items(o, "/spec/containers").count();
    let ready = items(o, "/status/containerStatuses")
        .filter(|c| c.get("ready") == Some(&json!(true)))
        .count();
    let restarts: i64 = items(o, "/status/containerStatuses")
        .map(|c| int(c, "/restartCount"))
        .sum();
    let status = if meta::is_deleting(o) {
        "Terminating".to_string()
    } else {
        waiting_reason(o)
            .unwrap_or_else(|| text(o, "/status/reason"))
            .replace("<none>", &text(o, "/status/phase"))
    };
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(text(o, "/status/podIP")),
        json!(text(o, "/spec/nodeName")),
        json!("<none>"),
        json!("<none>"),
    ]
}

fn waiting_reason(o: &Value) -> Option<String> {
    items(o, "/status/containerStatuses")
        .find_map(|c| c.pointer("/state/waiting/reason").and_then(Value::as_str))
        .map(str::to_string)
}

fn node_cells(o: &Value) -> Vec<Value> {
    let ready = items(o, "/status/conditions").find(|c| c.get("type") == Some(&json!("Ready")));
    let mut status = match ready.and_then(|c| c.get("status")).and_then(Value::as_str) {
        Some("True") => "Ready".to_string(),
        Some("False") => "NotReady".to_string(),
        _ => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let address = |t: &str| {
        items(o, "/status/addresses")
            .filter(|a| a.get("type") == Some(&json!(t)))
            .filter_map(|a| a.get("address")?.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let none_if_empty = |s: String| {
        if s.is_empty() {
            "<none>".to_string()
        } else {
            s
        }
    };
    vec![
        json!(status),
        json!(node_roles(o)),
        json!(text(o, "/status/nodeInfo/kubeletVersion")),
        json!(none_if_empty(address("InternalIP"))),
        json!(none_if_empty(address("ExternalIP"))),
        json!(text(o, "/status/nodeInfo/osImage")),
        json!(text(o, "/status/nodeInfo/kernelVersion")),
        json!(text(o, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

fn node_roles(o: &Value) -> String {
    let roles: Vec<&str> = meta::labels(o)
        .into_iter()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn service_cells(o: &Value) -> Vec<Value> {
    let kind = text(o, "/spec/type");
    let lb: Vec<&str> = items(o, "/status/loadBalancer/ingress")
        .filter_map(|i| i.get("ip")?.as_str())
        .collect();
    let external = match (kind.as_str(), lb.is_empty()) {
        ("ExternalName", _) => text(o, "/spec/externalName"),
        ("LoadBalancer", true) => "<pending>".into(),
        (_, true) => "<none>".into(),
        (_, false) => lb.join(","),
    };
    let ports: Vec<String> = items(o, "/spec/ports")
        .map(|p| match p.get("nodePort").and_then(Value::as_i64) {
            Some(n) => format!("{}:{n}/{}", int(p, "/port"), text(p, "/protocol")),
            None => format!("{}/{}", int(p, "/port"), text(p, "/protocol")),
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        json!(kind),
        json!(text(o, "/spec/clusterIP")),
        json!(external),
        json!(ports),
        json!(selector_text(o.pointer("/spec/selector"))),
    ]
}

fn selector_text(selector: Option<&Value>) -> String {
    let pairs: Vec<String> = selector
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", meta::scalar_string(v).unwrap_or_default()))
        .collect();
    if pairs.is_empty() {
        "<none>".into()
    } else {
        pairs.join(",")
    }
}

fn endpoints_text(o: &Value) -> String {
    let mut eps = Vec::new();
    for subset in items(o, "/subsets") {
        for addr in items(subset, "/addresses") {
            for port in items(subset, "/ports") {
                eps.push(format!("{}:{}", text(addr, "/ip"), int(port, "/port")));
            }
        }
    }
    if eps.is_empty() {
        "<none>".into()
    } else {
        eps.join(",")
    }
}

fn event_cells(o: &Value) -> Vec<Value> {
    let last = o
        .get("lastTimestamp")
        .or_else(|| o.get("eventTime"))
        .and_then(Value::as_str);
    let regarding = o.get("involvedObject").or_else(|| o.get("regarding"));
    let object = regarding
        .map(|r| format!("{}/{}", text(r, "/kind").to_lowercase(), text(r, "/name")))
        .unwrap_or_else(|| "<none>".into());
    let message = o
        .get("message")
        .or_else(|| o.get("note"))
        .and_then(Value::as_str)
        .unwrap_or("");
    vec![
        json!(time::age_of(
            last.or(meta::str_field(o, "creationTimestamp"))
        )),
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(object),
        json!(message),
    ]
}

fn deployment_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            int(o, "/spec/replicas")
        )),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
    ]
}

fn daemonset_cells(o: &Value) -> Vec<Value> {
    let numbers = [
        "desiredNumberScheduled",
        "currentNumberScheduled",
        "numberReady",
        "updatedNumberScheduled",
        "numberAvailable",
    ];
    let mut cells: Vec<Value> = numbers
        .iter()
        .map(|f| json!(int(o, &format!("/status/{f}"))))
        .collect();
    cells.push(json!(selector_text(
        o.pointer("/spec/template/spec/nodeSelector")
    )));
    cells
}

fn slice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = items(o, "/ports")
        .map(|p| int(p, "/port").to_string())
        .collect();
    let eps: Vec<&str> = items(o, "/endpoints")
        .flat_map(|e| items(e, "/addresses"))
        .filter_map(Value::as_str)
        .collect();
    let join = |v: Vec<String>| {
        if v.is_empty() {
            "<unset>".to_string()
        } else {
            v.join(",")
        }
    };
    vec![
        json!(text(o, "/addressType")),
        json!(join(ports)),
        json!(join(eps.into_iter().map(str::to_string).collect())),
    ]
}

fn ingress_cells(o: &Value) -> Vec<Value> {
    let hosts: Vec<&str> = items(o, "/spec/rules")
        .filter_map(|r| r.get("host")?.as_str())
        .collect();
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else {
        hosts.join(",")
    };
    let address: Vec<&str> = items(o, "/status/loadBalancer/ingress")
        .filter_map(|i| i.get("ip")?.as_str())
        .collect();
    let ports = if items(o, "/spec/tls").next().is_some() {
        "80, 443"
    } else {
        "80"
    };
    vec![
        json!(text(o, "/spec/ingressClassName")),
        json!(hosts),
        json!(address.join(",")),
        json!(ports),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::lookup;

    #[test]
    fn pod_rows_match_columns() {
        let pods = lookup("", "v1", "pods").expect("registered");
        let pod = json!({"metadata": {"name": "p", "creationTimestamp": time::now_rfc3339()},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c"}]},
            "status": {"phase": "Running", "podIP": "10.42.0.5", "containerStatuses": [{"ready": true, "restartCount": 2}]}});
        let t = table(pods, &[pod], IncludeObject::Metadata, json!({}));
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            cells.as_array().map(Vec::len),
            t["columnDefinitions"].as_array().map(Vec::len)
        );
        assert_eq!(cells[0], "p");
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.42.0.5");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn every_kind_has_one_cell_per_column() {
        for res in crate::apiserver::resources::RESOURCES {
            let t = table(
                res,
                &[json!({"metadata": {"name": "x"}})],
                IncludeObject::None,
                json!({}),
            );
            assert_eq!(
                t["rows"][0]["cells"].as_array().map(Vec::len),
                t["columnDefinitions"].as_array().map(Vec::len),
                "{}",
                res.kind
            );
        }
    }
}
