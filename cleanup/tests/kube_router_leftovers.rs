//! Privileged: K3s's NetworkPolicy leftovers (kube-router's filter chains in
//! both iptables front-ends and both families, the rules jumping to them,
//! its ipsets, the tables of its nftables backend) and our
//! `inet nodenet-netpol` table are removed inside a
//! fresh network namespace; unrelated rules, chains, sets and tables stay.
//! A dry run lists what a real run removes and changes nothing.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use cleanup::{Mode, Paths, run, steps};
use host::netns::TestNetns;

const TOOLS: [&str; 4] = [
    "iptables-legacy",
    "iptables-nft",
    "ip6tables-legacy",
    "ip6tables-nft",
];

/// kube-router's layout (netpol.md §2) beside unrelated rules; `{p}` is the
/// ipset prefix of the family (`inet6:` for IPv6), `{pod}` a pod address.
const RULES: &str = r#"*filter
:KUBE-ROUTER-INPUT - [0:0]
:KUBE-ROUTER-FORWARD - [0:0]
:KUBE-ROUTER-OUTPUT - [0:0]
:KUBE-POD-FW-4FQZ5ENJZOYX6NOG - [0:0]
:KUBE-NWPLCY-DEFAULT - [0:0]
:KUBE-NWPLCY-CMUUZKKR5RMWPUZB - [0:0]
:KUBE-FORWARD - [0:0]
:USER-CHAIN - [0:0]
-A INPUT -m comment --comment "kube-router netpol - 4IA2OSFRMVNDXBVV" -j KUBE-ROUTER-INPUT
-A FORWARD -m comment --comment "kube-router netpol - TEMCG2JMHZYE7H7T" -j KUBE-ROUTER-FORWARD
-A OUTPUT -m comment --comment "kube-router netpol - VEAAIY32XVBHCSCY" -j KUBE-ROUTER-OUTPUT
-A FORWARD -j KUBE-FORWARD
-A FORWARD -j USER-CHAIN
-A FORWARD -m set --match-set {p}keep-me src -j ACCEPT
-A KUBE-ROUTER-FORWARD -d {pod} -m comment --comment "rule to jump traffic destined to POD name:a namespace: x to chain KUBE-POD-FW-4FQZ5ENJZOYX6NOG" -j KUBE-POD-FW-4FQZ5ENJZOYX6NOG
-A KUBE-ROUTER-INPUT -s {pod} -j KUBE-POD-FW-4FQZ5ENJZOYX6NOG
-A KUBE-ROUTER-OUTPUT -d {pod} -j KUBE-POD-FW-4FQZ5ENJZOYX6NOG
-A KUBE-POD-FW-4FQZ5ENJZOYX6NOG -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-POD-FW-4FQZ5ENJZOYX6NOG -d {pod} -j KUBE-NWPLCY-CMUUZKKR5RMWPUZB
-A KUBE-POD-FW-4FQZ5ENJZOYX6NOG -j KUBE-NWPLCY-DEFAULT
-A KUBE-POD-FW-4FQZ5ENJZOYX6NOG -m mark ! --mark 0x10000/0x10000 -j REJECT
-A KUBE-NWPLCY-DEFAULT -j MARK --set-xmark 0x10000/0x10000
-A KUBE-NWPLCY-CMUUZKKR5RMWPUZB -m set --match-set {p}KUBE-SRC-VXKZJSTB7L2ZQGTW src -m set --match-set {p}KUBE-DST-TZ7YTM7IYYKRMBUR dst -j MARK --set-xmark 0x10000/0x10000
-A KUBE-NWPLCY-CMUUZKKR5RMWPUZB -m set --match-set {p}kube-router-local-pods src -j RETURN
-A KUBE-FORWARD -m comment --comment "kube-proxy's, not ours" -j ACCEPT
-A USER-CHAIN -p tcp -m tcp --dport 22 -m comment --comment "keep me" -j ACCEPT
COMMIT
"#;

/// kube-router's sets of both families, and sets of others.
const THEIR_SETS: [&str; 6] = [
    "KUBE-SRC-VXKZJSTB7L2ZQGTW",
    "KUBE-DST-TZ7YTM7IYYKRMBUR",
    "kube-router-local-pods",
    "inet6:KUBE-SRC-VXKZJSTB7L2ZQGTW",
    "inet6:KUBE-DST-TZ7YTM7IYYKRMBUR",
    "inet6:kube-router-local-pods",
];
const OTHER_SETS: [&str; 4] = [
    "keep-me",
    "inet6:keep-me",
    "KUBE-CLUSTER-IP",
    "my-KUBE-SRC-x",
];

fn require_root() {
    let uid = std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid();
    assert_eq!(
        uid, 0,
        "this test needs root (network namespaces, iptables, ipset); run it as root"
    );
}

