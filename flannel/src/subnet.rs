//! `subnet.env`: the file that tells the CNI plugin this node's pod subnet.
//!
//! Same keys, order and value forms as K3s writes to `/run/flannel/subnet.env`
//! (`FLANNEL_SUBNET` is the pod CIDR with host part 1, i.e. the gateway).

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Contents of subnet.env.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetEnv {
    /// IPv4 cluster CIDR (`FLANNEL_NETWORK`).
    pub network: Option<Ipv4Net>,
    /// Own IPv4 pod CIDR in gateway form, e.g. `10.42.0.1/24` (`FLANNEL_SUBNET`).
    pub subnet: Option<Ipv4Net>,
    /// IPv6 cluster CIDR (`FLANNEL_IPV6_NETWORK`).
    pub ipv6_network: Option<Ipv6Net>,
    /// Own IPv6 pod CIDR in gateway form (`FLANNEL_IPV6_SUBNET`).
    pub ipv6_subnet: Option<Ipv6Net>,
    /// MTU for pods, veths and cni0 (`FLANNEL_MTU`).
    pub mtu: u32,
    /// `FLANNEL_IPMASQ` (K3s always writes true).
    pub ipmasq: bool,
}

/// Errors reading, parsing, writing or deriving subnet.env.
#[derive(Debug, thiserror::Error)]
pub enum SubnetEnvError {
    /// The file does not exist (the daemon has not written it yet).
    #[error("{path} does not exist")]
    NotFound { path: PathBuf },
    /// Reading or writing failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A required key is absent.
    #[error("subnet.env: {key} is missing")]
    Missing { key: &'static str },
    /// A key has a value that does not parse.
    #[error("subnet.env: {key}={value:?} is invalid: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// The Node's pod CIDRs do not fit the cluster CIDRs.
    #[error("Node {field} {value:?}: {reason}")]
    PodCidr {
        field: &'static str,
        value: String,
        reason: String,
    },
}

impl SubnetEnv {
    /// Renders the file: `KEY=VALUE` lines in K3s's order, absent families omitted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: String| out.push_str(&format!("{key}={value}\n"));
        if let Some(net) = self.network {
            line("FLANNEL_NETWORK", net.to_string());
        }
        if let Some(net) = self.subnet {
            line("FLANNEL_SUBNET", net.to_string());
        }
        if let Some(net) = self.ipv6_network {
            line("FLANNEL_IPV6_NETWORK", net.to_string());
        }
        if let Some(net) = self.ipv6_subnet {
            line("FLANNEL_IPV6_SUBNET", net.to_string());
        }
        line("FLANNEL_MTU", self.mtu.to_string());
        line("FLANNEL_IPMASQ", self.ipmasq.to_string());
        out
    }

    /// Parses the file. Requires one of NETWORK/IPV6_NETWORK, one of
    /// SUBNET/IPV6_SUBNET, MTU and IPMASQ (as flannel's plugin does).
    pub fn parse(text: &str) -> Result<SubnetEnv, SubnetEnvError> {
        let mut raw = RawEnv::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(invalid(line, "", "expected KEY=VALUE"));
            };
            raw.set(key.trim(), value.trim())?;
        }
        raw.finish()
    }

    /// Reads and parses `path`; a missing file is [`SubnetEnvError::NotFound`].
    pub fn read(path: &Path) -> Result<SubnetEnv, SubnetEnvError> {
        match std::fs::read_to_string(path) {
            Ok(text) => SubnetEnv::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SubnetEnvError::NotFound {
                path: path.to_path_buf(),
            }),
            Err(source) => Err(io_err("read", path, source)),
        }
    }

    /// Writes the file atomically (temp file in the same directory, fsync,
    /// rename), creating the directory (0755); the file is 0644.
    pub fn write_atomic(&self, path: &Path) -> Result<(), SubnetEnvError> {
        write_file_atomic(path, self.render().as_bytes())
    }

    /// The IPv4 pod CIDR in network form (`10.42.0.0/24`).
    pub fn pod_cidr_v4(&self) -> Option<Ipv4Net> {
        self.subnet.map(|s| s.trunc())
    }

    /// The IPv6 pod CIDR in network form.
    pub fn pod_cidr_v6(&self) -> Option<Ipv6Net> {
        self.ipv6_subnet.map(|s| s.trunc())
    }
}

