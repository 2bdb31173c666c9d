//! Command-line surface: `nodenet run|agent` and `nodenet cleanup`.
//!
//! Values are kept as given (strings, options) so that a flag that was not
//! passed can fall back to the config file and then to the default; parsing
//! and validation happen in [`crate::config`], which names the flag on error.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// nodenet: one per-node daemon for Kubernetes networking.
#[derive(Debug, Parser)]
#[command(name = "nodenet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node daemon with its enabled components.
    #[command(visible_alias = "agent")]
    Run(Box<RunArgs>),
    /// Remove the kernel state and files nodenet created on this node.
    Cleanup(CleanupArgs),
}

/// Flags of `nodenet run`, named as K3s names them.
#[derive(Debug, Default, Clone, Args)]
pub struct RunArgs {
    /// YAML file with the same keys as these flags; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Kubeconfig of the API server [default: in-cluster, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Name of this Node object [default: $NODE_NAME, else the hostname].
    #[arg(long)]
    pub node_name: Option<String>,
    /// This node's IP address(es), comma-separated, one per family.
    #[arg(long, value_name = "IP[,IP]")]
    pub node_ip: Option<String>,
    /// This node's external IP address(es), comma-separated, one per family.
    #[arg(long, value_name = "IP[,IP]")]
    pub node_external_ip: Option<String>,
    /// Pod network CIDR(s), one per family [default: 10.42.0.0/16].
    #[arg(long, value_name = "CIDR[,CIDR]")]
    pub cluster_cidr: Option<String>,
    /// Service CIDR(s), one per family [default: 10.43.0.0/16].
    #[arg(long, value_name = "CIDR[,CIDR]")]
    pub service_cidr: Option<String>,
    /// Cluster DNS service IP(s) [default: 10.43.0.10].
    #[arg(long, value_name = "IP[,IP]")]
    pub cluster_dns: Option<String>,
    /// Cluster domain [default: cluster.local].
    #[arg(long)]
    pub cluster_domain: Option<String>,
    /// Upstream resolvers for names outside the cluster domain
    /// [default: /etc/resolv.conf, following systemd-resolved's file].
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<std::path::PathBuf>,
    /// Components not to run (servicelb, netpol, dns, ingress; K3s names
    /// traefik and coredns accepted); comma-separated, repeatable.
    #[arg(long, value_name = "NAME[,NAME]")]
    pub disable: Vec<String>,
    /// Do not run the network policy component (same as --disable=netpol).
    #[arg(long)]
    pub disable_network_policy: bool,
    /// Overlay backend: vxlan, host-gw, wireguard-native or none [default: vxlan].
    #[arg(long)]
    pub flannel_backend: Option<String>,
    /// Interface carrying the overlay [default: the one holding --node-ip].
    #[arg(long, value_name = "NAME")]
    pub flannel_iface: Option<String>,
    /// Publish --node-external-ip as the overlay endpoint (flannel's
    /// public-ip-overwrite annotations), for nodes reached through NAT.
    #[arg(long)]
    pub flannel_external_ip: bool,
    /// Masquerade IPv6 pod traffic leaving the cluster.
    #[arg(long)]
    pub flannel_ipv6_masq: bool,
    /// Who runs wireguard-native's devices: auto (the kernel module when
    /// the kernel has it, user space otherwise), kernel, userspace
    /// [default: auto].
    #[arg(long, value_name = "MODE")]
    pub flannel_wireguard_mode: Option<String>,
    /// State directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Runtime directory (subnet.env) [default: /run/nodenet].
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// CNI configuration directory [default: /etc/cni/net.d].
    #[arg(long, value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin binary directory [default: /opt/cni/bin].
    #[arg(long, value_name = "DIR")]
    pub cni_bin_dir: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
    /// Listen address of /healthz, /readyz and /metrics [default: 127.0.0.1:10260].
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_addr: Option<String>,
}

/// Flags of `nodenet cleanup`.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// State directory.
    #[arg(long, value_name = "DIR", default_value = crate::config::defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Runtime directory.
    #[arg(long, value_name = "DIR", default_value = crate::config::defaults::RUN_DIR)]
    pub run_dir: PathBuf,
    /// CNI configuration directory.
    #[arg(long, value_name = "DIR", default_value = crate::config::defaults::CNI_CONF_DIR)]
    pub cni_conf_dir: PathBuf,
    /// CNI plugin binary directory.
    #[arg(long, value_name = "DIR", default_value = crate::config::defaults::CNI_BIN_DIR)]
    pub cni_bin_dir: PathBuf,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    pub log_format: String,
}
