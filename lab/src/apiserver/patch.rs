//! PATCH bodies: JSON merge (RFC 7386), JSON patch (RFC 6902), strategic
//! merge and server-side apply (approximated as a strategic merge).
//!
//! Strategic merge knows the list merge keys of the fields kubectl and nodenet
//! touch (see [`merge_key`]); every other list is replaced. Directives:
//! `$patch: replace|delete` and `$deleteFromPrimitiveList/<f>` are honoured,
//! `$setElementOrder/<f>` and `$retainKeys` are accepted and ignored.
//! Node `status.addresses` is replaced whole (not merged by type, which would
//! collapse dual-stack addresses of one type).

use serde_json::{Map, Value};

use super::error::ApiError;

/// The patch flavour, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Result<Self, ApiError> {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        match mime {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "content type {other:?} is not a supported patch type"
            ))),
        }
    }
}

/// Applies `body` to a copy of `target`.
pub fn apply(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let mut doc = target.clone();
    match kind {
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| ApiError::invalid_patch(format!("JSON patch failed: {e}")))?;
        }
        PatchKind::Merge => json_patch::merge(&mut doc, &parse_json(body)?),
        PatchKind::Strategic => strategic_merge(&mut doc, &parse_json(body)?),
        PatchKind::Apply => strategic_merge(&mut doc, &parse_yaml(body)?),
    }
    Ok(doc)
}

impl ApiError {
    fn invalid_patch(message: String) -> Self {
        ApiError::invalid("Patch", "", "patch", message)
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON in patch body: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::BadRequest(
            "patch body must be a JSON object".into(),
        ))
    }
}

/// Parses an apply body, which is YAML (or JSON, a subset of YAML).
pub fn parse_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid YAML in apply body: {e}")))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(ApiError::BadRequest("apply body must be an object".into()))
    }
}

/// Strategic merge of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    merge_value(target, patch, &mut Vec::new());
}

fn merge_value(target: &mut Value, patch: &Value, path: &mut Vec<String>) {
    let Some(patch_map) = patch.as_object() else {
        *target = strip(patch);
        return;
    };
    if directive(patch_map) == Some("replace") || !target.is_object() {
        *target = strip(patch);
        return;
    }
    let Some(target_map) = target.as_object_mut() else {
        return;
    };
    for (key, value) in patch_map {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            delete_from_primitive_list(target_map, field, value);
        } else if !key.starts_with('$') {
            merge_field(target_map, key, value, path);
        }
    }
}

fn merge_field(target: &mut Map<String, Value>, key: &str, value: &Value, path: &mut Vec<String>) {
    let is_delete = value.as_object().and_then(directive) == Some("delete");
    if value.is_null() || is_delete {
        target.remove(key);
        return;
    }
    path.push(key.to_string());
    match (target.get_mut(key), value) {
        (Some(existing @ Value::Array(_)), Value::Array(items)) => {
            merge_list(existing, items, path)
        }
        (Some(existing), _) => merge_value(existing, value, path),
        (None, _) => {
            target.insert(key.to_string(), strip(value));
        }
    }
    path.pop();
}

fn merge_list(target: &mut Value, items: &[Value], path: &[String]) {
    let replace = items
        .iter()
        .any(|i| i.as_object().and_then(directive) == Some("replace"));
    let Some(list) = target.as_array_mut() else {
        return;
    };
    if replace {
        *list = items
            .iter()
            .filter(|i| i.as_object().and_then(directive).is_none())
            .map(strip)
            .collect();
    } else if let Some(keys) = merge_key(path) {
        for item in items {
            merge_keyed_item(list, item, keys, path);
        }
    } else if is_primitive_set(path) {
        for item in items {
            if !list.contains(item) {
                list.push(item.clone());
            }
        }
    } else {
        *list = items.iter().map(strip).collect();
    }
}

fn merge_keyed_item(list: &mut Vec<Value>, item: &Value, keys: &[&str], path: &[String]) {
    let Some(item_map) = item.as_object() else {
        list.push(item.clone());
        return;
    };
    let same = |candidate: &Value| {
        keys.iter()
            .all(|k| key_value(candidate, k) == key_value(item, k))
    };
    if directive(item_map) == Some("delete") {
        list.retain(|c| !same(c));
        return;
    }
    match list.iter_mut().find(|c| same(c)) {
        Some(existing) => merge_value(existing, item, &mut path.to_vec()),
        None => list.push(strip(item)),
    }
}

/// A merge-key field's value; `protocol` defaults to TCP as in the API.
fn key_value(obj: &Value, key: &str) -> Value {
    match obj.get(key) {
        Some(v) => v.clone(),
        None if key == "protocol" => Value::String("TCP".into()),
        None => Value::Null,
    }
}

