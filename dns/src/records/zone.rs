//! The cluster zone's fixed settings.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::names::{NameError, OwnedName};

/// TTL of the `dns-version` TXT record (what CoreDNS uses).
pub const VERSION_TTL: u32 = 28800;
/// The schema version of the Kubernetes DNS specification we implement.
pub const SCHEMA_VERSION: &str = "1.1.0";
/// SOA timers (REFRESH, RETRY, EXPIRE), as CoreDNS writes them.
pub const SOA_TIMERS: [u32; 3] = [7200, 1800, 86400];

/// Settings of the cluster zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneConfig {
    /// The cluster domain, e.g. `cluster.local`.
    pub domain: String,
    /// TTL of generated records and of negative answers (SOA minimum).
    pub ttl: u32,
    /// Addresses of `ns.dns.<zone>` (the NS target): where we answer.
    pub ns_addrs: Vec<IpAddr>,
}

impl Default for ZoneConfig {
    fn default() -> Self {
        ZoneConfig {
            domain: "cluster.local".into(),
            ttl: 5,
            ns_addrs: Vec::new(),
        }
    }
}

/// A validated zone.
#[derive(Debug, Clone)]
pub struct Zone {
    name: OwnedName,
    ttl: u32,
    ns_v4: Box<[Ipv4Addr]>,
    ns_v6: Box<[Ipv6Addr]>,
}

impl Zone {
    pub fn new(config: &ZoneConfig) -> Result<Zone, NameError> {
        let name = OwnedName::from_dotted(&config.domain)?;
        if name.label_count() == 0 {
            return Err(NameError::EmptyLabel(config.domain.clone()));
        }
        let mut ns_v4 = Vec::new();
        let mut ns_v6 = Vec::new();
        for ip in &config.ns_addrs {
            match ip {
                IpAddr::V4(a) => ns_v4.push(*a),
                IpAddr::V6(a) => ns_v6.push(*a),
            }
        }
        Ok(Zone {
            name,
            ttl: config.ttl,
            ns_v4: ns_v4.into(),
            ns_v6: ns_v6.into(),
        })
    }

    pub fn name(&self) -> &OwnedName {
        &self.name
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    pub fn ns_v4(&self) -> &[Ipv4Addr] {
        &self.ns_v4
    }

    pub fn ns_v6(&self) -> &[Ipv6Addr] {
        &self.ns_v6
    }
}
