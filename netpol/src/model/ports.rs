//! NetworkPolicyPort entries: protocol, numeric port / range, named port.

use k8s_openapi::api::networking::v1::NetworkPolicyPort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A transport protocol NetworkPolicy knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Parses the API spelling; `None` (absent) means TCP.
    pub fn parse(raw: Option<&str>) -> Result<Protocol, String> {
        match raw {
            None | Some("TCP") => Ok(Protocol::Tcp),
            Some("UDP") => Ok(Protocol::Udp),
            Some("SCTP") => Ok(Protocol::Sctp),
            Some(other) => Err(format!("unknown protocol {other:?} (TCP, UDP, SCTP)")),
        }
    }

    /// The nft `inet_proto` keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One validated port entry of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Port {
    /// Every port of the protocol (`port` absent).
    All(Protocol),
    /// An inclusive range; a single port has `from == to`.
    Range {
        protocol: Protocol,
        from: u16,
        to: u16,
    },
    /// A container port name, resolved on the destination pod.
    Named { protocol: Protocol, name: String },
}

/// Validates one entry; errors are (field suffix, reason).
pub fn parse_port(raw: &NetworkPolicyPort) -> Result<Port, (String, String)> {
    let protocol = Protocol::parse(raw.protocol.as_deref()).map_err(|r| ("protocol".into(), r))?;
    match (&raw.port, raw.end_port) {
        (None, None) => Ok(Port::All(protocol)),
        (None, Some(_)) => Err(("endPort".into(), "endPort requires a numeric port".into())),
        (Some(IntOrString::String(name)), end) => named(protocol, name, end),
        (Some(IntOrString::Int(n)), end) => numeric(protocol, *n, end),
    }
}

fn named(protocol: Protocol, name: &str, end: Option<i32>) -> Result<Port, (String, String)> {
    if end.is_some() {
        let reason = format!("endPort cannot be used with the named port {name:?}");
        return Err(("endPort".into(), reason));
    }
    // A string of digits is how some clients send numbers.
    if let Ok(n) = name.parse::<i32>() {
        return numeric(protocol, n, None);
    }
    if name.is_empty() {
        return Err(("port".into(), "named port must not be empty".into()));
    }
    Ok(Port::Named {
        protocol,
        name: name.to_string(),
    })
}

fn numeric(protocol: Protocol, from: i32, end: Option<i32>) -> Result<Port, (String, String)> {
    let from = port_number(from).map_err(|r| ("port".to_string(), r))?;
    let to = match end {
        None => from,
        Some(e) => port_number(e).map_err(|r| ("endPort".to_string(), r))?,
    };
    if to < from {
        let reason = format!("endPort {to} is smaller than port {from}");
        return Err(("endPort".into(), reason));
    }
    Ok(Port::Range { protocol, from, to })
}

fn port_number(n: i32) -> Result<u16, String> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{n} is not a port number (1-65535)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(proto: Option<&str>, port: Option<IntOrString>, end: Option<i32>) -> NetworkPolicyPort {
        NetworkPolicyPort {
            protocol: proto.map(str::to_string),
            port,
            end_port: end,
        }
    }

    #[test]
    fn defaults_and_ranges() {
        assert_eq!(
            parse_port(&port(None, None, None)),
            Ok(Port::All(Protocol::Tcp))
        );
        assert_eq!(
            parse_port(&port(Some("UDP"), Some(IntOrString::Int(53)), None)),
            Ok(Port::Range {
                protocol: Protocol::Udp,
                from: 53,
                to: 53
            })
        );
        assert_eq!(
            parse_port(&port(Some("SCTP"), Some(IntOrString::Int(80)), Some(81))),
            Ok(Port::Range {
                protocol: Protocol::Sctp,
                from: 80,
                to: 81
            })
        );
        assert_eq!(
            parse_port(&port(None, Some(IntOrString::String("http".into())), None)),
            Ok(Port::Named {
                protocol: Protocol::Tcp,
                name: "http".into()
            })
        );
    }

    #[test]
    fn invalid_entries_name_the_field() {
        let cases = [
            (port(Some("ICMP"), None, None), "protocol"),
            (port(None, Some(IntOrString::Int(90)), Some(80)), "endPort"),
            (
                port(None, Some(IntOrString::String("x".into())), Some(80)),
                "endPort",
            ),
            (port(None, None, Some(80)), "endPort"),
            (port(None, Some(IntOrString::Int(0)), None), "port"),
            (port(None, Some(IntOrString::Int(70000)), None), "port"),
        ];
        for (raw, field) in cases {
            assert_eq!(parse_port(&raw).expect_err("invalid").0, field, "{raw:?}");
        }
    }
}
