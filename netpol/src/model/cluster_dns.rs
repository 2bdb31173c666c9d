//! nodenet's cluster DNS as NetworkPolicy sees it.
//!
//! With CoreDNS, a pod's DNS query is DNATed to a CoreDNS pod, so egress
//! policies allow DNS the usual way: "to pods `k8s-app=kube-dns` in
//! namespace `kube-system`, UDP and TCP 53" (or the named port `dns`).
//! nodenet answers at the cluster DNS address on every node instead; no
//! pod carries that address. So that those policies keep meaning what they
//! meant, the address is planned as the IP of a pod that looks like
//! K3s's CoreDNS pod: same namespace, same label, same named ports. It is a
//! peer only, never a target (it runs on no node), and a policy that does
//! not allow CoreDNS does not allow it either.

use std::net::IpAddr;

use super::ports::Protocol;
use super::selector::Labels;
use super::views::{NamedPort, NamespaceInfo, PodInfo};

/// The namespace of K3s's CoreDNS pods.
pub const NAMESPACE: &str = "kube-system";
/// The label K3s's CoreDNS pods carry (key, value).
pub const LABEL: (&str, &str) = ("k8s-app", "kube-dns");
/// The name the stand-in pod is planned under: not a valid Pod name (a
/// `:`), so no real pod can share its key.
pub const POD_NAME: &str = "nodenet:cluster-dns";

/// The stand-in pod for the cluster DNS `addresses`; `None` when DNS is not
/// served by nodenet on this node (disabled: no address answers).
pub fn stand_in(addresses: &[IpAddr]) -> Option<PodInfo> {
    if addresses.is_empty() {
        return None;
    }
    let mut ips = addresses.to_vec();
    ips.sort();
    ips.dedup();
    Some(PodInfo {
        namespace: NAMESPACE.into(),
        name: POD_NAME.into(),
        node: None,
        ips,
        labels: Labels::from([(LABEL.0.to_string(), LABEL.1.to_string())]),
        host_network: false,
        terminal: false,
        ports: vec![named("dns", Protocol::Udp), named("dns-tcp", Protocol::Tcp)],
    })
}

/// `kube-system` as a namespace view, for clusters whose stores do not hold
/// it (a real control plane always has it).
pub fn namespace() -> NamespaceInfo {
    NamespaceInfo::new(NAMESPACE, Labels::new())
}

/// Adds the stand-in for `addresses` to full-build views, with
/// `kube-system` when the namespaces lack it.
pub fn add_to(pods: &mut Vec<PodInfo>, namespaces: &mut Vec<NamespaceInfo>, addresses: &[IpAddr]) {
    let Some(pod) = stand_in(addresses) else {
        return;
    };
    pods.push(pod);
    if !namespaces.iter().any(|n| n.name == NAMESPACE) {
        namespaces.push(namespace());
    }
}

fn named(name: &str, protocol: Protocol) -> NamedPort {
    NamedPort {
        name: name.into(),
        protocol,
        port: 53,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_like_a_coredns_pod_and_is_a_peer_only() {
        let ip: IpAddr = "10.43.0.10".parse().expect("ip");
        let pod = stand_in(&[ip, ip]).expect("an address");
        assert_eq!(pod.ips, [ip]);
        assert!(pod.is_endpoint());
        assert_eq!(pod.node, None, "never local, so never a target");
        assert_eq!(
            pod.labels.get("k8s-app").map(String::as_str),
            Some("kube-dns")
        );
        let names: Vec<_> = pod.ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["dns", "dns-tcp"]);
        assert_eq!(stand_in(&[]), None);
    }
}
