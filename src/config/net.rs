//! Parsing and checking the address flags (CIDRs, IPs, dual-stack rules).

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::ConfigError;

/// Splits a comma list, dropping blanks (`"a, b,"` -> `["a", "b"]`).
pub fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// A comma list of CIDRs, at least one, at most one per family, no host bits.
pub fn cidr_list(flag: &'static str, value: &str) -> Result<Vec<IpNet>, ConfigError> {
    let nets = split_list(value)
        .into_iter()
        .map(|item| cidr(flag, item))
        .collect::<Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err(ConfigError::Empty { flag });
    }
    one_per_family(flag, &nets, |n| n.addr())?;
    Ok(nets)
}

fn cidr(flag: &'static str, value: &str) -> Result<IpNet, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidCidr {
        flag,
        value: value.to_string(),
        reason,
    };
    let net: IpNet = value.parse().map_err(|e| invalid(format!("{e}")))?;
    if net.trunc() != net {
        return Err(invalid(format!(
            "host bits set; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// A comma list of IPs (possibly empty), at most one per family.
pub fn ip_list(flag: &'static str, value: Option<&str>) -> Result<Vec<IpAddr>, ConfigError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let ips = split_list(value)
        .into_iter()
        .map(|item| {
            item.parse::<IpAddr>().map_err(|_| ConfigError::InvalidIp {
                flag,
                value: item.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    one_per_family(flag, &ips, |ip| *ip)?;
    Ok(ips)
}

fn one_per_family<T: ToString>(
    flag: &'static str,
    items: &[T],
    addr: impl Fn(&T) -> IpAddr,
) -> Result<(), ConfigError> {
    for (i, a) in items.iter().enumerate() {
        let later = items[i + 1..]
            .iter()
            .find(|b| addr(a).is_ipv4() == addr(b).is_ipv4());
        if let Some(b) = later {
            return Err(ConfigError::DuplicateFamily {
                flag,
                family: if addr(a).is_ipv4() { 4 } else { 6 },
                first: a.to_string(),
                second: b.to_string(),
            });
        }
    }
    Ok(())
}

/// Pod and Service networks must not share an address.
pub fn check_no_overlap(cluster: &[IpNet], service: &[IpNet]) -> Result<(), ConfigError> {
    for c in cluster {
        if let Some(s) = service.iter().find(|s| overlaps(c, s)) {
            return Err(ConfigError::Overlap {
                cluster: c.to_string(),
                service: s.to_string(),
            });
        }
    }
    Ok(())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Each DNS service IP must lie in the Service CIDR of its family.
pub fn check_dns_in_service(dns: &[IpAddr], service: &[IpNet]) -> Result<(), ConfigError> {
    for ip in dns {
        if !service.iter().any(|s| s.contains(ip)) {
            let same_family = service.iter().find(|s| s.addr().is_ipv4() == ip.is_ipv4());
            return Err(ConfigError::DnsOutsideServiceCidr {
                dns: ip.to_string(),
                service: same_family
                    .map_or_else(|| "(none of its family)".into(), |s| s.to_string()),
            });
        }
    }
    Ok(())
}

/// An `IP:PORT` listen address.
pub fn socket_addr(flag: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::InvalidSocketAddr {
        flag,
        value: value.to_string(),
    })
}

/// A DNS-1123 subdomain (Node names, the cluster domain).
pub fn dns_name(flag: &'static str, value: &str) -> Result<String, ConfigError> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if value.len() <= 253 && value.split('.').all(label_ok) {
        return Ok(value.to_string());
    }
    Err(ConfigError::InvalidName {
        flag,
        value: value.to_string(),
    })
}

/// A Linux interface name as the kernel accepts it (`dev_valid_name`):
/// 1 to 15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
pub fn interface_name(flag: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = |reason| ConfigError::InvalidInterface {
        flag,
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || value.len() > 15 {
        return Err(invalid("must be 1 to 15 bytes long"));
    }
    if value == "." || value == ".." {
        return Err(invalid("\".\" and \"..\" are reserved"));
    }
    let bad = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    if value.chars().any(bad) {
        return Err(invalid(
            "must not contain '/', ':', whitespace or control characters",
        ));
    }
    Ok(value.to_string())
}
