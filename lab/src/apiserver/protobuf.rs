//! Decoding of Kubernetes protobuf request bodies for the few kinds kubectl's
//! typed `create` subcommands send that way (`kubectl create configmap`,
//! `secret`, `namespace`, `serviceaccount`). Other kinds are refused with 415;
//! JSON and YAML bodies work for every kind.
//!
//! Format: the magic `k8s\0`, then a `runtime.Unknown` message whose field 2
//! (`raw`) holds the object message. Field numbers follow the Kubernetes
//! `generated.proto` of each type; unknown fields are skipped.

use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::resources::ResourceType;
use super::time;

const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// bytes, rendered base64 as JSON does.
    Bytes,
    Int,
    Bool,
    Time,
    MapStr,
    MapBytes,
    Msg(&'static [Field]),
}

#[derive(Clone, Copy)]
struct Field {
    num: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: false,
    }
}

const fn list(num: u64, name: &'static str, ty: Ty) -> Field {
    Field {
        num,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REF: &[Field] = &[
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];
const OBJECT_META: &[Field] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    list(13, "ownerReferences", Ty::Msg(OWNER_REF)),
    list(14, "finalizers", Ty::Str),
];
const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
    f(4, "immutable", Ty::Bool),
];
const SECRET: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "data", Ty::MapBytes),
    f(3, "type", Ty::Str),
    f(4, "stringData", Ty::MapStr),
    f(5, "immutable", Ty::Bool),
];
const NAMESPACE_SPEC: &[Field] = &[list(1, "finalizers", Ty::Str)];
const NAMESPACE: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    f(2, "spec", Ty::Msg(NAMESPACE_SPEC)),
];
const LOCAL_REF: &[Field] = &[f(1, "name", Ty::Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Ty::Msg(OBJECT_META)),
    list(3, "imagePullSecrets", Ty::Msg(LOCAL_REF)),
    f(4, "automountServiceAccountToken", Ty::Bool),
];

fn schema(res: &ResourceType) -> Option<&'static [Field]> {
    match (res.group, res.kind) {
        ("", "ConfigMap") => Some(CONFIG_MAP),
        ("", "Secret") => Some(SECRET),
        ("", "Namespace") => Some(NAMESPACE),
        ("", "ServiceAccount") => Some(SERVICE_ACCOUNT),
        _ => None,
    }
}

/// Decodes a protobuf body for `res` into its JSON form.
pub fn decode(res: &ResourceType, body: &[u8]) -> Result<Value, ApiError> {
    let fields = schema(res).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "protobuf bodies for {} are not supported by the lab API server; send JSON or YAML (kubectl create -f)",
            res.qualified()
        ))
    })?;
    let bad =
        |what: &str| ApiError::BadRequest(format!("invalid protobuf {} body: {what}", res.kind));
    let unknown = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("missing k8s magic"))?;
    let raw = Reader::new(unknown)
        .find_bytes(2)
        .map_err(bad)?
        .ok_or_else(|| bad("no raw object"))?;
    let mut obj = message(raw, fields).map_err(bad)?;
    obj["kind"] = json!(res.kind);
    obj["apiVersion"] = json!(res.api_version());
    Ok(obj)
}

fn message(bytes: &[u8], fields: &[Field]) -> Result<Value, &'static str> {
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while let Some((num, wire)) = r.tag()? {
        let Some(field) = fields.iter().find(|f| f.num == num) else {
            r.skip(wire)?;
            continue;
        };
        let value = r.value(field.ty, wire)?;
        store(&mut out, field, value);
    }
    Ok(Value::Object(out))
}

