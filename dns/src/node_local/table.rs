//! nftables table `inet nodenet-dns`: notrack for DNS to and from every
//! cluster DNS address (one per family on a dual-stack cluster).

use std::net::IpAddr;

use host::names::{NFT_DNS_FAMILY, NFT_DNS_TABLE};
use host::nft::{self, NftError};
use serde_json::Value;

/// One notrack rule: which chain, and whether it matches the address as
/// destination (queries) or source (our answers).
struct Rule {
    chain: &'static str,
    to_server: bool,
}

/// Queries arriving from pods and other hosts; local queries and our
/// replies leaving through `output` (local queries come back in through
/// `lo`, where the prerouting rule sees them again).
const RULES: [Rule; 3] = [
    Rule {
        chain: "prerouting",
        to_server: true,
    },
    Rule {
        chain: "output",
        to_server: true,
    },
    Rule {
        chain: "output",
        to_server: false,
    },
];

const CHAINS: [&str; 2] = ["prerouting", "output"];

fn family_word(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "ip" } else { "ip6" }
}

/// The rule in the normal form `shape` produces from nft's JSON.
fn rule_text(addr: IpAddr, rule: &Rule) -> String {
    let (dir, port) = if rule.to_server {
        ("daddr", "dport")
    } else {
        ("saddr", "sport")
    };
    let fam = family_word(addr);
    format!("{fam} {dir} {addr} meta l4proto {{ tcp, udp }} th {port} 53 counter notrack")
}

/// The rules of one chain, in the order nft lists them.
fn chain_rules(chain: &str, addrs: &[IpAddr]) -> Vec<String> {
    addrs
        .iter()
        .flat_map(|&addr| {
            RULES
                .iter()
                .filter(move |r| r.chain == chain)
                .map(move |r| rule_text(addr, r))
        })
        .collect()
}

