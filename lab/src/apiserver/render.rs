//! The shape a client asks for in its Accept header: the full object, a
//! Table (kubectl get) or PartialObjectMetadata (kube-rs metadata APIs).

use serde_json::{Value, json};

use super::resources::ResourceType;
use super::table::{self, IncludeObject};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Full,
    Table(IncludeObject),
    Metadata,
}

impl Shape {
    /// Decides from the first (preferred) media type of `accept`.
    pub fn from_request(accept: &str, include_object: Option<&str>) -> Self {
        let first = accept.split(',').next().unwrap_or("");
        if first.contains("as=Table") {
            Shape::Table(IncludeObject::parse(include_object))
        } else if first.contains("as=PartialObjectMetadata") {
            Shape::Metadata
        } else {
            Shape::Full
        }
    }

    /// One object (a GET or a watch event).
    pub fn one(self, res: &ResourceType, obj: &Value) -> Value {
        match self {
            Shape::Full => obj.clone(),
            Shape::Table(include) => {
                table::table(res, std::slice::from_ref(obj), include, json!({}))
            }
            Shape::Metadata => partial(obj),
        }
    }

    /// A `<Kind>List` as returned by `ops::list`.
    pub fn list(self, res: &ResourceType, list: Value) -> Value {
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let meta = list.get("metadata").cloned().unwrap_or_default();
        match self {
            Shape::Full => list,
            Shape::Table(include) => table::table(res, &items, include, meta),
            Shape::Metadata => json!({
                "kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": meta, "items": items.iter().map(partial).collect::<Vec<_>>(),
            }),
        }
    }
}

/// `meta.k8s.io/v1` PartialObjectMetadata of an object.
pub fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
           "metadata": obj.get("metadata").cloned().unwrap_or_default()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_from_accept() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            Shape::from_request(table, None),
            Shape::Table(IncludeObject::Metadata)
        );
        assert_eq!(
            Shape::from_request(table, Some("Object")),
            Shape::Table(IncludeObject::Object)
        );
        let meta = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
        assert_eq!(Shape::from_request(meta, None), Shape::Metadata);
        assert_eq!(Shape::from_request("application/json", None), Shape::Full);
        assert_eq!(Shape::from_request("", None), Shape::Full);
    }
}
