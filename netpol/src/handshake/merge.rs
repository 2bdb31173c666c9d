//! Pure: folding pending hand-overs into the planner's pod views.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::PodInfo;

/// One pod IP the CNI plugin announced and is waiting for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PendingPod {
    pub ip: IpAddr,
    pub namespace: String,
    pub name: String,
    pub container_id: String,
}

/// What one plan did with a pending entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The pod is not in the Pod store (yet): not planned, not confirmed.
    Wait,
    /// Planned as a running local pod with the pending IP: confirm it and
    /// keep the entry until the API shows the IP.
    Merged,
    /// The plan no longer needs the entry: the pod's status shows the IP,
    /// or the pod is finished or on the host network (never an endpoint).
    /// Confirm it and drop the entry.
    Settled,
}

/// Adds each pending IP to its pod (by namespace/name) in `pods`, as a
/// running pod of `node`, so the plan knows the pod before the kubelet
/// reports the IP. Returns one disposition per entry of `pending`.
pub fn merge_pending(pods: &mut [PodInfo], pending: &[PendingPod], node: &str) -> Vec<Disposition> {
    let index: BTreeMap<(String, String), usize> = pods
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.namespace.clone(), p.name.clone()), i))
        .collect();
    pending
        .iter()
        .map(|entry| {
            let key = (entry.namespace.clone(), entry.name.clone());
            match index.get(&key) {
                None => Disposition::Wait,
                Some(&i) => merge_one(&mut pods[i], entry, node),
            }
        })
        .collect()
}

fn merge_one(pod: &mut PodInfo, entry: &PendingPod, node: &str) -> Disposition {
    if pod.ips.contains(&entry.ip) || pod.terminal || pod.host_network {
        return Disposition::Settled;
    }
    // A same-named pod bound elsewhere is another incarnation; wait for
    // the store to show the one this node is starting.
    if pod.node.as_deref().is_some_and(|n| n != node) {
        return Disposition::Wait;
    }
    pod.node = Some(node.to_string());
    pod.ips.push(entry.ip);
    pod.ips.sort();
    Disposition::Merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, node: Option<&str>, ips: &[&str]) -> PodInfo {
        PodInfo {
            namespace: ns.into(),
            name: name.into(),
            node: node.map(str::to_string),
            ips: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
            labels: [("app".to_string(), name.to_string())].into(),
            ..PodInfo::default()
        }
    }

    fn pending(ip: &str, ns: &str, name: &str) -> PendingPod {
        PendingPod {
            ip: ip.parse().expect("ip"),
            namespace: ns.into(),
            name: name.into(),
            container_id: format!("cid-{name}"),
        }
    }

    #[test]
    fn a_pending_ip_makes_an_ipless_pod_a_local_endpoint() {
        let mut pods = vec![pod("x", "a", Some("node-1"), &[]), pod("x", "b", None, &[])];
        assert!(!pods[0].is_endpoint());
        let entries = [
            pending("10.42.0.5", "x", "a"),
            pending("fd00::5", "x", "a"),
            pending("10.42.0.6", "x", "b"),
        ];
        let out = merge_pending(&mut pods, &entries, "node-1");
        assert_eq!(out, vec![Disposition::Merged; 3]);
        assert!(pods[0].is_endpoint());
        let want: Vec<IpAddr> = vec![
            "10.42.0.5".parse().expect("ip"),
            "fd00::5".parse().expect("ip"),
        ];
        assert_eq!(pods[0].ips, want);
        assert_eq!(pods[0].labels.get("app").map(String::as_str), Some("a"));
        assert_eq!(pods[1].node.as_deref(), Some("node-1"));
    }

    #[test]
    fn unknown_pods_wait_and_reported_or_finished_pods_settle() {
        let mut finished = pod("x", "done", Some("node-1"), &[]);
        finished.terminal = true;
        let mut host = pod("x", "host", Some("node-1"), &[]);
        host.host_network = true;
        let mut pods = vec![
            pod("x", "up", Some("node-1"), &["10.42.0.7"]),
            finished,
            host,
            pod("x", "moved", Some("node-2"), &[]),
        ];
        let before = pods.clone();
        let entries = [
            pending("10.42.0.7", "x", "up"),
            pending("10.42.0.8", "x", "done"),
            pending("10.42.0.9", "x", "host"),
            pending("10.42.0.10", "x", "moved"),
            pending("10.42.0.11", "x", "absent"),
            pending("10.42.0.12", "y", "up"),
        ];
        let out = merge_pending(&mut pods, &entries, "node-1");
        use Disposition::{Settled, Wait};
        assert_eq!(out, vec![Settled, Settled, Settled, Wait, Wait, Wait]);
        assert_eq!(pods, before, "nothing merged");
        assert!(!pods[1].is_endpoint() && !pods[2].is_endpoint());
    }
}
