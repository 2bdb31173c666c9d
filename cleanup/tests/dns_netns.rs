//! Privileged: cleanup removes the node-local DNS address from `lo` and our
//! notrack table, keeps `lo`'s other addresses, and a dry run only lists.

use std::net::IpAddr;

use cleanup::{Mode, Paths, run, steps};
use host::netns::TestNetns;

const CLUSTER_DNS: &str = "10.43.0.10";

fn lo_addresses(ns: &TestNetns) -> Vec<String> {
    let json = ns.ip_json(&["addr", "show", "dev", "lo"]).expect("ip addr");
    let mut out = Vec::new();
    for link in json.as_array().expect("array") {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            out.push(format!(
                "{}/{}",
                a["local"].as_str().unwrap_or(""),
                a["prefixlen"]
            ));
        }
    }
    out.sort();
    out
}

fn cleanup_in(ns: &TestNetns, paths: &Paths, mode: Mode) -> Vec<String> {
    let paths = paths.clone();
    ns.block_on(move || async move {
        let report = run(&steps(&paths), mode).await;
        assert!(
            report.errors.is_empty(),
            "cleanup errors: {:?}",
            report
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
        report.removed.iter().map(ToString::to_string).collect()
    })
    .expect("enter netns")
}

#[test]
fn cleanup_removes_the_node_local_dns_address_and_table() {
    let uid = nix_uid();
    assert_eq!(
        uid, 0,
        "this test needs root (it creates a network namespace)"
    );
    let ns = TestNetns::new("cleanup-dns").expect("netns");
    let addr: IpAddr = CLUSTER_DNS.parse().expect("ip");
    ns.block_on(move || async move { dns::node_local::ensure(addr).await })
        .expect("enter netns")
        .expect("node-local DNS set up");
    ns.ip(&["addr", "add", "10.99.0.1/32", "dev", "lo"])
        .expect("unrelated address");
    let before = lo_addresses(&ns);
    assert!(before.contains(&format!("{CLUSTER_DNS}/32")), "{before:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Paths {
        data_dir: dir.path().join("data"),
        run_dir: dir.path().join("run"),
        cni_conf_dir: dir.path().join("net.d"),
        cni_bin_dir: dir.path().join("bin"),
    };
    let listed = cleanup_in(&ns, &paths, Mode::DryRun);
    assert!(
        listed.iter().any(|l| l.contains(CLUSTER_DNS)),
        "dry run lists the address: {listed:?}"
    );
    assert_eq!(lo_addresses(&ns), before, "a dry run changes nothing");

    let removed = cleanup_in(&ns, &paths, Mode::Remove);
    assert_eq!(removed, listed, "the run removes what the dry run listed");
    let after = lo_addresses(&ns);
    assert!(!after.contains(&format!("{CLUSTER_DNS}/32")), "{after:?}");
    assert!(
        after.contains(&"10.99.0.1/32".to_string()),
        "unrelated address kept: {after:?}"
    );
    assert!(
        after.contains(&"127.0.0.1/8".to_string()),
        "loopback kept: {after:?}"
    );
    let tables = ns
        .run(host::nft::list_tables)
        .expect("enter netns")
        .expect("tables");
    assert!(
        !tables.iter().any(|t| t.name == host::names::NFT_DNS_TABLE),
        "table removed"
    );
}

fn nix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").expect("stat").uid()
}
