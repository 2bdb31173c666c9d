//! Masquerade and forward rules equivalent to flannel's FLANNEL-POSTRTG and
//! FLANNEL-FWD iptables chains (flannel.md §3.1), in our own nftables table
//! per family, replaced whole in one transaction.

use ipnet::IpNet;

use host::names::NFT_FLANNEL_TABLE;
use host::nft::{self, NftError};

/// kube-proxy's masquerade mark: packets carrying it are left to kube-proxy.
pub const KUBE_MASQ_MARK: u32 = 0x4000;

/// One family's rule inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasqFamily {
    /// The cluster CIDR of the family.
    pub cluster: IpNet,
    /// Our pod CIDR of the family.
    pub pod: IpNet,
    /// Whether pod traffic leaving the cluster is masqueraded (always for
    /// IPv4; IPv6 only with --flannel-ipv6-masq, as in K3s).
    pub masquerade: bool,
}

/// A rendered ruleset: the script and how many rules each family's table
/// must hold (to notice a rule or table deleted behind our back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    pub script: String,
    /// (nft family, rule count) of each table the script defines.
    pub tables: Vec<(&'static str, usize)>,
}

/// Renders the tables for the given families (at most one per family); a
/// family absent from `families` gets its table deleted. The pattern
/// "add table; delete table; define table" in one transaction replaces the
/// table atomically whether or not it existed, and drops chains no longer
/// wanted (the IPv6 nat chain when masquerading is switched off).
pub fn render(families: &[MasqFamily]) -> Ruleset {
    let mut script = String::new();
    let mut tables = Vec::new();
    for family in ["ip", "ip6"] {
        script.push_str(&format!("table {family} {NFT_FLANNEL_TABLE} {{}}\n"));
        script.push_str(&format!("delete table {family} {NFT_FLANNEL_TABLE}\n"));
        let wanted = families
            .iter()
            .find(|f| (f.cluster.addr().is_ipv6()) == (family == "ip6"));
        if let Some(wanted) = wanted {
            let (body, rules) = table_body(family, wanted);
            script.push_str(&format!(
                "table {family} {NFT_FLANNEL_TABLE} {{\n{body}}}\n"
            ));
            tables.push((family, rules));
        }
    }
    Ruleset { script, tables }
}

fn table_body(family: &str, f: &MasqFamily) -> (String, usize) {
    let (cluster, pod) = (f.cluster.trunc(), f.pod.trunc());
    let multicast = if family == "ip6" {
        "ff00::/8"
    } else {
        "224.0.0.0/4"
    };
    let masq = "comment \"flanneld masq\"";
    let fwd = "comment \"flanneld forward\"";
    let mut body = String::new();
    let mut rules = 0;
    if f.masquerade {
        let postrtg = [
            format!("meta mark & {KUBE_MASQ_MARK:#x} == {KUBE_MASQ_MARK:#x} return {masq}"),
            format!("{family} saddr {pod} {family} daddr {cluster} return {masq}"),
            format!("{family} saddr {cluster} {family} daddr {pod} return {masq}"),
            format!("{family} saddr != {cluster} {family} daddr {pod} return {masq}"),
            format!(
                "{family} saddr {cluster} {family} daddr != {multicast} masquerade fully-random {masq}"
            ),
            format!(
                "{family} saddr != {cluster} {family} daddr {cluster} masquerade fully-random {masq}"
            ),
        ];
        rules += postrtg.len();
        body.push_str(&chain(
            "postrtg",
            "type nat hook postrouting priority srcnat",
            &postrtg,
        ));
    }
    let forward = [
        format!("{family} saddr {cluster} accept {fwd}"),
        format!("{family} daddr {cluster} accept {fwd}"),
    ];
    rules += forward.len();
    body.push_str(&chain(
        "forward",
        "type filter hook forward priority filter",
        &forward,
    ));
    (body, rules)
}

