//! The `--config` YAML file (K3s config.yaml style) and its merge with flags.
//!
//! Keys are the flag names without dashes in front (`cluster-cidr: ...`).
//! List-valued keys take a YAML list or a comma-separated string. A flag
//! given on the command line replaces the file's value (lists included, as
//! K3s does for keys without a `+` suffix).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::cli::RunArgs;

/// A scalar or a list in the YAML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// Flattens to the comma-separated form the flags use.
    fn joined(self) -> String {
        match self {
            OneOrMany::One(value) => value,
            OneOrMany::Many(values) => values.join(","),
        }
    }
}

/// The file's contents; unknown keys are an error so typos do not pass.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FileConfig {
    pub kubeconfig: Option<PathBuf>,
    pub node_name: Option<String>,
    pub node_ip: Option<OneOrMany>,
    pub node_external_ip: Option<OneOrMany>,
    pub cluster_cidr: Option<OneOrMany>,
    pub service_cidr: Option<OneOrMany>,
    pub cluster_dns: Option<OneOrMany>,
    pub cluster_domain: Option<String>,
    pub resolv_conf: Option<std::path::PathBuf>,
    pub disable: Option<OneOrMany>,
    pub disable_network_policy: Option<bool>,
    pub flannel_backend: Option<String>,
    pub flannel_iface: Option<String>,
    pub flannel_external_ip: Option<bool>,
    pub flannel_ipv6_masq: Option<bool>,
    pub flannel_wireguard_mode: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub run_dir: Option<PathBuf>,
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bin_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    pub metrics_addr: Option<String>,
}

/// Reads and parses the file at `path`.
pub fn read(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses file contents (an empty file is an empty config).
pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    serde_yaml::from_str(text).map_err(|source| ConfigError::ParseFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Flags over file: the result holds, per key, the flag if given, else the
/// file's value, else nothing (the default is applied by validation).
pub fn merge(flags: RunArgs, file: FileConfig) -> RunArgs {
    let list = |flag: Option<String>, file: Option<OneOrMany>| flag.or(file.map(OneOrMany::joined));
    let disable = if flags.disable.is_empty() {
        file.disable.map(|d| vec![d.joined()]).unwrap_or_default()
    } else {
        flags.disable
    };
    RunArgs {
        config: flags.config,
        kubeconfig: flags.kubeconfig.or(file.kubeconfig),
        node_name: flags.node_name.or(file.node_name),
        node_ip: list(flags.node_ip, file.node_ip),
        node_external_ip: list(flags.node_external_ip, file.node_external_ip),
        cluster_cidr: list(flags.cluster_cidr, file.cluster_cidr),
        service_cidr: list(flags.service_cidr, file.service_cidr),
        cluster_dns: list(flags.cluster_dns, file.cluster_dns),
        cluster_domain: flags.cluster_domain.or(file.cluster_domain),
        resolv_conf: flags.resolv_conf.or(file.resolv_conf),
        disable,
        disable_network_policy: flags.disable_network_policy
            || file.disable_network_policy.unwrap_or(false),
        flannel_backend: flags.flannel_backend.or(file.flannel_backend),
        flannel_iface: flags.flannel_iface.or(file.flannel_iface),
        // A boolean flag can only switch on; absent, the file decides.
        flannel_external_ip: flags.flannel_external_ip || file.flannel_external_ip.unwrap_or(false),
        flannel_ipv6_masq: flags.flannel_ipv6_masq || file.flannel_ipv6_masq.unwrap_or(false),
        flannel_wireguard_mode: flags.flannel_wireguard_mode.or(file.flannel_wireguard_mode),
        data_dir: flags.data_dir.or(file.data_dir),
        run_dir: flags.run_dir.or(file.run_dir),
        cni_conf_dir: flags.cni_conf_dir.or(file.cni_conf_dir),
        cni_bin_dir: flags.cni_bin_dir.or(file.cni_bin_dir),
        log_format: flags.log_format.or(file.log_format),
        metrics_addr: flags.metrics_addr.or(file.metrics_addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> FileConfig {
        parse(Path::new("test.yaml"), text).expect("valid YAML")
    }

    #[test]
    fn lists_take_yaml_lists_or_strings() {
        let f = file("disable: [traefik, servicelb]\ncluster-cidr: 10.42.0.0/16,fd00:42::/56\n");
        let merged = merge(RunArgs::default(), f);
        assert_eq!(merged.disable, vec!["traefik,servicelb".to_string()]);
        assert_eq!(
            merged.cluster_cidr.as_deref(),
            Some("10.42.0.0/16,fd00:42::/56")
        );
        let f = file("disable: coredns\n");
        assert_eq!(
            merge(RunArgs::default(), f).disable,
            vec!["coredns".to_string()]
        );
    }

    #[test]
    fn flags_override_file_values() {
        let f = file(
            "cluster-cidr: 10.50.0.0/16\nnode-name: from-file\ndisable: [dns]\nflannel-backend: host-gw\n",
        );
        let flags = RunArgs {
            cluster_cidr: Some("10.60.0.0/16".into()),
            disable: vec!["ingress".into()],
            ..RunArgs::default()
        };
        let merged = merge(flags, f);
        assert_eq!(merged.cluster_cidr.as_deref(), Some("10.60.0.0/16"));
        assert_eq!(merged.node_name.as_deref(), Some("from-file"));
        assert_eq!(merged.disable, vec!["ingress".to_string()]);
        assert_eq!(merged.flannel_backend.as_deref(), Some("host-gw"));
    }

    #[test]
    fn disable_network_policy_from_file_or_flag() {
        let merged = merge(RunArgs::default(), file("disable-network-policy: true\n"));
        assert!(merged.disable_network_policy);
        let flags = RunArgs {
            disable_network_policy: true,
            ..RunArgs::default()
        };
        assert!(merge(flags, FileConfig::default()).disable_network_policy);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse(Path::new("c.yaml"), "cluster-cdir: 10.42.0.0/16\n").expect_err("typo");
        let text = err.to_string();
        assert!(
            text.contains("c.yaml") && text.contains("cluster-cdir"),
            "{text}"
        );
    }

    #[test]
    fn empty_file_is_empty_config() {
        let merged = merge(RunArgs::default(), file("\n"));
        assert!(merged.cluster_cidr.is_none() && merged.disable.is_empty());
    }
}
