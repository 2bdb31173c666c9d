//! Default values, K3s's where K3s has one.

pub const CLUSTER_CIDR: &str = "10.42.0.0/16";
pub const SERVICE_CIDR: &str = "10.43.0.0/16";
pub const CLUSTER_DNS: &str = "10.43.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
pub const FLANNEL_BACKEND: &str = "vxlan";
pub const DATA_DIR: &str = "/var/lib/nodenet";
pub const RUN_DIR: &str = "/run/nodenet";
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
pub const LOG_FORMAT: &str = "text";
pub const METRICS_ADDR: &str = "127.0.0.1:10260";