/// Runs `program args` inside the namespace with `stdin`; panics on failure.
fn exec(ns: &TestNetns, program: &str, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), program])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rules_for(tool: &str) -> String {
    let (prefix, pod) = if tool.starts_with("ip6") {
        ("inet6:", "fd42::5/128")
    } else {
        ("", "10.42.0.5/32")
    };
    RULES.replace("{p}", prefix).replace("{pod}", pod)
}

fn create_sets(ns: &TestNetns) {
    for name in THEIR_SETS.iter().chain(&OTHER_SETS) {
        let family = if name.starts_with("inet6:") {
            "inet6"
        } else {
            "inet"
        };
        let kind = if name.contains("local-pods") {
            "hash:ip"
        } else {
            "hash:net"
        };
        exec(ns, "ipset", &["create", name, kind, "family", family], "");
    }
    exec(
        ns,
        "ipset",
        &["add", "kube-router-local-pods", "10.42.0.5"],
        "",
    );
}

fn fixture() -> TestNetns {
    require_root();
    let ns = TestNetns::new("kuberouter").expect("create test netns");
    create_sets(&ns);
    for tool in TOOLS {
        exec(
            &ns,
            &format!("{tool}-restore"),
            &["--noflush"],
            &rules_for(tool),
        );
    }
    let nft = "table inet nodenet-netpol {\n chain egress-forward { type filter hook forward priority 0; policy accept; ct state established,related accept; }\n}\n\
        table inet nodenet-netpol-custom {}\ntable ip kube-router-lookalike {}\n\
        table ip kube-router-filter-ipv4 {\n chain KUBE-ROUTER-FORWARD { type filter hook forward priority 0; policy accept; }\n}\n\
        table ip6 kube-router-filter-ipv6 {\n set kube-router-local-pods { type ipv6_addr; elements = { fd42::5 } }\n}\n";
    exec(&ns, "nft", &["-f", "-"], nft);
    ns
}

/// (table, line) of chain declarations and rules of one front-end.
fn saved(ns: &TestNetns, tool: &str) -> BTreeSet<(String, String)> {
    let text = exec(ns, &format!("{tool}-save"), &[], "");
    let mut table = String::new();
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_string();
        } else if let Some(decl) = line.strip_prefix(':') {
            let chain = decl.split_whitespace().next().unwrap_or_default();
            out.insert((table.clone(), format!(":{chain}")));
        } else if line.starts_with("-A ") {
            out.insert((table.clone(), line.to_string()));
        }
    }
    out
}

fn sets(ns: &TestNetns) -> BTreeSet<String> {
    let text = exec(ns, "ipset", &["list", "-n"], "");
    text.lines().map(String::from).collect()
}

fn tables(ns: &TestNetns) -> BTreeSet<String> {
    let found = ns
        .run(host::nft::list_tables)
        .expect("enter netns")
        .expect("list tables");
    found
        .into_iter()
        .map(|t| format!("{} {}", t.family, t.name))
        .collect()
}

fn snapshot(ns: &TestNetns) -> String {
    let rules: Vec<_> = TOOLS.iter().map(|tool| saved(ns, tool)).collect();
    format!("{:?}\n{:?}\n{rules:?}", sets(ns), tables(ns))
}

fn cleanup_in(ns: &TestNetns, mode: Mode) -> Vec<String> {
    let dirs = tempfile::tempdir().expect("tempdir");
    let root = dirs.path().to_path_buf();
    let paths = Paths {
        data_dir: root.join("data"),
        run_dir: root.join("run"),
        cni_conf_dir: root.join("net.d"),
        cni_bin_dir: root.join("bin"),
    };
    let (lines, errors): (Vec<String>, Vec<String>) = ns
        .block_on(move || async move {
            let report = run(&steps(&paths), mode).await;
            (
                report.removed.iter().map(ToString::to_string).collect(),
                report.errors.iter().map(ToString::to_string).collect(),
            )
        })
        .expect("enter netns");
    assert!(errors.is_empty(), "{mode:?}: {errors:?}");
    lines
}

/// In step order: our table, per front-end the three jumps then the
/// chains (parents before children), then the sets.
fn expected_lines() -> Vec<String> {
    let mut want = vec![
        "nft table inet nodenet-netpol".to_string(),
        "nft table ip kube-router-filter-ipv4".to_string(),
        "nft table ip6 kube-router-filter-ipv6".to_string(),
    ];
    for tool in TOOLS {
        for (hook, chain, id) in [
            ("INPUT", "INPUT", "4IA2OSFRMVNDXBVV"),
            ("FORWARD", "FORWARD", "TEMCG2JMHZYE7H7T"),
            ("OUTPUT", "OUTPUT", "VEAAIY32XVBHCSCY"),
        ] {
            want.push(format!(
                "{tool} -t filter -A {hook} -m comment --comment \"kube-router netpol - {id}\" -j KUBE-ROUTER-{chain}"
            ));
        }
        for chain in [
            "KUBE-ROUTER-INPUT",
            "KUBE-ROUTER-FORWARD",
            "KUBE-ROUTER-OUTPUT",
            "KUBE-POD-FW-4FQZ5ENJZOYX6NOG",
            "KUBE-NWPLCY-DEFAULT",
            "KUBE-NWPLCY-CMUUZKKR5RMWPUZB",
        ] {
            want.push(format!("{tool} -t filter chain {chain}"));
        }
    }
    want
}