/// The whole table as one atomic `nft -f` transaction that replaces any
/// previous version (the leading `table` makes the `delete` valid when
/// the table does not exist yet).
pub fn table_script(addrs: &[IpAddr]) -> String {
    let t = format!("{NFT_DNS_FAMILY} {NFT_DNS_TABLE}");
    let mut s = format!("table {t}\ndelete table {t}\ntable {t} {{\n");
    for chain in CHAINS {
        s.push_str(&format!(
            "  chain {chain} {{\n    type filter hook {chain} priority raw; policy accept;\n"
        ));
        for rule in chain_rules(chain, addrs) {
            s.push_str(&format!("    {rule}\n"));
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// Installs the table unless it already has exactly our chains and
/// rules; returns whether it was (re)written.
pub fn ensure_table(addrs: &[IpAddr]) -> Result<bool, NftError> {
    let current = nft::table_json(NFT_DNS_FAMILY, NFT_DNS_TABLE)?;
    if current
        .as_ref()
        .is_some_and(|v| shape(v) == expected(addrs))
    {
        return Ok(false);
    }
    nft::apply(&table_script(addrs))?;
    Ok(true)
}

/// Deletes our table; returns whether it existed.
pub fn remove_table(dry_run: bool) -> Result<bool, NftError> {
    if dry_run {
        return nft::table_exists(NFT_DNS_FAMILY, NFT_DNS_TABLE);
    }
    nft::delete_table(NFT_DNS_FAMILY, NFT_DNS_TABLE)
}

/// The addresses our table was written for (from its prerouting rules),
/// in rule order; empty without the table.
pub fn recorded_addresses() -> Result<Vec<IpAddr>, NftError> {
    let Some(json) = nft::table_json(NFT_DNS_FAMILY, NFT_DNS_TABLE)? else {
        return Ok(Vec::new());
    };
    Ok(addresses_in(&json))
}

fn addresses_in(json: &Value) -> Vec<IpAddr> {
    let mut found: Vec<IpAddr> = Vec::new();
    let daddrs = items(json, "rule")
        .filter(|r| r["chain"] == "prerouting")
        .flat_map(|r| r["expr"].as_array().into_iter().flatten())
        .filter_map(|e| {
            let m = &e["match"];
            let field = m["left"]["payload"]["field"].as_str()?;
            (field == "daddr").then_some(())?;
            m["right"].as_str()?.parse::<IpAddr>().ok()
        });
    for addr in daddrs {
        if !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

fn items<'a>(json: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(move |item| item.get(kind))
}

/// Chains (name, hook, priority, policy) and rules (chain, normal text),
/// without handles and counter values.
type Shape = (Vec<String>, Vec<(String, String)>);

fn expected(addrs: &[IpAddr]) -> Shape {
    let chains = CHAINS
        .iter()
        .map(|c| format!("{c} filter {c} -300 accept"))
        .collect();
    let rules = CHAINS
        .iter()
        .flat_map(|&c| {
            chain_rules(c, addrs)
                .into_iter()
                .map(|r| (c.to_string(), r))
        })
        .collect();
    (chains, rules)
}

fn shape(json: &Value) -> Shape {
    let chains = items(json, "chain")
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("?").to_string();
            let prio = c["prio"].as_i64().unwrap_or(0);
            format!(
                "{} {} {} {prio} {}",
                s("name"),
                s("type"),
                s("hook"),
                s("policy")
            )
        })
        .collect();
    let rules = items(json, "rule")
        .map(|r| {
            let chain = r["chain"].as_str().unwrap_or("?").to_string();
            let exprs = r["expr"].as_array().into_iter().flatten();
            let text: Vec<String> = exprs.map(expr_text).collect();
            (chain, text.join(" "))
        })
        .collect();
    (chains, rules)
}

/// The few expression forms our rules use, in nft's text syntax; anything
/// else renders as its JSON, which never equals an expected rule.
fn expr_text(e: &Value) -> String {
    if e.get("counter").is_some() {
        return "counter".into();
    }
    if e.get("notrack").is_some() {
        return "notrack".into();
    }
    let m = &e["match"];
    let left = &m["left"];
    let left = match (&left["payload"], &left["meta"]) {
        (Value::Object(p), _) => format!(
            "{} {}",
            p["protocol"].as_str().unwrap_or("?"),
            p["field"].as_str().unwrap_or("?")
        ),
        (_, Value::Object(k)) => format!("meta {}", k["key"].as_str().unwrap_or("?")),
        _ => return e.to_string(),
    };
    let right = match &m["right"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => match o.get("set").and_then(Value::as_array) {
            Some(items) => {
                let words: Vec<String> = items
                    .iter()
                    .map(|i| i.as_str().map_or(i.to_string(), str::to_string))
                    .collect();
                format!("{{ {} }}", words.join(", "))
            }
            None => return e.to_string(),
        },
        _ => return e.to_string(),
    };
    if m["op"] != "==" {
        return e.to_string();
    }
    format!("{left} {right}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replaces_the_table_atomically_with_raw_priority_chains() {
        let s = table_script(&["10.43.0.10".parse().expect("ip")]);
        assert!(s.starts_with("table inet nodenet-dns\ndelete table inet nodenet-dns\n"));
        assert_eq!(s.matches("priority raw").count(), 2);
        assert!(s.contains("ip daddr 10.43.0.10 meta l4proto { tcp, udp } th dport 53"));
        assert!(s.contains("ip saddr 10.43.0.10 meta l4proto { tcp, udp } th sport 53"));
        let v6 = table_script(&["fd00:43::a".parse().expect("ip")]);
        assert!(v6.contains("ip6 daddr fd00:43::a "));
    }

    #[test]
    fn a_dual_stack_table_has_every_rule_for_each_address() {
        let addrs: [IpAddr; 2] = [
            "10.43.0.10".parse().expect("ip"),
            "fd00:43::a".parse().expect("ip"),
        ];
        let s = table_script(&addrs);
        assert_eq!(s.matches("notrack").count(), 6);
        for word in [
            "ip daddr 10.43.0.10 ",
            "ip6 daddr fd00:43::a ",
            "ip6 saddr fd00:43::a ",
        ] {
            assert!(s.contains(word), "{word} missing from\n{s}");
        }
        let (_, rules) = expected(&addrs);
        let chains: Vec<&str> = rules.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            chains,
            [
                "prerouting",
                "prerouting",
                "output",
                "output",
                "output",
                "output"
            ]
        );
    }

    #[test]
    fn json_of_our_rule_normalises_to_the_expected_text() {
        let json: Value = serde_json::from_str(
            r#"{"nftables":[{"chain":{"name":"prerouting","type":"filter","hook":"prerouting","prio":-300,"policy":"accept"}},
            {"rule":{"chain":"prerouting","expr":[
              {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"10.43.0.10"}},
              {"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":{"set":["tcp","udp"]}}},
              {"match":{"op":"==","left":{"payload":{"protocol":"th","field":"dport"}},"right":53}},
              {"counter":{"packets":7,"bytes":900}},{"notrack":null}]}}]}"#,
        )
        .expect("json");
        let (chains, rules) = shape(&json);
        let (want_chains, want_rules) = expected(&["10.43.0.10".parse().expect("ip")]);
        assert_eq!(chains[0], want_chains[0]);
        assert_eq!(rules[0], want_rules[0]);
        assert_eq!(
            addresses_in(&json),
            ["10.43.0.10".parse::<IpAddr>().expect("ip")]
        );
    }
}
