//! The verbs: get, list, create, update, delete, applied to the store under
//! its lock. Generic over resource types; per-kind behaviour lives in
//! `hooks.rs` (defaulting), `allocate.rs` and the deletion rules below.

use serde_json::{Value, json};

use super::error::ApiError;
use super::gc;
use super::hooks;
use super::meta;
use super::resources::{self, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Key, State};
use super::time;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

/// What happens to dependents when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted after the owner (Foreground is treated alike).
    #[default]
    Background,
    /// Dependents lose their ownerReference to the owner and stay.
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// Selection and paging of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

pub fn get(state: &State, res: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
    state
        .get(&Key::new(res, ns, name))
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.qualified(), name))
}

/// Lists matching objects as a `<Kind>List`, paging with an opaque token
/// that names the last key returned.
pub fn list(
    state: &State,
    res: &ResourceType,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Result<Value, ApiError> {
    let after = opts
        .continue_token
        .as_deref()
        .map(decode_continue)
        .transpose()?;
    let matching: Vec<&Value> = state
        .list(res, ns)
        .into_iter()
        .filter(|o| {
            after
                .as_ref()
                .is_none_or(|a| (meta::namespace(o), meta::name(o)) > (a.0.as_str(), a.1.as_str()))
        })
        .filter(|o| opts.labels.matches(o) && opts.fields.matches(o))
        .collect();
    let limit = opts.limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
    let page: Vec<Value> = matching.iter().take(limit).map(|o| (*o).clone()).collect();
    let mut metadata = json!({"resourceVersion": state.rv().to_string()});
    if matching.len() > page.len()
        && let Some(last) = page.last()
    {
        metadata["continue"] = json!(encode_continue(meta::namespace(last), meta::name(last)));
        metadata["remainingItemCount"] = json!(matching.len() - page.len());
    }
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": metadata,
        "items": page,
    }))
}

fn encode_continue(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::BadRequest(format!("invalid continue token {token:?}"));
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (ns, name) = text.split_once('/').ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}

/// Creates `obj` in namespace `ns` (ignored for cluster-scoped types).
pub fn create(
    state: &mut State,
    res: &ResourceType,
    ns: &str,
    mut obj: Value,
) -> Result<Value, ApiError> {
    check_type(res, &mut obj)?;
    place_in_namespace(state, res, ns, &mut obj)?;
    let name = choose_name(state, res, &mut obj)?;
    if state.get(&Key::of(res, &obj)).is_some() {
        return Err(ApiError::AlreadyExists {
            resource: res.qualified(),
            name,
        });
    }
    let m = meta::metadata_mut(&mut obj);
    for transient in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
    ] {
        m.remove(transient);
    }
    m.insert("uid".into(), json!(meta::new_uid()));
    m.insert("creationTimestamp".into(), json!(time::now_rfc3339()));
    m.insert("generation".into(), json!(1));
    hooks::default_fields(res, &mut obj);
    state.alloc.assign(res, &mut obj, None)?;
    Ok(state.insert_new(res, obj))
}

/// The body must be an object of this type; kind/apiVersion are defaulted.
fn check_type(res: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
    let map = obj.as_object_mut().ok_or_else(|| {
        ApiError::BadRequest(format!("the body of a {} must be a JSON object", res.kind))
    })?;
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or(res.kind);
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    if kind != res.kind
        || api_version
            .as_ref()
            .is_some_and(|v| *v != res.api_version())
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({}) does not match the expected API version ({}) or kind {kind} is not {}",
            api_version.unwrap_or_default(),
            res.api_version(),
            res.kind
        )));
    }
    map.insert("kind".into(), json!(res.kind));
    map.insert("apiVersion".into(), json!(res.api_version()));
    Ok(())
}

fn place_in_namespace(
    state: &State,
    res: &ResourceType,
    ns: &str,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !res.namespaced {
        meta::metadata_mut(obj).remove("namespace");
        return Ok(());
    }
    let body_ns = meta::namespace(obj);
    if !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let namespace = state
        .get(&Key::new(resources::namespaces(), "", ns))
        .ok_or_else(|| ApiError::not_found("namespaces", ns))?;
    if meta::is_deleting(namespace) {
        return Err(ApiError::Forbidden(format!(
            "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.plural,
            meta::name(obj)
        )));
    }
    meta::set(obj, "namespace", json!(ns));
    Ok(())
}