fn chain(name: &str, hook: &str, rules: &[String]) -> String {
    let mut text = format!("\tchain {name} {{\n\t\t{hook}; policy accept;\n");
    for rule in rules {
        text.push_str(&format!("\t\t{rule}\n"));
    }
    text.push_str("\t}\n");
    text
}

/// Whether the kernel holds exactly the tables of `ruleset` with their rule
/// counts (a cheap check that avoids rewriting an intact table).
pub fn is_intact(ruleset: &Ruleset) -> Result<bool, NftError> {
    for family in ["ip", "ip6"] {
        let want = ruleset
            .tables
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, n)| *n);
        let have = nft::table_json(family, NFT_FLANNEL_TABLE)?.map(|json| count_rules(&json));
        if want != have {
            return Ok(false);
        }
    }
    Ok(true)
}

fn count_rules(json: &serde_json::Value) -> usize {
    json.get("nftables")
        .and_then(serde_json::Value::as_array)
        .map(|items| items.iter().filter(|i| i.get("rule").is_some()).count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(cluster: &str, pod: &str, masquerade: bool) -> MasqFamily {
        MasqFamily {
            cluster: cluster.parse().expect("cidr"),
            pod: pod.parse().expect("cidr"),
            masquerade,
        }
    }

    #[test]
    fn ipv4_rules_mirror_flannel_chains_in_order() {
        let ruleset = render(&[fam("10.42.0.0/16", "10.42.1.0/24", true)]);
        let want = "table ip nodenet-flannel {}
delete table ip nodenet-flannel
table ip nodenet-flannel {
\tchain postrtg {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tmeta mark & 0x4000 == 0x4000 return comment \"flanneld masq\"
\t\tip saddr 10.42.1.0/24 ip daddr 10.42.0.0/16 return comment \"flanneld masq\"
\t\tip saddr 10.42.0.0/16 ip daddr 10.42.1.0/24 return comment \"flanneld masq\"
\t\tip saddr != 10.42.0.0/16 ip daddr 10.42.1.0/24 return comment \"flanneld masq\"
\t\tip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random comment \"flanneld masq\"
\t\tip saddr != 10.42.0.0/16 ip daddr 10.42.0.0/16 masquerade fully-random comment \"flanneld masq\"
\t}
\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tip saddr 10.42.0.0/16 accept comment \"flanneld forward\"
\t\tip daddr 10.42.0.0/16 accept comment \"flanneld forward\"
\t}
}
table ip6 nodenet-flannel {}
delete table ip6 nodenet-flannel
";
        assert_eq!(ruleset.script, want);
        assert_eq!(ruleset.tables, vec![("ip", 8)]);
    }

    #[test]
    fn ipv6_without_masq_keeps_only_forward_rules() {
        let ruleset = render(&[
            fam("10.42.0.0/16", "10.42.1.0/24", true),
            fam("fd42::/56", "fd42:0:0:1::/64", false),
        ]);
        assert_eq!(ruleset.tables, vec![("ip", 8), ("ip6", 2)]);
        let v6 = &ruleset.script[ruleset
            .script
            .find("table ip6 nodenet-flannel {\n")
            .expect("v6 table")..];
        assert!(!v6.contains("postrtg"), "{v6}");
        assert!(v6.contains("ip6 saddr fd42::/56 accept"), "{v6}");
    }

    #[test]
    fn ipv6_masq_uses_ipv6_multicast() {
        let ruleset = render(&[fam("fd42::/56", "fd42:0:0:1::/64", true)]);
        assert!(
            ruleset
                .script
                .contains("ip6 saddr fd42::/56 ip6 daddr != ff00::/8 masquerade")
        );
        assert_eq!(ruleset.tables, vec![("ip6", 8)]);
        assert!(ruleset.script.starts_with(
            "table ip nodenet-flannel {}\ndelete table ip nodenet-flannel\ntable ip6"
        ));
    }
}
