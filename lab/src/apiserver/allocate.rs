//! ClusterIP, NodePort and node podCIDR allocation.
//!
//! Allocations are recorded in sets and released when the object is removed.
//! Writes go through a trial copy so a failing request changes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

use super::ApiServerConfig;
use super::error::ApiError;
use super::families::{self, Decision, Family};
use super::meta;
use super::resources::ResourceType;

#[derive(Debug, Clone)]
pub struct Allocator {
    config: ApiServerConfig,
    cluster_ips: HashSet<IpAddr>,
    node_ports: HashSet<u16>,
    /// Blocks in use and the Nodes holding each: requested blocks may
    /// overlap or repeat, and a block is free again after its last Node.
    pod_cidrs: HashMap<IpNet, BTreeSet<String>>,
}

impl Allocator {
    pub fn new(config: ApiServerConfig) -> Self {
        Allocator {
            config,
            cluster_ips: HashSet::new(),
            node_ports: HashSet::new(),
            pod_cidrs: HashMap::new(),
        }
    }

    /// Fills in allocated fields of a Service or Node being created (`old`
    /// None) or updated, and records them; other kinds pass through.
    pub fn assign(
        &mut self,
        res: &ResourceType,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        if !res.group.is_empty() || !matches!(res.kind, "Service" | "Node") {
            return Ok(());
        }
        let mut trial = self.clone();
        if let Some(old) = old {
            trial.release(res, old);
        }
        match res.kind {
            "Service" => trial.assign_service(obj, old)?,
            _ => trial.assign_node(obj, old)?,
        }
        *self = trial;
        Ok(())
    }

    /// Frees what `obj` holds.
    pub fn release(&mut self, res: &ResourceType, obj: &Value) {
        if !res.group.is_empty() {
            return;
        }
        match res.kind {
            "Service" => {
                for ip in service_ips(obj) {
                    self.cluster_ips.remove(&ip);
                }
                for port in node_ports(obj) {
                    self.node_ports.remove(&port);
                }
            }
            "Node" => {
                let name = meta::name(obj);
                for cidr in node_cidrs(obj) {
                    let holders = self.pod_cidrs.entry(cidr).or_default();
                    holders.remove(name);
                    if holders.is_empty() {
                        self.pod_cidrs.remove(&cidr);
                    }
                }
            }
            _ => {}
        }
    }

    fn assign_service(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let name = meta::name(svc).to_string();
        let ranges = self.service_ranges();
        let configured: Vec<Family> = ranges.iter().map(|r| Family::of(&r.addr())).collect();
        let decision = families::decide(svc, old, &configured)?;
        let ips = match &decision {
            Decision::Ips {
                families, wanted, ..
            } => self.cluster_ips_for(families, wanted, &ranges, &name)?,
            _ => Vec::new(),
        };
        write_service_ips(spec_mut(svc), &decision, &ips);
        self.assign_node_ports(svc, old, &name)
    }

    /// The service ranges, primary first: `service_cidr`, then
    /// `service_cidr_v6` when it is of the other family (dual-stack).
    fn service_ranges(&self) -> Vec<IpNet> {
        let primary = self.config.service_cidr;
        let secondary = self
            .config
            .service_cidr_v6
            .filter(|v6| !same_family(v6, &primary));
        std::iter::once(primary).chain(secondary).collect()
    }

    /// Checks and reserves each family's address (requested, or the first
    /// free one of that family's range).
    fn cluster_ips_for(
        &mut self,
        families: &[Family],
        wanted: &[Option<IpAddr>],
        ranges: &[IpNet],
        name: &str,
    ) -> Result<Vec<IpAddr>, ApiError> {
        let mut out = Vec::new();
        for (i, (family, wanted)) in families.iter().zip(wanted).enumerate() {
            let net = ranges
                .iter()
                .find(|r| Family::of(&r.addr()) == *family)
                .copied()
                .ok_or_else(|| {
                    ApiError::invalid("Service", name, "spec.ipFamilies", "family not configured")
                })?;
            let field = if i == 0 {
                "spec.clusterIP".to_string()
            } else {
                format!("spec.clusterIPs[{i}]")
            };
            let ip = match wanted {
                Some(ip) => self.check_cluster_ip(*ip, net, name, &field)?,
                None => self.free_cluster_ip(net, name, &field)?,
            };
            self.cluster_ips.insert(ip);
            out.push(ip);
        }
        Ok(out)
    }

