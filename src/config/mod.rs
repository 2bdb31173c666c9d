//! The daemon's validated configuration: flags over the `--config` file over
//! defaults, checked as a whole before anything is bound or touched.

pub mod components;
pub mod defaults;
mod error;
pub mod file;
mod net;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use flannel::component::Backend;
use flannel::overlay::wireguard::WireguardMode;
use ipnet::IpNet;

pub use components::Disableable;
pub use error::{ConfigError, EXIT_CONFIG};

use crate::cli::RunArgs;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Directories the daemon writes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
}

/// Overlay options besides the backend (`--flannel-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlannelOptions {
    /// --flannel-iface: the interface whose address is the tunnel endpoint.
    pub iface: Option<String>,
    /// --flannel-external-ip: publish --node-external-ip as the endpoint.
    pub external_ip: bool,
    /// --flannel-ipv6-masq: masquerade IPv6 pod traffic leaving the cluster.
    pub ipv6_masq: bool,
    /// --flannel-wireguard-mode: kernel or user-space WireGuard.
    pub wireguard_mode: WireguardMode,
}

/// A configuration that passed every check. Only [`Config::from_args`]
/// builds one (the private field prevents building it elsewhere), so holding
/// a `Config` means it is valid.
#[derive(Debug, Clone)]
pub struct Config {
    pub kubeconfig: Option<PathBuf>,
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    pub node_external_ips: Vec<IpAddr>,
    pub cluster_cidrs: Vec<IpNet>,
    pub service_cidrs: Vec<IpNet>,
    pub cluster_dns: Vec<IpAddr>,
    pub cluster_domain: String,
    /// `--resolv-conf`; `None`: the node's own resolv.conf.
    pub resolv_conf: Option<std::path::PathBuf>,
    pub disabled: BTreeSet<Disableable>,
    /// `None` for `--flannel-backend=none`: no flannel component at all.
    pub flannel_backend: Option<Backend>,
    pub flannel: FlannelOptions,
    pub paths: Paths,
    pub log_format: LogFormat,
    pub metrics_addr: SocketAddr,
    _validated: (),
}

impl Config {
    /// Reads `--config` (if any), merges the flags over it and validates.
    pub fn from_args(flags: RunArgs) -> Result<Config, ConfigError> {
        let hostname = || std::fs::read_to_string("/proc/sys/kernel/hostname");
        Config::from_args_with(flags, std::env::var("NODE_NAME").ok(), hostname)
    }

    /// [`Config::from_args`] with the environment passed in (for tests).
    pub fn from_args_with(
        flags: RunArgs,
        env_node_name: Option<String>,
        hostname: impl FnOnce() -> std::io::Result<String>,
    ) -> Result<Config, ConfigError> {
        let args = match &flags.config {
            Some(path) => {
                let from_file = file::read(path)?;
                file::merge(flags, from_file)
            }
            None => flags,
        };
        let node_name = node_name(args.node_name.clone(), env_node_name, hostname)?;
        Config::validate(args, node_name)
    }

    fn validate(args: RunArgs, node_name: String) -> Result<Config, ConfigError> {
        let or = |v: &Option<String>, d: &'static str| v.clone().unwrap_or_else(|| d.into());
        let cluster_cidrs = net::cidr_list(
            "cluster-cidr",
            &or(&args.cluster_cidr, defaults::CLUSTER_CIDR),
        )?;
        let service_cidrs = net::cidr_list(
            "service-cidr",
            &or(&args.service_cidr, defaults::SERVICE_CIDR),
        )?;
        net::check_no_overlap(&cluster_cidrs, &service_cidrs)?;
        let dns = or(&args.cluster_dns, defaults::CLUSTER_DNS);
        let cluster_dns = net::ip_list("cluster-dns", Some(&dns))?;
        if cluster_dns.is_empty() {
            return Err(ConfigError::Empty {
                flag: "cluster-dns",
            });
        }
        net::check_dns_in_service(&cluster_dns, &service_cidrs)?;
        let domain = or(&args.cluster_domain, defaults::CLUSTER_DOMAIN);
        let node_external_ips = net::ip_list("node-external-ip", args.node_external_ip.as_deref())?;
        Ok(Config {
            node_ips: net::ip_list("node-ip", args.node_ip.as_deref())?,
            flannel: flannel_options(&args, &node_external_ips, &cluster_cidrs)?,
            node_external_ips,
            cluster_domain: net::dns_name("cluster-domain", &domain)?,
            disabled: disabled(&args)?,
            flannel_backend: backend(&or(&args.flannel_backend, defaults::FLANNEL_BACKEND))?,
            log_format: log_format(&or(&args.log_format, defaults::LOG_FORMAT))?,
            metrics_addr: net::socket_addr(
                "metrics-addr",
                &or(&args.metrics_addr, defaults::METRICS_ADDR),
            )?,
            paths: paths(&args),
            kubeconfig: args.kubeconfig,
            resolv_conf: args.resolv_conf,
            node_name,
            cluster_cidrs,
            service_cidrs,
            cluster_dns,
            _validated: (),
        })
    }