/// The chain lines of one front-end come in saved order within a
/// generation of the parents-first order, and sets in `ipset list` order:
/// compare those groups as sets, the rest in order.
fn assert_lines(lines: &[String]) {
    let want = expected_lines();
    let (got_sets, got_rest): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.starts_with("ipset "));
    let got_rest: Vec<String> = got_rest.into_iter().cloned().collect();
    assert_eq!(
        sorted_chains(&got_rest),
        sorted_chains(&want),
        "got {lines:#?}"
    );
    assert!(
        chains_parents_first(&got_rest),
        "children before parents: {got_rest:#?}"
    );
    let got_sets: BTreeSet<String> = got_sets.into_iter().cloned().collect();
    let want_sets: BTreeSet<String> = THEIR_SETS.iter().map(|s| format!("ipset {s}")).collect();
    assert_eq!(got_sets, want_sets);
    let last_rule = lines.iter().rposition(|l| !l.starts_with("ipset "));
    let first_set = lines.iter().position(|l| l.starts_with("ipset "));
    assert!(last_rule < first_set, "sets before rules: {lines:#?}");
}

fn sorted_chains(lines: &[String]) -> Vec<String> {
    let mut out = lines.to_vec();
    out.sort();
    out
}

/// KUBE-ROUTER-* before KUBE-POD-FW-* before KUBE-NWPLCY-* per front-end.
fn chains_parents_first(lines: &[String]) -> bool {
    TOOLS.iter().all(|tool| {
        let rank = |l: &String| {
            let chain = l.strip_prefix(&format!("{tool} -t filter chain "))?;
            Some(if chain.starts_with("KUBE-ROUTER-") {
                0
            } else if chain.starts_with("KUBE-POD-FW-") {
                1
            } else {
                2
            })
        };
        let ranks: Vec<u8> = lines.iter().filter_map(rank).collect();
        ranks.windows(2).all(|w| w[0] <= w[1])
    })
}

#[test]
fn dry_run_lists_kube_router_leftovers_and_changes_nothing() {
    let ns = fixture();
    let before = snapshot(&ns);
    let lines = cleanup_in(&ns, Mode::DryRun);
    assert_lines(&lines);
    assert_eq!(snapshot(&ns), before, "dry run changed something");
}

#[test]
fn removes_kube_router_leftovers_and_keeps_the_rest() {
    let ns = fixture();
    let before: Vec<_> = TOOLS.iter().map(|tool| saved(&ns, tool)).collect();
    let dry = cleanup_in(&ns, Mode::DryRun);
    let lines = cleanup_in(&ns, Mode::Remove);
    assert_eq!(lines, dry, "dry run and real run disagree");
    assert_lines(&lines);

    let sets = sets(&ns);
    for gone in THEIR_SETS {
        assert!(!sets.contains(gone), "{gone} still there: {sets:?}");
    }
    for kept in OTHER_SETS {
        assert!(sets.contains(kept), "{kept} removed: {sets:?}");
    }
    let tables = tables(&ns);
    for gone in [
        "inet nodenet-netpol",
        "ip kube-router-filter-ipv4",
        "ip6 kube-router-filter-ipv6",
    ] {
        assert!(!tables.contains(gone), "{gone} still there: {tables:?}");
    }
    for kept in ["inet nodenet-netpol-custom", "ip kube-router-lookalike"] {
        assert!(tables.contains(kept), "{kept} removed: {tables:?}");
    }
    for (tool, before) in TOOLS.iter().zip(before) {
        let after = saved(&ns, tool);
        let theirs = |line: &str| {
            line.contains("KUBE-ROUTER-")
                || line.contains("KUBE-POD-FW-")
                || line.contains("KUBE-NWPLCY-")
        };
        let want: BTreeSet<_> = before.into_iter().filter(|(_, l)| !theirs(l)).collect();
        assert_eq!(after, want, "{tool}: more or less than kube-router's went");
        for kept in [
            "-A FORWARD -j KUBE-FORWARD",
            "-A FORWARD -j USER-CHAIN",
            ":KUBE-FORWARD",
            "-A USER-CHAIN -p tcp",
        ] {
            assert!(
                after
                    .iter()
                    .any(|(t, l)| t == "filter" && l.starts_with(kept)),
                "{tool}: {kept:?} missing: {after:#?}"
            );
        }
        assert!(
            after
                .iter()
                .any(|(_, l)| l.contains("--match-set") && l.contains("keep-me")),
            "{tool}: unrelated set rule removed"
        );
    }
    assert!(
        cleanup_in(&ns, Mode::Remove).is_empty(),
        "second run found more"
    );
}