/// Adds one decoded occurrence: repeated fields append, maps merge entries.
fn store(out: &mut Map<String, Value>, field: &Field, value: Value) {
    match (field.ty, value) {
        (Ty::MapStr | Ty::MapBytes, Value::Object(entry)) => {
            let map = out.entry(field.name).or_insert_with(|| json!({}));
            if let Some(map) = map.as_object_mut() {
                map.extend(entry);
            }
        }
        (_, value) if field.repeated => {
            let list = out.entry(field.name).or_insert_with(|| json!([]));
            if let Some(list) = list.as_array_mut() {
                list.push(value);
            }
        }
        (_, value) => {
            out.insert(field.name.to_string(), value);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint too long")
    }

    fn tag(&mut self) -> Result<Option<(u64, u64)>, &'static str> {
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        Ok(Some((tag >> 3, tag & 7)))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], &'static str> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("truncated field")?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn delimited(&mut self) -> Result<&'a [u8], &'static str> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        self.take(len)
    }

    fn skip(&mut self, wire: u64) -> Result<(), &'static str> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.delimited().map(drop),
            5 => self.take(4).map(drop),
            _ => Err("unsupported wire type"),
        }
    }

    /// The first length-delimited field `num` of this message.
    fn find_bytes(mut self, num: u64) -> Result<Option<&'a [u8]>, &'static str> {
        while let Some((n, wire)) = self.tag()? {
            if n == num && wire == 2 {
                return self.delimited().map(Some);
            }
            self.skip(wire)?;
        }
        Ok(None)
    }

    fn value(&mut self, ty: Ty, wire: u64) -> Result<Value, &'static str> {
        let expected = if matches!(ty, Ty::Int | Ty::Bool) {
            0
        } else {
            2
        };
        if wire != expected {
            return Err("unexpected wire type for a known field");
        }
        Ok(match ty {
            Ty::Int => json!(self.varint()? as i64),
            Ty::Bool => json!(self.varint()? != 0),
            Ty::Str => {
                json!(std::str::from_utf8(self.delimited()?).map_err(|_| "string is not UTF-8")?)
            }
            Ty::Bytes => json!(base64(self.delimited()?)),
            Ty::Time => timestamp(self.delimited()?)?,
            Ty::MapStr => map_entry(self.delimited()?, Ty::Str)?,
            Ty::MapBytes => map_entry(self.delimited()?, Ty::Bytes)?,
            Ty::Msg(fields) => message(self.delimited()?, fields)?,
        })
    }
}

fn map_entry(bytes: &[u8], value_ty: Ty) -> Result<Value, &'static str> {
    let fields = [f(1, "key", Ty::Str), f(2, "value", value_ty)];
    let entry = message(bytes, &fields)?;
    let key = entry
        .get("key")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let value = entry.get("value").cloned().unwrap_or(json!(""));
    Ok(json!({ key: value }))
}

/// Standard base64 with padding, as JSON renders `[]byte`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let emit = i <= chunk.len();
            out.push(if emit {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn timestamp(bytes: &[u8]) -> Result<Value, &'static str> {
    let t = message(bytes, &[f(1, "seconds", Ty::Int)])?;
    Ok(json!(time::format_rfc3339(
        t.get("seconds").and_then(Value::as_i64).unwrap_or(0)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::lookup;

    fn field(num: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(num << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_config_map() {
        let meta = [field(1, b"cm"), field(3, b"default")].concat();
        let entry = [field(1, b"k"), field(2, b"v")].concat();
        let cm = [field(1, &meta), field(2, &entry), vec![4 << 3, 1]].concat();
        let body = [MAGIC.to_vec(), field(2, &cm)].concat();
        let res = lookup("", "v1", "configmaps").expect("registered");
        let obj = decode(res, &body).expect("decodes");
        assert_eq!(
            obj,
            json!({"kind": "ConfigMap", "apiVersion": "v1", "immutable": true,
            "metadata": {"name": "cm", "namespace": "default"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn rejects_garbage_and_unknown_kinds() {
        let res = lookup("", "v1", "configmaps").expect("registered");
        assert_eq!(
            decode(res, b"k8s\0\x12\x7f").map_err(|e| e.code()),
            Err(400)
        );
        assert_eq!(decode(res, b"nope").map_err(|e| e.code()), Err(400));
        let pods = lookup("", "v1", "pods").expect("registered");
        assert_eq!(decode(pods, b"k8s\0").map_err(|e| e.code()), Err(415));
    }
}
