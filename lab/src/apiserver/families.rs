//! Which IP families and ClusterIPs a Service gets, from its
//! spec.ipFamilyPolicy, spec.ipFamilies and spec.clusterIP(s), as the real
//! API server decides them (KEP-563 "Services"): SingleStack by default,
//! two families or two IPs mean RequireDualStack, PreferDualStack and
//! RequireDualStack add the cluster's other family, headless Services
//! without a selector are PreferDualStack with both families whatever the
//! cluster has, and the primary ClusterIP never changes.
//!
//! Pure: this decides, [`super::allocate`] checks and reserves addresses.

use std::net::IpAddr;

use serde_json::Value;

use super::error::ApiError;
use super::meta;

/// An IP family as spec.ipFamilies spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() { Family::V4 } else { Family::V6 }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }

    fn parse(text: &str) -> Option<Family> {
        match text {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        }
    }

    fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }
}

pub const SINGLE: &str = "SingleStack";
pub const PREFER_DUAL: &str = "PreferDualStack";
pub const REQUIRE_DUAL: &str = "RequireDualStack";

/// What a Service gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// ExternalName: no ClusterIP, no families, no policy.
    NoClusterIp,
    /// `clusterIP: None`, with these families (they pick the
    /// EndpointSlices' address types).
    Headless {
        policy: &'static str,
        families: Vec<Family>,
    },
    /// One ClusterIP per family, in this order; `Some` is a requested (or
    /// kept) address to check, `None` one to allocate.
    Ips {
        policy: &'static str,
        families: Vec<Family>,
        wanted: Vec<Option<IpAddr>>,
    },
}

/// The request as read from a Service (after update patching).
struct Request {
    name: String,
    policy: Option<&'static str>,
    families: Vec<Family>,
    /// Parsed clusterIPs; `None` stands for "None" (headless).
    ips: Vec<Option<IpAddr>>,
    selector: bool,
}

/// Decides families and ClusterIPs of `svc` (`old`: the stored object on
/// update) in a cluster whose service ranges have `configured` families,
/// primary first.
pub fn decide(
    svc: &Value,
    old: Option<&Value>,
    configured: &[Family],
) -> Result<Decision, ApiError> {
    if svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return Ok(Decision::NoClusterIp);
    }
    let name = meta::name(svc).to_string();
    let mut req = read(svc, old, &name)?;
    if let Some(old) = old {
        narrow_on_update(&mut req, svc, old);
    }
    check_consistent(&req)?;
    infer_families(&mut req, configured)?;
    if req.policy.is_none() && req.families.len() == 2 {
        req.policy = Some(REQUIRE_DUAL);
    }
    if req.ips.first() == Some(&None) && !req.selector {
        return Ok(headless_without_selector(req, configured));
    }
    check_configured(&req, configured)?;
    Ok(finish(req, configured))
}

fn invalid(name: &str, field: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid("Service", name, field, msg)
}

/// The field an error about clusterIPs[i] names (index 0 is spec.clusterIP,
/// as clients most often set that one).
fn ip_field(i: usize) -> String {
    if i == 0 {
        "spec.clusterIP".into()
    } else {
        format!("spec.clusterIPs[{i}]")
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect()
}

fn read(svc: &Value, old: Option<&Value>, name: &str) -> Result<Request, ApiError> {
    let spec = svc.get("spec");
    let policy = match spec.and_then(|s| s.get("ipFamilyPolicy")) {
        None | Some(Value::Null) => None,
        Some(p) => Some(match p.as_str() {
            Some(SINGLE) => SINGLE,
            Some(PREFER_DUAL) => PREFER_DUAL,
            Some(REQUIRE_DUAL) => REQUIRE_DUAL,
            _ => {
                return Err(invalid(
                    name,
                    "spec.ipFamilyPolicy",
                    format!(
                        "{p}: supported values: \"{SINGLE}\", \"{PREFER_DUAL}\", \"{REQUIRE_DUAL}\""
                    ),
                ));
            }
        }),
    };
    let texts = requested_ips(svc, old, name)?;
    Ok(Request {
        name: name.to_string(),
        policy,
        families: families(spec, name)?,
        ips: parse_ips(&texts, name)?,
        selector: spec
            .and_then(|s| s.get("selector"))
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty()),
    })
}

fn families(spec: Option<&Value>, name: &str) -> Result<Vec<Family>, ApiError> {
    let mut out = Vec::new();
    for (i, text) in strings(spec.and_then(|s| s.get("ipFamilies")))
        .iter()
        .enumerate()
    {
        let field = format!("spec.ipFamilies[{i}]");
        let family = Family::parse(text).ok_or_else(|| {
            invalid(
                name,
                &field,
                format!("{text:?}: supported values: \"IPv4\", \"IPv6\""),
            )
        })?;
        if out.contains(&family) {
            return Err(invalid(name, &field, format!("Duplicate value: {text:?}")));
        }
        out.push(family);
    }
    if out.len() > 2 {
        return Err(invalid(
            name,
            "spec.ipFamilies",
            "may specify no more than one IP for each IP family",
        ));
    }
    Ok(out)
}