fn choose_name(state: &State, res: &ResourceType, obj: &mut Value) -> Result<String, ApiError> {
    let mut name = meta::name(obj).to_string();
    let generate = meta::str_field(obj, "generateName")
        .unwrap_or("")
        .to_string();
    if name.is_empty() && !generate.is_empty() {
        let ns = meta::namespace(obj).to_string();
        name = (0..16)
            .map(|_| format!("{generate}{}", meta::random_suffix()))
            .find(|n| state.get(&Key::new(res, &ns, n)).is_none())
            .ok_or_else(|| ApiError::Conflict {
                resource: res.qualified(),
                name: generate.clone(),
                message: "could not generate a unique name".into(),
            })?;
        meta::set(obj, "name", json!(name));
    }
    if name.is_empty() {
        return Err(ApiError::invalid(
            res.kind,
            "",
            "metadata.name",
            "Required value: name or generateName is required",
        ));
    }
    if !meta::valid_name(&name) {
        return Err(ApiError::invalid(
            res.kind,
            &name,
            "metadata.name",
            "Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
        ));
    }
    Ok(name)
}

/// Replaces an object (PUT, and the final step of PATCH).
pub fn update(
    state: &mut State,
    res: &ResourceType,
    ns: &str,
    name: &str,
    mut body: Value,
    part: Part,
) -> Result<Value, ApiError> {
    let key = Key::new(res, ns, name);
    let old = state
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.qualified(), name))?;
    check_type(res, &mut body)?;
    check_identity(res, &old, &body)?;
    let mut new = compose(res, &old, body, part);
    keep_system_metadata(&old, &mut new);
    hooks::default_fields(res, &mut new);
    state.alloc.assign(res, &mut new, Some(&old))?;
    if strip_rv(&new) == strip_rv(&old) {
        return Ok(old);
    }
    if meta::is_deleting(&new)
        && meta::finalizers(&new).is_empty()
        && !pod_waits_for_kubelet(res, &new)
    {
        let removed = state.remove(&key).unwrap_or(new);
        gc::collect(state);
        return Ok(removed);
    }
    Ok(state.replace(res, new, old))
}

fn check_identity(res: &ResourceType, old: &Value, body: &Value) -> Result<(), ApiError> {
    let name = meta::name(old);
    let body_name = meta::name(body);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let rv = meta::str_field(body, "resourceVersion").unwrap_or("");
    if !rv.is_empty() && Some(rv) != meta::str_field(old, "resourceVersion") {
        return Err(ApiError::Conflict {
            resource: res.qualified(),
            name: name.to_string(),
            message: "the object has been modified; please apply your changes to the latest version and try again".into(),
        });
    }
    Ok(())
}

/// The main resource cannot change status and `/status` can change only status.
fn compose(res: &ResourceType, old: &Value, body: Value, part: Part) -> Value {
    match part {
        Part::Status => {
            let mut new = old.clone();
            new["status"] = body.get("status").cloned().unwrap_or(Value::Null);
            new
        }
        Part::Main if res.status => {
            let mut new = body;
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new
        }
        Part::Main => body,
    }
}

/// Carries over metadata clients may not change and bumps generation when
/// anything outside metadata and status changed.
fn keep_system_metadata(old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let spec_changed =
        without(old, &["metadata", "status"]) != without(new, &["metadata", "status"]);
    let m = meta::metadata_mut(new);
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => m.insert(field.to_string(), v.clone()),
            None => m.remove(field),
        };
    }
    m.remove("managedFields");
    if spec_changed {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        m.insert("generation".into(), json!(generation + 1));
    }
}

fn without(obj: &Value, fields: &[&str]) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.as_object_mut() {
        for f in fields {
            m.remove(*f);
        }
    }
    copy
}

fn strip_rv(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    copy
}

/// A pod bound to a node stays while its grace period runs, until the
/// kubelet deletes it with gracePeriodSeconds=0.
fn pod_waits_for_kubelet(res: &ResourceType, obj: &Value) -> bool {
    res.kind == "Pod"
        && res.group.is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            > 0
}

/// Deletes an object, honouring finalizers, pod grace periods, namespace
/// termination and owner-reference propagation.
pub fn delete(
    state: &mut State,
    res: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let key = Key::new(res, ns, name);
    let old = state
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(&res.qualified(), name))?;
    check_preconditions(res, &old, opts)?;
    if opts.propagation == Propagation::Orphan {
        orphan_dependents(state, meta::uid(&old));
    }
    if let Some(grace) = pod_grace(res, &old, opts) {
        return Ok(mark_deleting(state, res, old, grace));
    }
    if res.kind == "Namespace" {
        return Ok(terminate_namespace(state, old));
    }
    if !meta::finalizers(&old).is_empty() {
        return Ok(mark_deleting(state, res, old, 0));
    }
    let removed = state.remove(&key).unwrap_or(old);
    gc::collect(state);
    Ok(removed)
}

