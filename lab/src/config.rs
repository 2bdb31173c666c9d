//! What a lab is built from, and finding the binaries it runs.

use std::net::IpAddr;
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
    /// IPv6-only cluster (excludes `dual_stack`): pod CIDR
    /// [`IPV6_ONLY_CLUSTER_CIDR`] only, each Node one IPv6 podCIDR and
    /// only its IPv6 InternalIP, pods with only an IPv6 address, Services
    /// from [`IPV6_ONLY_SERVICE_CIDR`], and nodenet run with only IPv6
    /// `--node-ip`, `--cluster-cidr`, `--service-cidr` and `--cluster-dns`
    /// (see [`LabConfig::ipv6_only_args`]). The nodes reach the API server
    /// over IPv6 ([`crate::topology::UNDERLAY_GATEWAY_V6`]). The underlay
    /// itself keeps its IPv4 addresses beside the IPv6 ones (as on a
    /// dual-stack host running an IPv6-only cluster): nothing of the
    /// cluster uses them, and nodenet must not publish them.
    pub ipv6_only: bool,
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
/// The pod network of an IPv6-only lab: the IPv6 half of the dual-stack one.
pub const IPV6_ONLY_CLUSTER_CIDR: &str = DUAL_STACK_CLUSTER_CIDR_V6;
/// The Service network of an IPv6-only lab.
pub const IPV6_ONLY_SERVICE_CIDR: &str = DUAL_STACK_SERVICE_CIDR_V6;
/// The cluster DNS address of an IPv6-only lab (the tenth of its range).
pub const IPV6_ONLY_CLUSTER_DNS: &str = "fd43::a";

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
            ipv6_only: false,
        })
    }

    /// The same configuration made dual-stack (see [`LabConfig::dual_stack`]).
    pub fn with_dual_stack(mut self) -> Self {
        self.dual_stack = true;
        self.ipv6_only = false;
        self
    }

    /// The same configuration made IPv6-only (see [`LabConfig::ipv6_only`]).
    pub fn with_ipv6_only(mut self) -> Self {
        self.ipv6_only = true;
        self.dual_stack = false;
        self
    }

    /// Whether the underlay carries IPv6 (dual-stack and IPv6-only labs).
    pub fn underlay_ipv6(&self) -> bool {
        self.dual_stack || self.ipv6_only
    }

    /// A node's InternalIPs and `--node-ip`s: all its underlay addresses,
    /// or only the IPv6 one in an IPv6-only lab.
    pub fn node_ips(&self, underlay: &[IpAddr]) -> Vec<IpAddr> {
        underlay
            .iter()
            .copied()
            .filter(|ip| !self.ipv6_only || ip.is_ipv6())
            .collect()
    }

    /// The `nodenet run` arguments an IPv6-only lab adds before
    /// `nodenet_args`: the IPv6 `--cluster-cidr`, `--service-cidr` and
    /// `--cluster-dns`, each unless `nodenet_args` sets it already (a
    /// test's own value wins). Empty for other labs.
    pub fn ipv6_only_args(&self) -> Vec<String> {
        if !self.ipv6_only {
            return Vec::new();
        }
        let set = |flag: &str| self.nodenet_args.iter().any(|a| a.starts_with(flag));
        [
            ("--cluster-cidr", IPV6_ONLY_CLUSTER_CIDR),
            ("--service-cidr", IPV6_ONLY_SERVICE_CIDR),
            ("--cluster-dns", IPV6_ONLY_CLUSTER_DNS),
        ]
        .into_iter()
        .filter(|(flag, _)| !set(flag))
        .map(|(flag, value)| format!("{flag}={value}"))
        .collect()
    }

    /// What the API server allocates from: `api`, and in a dual-stack lab
    /// an IPv6 pod range and an IPv6 service range too
    /// ([`DUAL_STACK_CLUSTER_CIDR_V6`], [`DUAL_STACK_SERVICE_CIDR_V6`]
    /// unless `api` names them).
    pub fn api_config(&self) -> crate::apiserver::ApiServerConfig {
        let mut api = self.api.clone();
        if self.ipv6_only {
            make_ipv6_only(&mut api);
        }
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

/// An IPv6-only lab's API server allocates IPv6 only: its IPv4 ranges
/// (the defaults) become [`IPV6_ONLY_CLUSTER_CIDR`] (a block of
/// `node_cidr_prefix_v6`, /64 by default, per node) and
/// [`IPV6_ONLY_SERVICE_CIDR`]; IPv6 ranges a test chose are kept.
fn make_ipv6_only(api: &mut crate::apiserver::ApiServerConfig) {
    if api.cluster_cidr.addr().is_ipv4() {
        api.cluster_cidr = api.cluster_cidr_v6.unwrap_or_else(|| {
            IPV6_ONLY_CLUSTER_CIDR
                .parse()
                .expect("static CIDR is valid")
        });
        api.node_cidr_prefix = api.node_cidr_prefix_v6;
    }
    if api.service_cidr.addr().is_ipv4() {
        api.service_cidr = api.service_cidr_v6.unwrap_or_else(|| {
            IPV6_ONLY_SERVICE_CIDR
                .parse()
                .expect("static CIDR is valid")
        });
    }
    api.cluster_cidr_v6 = None;
    api.service_cidr_v6 = None;
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
            ipv6_only: false,
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

    #[test]
    fn ipv6_only_allocates_flags_and_addresses_ipv6_only() {
        let cfg = LabConfig {
            nodes: 2,
            nodenet_bin: "/x".into(),
            workload_bin: "/y".into(),
            nodenet_args: vec!["--flannel-backend=host-gw".into()],
            api: crate::apiserver::ApiServerConfig::default(),
            dual_stack: true,
            ipv6_only: false,
        }
        .with_ipv6_only();
        assert!(!cfg.dual_stack && cfg.underlay_ipv6());
        let api = cfg.api_config();
        assert_eq!(api.cluster_cidr, "fd42::/56".parse::<IpNet>().unwrap());
        assert_eq!(api.node_cidr_prefix, 64);
        assert_eq!(api.service_cidr, "fd43::/112".parse::<IpNet>().unwrap());
        assert_eq!((api.cluster_cidr_v6, api.service_cidr_v6), (None, None));
        let underlay: Vec<IpAddr> =
            vec!["172.30.0.11".parse().unwrap(), "fd30::11".parse().unwrap()];
        assert_eq!(cfg.node_ips(&underlay), vec![underlay[1]]);
        assert_eq!(
            cfg.ipv6_only_args(),
            [
                "--cluster-cidr=fd42::/56",
                "--service-cidr=fd43::/112",
                "--cluster-dns=fd43::a"
            ]
        );
        // A test's own flag wins; other labs add nothing.
        let mut own = cfg.clone();
        own.nodenet_args.push("--cluster-dns=fd43::53".into());
        assert_eq!(own.ipv6_only_args().len(), 2);
        let dual = cfg.with_dual_stack();
        assert!(dual.ipv6_only_args().is_empty());
        assert_eq!(dual.node_ips(&underlay), underlay);
    }
}
