//! The overlay part of the component: one [`Overlay`] pass per wake, the
//! annotation patch for our Node, and reports about skipped peers.

use std::collections::BTreeSet;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::plan::LocalAddrs;
use super::{Context, FlannelConfig, FlannelError, report};
use crate::overlay::plan::SkippedNode;
use crate::overlay::{LocalNode, Overlay, OverlayConfig, OverlayError, ReconcileReport};
use crate::subnet::SubnetEnv;

/// A skipped peer's problem, as reported: (node, field, reason).
type Problem = (String, String, String);

/// Drives the overlay of one component run.
pub struct Driver {
    overlay: Overlay,
    /// Problems reported by the previous pass: each is reported when it
    /// appears, not every pass (a problem that goes away and comes back is
    /// reported again).
    reported: BTreeSet<Problem>,
}

impl Driver {
    /// `None` for a backend the overlay does not implement.
    pub fn new(cfg: &FlannelConfig) -> Driver {
        let backend = cfg.backend.overlay();
        // K3s publishes --node-external-ip only with --flannel-external-ip.
        let public_ip_overwrites = if cfg.external_ip {
            cfg.node_external_ips.clone()
        } else {
            Vec::new()
        };
        let overlay = Overlay::new(OverlayConfig {
            backend,
            cluster_cidrs: cfg.cluster_cidrs.clone(),
            data_dir: cfg.data_dir.clone(),
            ipv6_masq: cfg.ipv6_masq,
            public_ip_overwrites,
        })
        // The read-only UAPI socket lives under our run dir rather than the
        // shared /var/run/wireguard: several nodes of a lab on one machine
        // would collide there, and we write nothing outside dirs we own.
        // Operators read it with `echo get=1 | socat - UNIX:<socket>`.
        .with_wireguard_socket_dir(cfg.run_dir.join("wireguard"))
        .with_wireguard_mode(cfg.wireguard_mode);
        Driver {
            overlay,
            reported: BTreeSet::new(),
        }
    }

    /// One pass over every Node; Ok(true) when the kernel state and our
    /// annotations are right.
    pub async fn pass(
        &mut self,
        ctx: &Context,
        env: &SubnetEnv,
        addrs: &LocalAddrs,
    ) -> Result<bool, FlannelError> {
        let local = LocalNode {
            name: ctx.config.node_name.clone(),
            pod_cidrs: own_pod_cidrs(env),
            public_ipv4: addrs.v4,
            public_ipv6: addrs.v6,
        };
        let nodes: Vec<Node> = ctx
            .nodes
            .store()
            .state()
            .iter()
            .map(|n| Node::clone(n))
            .collect();
        let report = match self.overlay.reconcile(&local, &nodes).await {
            Ok(report) => report,
            Err(OverlayError::LocalPodCidr { node, reason }) => {
                let message = format!("{reason}; the overlay cannot run on this node");
                report::warn_node(ctx, &node, "InvalidPodCIDR", "spec.podCIDRs", message).await;
                return Ok(false);
            }
            Err(err) => return Err(err.into()),
        };
        log_report(&report);
        self.report_skipped(ctx, &report.skipped).await;
        Ok(patch_annotations(ctx, report.annotations_patch).await)
    }

    async fn report_skipped(&mut self, ctx: &Context, skipped: &[SkippedNode]) {
        let mut now = BTreeSet::new();
        for skip in skipped {
            let problem = (skip.name.clone(), skip.field.clone(), skip.reason.clone());
            if self.reported.contains(&problem) || report::skipped_peer(ctx, skip).await {
                now.insert(problem);
            }
        }
        self.reported = now;
    }
}

/// Our pod CIDRs as validated for subnet.env (network address form).
fn own_pod_cidrs(env: &SubnetEnv) -> Vec<IpNet> {
    let v4 = env.subnet.map(|s| IpNet::V4(s.trunc()));
    let v6 = env.ipv6_subnet.map(|s| IpNet::V6(s.trunc()));
    v4.into_iter().chain(v6).collect()
}

fn log_report(report: &ReconcileReport) {
    let c = report.changes;
    if report.changed_kernel() {
        tracing::info!(component = "flannel", peers = report.peers.len(), skipped = report.skipped.len(),
            written = c.written, removed = c.removed, devices_created = ?report.devices_created,
            devices_removed = ?report.devices_removed, masq_applied = report.masq_applied, "overlay updated");
    } else {
        tracing::debug!(
            component = "flannel",
            peers = report.peers.len(),
            skipped = report.skipped.len(),
            "overlay unchanged"
        );
    }
}

/// Sends the merge patch of our Node's annotations; false when it failed
/// (peers cannot reach us until it succeeds; the next pass retries).
async fn patch_annotations(ctx: &Context, patch: Option<Value>) -> bool {
    let Some(patch) = patch else {
        return true;
    };
    let name = &ctx.config.node_name;
    let api: Api<Node> = Api::all(ctx.client.clone());
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(component = "flannel", node = %name, patch = %patch, "annotated our Node");
            true
        }
        Err(err) => {
            tracing::warn!(component = "flannel", node = %name, error = %err, "cannot annotate our Node; retrying on the next pass");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use super::*;
    use crate::component::Backend;
    use crate::overlay;

    fn config(backend: Backend, external_ip: bool) -> FlannelConfig {
        FlannelConfig {
            node_name: "node-1".into(),
            node_ips: vec!["192.168.1.5".parse().expect("ip")],
            node_external_ips: vec![
                "203.0.113.5".parse().expect("ip"),
                "2001:db8::5".parse().expect("ip"),
            ],
            cluster_cidrs: vec!["10.42.0.0/16".parse().expect("net")],
            backend,
            iface: None,
            external_ip,
            ipv6_masq: false,
            wireguard_mode: Default::default(),
            run_dir: PathBuf::from("/run/nodenet"),
            data_dir: PathBuf::from("/var/lib/nodenet"),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dir: PathBuf::from("/opt/cni/bin"),
        }
    }

    #[test]
    fn external_ips_become_overwrites_only_with_the_flag() {
        let driver = Driver::new(&config(Backend::Vxlan, true));
        let want: Vec<IpAddr> = vec![
            "203.0.113.5".parse().expect("ip"),
            "2001:db8::5".parse().expect("ip"),
        ];
        assert_eq!(driver.overlay.config().public_ip_overwrites, want);
        let driver = Driver::new(&config(Backend::HostGw, false));
        assert!(driver.overlay.config().public_ip_overwrites.is_empty());
        assert_eq!(driver.overlay.config().backend, overlay::Backend::HostGw);
    }

    #[test]
    fn wireguard_native_runs_the_wireguard_overlay() {
        let driver = Driver::new(&config(Backend::WireguardNative, false));
        assert_eq!(driver.overlay.config().backend, overlay::Backend::Wireguard);
    }

    #[test]
    fn own_pod_cidrs_are_network_addresses() {
        let env = crate::subnet::derive(
            &["10.42.3.0/24".into()],
            &["10.42.0.0/16".parse().expect("net")],
            1450,
        )
        .expect("valid");
        let want: Vec<IpNet> = vec!["10.42.3.0/24".parse().expect("net")];
        assert_eq!(own_pod_cidrs(&env), want);
    }
}