    /// Whether `component` runs (not switched off by --disable).
    pub fn enabled(&self, component: Disableable) -> bool {
        !self.disabled.contains(&component)
    }
}

/// --node-name, else $NODE_NAME, else the hostname (lower-cased, as K3s does).
fn node_name(
    flag: Option<String>,
    env: Option<String>,
    hostname: impl FnOnce() -> std::io::Result<String>,
) -> Result<String, ConfigError> {
    let name = match flag.or(env.filter(|e| !e.is_empty())) {
        Some(name) => name,
        None => hostname()
            .map_err(|e| ConfigError::NoNodeName(e.to_string()))?
            .trim()
            .to_lowercase(),
    };
    net::dns_name("node-name", &name)
}

fn disabled(args: &RunArgs) -> Result<BTreeSet<Disableable>, ConfigError> {
    let mut set = BTreeSet::new();
    for value in &args.disable {
        for name in net::split_list(value) {
            set.insert(Disableable::parse(name)?);
        }
    }
    if args.disable_network_policy {
        set.insert(Disableable::Netpol);
    }
    Ok(set)
}

fn backend(value: &str) -> Result<Option<Backend>, ConfigError> {
    match value {
        "vxlan" => Ok(Some(Backend::Vxlan)),
        "host-gw" => Ok(Some(Backend::HostGw)),
        "wireguard-native" => Ok(Some(Backend::WireguardNative)),
        "none" => Ok(None),
        _ => Err(ConfigError::InvalidChoice {
            flag: "flannel-backend",
            value: value.into(),
            valid: "vxlan, host-gw, wireguard-native, none",
        }),
    }
}

/// The `--flannel-*` options; each must be able to take effect.
fn flannel_options(
    args: &RunArgs,
    node_external_ips: &[IpAddr],
    cluster_cidrs: &[IpNet],
) -> Result<FlannelOptions, ConfigError> {
    let iface = match &args.flannel_iface {
        Some(name) => Some(net::interface_name("flannel-iface", name)?),
        None => None,
    };
    // Both would be silently ignored (as K3s does); an operator setting
    // them expects NAT traversal or IPv6 egress, so say it cannot happen.
    if args.flannel_external_ip && node_external_ips.is_empty() {
        return Err(ConfigError::Requires {
            flag: "flannel-external-ip",
            needs: "--node-external-ip (the address to publish)",
        });
    }
    if args.flannel_ipv6_masq && !cluster_cidrs.iter().any(|c| c.addr().is_ipv6()) {
        return Err(ConfigError::Requires {
            flag: "flannel-ipv6-masq",
            needs: "an IPv6 network in --cluster-cidr",
        });
    }
    Ok(FlannelOptions {
        iface,
        external_ip: args.flannel_external_ip,
        ipv6_masq: args.flannel_ipv6_masq,
        wireguard_mode: wireguard_mode(args)?,
    })
}

/// --flannel-wireguard-mode, which only the WireGuard backend reads.
fn wireguard_mode(args: &RunArgs) -> Result<WireguardMode, ConfigError> {
    let Some(value) = &args.flannel_wireguard_mode else {
        return Ok(WireguardMode::default());
    };
    let mode = value.parse().map_err(|_| ConfigError::InvalidChoice {
        flag: "flannel-wireguard-mode",
        value: value.clone(),
        valid: "auto, kernel, userspace",
    })?;
    if args.flannel_backend.as_deref() != Some("wireguard-native") {
        return Err(ConfigError::Requires {
            flag: "flannel-wireguard-mode",
            needs: "--flannel-backend=wireguard-native",
        });
    }
    Ok(mode)
}

fn log_format(value: &str) -> Result<LogFormat, ConfigError> {
    match value {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(ConfigError::InvalidChoice {
            flag: "log-format",
            value: value.into(),
            valid: "text, json",
        }),
    }
}

fn paths(args: &RunArgs) -> Paths {
    let or = |v: &Option<PathBuf>, d: &str| v.clone().unwrap_or_else(|| PathBuf::from(d));
    Paths {
        data_dir: or(&args.data_dir, defaults::DATA_DIR),
        run_dir: or(&args.run_dir, defaults::RUN_DIR),
        cni_conf_dir: or(&args.cni_conf_dir, defaults::CNI_CONF_DIR),
        cni_bin_dir: or(&args.cni_bin_dir, defaults::CNI_BIN_DIR),
    }
}

#[cfg(test)]
mod tests;
