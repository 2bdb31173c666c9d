//! A minimal OpenAPI v3 surface: the root index and one document per
//! group/version listing each object path's PATCH operation with its
//! group-version-kind and the `fieldValidation` query parameter.
//!
//! This is what kubectl's field-validation check reads to decide that the
//! server validates (so it skips client-side schema validation, which would
//! need full schemas). No schemas are served: kubectl then computes
//! strategic merge patches from its compiled-in types. `/openapi/v2` is not
//! served (`kubectl explain` does not work).

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::resources::{RESOURCES, ResourceType};

/// `api/v1`, `apis/apps/v1`, ...
fn gv_path(r: &ResourceType) -> String {
    if r.group.is_empty() {
        format!("api/{}", r.version)
    } else {
        format!("apis/{}/{}", r.group, r.version)
    }
}

pub fn root() -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        let gv = gv_path(r);
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}")}),
        );
    }
    json!({"paths": paths})
}

pub fn group_version(gv: &str) -> Result<Value, ApiError> {
    let in_gv: Vec<&ResourceType> = RESOURCES.iter().filter(|r| gv_path(r) == gv).collect();
    if in_gv.is_empty() {
        return Err(ApiError::not_found("openapi", gv));
    }
    let paths: Map<String, Value> = in_gv
        .iter()
        .map(|r| (object_path(r), json!({"patch": patch_op(r)})))
        .collect();
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn object_path(r: &ResourceType) -> String {
    let ns = if r.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    format!("/{}{ns}/{}/{{name}}", gv_path(r), r.plural)
}

fn patch_op(r: &ResourceType) -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    json!({
        "operationId": format!("patch{}", r.kind),
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": r.group, "version": r.version, "kind": r.kind},
        "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")],
        "responses": {"200": {"description": "OK"}},
    })
}
