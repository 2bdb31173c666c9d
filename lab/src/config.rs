//! What a lab is built from, and finding the binaries it runs.

use std::path::{Path, PathBuf};

/// Configuration of a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes (node-1..node-N).
    pub nodes: usize,
    /// The `nodenet` binary run on every node (also the CNI plugin).
    pub nodenet_bin: PathBuf,
    /// The `nodenet-workload` binary pods run.
    pub workload_bin: PathBuf,
    /// Extra arguments appended to every `nodenet run`.
    pub nodenet_args: Vec<String>,
    /// Address ranges the API server allocates from (a small
    /// `node_cidr_prefix` lets a test exhaust a node's pod subnet).
    pub api: crate::apiserver::ApiServerConfig,
    /// Dual-stack: an IPv6 underlay beside the IPv4 one, Nodes with both
    /// InternalIPs and both podCIDRs, dual-stack Services (a second service
    /// range, [`DUAL_STACK_SERVICE_CIDR_V6`]), an upstream resolver on both
    /// underlay gateway addresses, and nodenet run with both `--node-ip`s,
    /// `--cluster-cidr` [`DUAL_STACK_CLUSTER_CIDRS`], `--service-cidr`
    /// [`DUAL_STACK_SERVICE_CIDRS`] and `--cluster-dns`
    /// [`DUAL_STACK_CLUSTER_DNS`]. Off by default: the lab is IPv4 only.
    pub dual_stack: bool,
}

/// The pod networks of a dual-stack lab: nodenet's default IPv4 network and
/// a ULA /56, of which each node gets a /64 (K3s's default mask).
pub const DUAL_STACK_CLUSTER_CIDRS: &str = "10.42.0.0/16,fd42::/56";
/// The IPv6 part of [`DUAL_STACK_CLUSTER_CIDRS`].
pub const DUAL_STACK_CLUSTER_CIDR_V6: &str = "fd42::/56";
/// The Service networks of a dual-stack lab: nodenet's default IPv4 range
/// and a ULA /112 (the largest IPv6 service range Kubernetes accepts is a
/// /108; K3s's dual-stack examples use a /112).
pub const DUAL_STACK_SERVICE_CIDRS: &str = "10.43.0.0/16,fd43::/112";
/// The IPv6 part of [`DUAL_STACK_SERVICE_CIDRS`].
pub const DUAL_STACK_SERVICE_CIDR_V6: &str = "fd43::/112";
/// The cluster DNS addresses of a dual-stack lab, one per service range
/// (the tenth address of each, K3s's convention).
pub const DUAL_STACK_CLUSTER_DNS: &str = "10.43.0.10,fd43::a";

/// The binaries were not found.
#[derive(Debug, thiserror::Error)]
#[error("{name} binary not found ({searched}): run cargo build --workspace first, or set {env}")]
pub struct MissingBinary {
    pub name: &'static str,
    pub env: &'static str,
    pub searched: String,
}

fn find(name: &'static str, env: &'static str) -> Result<PathBuf, MissingBinary> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(MissingBinary {
                name,
                env,
                searched: format!("{env}={}", p.display()),
            })
        };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dirs: Vec<&Path> = exe.ancestors().skip(1).take(3).collect();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| MissingBinary {
            name,
            env,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl LabConfig {
    /// Finds `nodenet` and `nodenet-workload` beside the running executable
    /// (integration tests run from target/debug/deps) or via NODENET_BIN /
    /// NODENET_WORKLOAD_BIN.
    pub fn from_target_dir(nodes: usize) -> anyhow::Result<Self> {
        Ok(LabConfig {
            nodes,
            nodenet_bin: find("nodenet", "NODENET_BIN")?,
            workload_bin: find("nodenet-workload", "NODENET_WORKLOAD_BIN")?,
            nodenet_args: Vec::new(),
            api: crate::apiserver::ApiServerConfig::default(),
            dual_stack: false,
        })
    }

    /// The same configuration made dual-stack (see [`LabConfig::dual_stack`]).
    pub fn with_dual_stack(mut self) -> Self {
        self.dual_stack = true;
        self
    }

    /// What the API server allocates from: `api`, and in a dual-stack lab
    /// an IPv6 pod range and an IPv6 service range too
    /// ([`DUAL_STACK_CLUSTER_CIDR_V6`], [`DUAL_STACK_SERVICE_CIDR_V6`]
    /// unless `api` names them).
    pub fn api_config(&self) -> crate::apiserver::ApiServerConfig {
        let mut api = self.api.clone();
        if self.dual_stack {
            if api.cluster_cidr_v6.is_none() {
                api.cluster_cidr_v6 = DUAL_STACK_CLUSTER_CIDR_V6.parse().ok();
            }
            if api.service_cidr_v6.is_none() {
                api.service_cidr_v6 = DUAL_STACK_SERVICE_CIDR_V6.parse().ok();
            }
        }
        api
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;
    use std::net::IpAddr;

    #[test]
    fn dual_stack_addresses_agree_with_each_other() {
        let services: Vec<IpNet> = DUAL_STACK_SERVICE_CIDRS
            .split(',')
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(services[1], DUAL_STACK_SERVICE_CIDR_V6.parse().unwrap());
        for (dns, range) in DUAL_STACK_CLUSTER_DNS.split(',').zip(&services) {
            assert!(range.contains(&dns.parse::<IpAddr>().unwrap()), "{dns}");
        }
        let cfg = LabConfig {
            nodes: 1,
            nodenet_bin: "/x".into(),
            workload_bin: "/y".into(),
            nodenet_args: Vec::new(),
            api: crate::apiserver::ApiServerConfig::default(),
            dual_stack: true,
        };
        let api = cfg.api_config();
        assert_eq!(api.service_cidr_v6, Some(services[1]));
        assert_eq!(api.service_cidr, services[0]);
        assert_eq!(api.cluster_cidr_v6, DUAL_STACK_CLUSTER_CIDR_V6.parse().ok());
        let single = LabConfig {
            dual_stack: false,
            ..cfg
        }
        .api_config();
        assert_eq!(single.service_cidr_v6, None);
    }
}
