//! flannel's node annotations, read and written exactly as flannel does
//! (flannel.md §1.1), so nodenet and K3s's flannel see each other as peers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use host::link::mac::MacAddr;
use serde_json::Value;

use super::Backend;
use super::wireguard::WireguardData;

/// `"true"` on every node whose subnet is managed through the Node API.
pub const KUBE_SUBNET_MANAGER: &str = "flannel.alpha.coreos.com/kube-subnet-manager";
/// `vxlan`, `host-gw`, `wireguard`, `extension`.
pub const BACKEND_TYPE: &str = "flannel.alpha.coreos.com/backend-type";
/// Backend-specific JSON for the IPv4 overlay.
pub const BACKEND_DATA: &str = "flannel.alpha.coreos.com/backend-data";
/// Backend-specific JSON for the IPv6 overlay.
pub const BACKEND_V6_DATA: &str = "flannel.alpha.coreos.com/backend-v6-data";
/// IPv4 tunnel endpoint peers must use.
pub const PUBLIC_IP: &str = "flannel.alpha.coreos.com/public-ip";
/// IPv6 tunnel endpoint peers must use.
pub const PUBLIC_IPV6: &str = "flannel.alpha.coreos.com/public-ipv6";
/// Operator-set IPv4 endpoint that replaces the detected one in `public-ip`.
pub const PUBLIC_IP_OVERWRITE: &str = "flannel.alpha.coreos.com/public-ip-overwrite";
/// Operator-set IPv6 endpoint that replaces the detected one in `public-ipv6`.
pub const PUBLIC_IPV6_OVERWRITE: &str = "flannel.alpha.coreos.com/public-ipv6-overwrite";
/// `backend-data` of host-gw (and its v6 twin): the JSON literal null.
pub const NULL_DATA: &str = "null";

/// `backend-data` of the VXLAN backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanData {
    pub vni: u32,
    pub vtep_mac: MacAddr,
}

impl VxlanData {
    /// The canonical form `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`: key order
    /// and spacing matter because flannel parses its own annotation naively.
    pub fn render(&self) -> String {
        format!(r#"{{"VNI":{},"VtepMAC":"{}"}}"#, self.vni, self.vtep_mac)
    }

    /// Parses any key order; keys match case-insensitively (as Go's JSON
    /// decoder does). The error says what is wrong, for an Event.
    pub fn parse(text: &str) -> Result<VxlanData, String> {
        let object = go_json_object(text)?;
        let field = |name: &str| go_field(&object, name);
        let vni = field("VNI")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("missing or non-numeric \"VNI\"")?;
        let mac = field("VtepMAC")
            .and_then(Value::as_str)
            .ok_or("missing \"VtepMAC\" string")?;
        let vtep_mac = mac.parse::<MacAddr>().map_err(|e| e.to_string())?;
        Ok(VxlanData { vni, vtep_mac })
    }
}

/// This node's facts for one family, for [`desired_annotations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyFacts {
    /// Detected endpoint (the underlay address).
    pub public_ip: IpAddr,
    /// VXLAN device MAC (VXLAN backend only).
    pub vtep_mac: Option<MacAddr>,
    /// Public key and port (WireGuard backend only).
    pub wireguard: Option<WireguardData>,
}

/// Everything the annotations of our Node are derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFacts {
    pub backend: Backend,
    /// Present when the cluster has IPv4 (and we have an IPv4 address).
    pub v4: Option<FamilyFacts>,
    /// Present when the cluster has IPv6 (and we have an IPv6 address).
    pub v6: Option<FamilyFacts>,
    /// Endpoints to publish as overwrite annotations (--flannel-external-ip).
    pub overwrites: Vec<IpAddr>,
}

/// The annotations our Node must carry. `current` is what it has now: an
/// existing overwrite annotation wins over the detected address, as in
/// flannel. Keys not listed are left alone.
pub fn desired_annotations(
    facts: &LocalFacts,
    current: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(KUBE_SUBNET_MANAGER.to_string(), "true".to_string());
    out.insert(
        BACKEND_TYPE.to_string(),
        facts.backend.annotation_type().to_string(),
    );
    for ip in &facts.overwrites {
        let key = if ip.is_ipv4() {
            PUBLIC_IP_OVERWRITE
        } else {
            PUBLIC_IPV6_OVERWRITE
        };
        out.insert(key.to_string(), ip.to_string());
    }
    let keys = [
        (facts.v4, BACKEND_DATA, PUBLIC_IP, PUBLIC_IP_OVERWRITE),
        (
            facts.v6,
            BACKEND_V6_DATA,
            PUBLIC_IPV6,
            PUBLIC_IPV6_OVERWRITE,
        ),
    ];
    for (family, data_key, ip_key, overwrite_key) in keys {
        let Some(family) = family else { continue };
        out.insert(data_key.to_string(), backend_data(facts.backend, &family));
        let overwrite = out
            .get(overwrite_key)
            .or_else(|| current.get(overwrite_key));
        let public = overwrite
            .filter(|v| is_ip_of_family(v, family.public_ip.is_ipv6()))
            .cloned()
            .unwrap_or_else(|| family.public_ip.to_string());
        out.insert(ip_key.to_string(), public);
    }
    out
}

/// A backend-data annotation as a JSON object, as flannel (Go) reads it.
pub(super) fn go_json_object(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))? {
        Value::Object(object) => Ok(object),
        other => Err(format!("expected a JSON object, got {other}")),
    }
}

/// A key of such an object, matched case-insensitively as Go's JSON
/// decoder does.
pub(super) fn go_field<'a>(
    object: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn backend_data(backend: Backend, family: &FamilyFacts) -> String {
    match (backend, family.vtep_mac, family.wireguard) {
        (Backend::Vxlan, Some(vtep_mac), _) => VxlanData {
            vni: super::VXLAN_VNI,
            vtep_mac,
        }
        .render(),
        (Backend::Wireguard, _, Some(data)) => data.render(),
        // host-gw, or VXLAN/WireGuard before MAC/key are known (never
        // published: the reconciler knows them before it computes annotations).
        _ => NULL_DATA.to_string(),
    }
}

fn is_ip_of_family(text: &str, v6: bool) -> bool {
    if v6 {
        text.parse::<Ipv6Addr>().is_ok()
    } else {
        text.parse::<Ipv4Addr>().is_ok()
    }
}

/// A JSON merge patch (`application/merge-patch+json`) setting the
/// annotations of `desired` that `current` lacks or has differently;
/// `None` when nothing changes, so a restart writes nothing.
pub fn annotations_patch(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> Option<Value> {
    let changed: serde_json::Map<String, Value> = desired
        .iter()
        .filter(|(key, value)| current.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    if changed.is_empty() {
        return None;
    }
    Some(serde_json::json!({ "metadata": { "annotations": changed } }))
}

/// The annotations of a Node as an ordered map (empty when it has none).
pub fn of_node(node: &k8s_openapi::api::core::v1::Node) -> BTreeMap<String, String> {
    node.metadata.annotations.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests;
