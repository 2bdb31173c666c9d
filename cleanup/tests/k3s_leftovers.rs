//! Privileged: K3s flannel's leftovers (links, iptables chains in both
//! front-ends and both families, nftables tables) and our overlay's state
//! are removed inside a fresh network namespace; unrelated links, routes,
//! rules, chains and tables stay. A dry run lists exactly what a real run
//! removes and changes nothing.

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

/// K3s's rules (flannel.md §3.1) plus unrelated ones; `{net}`, `{pod}`,
/// `{mcast}` are filled per family.
const RULES: &str = r#"*nat
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A POSTROUTING -s {other} -j MASQUERADE
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s {pod} -d {net} -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s {net} ! -d {mcast} -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
COMMIT
*filter
:FLANNEL-FWD - [0:0]
:USER-CHAIN - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FORWARD -j USER-CHAIN
-A FORWARD -m comment --comment "flanneld lookalike, not a jump to flannel" -j ACCEPT
-A FLANNEL-FWD -s {net} -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d {net} -m comment --comment "flanneld forward" -j ACCEPT
-A USER-CHAIN -p tcp -m tcp --dport 22 -m comment --comment "keep me" -j ACCEPT
COMMIT
"#;

fn require_root() {
    let uid = std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid();
    assert_eq!(
        uid, 0,
        "this test needs root (network namespaces, iptables); run it as root"
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
    let v6 = tool.starts_with("ip6");
    let (net, pod, mcast, other) = if v6 {
        ("fd42::/56", "fd42:0:0:1::/64", "ff00::/8", "fd99::/64")
    } else {
        (
            "10.42.0.0/16",
            "10.42.1.0/24",
            "224.0.0.0/4",
            "192.168.0.0/16",
        )
    };
    RULES
        .replace("{net}", net)
        .replace("{pod}", pod)
        .replace("{mcast}", mcast)
        .replace("{other}", other)
}

fn links_fixture(ns: &TestNetns) {
    let commands: &[&[&str]] = &[
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
        ],
        &["addr", "add", "192.168.60.1/24", "dev", "eth0"],
        &["link", "set", "eth0", "up"],
        &["link", "set", "eth0peer", "up"],
        &[
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "1",
            "local",
            "192.168.60.1",
            "dstport",
            "8472",
            "nolearning",
        ],
        &[
            "link",
            "add",
            "flannel-v6.1",
            "type",
            "vxlan",
            "id",
            "1",
            "local",
            "fd00:60::1",
            "dstport",
            "8472",
            "nolearning",
        ],
        &[
            "link", "add", "vxlan42", "type", "vxlan", "id", "42", "dstport", "4789",
        ],
        &["tuntap", "add", "dev", "flannel-wg", "mode", "tun"],
        // A link with a flannel name but a kind flannel never creates.
        &["link", "add", "flannel-wg-v6", "type", "bridge"],
        &["link", "add", "cni0", "type", "bridge"],
        &[
            "link",
            "add",
            "veth1f2e3d4c",
            "type",
            "veth",
            "peer",
            "name",
            "podside",
        ],
        &["link", "set", "veth1f2e3d4c", "master", "cni0"],
        // A host-gw route of ours (protocol 231) and an unrelated one.
        &[
            "route",
            "add",
            "10.42.7.0/24",
            "via",
            "192.168.60.2",
            "dev",
            "eth0",
            "proto",
            "231",
        ],
        &[
            "route",
            "add",
            "10.42.8.0/24",
            "via",
            "192.168.60.2",
            "dev",
            "eth0",
            "proto",
            "static",
        ],
    ];
    for args in commands {
        ns.ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    }
}

fn fixture() -> TestNetns {
    require_root();
    let ns = TestNetns::new("k3sleft").expect("create test netns");
    links_fixture(&ns);
    for tool in TOOLS {
        exec(
            &ns,
            &format!("{tool}-restore"),
            &["--noflush"],
            &rules_for(tool),
        );
    }
    let nft = "table ip flannel-ipv4 {\n chain postrtg { type nat hook postrouting priority srcnat; policy accept; ip saddr 10.42.0.0/16 masquerade; }\n}\n\
        table ip6 flannel-ipv6 {\n chain forward { type filter hook forward priority filter; policy accept; ip6 saddr fd42::/56 accept; }\n}\n\
        table ip nodenet-flannel {\n chain forward { type filter hook forward priority filter; policy accept; }\n}\n\
        table ip flannel-ipv4-custom {}\ntable inet unrelated {}\n";
    exec(&ns, "nft", &["-f", "-"], nft);
    ns
}

/// Per table: (chains declared, rules) of one front-end, from its save
/// output, read per line (counters and comments dropped).
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