    fn check_cluster_ip(
        &self,
        ip: IpAddr,
        net: IpNet,
        name: &str,
        field: &str,
    ) -> Result<IpAddr, ApiError> {
        let invalid = |msg: String| ApiError::invalid("Service", name, field, msg);
        if !net.contains(&ip)
            || ip == net.network()
            || (net.addr().is_ipv4() && ip == net.broadcast())
        {
            return Err(invalid(format!(
                "{ip}: provided IP is not in the valid range. The range of valid IPs is {net}"
            )));
        }
        if self.cluster_ips.contains(&ip) {
            return Err(invalid(format!("{ip}: provided IP is already allocated")));
        }
        Ok(ip)
    }

    /// Dynamic IPs come from above a low band kept for static requests (as
    /// Kubernetes does), so e.g. the DNS address .10 stays free.
    fn free_cluster_ip(&self, net: IpNet, name: &str, field: &str) -> Result<IpAddr, ApiError> {
        let bits = u32::from(net.max_prefix_len() - net.prefix_len());
        let size = 1u64.checked_shl(bits).unwrap_or(u64::MAX);
        let band = usize::try_from((size / 16).clamp(16, 256)).unwrap_or(256);
        // Bounded scans keep huge IPv6 ranges cheap; an IPv6 range's own
        // network address (the subnet-router anycast) is never handed out.
        net.hosts()
            .skip(band)
            .take(1 << 20)
            .chain(net.hosts().take(band))
            .find(|ip| *ip != net.network() && !self.cluster_ips.contains(ip))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Service",
                    name,
                    field,
                    format!("no free ClusterIP left in the service CIDR {net}"),
                )
            })
    }

    fn assign_node_ports(
        &mut self,
        svc: &mut Value,
        old: Option<&Value>,
        name: &str,
    ) -> Result<(), ApiError> {
        let wants = matches!(
            svc.pointer("/spec/type").and_then(Value::as_str),
            Some("NodePort" | "LoadBalancer")
        );
        let old_ports = old.map(node_port_map).unwrap_or_default();
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        let mut mine = HashSet::new();
        for (i, port) in ports.iter_mut().enumerate() {
            let Some(port) = port.as_object_mut() else {
                continue;
            };
            if !wants {
                port.remove("nodePort");
                continue;
            }
            let field = format!("spec.ports[{i}].nodePort");
            let requested = port.get("nodePort").and_then(Value::as_u64).unwrap_or(0);
            let reuse = old_ports.get(&port_id(port)).copied();
            let number = match (requested, reuse) {
                (0, Some(p)) => p,
                (0, None) => self.free_node_port(&mine, name, &field)?,
                (p, _) => self.check_node_port(p, &mine, name, &field)?,
            };
            mine.insert(number);
            port.insert("nodePort".into(), json!(number));
        }
        self.node_ports.extend(mine);
        Ok(())
    }

    fn check_node_port(
        &self,
        p: u64,
        mine: &HashSet<u16>,
        name: &str,
        field: &str,
    ) -> Result<u16, ApiError> {
        let range = &self.config.node_port_range;
        let port = u16::try_from(p).ok().filter(|p| range.contains(p)).ok_or_else(|| {
            ApiError::invalid("Service", name, field, format!(
                "Invalid value: {p}: provided port is not in the valid range. The range of valid ports is {}-{}",
                range.start(), range.end()))
        })?;
        // One Service may reuse a nodePort across protocols (e.g. DNS TCP+UDP).
        if self.node_ports.contains(&port) && !mine.contains(&port) {
            return Err(ApiError::invalid(
                "Service",
                name,
                field,
                format!("Invalid value: {port}: provided port is already allocated"),
            ));
        }
        Ok(port)
    }

    fn free_node_port(
        &self,
        mine: &HashSet<u16>,
        name: &str,
        field: &str,
    ) -> Result<u16, ApiError> {
        self.config
            .node_port_range
            .clone()
            .find(|p| !self.node_ports.contains(p) && !mine.contains(p))
            .ok_or_else(|| {
                ApiError::invalid("Service", name, field, "no free nodePort left in the range")
            })
    }

    /// podCIDR blocks: one per configured pool (the cluster CIDR, then the
    /// IPv6 one of a dual-stack lab), each either requested (in
    /// spec.podCIDR or spec.podCIDRs), kept from before (immutable) or the
    /// first free block. spec.podCIDR is the first pool's.
    fn assign_node(&mut self, node: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let name = meta::name(node).to_string();
        let kept = old.map(node_cidrs).unwrap_or_default();
        let requested = requested_cidrs(node);
        let pools = self.pools();
        self.reject_unpooled(&requested, &pools, &name)?;
        let mut cidrs = Vec::new();
        for pool in &pools {
            let cidr = self.pool_cidr(pool, &kept, &requested, &name)?;
            self.pod_cidrs.entry(cidr).or_default().insert(name.clone());
            cidrs.push(cidr.to_string());
        }
        let spec = spec_mut(node);
        spec.insert("podCIDR".into(), json!(cidrs[0]));
        spec.insert("podCIDRs".into(), json!(cidrs));
        Ok(())
    }

    /// A requested podCIDR that is no CIDR, or of a family no pool has,
    /// is refused with the primary pool's message (it names the field).
    fn reject_unpooled(
        &self,
        requested: &[String],
        pools: &[Pool],
        name: &str,
    ) -> Result<(), ApiError> {
        for (i, text) in requested.iter().enumerate() {
            let pooled = text
                .parse::<IpNet>()
                .is_ok_and(|c| pools.iter().any(|p| same_family(&p.cluster, &c)));
            if !pooled {
                let field = if i == 0 {
                    "spec.podCIDR"
                } else {
                    "spec.podCIDRs"
                };
                self.check_pod_cidr(text, name, &pools[0].with_field(field))?;
            }
        }
        Ok(())
    }

    fn pools(&self) -> Vec<Pool> {
        let primary = Pool {
            cluster: self.config.cluster_cidr,
            prefix: self.config.node_cidr_prefix,
            field: "spec.podCIDR",
        };
        let secondary = self
            .config
            .cluster_cidr_v6
            .filter(|v6| !same_family(v6, &primary.cluster))
            .map(|cluster| Pool {
                cluster,
                prefix: self.config.node_cidr_prefix_v6,
                field: "spec.podCIDRs",
            });
        std::iter::once(primary).chain(secondary).collect()
    }

    /// The block of one pool for this node.
    fn pool_cidr(
        &self,
        pool: &Pool,
        kept: &[IpNet],
        requested: &[String],
        name: &str,
    ) -> Result<IpNet, ApiError> {
        let kept = kept.iter().find(|k| same_family(k, &pool.cluster));
        let requested = requested.iter().find(|r| {
            r.parse::<IpNet>()
                .is_ok_and(|c| same_family(&c, &pool.cluster))
        });
        match (requested, kept) {
            (None, Some(k)) => Ok(*k),
            (None, None) => self.free_pod_cidr(name, pool),
            (Some(r), Some(k)) if *r == k.to_string() => Ok(*k),
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "Node",
                name,
                pool.field,
                "field is immutable once set",
            )),
            (Some(r), None) => self.check_pod_cidr(r, name, pool),
        }
    }

    fn check_pod_cidr(&self, requested: &str, name: &str, pool: &Pool) -> Result<IpNet, ApiError> {
        let invalid = |msg: String| ApiError::invalid("Node", name, pool.field, msg);
        let cidr: IpNet = requested.parse().map_err(|_| {
            invalid(format!(
                "{requested:?}: must be a CIDR such as 10.42.3.0/24"
            ))
        })?;
        let cluster = pool.cluster;
        if !cluster.contains(&cidr) || cidr.trunc() != cidr {
            return Err(invalid(format!(
                "{requested}: must be a network inside the cluster CIDR {cluster}"
            )));
        }
        // Like kube-apiserver, a requested block is not checked against
        // other Nodes' (only the allocator avoids overlaps): nodenet must
        // cope with a Node claiming another's pod range.
        Ok(cidr)
    }

    fn free_pod_cidr(&self, name: &str, pool: &Pool) -> Result<IpNet, ApiError> {
        let no_room = || {
            ApiError::invalid(
                "Node",
                name,
                pool.field,
                "no free podCIDR block left in the cluster CIDR",
            )
        };
        let blocks = pool.cluster.subnets(pool.prefix).map_err(|_| no_room())?;
        blocks
            .take(1 << 20)
            .find(|b| {
                !self
                    .pod_cidrs
                    .keys()
                    .any(|c| c.contains(b) || b.contains(c))
            })
            .ok_or_else(no_room)
    }
}