/// Merge keys of the lists we merge, by field path. Ports are keyed by
/// (port, protocol) rather than Kubernetes' port alone, so TCP and UDP
/// entries of one port (DNS) do not collapse.
fn merge_key(path: &[String]) -> Option<&'static [&'static str]> {
    let last = path.last()?.as_str();
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    Some(match last {
        "containers" | "initContainers" | "ephemeralContainers" => &["name"],
        "env" | "volumes" | "imagePullSecrets" => &["name"],
        "volumeMounts" => &["mountPath"],
        "conditions" => &["type"],
        "ownerReferences" => &["uid"],
        "taints" => &["key", "effect"],
        "hostAliases" => &["ip"],
        "ports"
            if matches!(
                parent,
                Some("containers" | "initContainers" | "ephemeralContainers")
            ) =>
        {
            &["containerPort", "protocol"]
        }
        "ports" if path.len() == 2 && parent == Some("spec") => &["port", "protocol"],
        _ => return None,
    })
}

fn is_primitive_set(path: &[String]) -> bool {
    matches!(path, [m, f] if m == "metadata" && f == "finalizers")
}

fn delete_from_primitive_list(target: &mut Map<String, Value>, field: &str, values: &Value) {
    let (Some(Value::Array(list)), Some(remove)) = (target.get_mut(field), values.as_array())
    else {
        return;
    };
    list.retain(|v| !remove.contains(v));
}

fn directive(map: &Map<String, Value>) -> Option<&str> {
    map.get("$patch").and_then(Value::as_str)
}

/// A patch value with `$` directives removed, for inserting as new content.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(target: Value, patch: Value) -> Value {
        apply(PatchKind::Strategic, &target, patch.to_string().as_bytes()).expect("patch applies")
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Ok(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Ok(PatchKind::Apply)
        );
        assert_eq!(
            PatchKind::from_content_type("text/plain").map_err(|e| e.code()),
            Err(415)
        );
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"l": [1, 2]}});
        let out = apply(
            PatchKind::Merge,
            &doc,
            br#"{"metadata":{"labels":{"a":null,"c":"3"}},"spec":{"l":[3]}}"#,
        )
        .expect("applies");
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"l": [3]}})
        );
    }

    #[test]
    fn json_patch_ops_and_failures() {
        let doc = json!({"spec": {"replicas": 1}});
        let out = apply(PatchKind::Json, &doc, br#"[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/spec/x","value":true}]"#)
            .expect("applies");
        assert_eq!(out, json!({"spec": {"replicas": 3, "x": true}}));
        let failing = br#"[{"op":"test","path":"/spec/replicas","value":9}]"#;
        assert_eq!(
            apply(PatchKind::Json, &doc, failing).map_err(|e| e.code()),
            Err(422)
        );
        assert_eq!(
            apply(PatchKind::Json, &doc, b"{").map_err(|e| e.code()),
            Err(400)
        );
    }

    #[test]
    fn strategic_merges_containers_env_and_ports_by_key() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}], "ports": [{"containerPort": 80}]},
            {"name": "b", "image": "y:1"}]}});
        let out = smp(
            pod,
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}], "containers": [
            {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}], "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]},
            {"name": "b", "$patch": "delete"}]}}),
        );
        let c = &out["spec"]["containers"];
        assert_eq!(c.as_array().map(Vec::len), Some(1));
        assert_eq!(c[0]["image"], "x:2");
        assert_eq!(
            c[0]["env"],
            json!([{"name": "E", "value": "1"}, {"name": "F", "value": "2"}])
        );
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP", "name": "http"}])
        );
    }

    #[test]
    fn strategic_service_ports_keep_tcp_and_udp_apart() {
        let svc = json!({"spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]}});
        let out = smp(
            svc,
            json!({"spec": {"ports": [{"port": 53, "protocol": "TCP", "name": "dns-tcp"}]}}),
        );
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn strategic_conditions_finalizers_and_directives() {
        let node = json!({"metadata": {"finalizers": ["a"]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "1.1.1.1"}, {"type": "InternalIP", "address": "fd00::1"}]}});
        let out = smp(
            node,
            json!({"metadata": {"finalizers": ["b"], "$deleteFromPrimitiveList/finalizers": ["a"]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "2.2.2.2"}]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(
            out["status"]["conditions"][0],
            json!({"type": "Ready", "status": "True"})
        );
        assert_eq!(out["status"]["conditions"][1]["type"], "X");
        assert_eq!(
            out["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "2.2.2.2"}])
        );
        let replaced = smp(out, json!({"status": {"$patch": "replace", "phase": "x"}}));
        assert_eq!(replaced["status"], json!({"phase": "x"}));
    }

    #[test]
    fn apply_accepts_yaml() {
        let out = apply(
            PatchKind::Apply,
            &json!({"data": {"a": "1"}}),
            b"data:\n  b: '2'\n",
        )
        .expect("applies");
        assert_eq!(out, json!({"data": {"a": "1", "b": "2"}}));
    }
}