/// Key/value pairs collected while parsing.
#[derive(Default)]
struct RawEnv {
    network: Option<Ipv4Net>,
    subnet: Option<Ipv4Net>,
    ipv6_network: Option<Ipv6Net>,
    ipv6_subnet: Option<Ipv6Net>,
    mtu: Option<u32>,
    ipmasq: Option<bool>,
}

impl RawEnv {
    fn set(&mut self, key: &str, value: &str) -> Result<(), SubnetEnvError> {
        let bad = |e: &dyn std::fmt::Display| invalid(key, value, &e.to_string());
        match key {
            "FLANNEL_NETWORK" => self.network = Some(value.parse().map_err(|e| bad(&e))?),
            "FLANNEL_SUBNET" => self.subnet = Some(value.parse().map_err(|e| bad(&e))?),
            "FLANNEL_IPV6_NETWORK" => self.ipv6_network = Some(value.parse().map_err(|e| bad(&e))?),
            "FLANNEL_IPV6_SUBNET" => self.ipv6_subnet = Some(value.parse().map_err(|e| bad(&e))?),
            "FLANNEL_MTU" => self.mtu = Some(value.parse().map_err(|e| bad(&e))?),
            "FLANNEL_IPMASQ" => self.ipmasq = Some(value.parse().map_err(|e| bad(&e))?),
            // Unknown keys are tolerated: newer writers may add some.
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<SubnetEnv, SubnetEnvError> {
        let missing = |key| SubnetEnvError::Missing { key };
        if self.network.is_none() && self.ipv6_network.is_none() {
            return Err(missing("FLANNEL_NETWORK (or FLANNEL_IPV6_NETWORK)"));
        }
        if self.subnet.is_none() && self.ipv6_subnet.is_none() {
            return Err(missing("FLANNEL_SUBNET (or FLANNEL_IPV6_SUBNET)"));
        }
        Ok(SubnetEnv {
            network: self.network,
            subnet: self.subnet,
            ipv6_network: self.ipv6_network,
            ipv6_subnet: self.ipv6_subnet,
            mtu: self.mtu.ok_or_else(|| missing("FLANNEL_MTU"))?,
            ipmasq: self.ipmasq.ok_or_else(|| missing("FLANNEL_IPMASQ"))?,
        })
    }
}

/// Derives subnet.env from a Node's pod CIDRs (`spec.podCIDRs`, or
/// `[spec.podCIDR]` when that list is empty) and the cluster CIDRs. Each
/// family present in the cluster CIDRs needs exactly one pod CIDR inside the
/// first cluster CIDR of that family; pod CIDRs of other families are
/// left out. `ipmasq` is always true, as in K3s.
pub fn derive(
    pod_cidrs: &[String],
    cluster_cidrs: &[IpNet],
    mtu: u32,
) -> Result<SubnetEnv, SubnetEnvError> {
    let field = if pod_cidrs.len() > 1 {
        "spec.podCIDRs"
    } else {
        "spec.podCIDR"
    };
    let pod_err = |value: &str, reason: String| SubnetEnvError::PodCidr {
        field,
        value: value.to_string(),
        reason,
    };
    if pod_cidrs.is_empty() || pod_cidrs.len() > 2 {
        let reason = format!("expected 1 or 2 pod CIDRs, got {}", pod_cidrs.len());
        return Err(pod_err(&pod_cidrs.join(","), reason));
    }
    let network = cluster_cidrs.iter().find_map(|n| as_v4(*n));
    let ipv6_network = cluster_cidrs.iter().find_map(|n| as_v6(*n));
    let mut env = SubnetEnv {
        network,
        subnet: None,
        ipv6_network,
        ipv6_subnet: None,
        mtu,
        ipmasq: true,
    };
    for text in pod_cidrs {
        let cidr: IpNet = text
            .trim()
            .parse()
            .map_err(|e| pod_err(text, format!("not a CIDR: {e}")))?;
        place_pod_cidr(&mut env, cidr).map_err(|reason| pod_err(text, reason))?;
    }
    check_families(&env).map_err(|reason| pod_err(&pod_cidrs.join(","), reason))?;
    Ok(env)
}

fn place_pod_cidr(env: &mut SubnetEnv, cidr: IpNet) -> Result<(), String> {
    match cidr {
        // A family the cluster CIDRs leave out is not ours to serve (as
        // flannel reads only the families it enables): a dual-stack Node
        // on an IPv4-only nodenet gets IPv4 pods.
        IpNet::V4(_) if env.network.is_none() => {}
        IpNet::V6(_) if env.ipv6_network.is_none() => {}
        IpNet::V4(v4) => {
            let cluster = env.network.ok_or("no IPv4 cluster CIDR is configured")?;
            if env.subnet.is_some() {
                return Err("more than one IPv4 pod CIDR".into());
            }
            if !cluster.contains(&v4.trunc()) || v4.prefix_len() >= 31 {
                return Err(format!("not a usable subnet of cluster CIDR {cluster}"));
            }
            env.subnet = Some(gateway_v4(v4));
        }
        IpNet::V6(v6) => {
            let cluster = env
                .ipv6_network
                .ok_or("no IPv6 cluster CIDR is configured")?;
            if env.ipv6_subnet.is_some() {
                return Err("more than one IPv6 pod CIDR".into());
            }
            if !cluster.contains(&v6.trunc()) || v6.prefix_len() >= 127 {
                return Err(format!("not a usable subnet of cluster CIDR {cluster}"));
            }
            env.ipv6_subnet = Some(gateway_v6(v6));
        }
    }
    Ok(())
}

fn check_families(env: &SubnetEnv) -> Result<(), String> {
    if env.network.is_some() && env.subnet.is_none() {
        return Err("IPv4 cluster CIDR configured but no IPv4 pod CIDR".into());
    }
    if env.ipv6_network.is_some() && env.ipv6_subnet.is_none() {
        return Err("IPv6 cluster CIDR configured but no IPv6 pod CIDR".into());
    }
    Ok(())
}

/// `10.42.3.0/24` -> `10.42.3.1/24`.
pub fn gateway_v4(cidr: Ipv4Net) -> Ipv4Net {
    let net = u32::from(cidr.network());
    Ipv4Net::new(Ipv4Addr::from(net + 1), cidr.prefix_len()).unwrap_or(cidr)
}

/// `fd00:42::/64` -> `fd00:42::1/64`.
pub fn gateway_v6(cidr: Ipv6Net) -> Ipv6Net {
    let net = u128::from(cidr.network());
    Ipv6Net::new(Ipv6Addr::from(net + 1), cidr.prefix_len()).unwrap_or(cidr)
}

fn as_v4(net: IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(v4) => Some(v4.trunc()),
        IpNet::V6(_) => None,
    }
}

fn as_v6(net: IpNet) -> Option<Ipv6Net> {
    match net {
        IpNet::V6(v6) => Some(v6.trunc()),
        IpNet::V4(_) => None,
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> SubnetEnvError {
    SubnetEnvError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn io_err(op: &'static str, path: &Path, source: std::io::Error) -> SubnetEnvError {
    SubnetEnvError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Atomic replace: readers see the old or the new file, never a torn one.
pub(crate) fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), SubnetEnvError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| io_err("create directory", dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("write", path, e)
    })
}

#[cfg(test)]
mod tests;