fn check_preconditions(
    res: &ResourceType,
    old: &Value,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let conflict = |what: &str, want: &str, have: &str| ApiError::Conflict {
        resource: res.qualified(),
        name: meta::name(old).to_string(),
        message: format!(
            "Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"
        ),
    };
    if let Some(uid) = &opts.precondition_uid
        && uid != meta::uid(old)
    {
        return Err(conflict("UID", uid, meta::uid(old)));
    }
    let rv = meta::str_field(old, "resourceVersion").unwrap_or("");
    if let Some(want) = &opts.precondition_rv
        && want != rv
    {
        return Err(conflict("ResourceVersion", want, rv));
    }
    Ok(())
}

/// The grace period to wait for, if this is a pod bound to a node that
/// still runs and the period is positive.
fn pod_grace(res: &ResourceType, pod: &Value, opts: &DeleteOptions) -> Option<i64> {
    if res.kind != "Pod" || !res.group.is_empty() {
        return None;
    }
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() || matches!(phase, "Succeeded" | "Failed") {
        return None;
    }
    let default = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    let grace = opts.grace_period.unwrap_or(default);
    (grace > 0).then_some(grace)
}

fn mark_deleting(state: &mut State, res: &ResourceType, old: Value, grace: i64) -> Value {
    if meta::is_deleting(&old) {
        return old;
    }
    let mut new = old.clone();
    meta::set(
        &mut new,
        "deletionTimestamp",
        json!(time::format_rfc3339(time::now_secs() + grace)),
    );
    meta::set(&mut new, "deletionGracePeriodSeconds", json!(grace));
    state.replace(res, new, old)
}

/// Marks the namespace Terminating and deletes its content; the garbage
/// collector removes it once empty.
fn terminate_namespace(state: &mut State, old: Value) -> Value {
    let ns = meta::name(&old).to_string();
    let mut ns_obj = if meta::is_deleting(&old) {
        old
    } else {
        let mut new = old.clone();
        meta::set(&mut new, "deletionTimestamp", json!(time::now_rfc3339()));
        meta::set(&mut new, "deletionGracePeriodSeconds", json!(0));
        new["status"] = json!({"phase": "Terminating"});
        state.replace(resources::namespaces(), new, old)
    };
    let contents: Vec<Key> = state
        .all()
        .filter(|(k, _)| k.ns == ns && !k.ns.is_empty())
        .map(|(k, _)| k.clone())
        .collect();
    for key in contents {
        if let Some(res) = resources::by_index(key.res) {
            let _ = delete(state, res, &key.ns, &key.name, &DeleteOptions::default());
        }
    }
    gc::collect(state);
    if let Some(still) = state.get(&Key::new(resources::namespaces(), "", &ns)) {
        ns_obj = still.clone();
    }
    ns_obj
}

fn orphan_dependents(state: &mut State, owner_uid: &str) {
    let dependents: Vec<(Key, Value)> = state
        .all()
        .filter(|(_, o)| meta::owner_uids(o).contains(&owner_uid))
        .map(|(k, o)| (k.clone(), o.clone()))
        .collect();
    for (key, old) in dependents {
        let Some(res) = resources::by_index(key.res) else {
            continue;
        };
        let mut new = old.clone();
        if let Some(refs) = new
            .pointer_mut("/metadata/ownerReferences")
            .and_then(Value::as_array_mut)
        {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        }
        state.replace(res, new, old);
    }
}

/// Deletes every matching object, returning them as a list.
pub fn delete_collection(
    state: &mut State,
    res: &ResourceType,
    ns: Option<&str>,
    list_opts: &ListOptions,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let keys: Vec<Key> = state
        .list(res, ns)
        .into_iter()
        .filter(|o| list_opts.labels.matches(o) && list_opts.fields.matches(o))
        .map(|o| Key::of(res, o))
        .collect();
    let mut items = Vec::new();
    for key in keys {
        if let Ok(obj) = delete(state, res, &key.ns, &key.name, opts) {
            items.push(obj);
        }
    }
    Ok(json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": state.rv().to_string()},
        "items": items,
    }))
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
