//! Names accepted by `--disable`.

use std::fmt;

use super::ConfigError;

/// A component that `--disable` can switch off. The overlay (flannel) is
/// switched off with `--flannel-backend=none`, as in K3s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Disableable {
    Servicelb,
    Netpol,
    Dns,
    Ingress,
}

/// Our names and K3s's aliases for them.
const NAMES: &[(&str, Disableable)] = &[
    ("servicelb", Disableable::Servicelb),
    ("netpol", Disableable::Netpol),
    ("dns", Disableable::Dns),
    ("ingress", Disableable::Ingress),
    ("coredns", Disableable::Dns),
    ("traefik", Disableable::Ingress),
];

impl Disableable {
    /// Every component, in start order.
    pub const ALL: [Disableable; 4] = [
        Disableable::Servicelb,
        Disableable::Netpol,
        Disableable::Dns,
        Disableable::Ingress,
    ];

    /// Our name of the component.
    pub fn name(self) -> &'static str {
        match self {
            Disableable::Servicelb => "servicelb",
            Disableable::Netpol => "netpol",
            Disableable::Dns => "dns",
            Disableable::Ingress => "ingress",
        }
    }

    /// Looks a `--disable` value up, K3s aliases included.
    pub fn parse(name: &str) -> Result<Disableable, ConfigError> {
        let wanted = name.trim();
        NAMES
            .iter()
            .find(|(n, _)| *n == wanted)
            .map(|(_, c)| *c)
            .ok_or_else(|| ConfigError::UnknownComponent {
                name: wanted.to_string(),
                valid: NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            })
    }
}

impl fmt::Display for Disableable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
