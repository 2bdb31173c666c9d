//! Label matching and small helpers shared by the controllers.

use k8s_openapi::api::core::v1::{Node, Pod};
use std::collections::BTreeMap;

/// Every key=value of `selector` is in `labels` (an empty selector matches all).
pub fn matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// A pod's nodeSelector matches the node's labels.
pub fn node_selected(pod_spec: Option<&k8s_openapi::api::core::v1::PodSpec>, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let sel = pod_spec
        .and_then(|s| s.node_selector.as_ref())
        .unwrap_or(&empty);
    matches(sel, node.metadata.labels.as_ref())
}

/// Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// FNV-1a, for stable short names and template hashes.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Short lowercase alphanumeric hash suffix of `len` characters.
pub fn suffix(data: &[u8], len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = fnv(data);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_matching() {
        let sel: BTreeMap<_, _> = [("app".to_string(), "web".to_string())].into();
        let yes: BTreeMap<_, _> = [
            ("app".to_string(), "web".to_string()),
            ("x".to_string(), "y".to_string()),
        ]
        .into();
        assert!(matches(&sel, Some(&yes)));
        assert!(!matches(&sel, None));
        assert!(matches(&BTreeMap::new(), None));
        assert_eq!(suffix(b"a", 5), suffix(b"a", 5));
        assert_ne!(suffix(b"a", 5), suffix(b"b", 5));
    }
}
