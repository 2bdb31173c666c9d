//! A snapshot of the machine's root network namespace, taken before and after
//! an end-to-end test, so every test proves it left the host untouched.

use std::process::Command;

use serde_json::Value;

/// What a test could plausibly change in the root namespace: links,
/// addresses, routes (all tables, both families), nftables and iptables rules,
/// and the forwarding sysctls nodenet sets inside its own namespaces.
#[derive(Debug, PartialEq, Eq)]
pub struct RootNs {
    links: Vec<String>,
    addresses: Vec<String>,
    routes: Vec<String>,
    nft: String,
    iptables: Vec<String>,
    sysctls: Vec<(String, String)>,
}

const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    // The dual-stack lab turns DAD off, in its own namespaces only.
    "net/ipv6/conf/all/accept_dad",
    "net/ipv6/conf/default/accept_dad",
];

impl RootNs {
    /// Reads the root namespace. Tests run in it, so `ip` and `nft` without
    /// `-n` see it.
    pub fn capture() -> RootNs {
        RootNs {
            links: links(),
            addresses: addresses(),
            routes: routes(),
            nft: nft_ruleset(),
            iptables: iptables_rules(),
            sysctls: SYSCTLS.iter().map(|s| (s.to_string(), sysctl(s))).collect(),
        }
    }

    /// Fails the test, naming what differs, if the root namespace changed.
    pub fn assert_unchanged(&self) {
        let now = RootNs::capture();
        assert_eq!(self.links, now.links, "root netns links changed");
        assert_eq!(
            self.addresses, now.addresses,
            "root netns addresses changed"
        );
        assert_eq!(self.routes, now.routes, "root netns routes changed");
        assert_eq!(self.nft, now.nft, "root netns nftables ruleset changed");
        assert_eq!(
            self.iptables, now.iptables,
            "root netns iptables rules changed"
        );
        assert_eq!(self.sysctls, now.sysctls, "root netns sysctls changed");
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (scripts/install-deps installs it)"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(program: &str, args: &[&str]) -> Vec<Value> {
    let text = run(program, args);
    if text.trim().is_empty() {
        return Vec::new();
    }
    match serde_json::from_str(&text) {
        Ok(Value::Array(items)) => items,
        other => panic!("{program} {args:?}: expected a JSON array, got {other:?}"),
    }
}

fn field(v: &Value, key: &str) -> String {
    v.get(key).map(|x| x.to_string()).unwrap_or_default()
}

fn links() -> Vec<String> {
    let mut out: Vec<String> = json("ip", &["-j", "-d", "link", "show"])
        .iter()
        .map(|l| {
            let kind = l
                .pointer("/linkinfo/info_kind")
                .cloned()
                .unwrap_or_default();
            let up = l["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP"));
            format!(
                "{} kind={kind} mtu={} master={} up={up}",
                field(l, "ifname"),
                field(l, "mtu"),
                field(l, "master")
            )
        })
        .collect();
    out.sort();
    out
}

fn addresses() -> Vec<String> {
    let mut out = Vec::new();
    for link in json("ip", &["-j", "addr", "show"]) {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            out.push(format!(
                "{} {}/{}",
                field(&link, "ifname"),
                field(a, "local"),
                field(a, "prefixlen")
            ));
        }
    }
    out.sort();
    out
}

fn routes() -> Vec<String> {
    let mut out = Vec::new();
    for family in ["-4", "-6"] {
        for r in json("ip", &[family, "-j", "route", "show", "table", "all"]) {
            out.push(format!(
                "{family} {} {} via={} dev={} table={}",
                field(&r, "type"),
                field(&r, "dst"),
                field(&r, "gateway"),
                field(&r, "dev"),
                field(&r, "table")
            ));
        }
    }
    out.sort();
    out
}

/// The ruleset without counter values, which traffic changes.
fn nft_ruleset() -> String {
    let mut v: Value = serde_json::from_str(&run("nft", &["-j", "list", "ruleset"]))
        .expect("nft -j list ruleset prints JSON");
    strip_counters(&mut v);
    v.to_string()
}

fn strip_counters(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.remove("packets");
            map.remove("bytes");
            map.values_mut().for_each(strip_counters);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_counters),
        _ => {}
    }
}

/// Rules of both iptables backends and families, counters removed.
fn iptables_rules() -> Vec<String> {
    let tools = [
        "iptables-legacy-save",
        "ip6tables-legacy-save",
        "iptables-nft-save",
        "ip6tables-nft-save",
    ];
    let mut out = Vec::new();
    for tool in tools {
        for line in run(tool, &[]).lines() {
            if line.starts_with('#') {
                continue;
            }
            let without_counters = line.split(" [").next().unwrap_or(line);
            out.push(format!("{tool}: {without_counters}"));
        }
    }
    out
}

fn sysctl(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{path}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}