fn links(ns: &TestNetns) -> BTreeSet<String> {
    let json = ns.ip_json(&["link", "show"]).expect("ip link");
    let list = json.as_array().expect("array");
    list.iter()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

fn routes(ns: &TestNetns) -> BTreeSet<String> {
    let json = ns.ip_json(&["route", "show"]).expect("ip route");
    let list = json.as_array().expect("array");
    list.iter()
        .filter_map(|r| r["dst"].as_str().map(String::from))
        .collect()
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

/// Everything the test looks at, for "nothing changed" comparisons.
fn snapshot(ns: &TestNetns) -> String {
    let rules: Vec<_> = TOOLS.iter().map(|tool| saved(ns, tool)).collect();
    format!(
        "{:?}\n{:?}\n{:?}\n{rules:?}",
        links(ns),
        routes(ns),
        tables(ns)
    )
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

/// What must be listed, in step order (the route line's tail is the
/// overlay's own route formatting, so it is matched by its start).
fn expected_lines() -> Vec<String> {
    let mut want: Vec<String> = [
        "link veth1f2e3d4c",
        "link cni0",
        "link flannel.1",
        "link flannel-v6.1",
        "route 10.42.7.0/24",
        "nft table ip nodenet-flannel",
        "link flannel-wg",
    ]
    .map(String::from)
    .to_vec();
    for tool in TOOLS {
        want.push(format!(
            "{tool} -t nat -A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG"
        ));
        want.push(format!(
            "{tool} -t filter -A FORWARD -m comment --comment \"flanneld forward\" -j FLANNEL-FWD"
        ));
        want.push(format!("{tool} -t nat chain FLANNEL-POSTRTG"));
        want.push(format!("{tool} -t filter chain FLANNEL-FWD"));
    }
    want.push("nft table ip flannel-ipv4".into());
    want.push("nft table ip6 flannel-ipv6".into());
    want
}

fn assert_lines(lines: &[String]) {
    let want = expected_lines();
    assert_eq!(lines.len(), want.len(), "got {lines:#?}");
    for (got, want) in lines.iter().zip(&want) {
        assert!(
            got.starts_with(want.as_str()),
            "got {got:?}, want {want:?}; all: {lines:#?}"
        );
    }
}

#[test]
fn dry_run_lists_k3s_leftovers_and_changes_nothing() {
    let ns = fixture();
    let before = snapshot(&ns);
    let lines = cleanup_in(&ns, Mode::DryRun);
    assert_lines(&lines);
    assert_eq!(snapshot(&ns), before, "dry run changed something");
}

#[test]
fn removes_k3s_leftovers_and_keeps_the_rest() {
    let ns = fixture();
    let before: Vec<_> = TOOLS.iter().map(|tool| saved(&ns, tool)).collect();
    let dry = cleanup_in(&ns, Mode::DryRun);
    let lines = cleanup_in(&ns, Mode::Remove);
    assert_eq!(lines, dry, "dry run and real run disagree");
    assert_lines(&lines);

    let links = links(&ns);
    for gone in [
        "flannel.1",
        "flannel-v6.1",
        "flannel-wg",
        "cni0",
        "veth1f2e3d4c",
    ] {
        assert!(!links.contains(gone), "{gone} still there: {links:?}");
    }
    for kept in ["lo", "eth0", "eth0peer", "vxlan42", "flannel-wg-v6"] {
        assert!(links.contains(kept), "{kept} removed: {links:?}");
    }
    let routes = routes(&ns);
    assert!(!routes.contains("10.42.7.0/24"), "{routes:?}");
    assert!(
        routes.contains("10.42.8.0/24"),
        "unrelated route removed: {routes:?}"
    );
    let tables = tables(&ns);
    for gone in ["ip flannel-ipv4", "ip6 flannel-ipv6", "ip nodenet-flannel"] {
        assert!(!tables.contains(gone), "{gone} still there: {tables:?}");
    }
    for kept in ["ip flannel-ipv4-custom", "inet unrelated"] {
        assert!(tables.contains(kept), "{kept} removed: {tables:?}");
    }
    for (tool, before) in TOOLS.iter().zip(before) {
        assert_iptables_kept(&ns, tool, before);
    }
    assert!(
        cleanup_in(&ns, Mode::Remove).is_empty(),
        "second run found more"
    );
}

/// Exactly the flannel chains and the rules in or jumping to them are gone.
fn assert_iptables_kept(ns: &TestNetns, tool: &str, before: BTreeSet<(String, String)>) {
    let after = saved(ns, tool);
    let flannel = |line: &str| line.contains("FLANNEL-POSTRTG") || line.contains("FLANNEL-FWD");
    let want: BTreeSet<_> = before
        .iter()
        .filter(|(_, l)| !flannel(l))
        .cloned()
        .collect();
    assert_eq!(after, want, "{tool}");
    let kept = [
        ("nat", "-A POSTROUTING -s"),
        ("filter", "-A FORWARD -j USER-CHAIN"),
        (
            "filter",
            "-A FORWARD -m comment --comment \"flanneld lookalike",
        ),
        ("filter", "-A USER-CHAIN -p tcp"),
        ("filter", ":USER-CHAIN"),
    ];
    for (table, start) in kept {
        let found = after
            .iter()
            .any(|(t, l)| t == table && l.starts_with(start));
        assert!(
            found,
            "{tool}: {table} {start:?} missing after cleanup: {after:#?}"
        );
    }
}