/// A range node podCIDRs are carved from.
#[derive(Debug, Clone, Copy)]
struct Pool {
    cluster: IpNet,
    /// Prefix length of each node's block.
    prefix: u8,
    /// The field an error about this pool names.
    field: &'static str,
}

impl Pool {
    fn with_field(self, field: &'static str) -> Pool {
        Pool { field, ..self }
    }
}

fn same_family(a: &IpNet, b: &IpNet) -> bool {
    a.addr().is_ipv6() == b.addr().is_ipv6()
}

/// spec.podCIDR then spec.podCIDRs, non-empty, each once.
fn requested_cidrs(node: &Value) -> Vec<String> {
    let one = node.pointer("/spec/podCIDR").into_iter();
    let many = node
        .pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let mut out: Vec<String> = Vec::new();
    for text in one.chain(many).filter_map(Value::as_str) {
        if !text.is_empty() && !out.iter().any(|t| t == text) {
            out.push(text.to_string());
        }
    }
    out
}

/// Writes clusterIP(s), ipFamilies and ipFamilyPolicy as decided.
fn write_service_ips(
    spec: &mut serde_json::Map<String, Value>,
    decision: &Decision,
    ips: &[IpAddr],
) {
    let (policy, families, ips): (_, _, Vec<String>) = match decision {
        Decision::NoClusterIp => {
            for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                spec.remove(field);
            }
            return;
        }
        Decision::Headless { policy, families } => (policy, families, vec!["None".into()]),
        Decision::Ips {
            policy, families, ..
        } => (
            policy,
            families,
            ips.iter().map(ToString::to_string).collect(),
        ),
    };
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    spec.insert("clusterIP".into(), json!(ips.first()));
    spec.insert("clusterIPs".into(), json!(ips));
    spec.insert("ipFamilies".into(), json!(names));
    spec.insert("ipFamilyPolicy".into(), json!(policy));
}

