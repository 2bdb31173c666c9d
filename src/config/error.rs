//! Configuration errors; each names the flag (= config file key) at fault.

use std::path::PathBuf;

/// Exit status for a configuration error (EX_USAGE, as linkerd2-proxy uses).
pub const EXIT_CONFIG: u8 = 64;

/// Why the configuration was rejected. Nothing has been touched yet when one
/// of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The --config file could not be read.
    #[error("--config {path}: cannot read: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The --config file is not valid YAML or has an unknown key.
    #[error("--config {path}: {source}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// A value is not a CIDR, or has host bits set.
    #[error("--{flag}: {value:?} is not a valid CIDR: {reason}")]
    InvalidCidr {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// A value is not an IP address.
    #[error("--{flag}: {value:?} is not a valid IP address")]
    InvalidIp { flag: &'static str, value: String },
    /// More than one value of the same IP family (dual-stack allows one each).
    #[error(
        "--{flag}: more than one IPv{family} value ({first} and {second}); give at most one per family"
    )]
    DuplicateFamily {
        flag: &'static str,
        family: u8,
        first: String,
        second: String,
    },
    /// A list flag that needs at least one value got none.
    #[error("--{flag}: no value given")]
    Empty { flag: &'static str },
    /// Pod and Service networks overlap.
    #[error("--cluster-cidr {cluster} overlaps --service-cidr {service}")]
    Overlap { cluster: String, service: String },
    /// The DNS service IP is outside every Service CIDR of its family.
    #[error("--cluster-dns {dns} is not inside --service-cidr {service}")]
    DnsOutsideServiceCidr { dns: String, service: String },
    /// A name given to --disable is not a component.
    #[error("--disable: unknown component {name:?}; valid names: {valid}")]
    UnknownComponent { name: String, valid: String },
    /// A value outside a fixed set of choices.
    #[error("--{flag}: invalid value {value:?}; valid values: {valid}")]
    InvalidChoice {
        flag: &'static str,
        value: String,
        valid: &'static str,
    },
    /// Not an `IP:PORT` socket address.
    #[error("--{flag}: {value:?} is not an IP:PORT address")]
    InvalidSocketAddr { flag: &'static str, value: String },
    /// Not a DNS-1123 name (node name, cluster domain).
    #[error(
        "--{flag}: {value:?} is not a valid DNS name (lower-case letters, digits, '-' and '.')"
    )]
    InvalidName { flag: &'static str, value: String },
    /// Not a usable Linux interface name.
    #[error("--{flag}: {value:?} is not a valid interface name: {reason}")]
    InvalidInterface {
        flag: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A flag that has no effect without another setting.
    #[error("--{flag} needs {needs}")]
    Requires {
        flag: &'static str,
        needs: &'static str,
    },
    /// No node name: no flag, no NODE_NAME, and the hostname is unreadable.
    #[error("--node-name: not given, NODE_NAME is unset and the hostname cannot be read: {0}")]
    NoNodeName(String),
}