/// spec.clusterIPs, or spec.clusterIP alone; on update the stored ones
/// when the new object names none (as the API server keeps allocated
/// values), and the primary one may not change.
fn requested_ips(svc: &Value, old: Option<&Value>, name: &str) -> Result<Vec<String>, ApiError> {
    let own = |v: &Value| -> Result<Vec<String>, ApiError> {
        let one = v
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("");
        let many = strings(v.pointer("/spec/clusterIPs"));
        match (one, many.first()) {
            ("", _) => Ok(many),
            (one, None) => Ok(vec![one.to_string()]),
            (one, Some(first)) if one == first => Ok(many),
            (one, Some(first)) => Err(invalid(
                name,
                "spec.clusterIPs[0]",
                format!("{first}: must match clusterIP {one}"),
            )),
        }
    };
    let new = own(svc)?;
    let Some(old) = old else { return Ok(new) };
    let previous = own(old).unwrap_or_default();
    if new.is_empty() {
        return Ok(previous);
    }
    for (i, (p, n)) in previous.iter().zip(&new).enumerate() {
        if p != n {
            return Err(invalid(name, &ip_field(i), "field is immutable"));
        }
    }
    Ok(new)
}

fn parse_ips(texts: &[String], name: &str) -> Result<Vec<Option<IpAddr>>, ApiError> {
    if texts.len() > 2 {
        return Err(invalid(
            name,
            "spec.clusterIPs",
            "may specify no more than one IP for each IP family",
        ));
    }
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        if text == "None" && i == 0 && texts.len() == 1 {
            out.push(None);
            continue;
        }
        let ip: IpAddr = text.parse().map_err(|_| {
            invalid(
                name,
                &ip_field(i),
                format!("{text:?}: must be a valid IP address"),
            )
        })?;
        out.push(Some(ip));
    }
    Ok(out)
}

/// On update, SingleStack with the stored two IPs (or families) means
/// "drop the secondary" (the real API server's rule).
fn narrow_on_update(req: &mut Request, svc: &Value, old: &Value) {
    if req.policy != Some(SINGLE) {
        return;
    }
    let spec_ips = |v: &Value| strings(v.pointer("/spec/clusterIPs"));
    let new_ips = spec_ips(svc);
    if (new_ips.is_empty() || new_ips == spec_ips(old)) && req.ips.len() > 1 {
        req.ips.truncate(1);
    }
    let fams = |v: &Value| strings(v.pointer("/spec/ipFamilies"));
    if fams(svc) == fams(old) && req.families.len() > 1 {
        req.families.truncate(1);
    }
}

fn check_consistent(req: &Request) -> Result<(), ApiError> {
    let name = &req.name;
    if let [Some(a), Some(b)] = req.ips[..]
        && Family::of(&a) == Family::of(&b)
    {
        return Err(invalid(
            name,
            "spec.clusterIPs[1]",
            format!("{b}: may specify no more than one IP for each IP family"),
        ));
    }
    for (i, (f, ip)) in req.families.iter().zip(&req.ips).enumerate() {
        if let Some(ip) = ip
            && Family::of(ip) != *f
        {
            return Err(invalid(
                name,
                &format!("spec.ipFamilies[{i}]"),
                format!(
                    "{}: must match the IP family of clusterIPs[{i}] {ip}",
                    f.name()
                ),
            ));
        }
    }
    if req.policy == Some(SINGLE) && (req.ips.len() == 2 || req.families.len() == 2) {
        return Err(invalid(
            name,
            "spec.ipFamilyPolicy",
            format!(
                "{SINGLE}: must be {REQUIRE_DUAL} or {PREFER_DUAL} when multiple IP families or addresses are specified"
            ),
        ));
    }
    Ok(())
}

/// Families not listed follow the requested IPs.
fn infer_families(req: &mut Request, configured: &[Family]) -> Result<(), ApiError> {
    for (i, ip) in req.ips.iter().enumerate() {
        let Some(ip) = ip else { break };
        if i < req.families.len() {
            continue;
        }
        let family = Family::of(ip);
        if !configured.contains(&family) {
            return Err(invalid(
                &req.name,
                &ip_field(i),
                format!("{ip}: {} is not configured on this cluster", family.name()),
            ));
        }
        req.families.push(family);
    }
    Ok(())
}

fn headless_without_selector(req: Request, configured: &[Family]) -> Decision {
    let mut families = req.families;
    if families.is_empty() {
        families.push(configured[0]);
    }
    let policy = req.policy.unwrap_or(PREFER_DUAL);
    if policy != SINGLE && families.len() == 1 {
        families.push(families[0].other());
    }
    Decision::Headless { policy, families }
}

fn check_configured(req: &Request, configured: &[Family]) -> Result<(), ApiError> {
    if req.policy == Some(REQUIRE_DUAL) && configured.len() < 2 {
        return Err(invalid(
            &req.name,
            "spec.ipFamilyPolicy",
            format!("{REQUIRE_DUAL}: this cluster is not configured for dual-stack services"),
        ));
    }
    for (i, f) in req.families.iter().enumerate() {
        if !configured.contains(f) {
            return Err(invalid(
                &req.name,
                &format!("spec.ipFamilies[{i}]"),
                format!("{}: not configured on this cluster", f.name()),
            ));
        }
    }
    Ok(())
}

fn finish(req: Request, configured: &[Family]) -> Decision {
    let mut families = req.families;
    if families.is_empty() {
        families.push(configured[0]);
    }
    let policy = req.policy.unwrap_or(SINGLE);
    if policy != SINGLE && families.len() == 1 && configured.len() == 2 {
        families.push(families[0].other());
    }
    if req.ips.first() == Some(&None) {
        return Decision::Headless { policy, families };
    }
    let wanted = (0..families.len())
        .map(|i| req.ips.get(i).copied().flatten())
        .collect();
    Decision::Ips {
        policy,
        families,
        wanted,
    }
}

#[cfg(test)]
mod tests;