fn spec_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let root = obj.as_object_mut().expect("made an object above");
    let spec = root.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    spec.as_object_mut().expect("made an object above")
}

fn service_ips(svc: &Value) -> Vec<IpAddr> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(svc.pointer("/spec/clusterIP"))
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

fn node_ports(svc: &Value) -> Vec<u16> {
    node_port_map(svc).into_values().collect()
}

/// A port's identity across updates: (protocol, port).
fn port_id(port: &serde_json::Map<String, Value>) -> (String, u64) {
    let proto = port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    (
        proto.to_string(),
        port.get("port").and_then(Value::as_u64).unwrap_or(0),
    )
}

fn node_port_map(svc: &Value) -> std::collections::HashMap<(String, u64), u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let p = p.as_object()?;
            let n = u16::try_from(p.get("nodePort")?.as_u64()?).ok()?;
            Some((port_id(p), n))
        })
        .collect()
}

fn node_cidrs(node: &Value) -> Vec<IpNet> {
    node.pointer("/spec/podCIDRs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(node.pointer("/spec/podCIDR"))
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::lookup;

    fn alloc() -> Allocator {
        Allocator::new(ApiServerConfig::default())
    }

    fn svc(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    fn node(name: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name}, "spec": spec})
    }

    fn services() -> &'static ResourceType {
        lookup("", "v1", "services").expect("registered")
    }

    fn nodes() -> &'static ResourceType {
        lookup("", "v1", "nodes").expect("registered")
    }

    #[test]
    fn cluster_ips_static_and_dynamic() {
        let mut a = alloc();
        let mut dns = svc("dns", json!({"clusterIP": "10.43.0.10"}));
        a.assign(services(), &mut dns, None)
            .expect("static IP free");
        let mut clash = svc("clash", json!({"clusterIP": "10.43.0.10"}));
        let err = a.assign(services(), &mut clash, None).expect_err("taken");
        assert!(matches!(err, ApiError::Invalid { ref field, .. } if field == "spec.clusterIP"));
        let mut outside = svc("out", json!({"clusterIP": "10.99.0.1"}));
        assert_eq!(
            a.assign(services(), &mut outside, None)
                .map_err(|e| e.code()),
            Err(422)
        );
        let mut dynamic = svc("web", json!({}));
        a.assign(services(), &mut dynamic, None).expect("allocates");
        assert_eq!(dynamic["spec"]["clusterIP"], "10.43.1.1");
        assert_eq!(dynamic["spec"]["clusterIPs"], json!(["10.43.1.1"]));
        a.release(services(), &dns);
        a.assign(services(), &mut clash, None)
            .expect("released IP is free again");
    }

    #[test]
    fn headless_and_external_name() {
        let mut a = alloc();
        let mut h = svc("h", json!({"clusterIP": "None"}));
        a.assign(services(), &mut h, None).expect("headless");
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        let mut e = svc(
            "e",
            json!({"type": "ExternalName", "externalName": "x.example"}),
        );
        a.assign(services(), &mut e, None).expect("external");
        assert!(e["spec"].get("clusterIP").is_none());
    }

    #[test]
    fn node_ports_requested_clash_and_kept_on_update() {
        let mut a = alloc();
        let spec = json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]});
        let mut s = svc("np", spec);
        a.assign(services(), &mut s, None).expect("allocates");
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 30053);
        let mut other = svc(
            "other",
            json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 30053}]}),
        );
        let err = a.assign(services(), &mut other, None).expect_err("clash");
        assert!(
            matches!(err, ApiError::Invalid { ref field, .. } if field == "spec.ports[0].nodePort")
        );
        let mut bad = svc(
            "bad",
            json!({"type": "NodePort", "ports": [{"port": 1, "nodePort": 80}]}),
        );
        assert_eq!(
            a.assign(services(), &mut bad, None).map_err(|e| e.code()),
            Err(422)
        );
        let mut updated = svc("np", json!({"type": "NodePort", "ports": [{"port": 80}]}));
        a.assign(services(), &mut updated, Some(&s))
            .expect("update");
        assert_eq!(updated["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(updated["spec"]["clusterIP"], s["spec"]["clusterIP"]);
        a.assign(services(), &mut other, None)
            .expect("30053 was released by the update");
    }

    #[test]
    fn pod_cidrs_first_free_and_requested() {
        let mut a = alloc();
        let mut n1 = node("node-1", json!({}));
        a.assign(nodes(), &mut n1, None).expect("first");
        assert_eq!(n1["spec"]["podCIDR"], "10.42.0.0/24");
        let mut n2 = node("node-2", json!({"podCIDR": "10.42.5.0/24"}));
        a.assign(nodes(), &mut n2, None).expect("requested");
        assert_eq!(n2["spec"]["podCIDRs"], json!(["10.42.5.0/24"]));
        let mut n3 = node("node-3", json!({}));
        a.assign(nodes(), &mut n3, None).expect("next");
        assert_eq!(n3["spec"]["podCIDR"], "10.42.1.0/24");
        for bad in ["10.99.0.0/24", "junk", "10.42.5.1/24"] {
            let mut n = node("node-x", json!({"podCIDR": bad}));
            let err = a.assign(nodes(), &mut n, None).expect_err(bad);
            assert!(
                matches!(err, ApiError::Invalid { ref field, .. } if field == "spec.podCIDR"),
                "{bad}"
            );
        }
        a.release(nodes(), &n1);
        let mut n4 = node("node-4", json!({}));
        a.assign(nodes(), &mut n4, None).expect("reuses");
        assert_eq!(n4["spec"]["podCIDR"], "10.42.0.0/24");
    }

    #[test]
    fn requested_pod_cidrs_may_overlap_and_stay_taken_until_their_last_node() {
        let mut a = alloc();
        let mut n1 = node("node-1", json!({"podCIDR": "10.42.0.0/24"}));
        a.assign(nodes(), &mut n1, None).expect("requested");
        let mut twin = node("twin", json!({"podCIDR": "10.42.0.0/24"}));
        a.assign(nodes(), &mut twin, None)
            .expect("same block, as kube-apiserver allows");
        let mut half = node("half", json!({"podCIDR": "10.42.0.128/25"}));
        a.assign(nodes(), &mut half, None)
            .expect("overlapping block");
        // An update re-assigns the kept block; it is still one holder.
        let mut again = n1.clone();
        a.assign(nodes(), &mut again, Some(&n1)).expect("update");
        a.release(nodes(), &n1);
        let mut next = node("next", json!({}));
        a.assign(nodes(), &mut next, None).expect("allocated");
        assert_eq!(
            next["spec"]["podCIDR"], "10.42.1.0/24",
            "twin still holds 10.42.0.0/24"
        );
        a.release(nodes(), &twin);
        a.release(nodes(), &half);
        let mut last = node("last", json!({}));
        a.assign(nodes(), &mut last, None).expect("allocated");
        assert_eq!(last["spec"]["podCIDR"], "10.42.0.0/24");
    }

    #[test]
    fn dual_stack_nodes_get_one_block_per_family() {
        let config = ApiServerConfig {
            cluster_cidr_v6: Some("fd42::/56".parse().expect("cidr")),
            ..ApiServerConfig::default()
        };
        let mut a = Allocator::new(config);
        let mut n1 = node("node-1", json!({}));
        a.assign(nodes(), &mut n1, None).expect("first");
        assert_eq!(n1["spec"]["podCIDR"], "10.42.0.0/24");
        assert_eq!(n1["spec"]["podCIDRs"], json!(["10.42.0.0/24", "fd42::/64"]));
        let requested =
            json!({"podCIDR": "10.42.7.0/24", "podCIDRs": ["10.42.7.0/24", "fd42:0:0:7::/64"]});
        let mut n2 = node("node-2", requested);
        a.assign(nodes(), &mut n2, None).expect("requested");
        assert_eq!(
            n2["spec"]["podCIDRs"],
            json!(["10.42.7.0/24", "fd42:0:0:7::/64"])
        );
        // Only an IPv4 block requested: the IPv6 one is allocated.
        let mut n3 = node("node-3", json!({"podCIDR": "10.42.8.0/24"}));
        a.assign(nodes(), &mut n3, None).expect("v4 requested");
        assert_eq!(
            n3["spec"]["podCIDRs"],
            json!(["10.42.8.0/24", "fd42:0:0:1::/64"])
        );
        // Kept across an update that does not repeat them.
        let mut again = node("node-1", json!({}));
        a.assign(nodes(), &mut again, Some(&n1)).expect("update");
        assert_eq!(again["spec"]["podCIDRs"], n1["spec"]["podCIDRs"]);
        for bad in [
            json!(["10.42.9.0/24", "fd99::/64"]),
            json!(["10.42.9.0/24", "fd42:0:0:7::/63"]),
        ] {
            let mut n = node("node-x", json!({"podCIDRs": bad}));
            let err = a.assign(nodes(), &mut n, None).expect_err("bad v6");
            assert!(
                matches!(err, ApiError::Invalid { ref field, .. } if field == "spec.podCIDRs"),
                "{err:?}"
            );
        }
        let mut changed = node(
            "node-1",
            json!({"podCIDRs": ["10.42.0.0/24", "fd42:0:0:9::/64"]}),
        );
        let err = a
            .assign(nodes(), &mut changed, Some(&n1))
            .expect_err("immutable");
        assert!(err.to_string().contains("immutable"), "{err}");
    }

    fn dual_alloc() -> Allocator {
        Allocator::new(ApiServerConfig {
            service_cidr_v6: Some("fd43::/112".parse().expect("cidr")),
            ..ApiServerConfig::default()
        })
    }

    #[test]
    fn dual_stack_services_get_one_cluster_ip_per_family() {
        let mut a = dual_alloc();
        let mut single = svc("single", json!({}));
        a.assign(services(), &mut single, None).expect("single");
        assert_eq!(single["spec"]["clusterIPs"], json!(["10.43.1.1"]));
        assert_eq!(single["spec"]["ipFamilies"], json!(["IPv4"]));
        assert_eq!(single["spec"]["ipFamilyPolicy"], "SingleStack");
        let mut both = svc("both", json!({"ipFamilyPolicy": "PreferDualStack"}));
        a.assign(services(), &mut both, None).expect("dual");
        assert_eq!(both["spec"]["clusterIP"], "10.43.1.2");
        assert_eq!(
            both["spec"]["clusterIPs"],
            json!(["10.43.1.2", "fd43::100"])
        );
        assert_eq!(both["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut v6 = svc("v6", json!({"ipFamilies": ["IPv6"]}));
        a.assign(services(), &mut v6, None).expect("v6 only");
        assert_eq!(v6["spec"]["clusterIPs"], json!(["fd43::101"]));
        assert_eq!(v6["spec"]["ipFamilyPolicy"], "SingleStack");
        // The kube-dns Service the DNS component creates.
        let mut dns = svc(
            "kube-dns",
            json!({"clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10", "fd43::a"],
                   "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"}),
        );
        a.assign(services(), &mut dns, None)
            .expect("kube-dns accepted");
        assert_eq!(dns["spec"]["clusterIPs"], json!(["10.43.0.10", "fd43::a"]));
        let mut clash = svc("clash", json!({"clusterIPs": ["10.43.0.11", "fd43::a"]}));
        let err = a.assign(services(), &mut clash, None).expect_err("taken");
        assert!(
            matches!(err, ApiError::Invalid { ref field, .. } if field == "spec.clusterIPs[1]"),
            "{err:?}"
        );
        // The failed request reserved nothing: 10.43.0.11 is still free.
        let mut again = svc("again", json!({"clusterIP": "10.43.0.11"}));
        a.assign(services(), &mut again, None).expect("still free");
        let mut outside = svc("out", json!({"clusterIPs": ["10.43.0.12", "fd99::1"]}));
        assert_eq!(
            a.assign(services(), &mut outside, None)
                .map_err(|e| e.code()),
            Err(422)
        );
        // Deleting frees both families.
        a.release(services(), &dns);
        let mut reuse = svc("reuse", json!({"clusterIPs": ["fd43::a", "10.43.0.10"]}));
        a.assign(services(), &mut reuse, None).expect("released");
        assert_eq!(reuse["spec"]["ipFamilies"], json!(["IPv6", "IPv4"]));
    }

    #[test]
    fn dual_stack_updates_add_and_drop_the_secondary() {
        let mut a = dual_alloc();
        let mut s = svc("web", json!({}));
        a.assign(services(), &mut s, None).expect("single");
        let mut up = s.clone();
        up["spec"]["ipFamilyPolicy"] = json!("PreferDualStack");
        a.assign(services(), &mut up, Some(&s)).expect("upgrade");
        assert_eq!(up["spec"]["clusterIPs"], json!(["10.43.1.1", "fd43::100"]));
        let mut down = up.clone();
        down["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        a.assign(services(), &mut down, Some(&up))
            .expect("downgrade");
        assert_eq!(down["spec"]["clusterIPs"], json!(["10.43.1.1"]));
        assert_eq!(down["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut other = svc("other", json!({"clusterIP": "fd43::100"}));
        a.assign(services(), &mut other, None)
            .expect("the dropped IPv6 address is free again");
    }

    #[test]
    fn headless_keeps_none_with_its_families() {
        let mut a = dual_alloc();
        let spec = json!({"clusterIP": "None", "selector": {"app": "web"}, "ipFamilyPolicy": "RequireDualStack"});
        let mut h = svc("h", spec);
        a.assign(services(), &mut h, None).expect("headless");
        assert_eq!(h["spec"]["clusterIP"], "None");
        assert_eq!(h["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(h["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut single = alloc();
        let mut dual = svc("d", json!({"ipFamilyPolicy": "RequireDualStack"}));
        let err = single
            .assign(services(), &mut dual, None)
            .expect_err("no IPv6 range");
        assert!(
            err.to_string().contains("not configured for dual-stack"),
            "{err}"
        );
    }

    #[test]
    fn ipv6_ranges_allocate_lazily() {
        let config = ApiServerConfig {
            service_cidr: "fd00:43::/64".parse().expect("cidr"),
            cluster_cidr: "fd00:42::/48".parse().expect("cidr"),
            node_cidr_prefix: 64,
            ..ApiServerConfig::default()
        };
        let mut a = Allocator::new(config);
        let mut s = svc("v6", json!({}));
        a.assign(services(), &mut s, None).expect("allocates");
        assert_eq!(s["spec"]["clusterIP"], "fd00:43::100");
        let mut n = node("node-1", json!({}));
        a.assign(nodes(), &mut n, None).expect("allocates");
        assert_eq!(n["spec"]["podCIDR"], "fd00:42::/64");
    }
}
