//! Privileged: cleanup inside a fresh network namespace removes exactly our
//! objects and keeps unrelated ones; a dry run changes nothing.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cleanup::{Mode, Paths, run, steps};
use host::netns::TestNetns;

fn require_root() {
    let uid = std::fs::metadata("/proc/self")
        .expect("stat /proc/self")
        .uid();
    assert_eq!(
        uid, 0,
        "this test needs root (network namespaces, nftables); run it as root"
    );
}

struct Fixture {
    ns: TestNetns,
    _dirs: tempfile::TempDir,
    paths: Paths,
}

fn fixture() -> Fixture {
    require_root();
    let ns = TestNetns::new("cleanup").expect("create test netns");
    for args in [
        &["link", "add", "cni0", "type", "bridge"][..],
        &[
            "link",
            "add",
            "veth0a1b2c3d",
            "type",
            "veth",
            "peer",
            "name",
            "pod0",
        ],
        &["link", "set", "veth0a1b2c3d", "master", "cni0"],
        &[
            "link",
            "add",
            "vethunrelated",
            "type",
            "veth",
            "peer",
            "name",
            "pod1",
        ],
        &["link", "add", "br-other", "type", "bridge"],
        &[
            "link",
            "add",
            "veth9other",
            "type",
            "veth",
            "peer",
            "name",
            "pod2",
        ],
        &["link", "set", "veth9other", "master", "br-other"],
    ] {
        ns.ip(args).unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    }
    let script = "add table inet nodenet-hostport\nadd table inet unrelated\nadd table ip nodenet-hostport\n";
    ns.run(move || host::nft::apply(script))
        .expect("enter netns")
        .expect("nft tables");
    let (dirs, paths) = files();
    Fixture {
        ns,
        _dirs: dirs,
        paths,
    }
}

/// Our files plus unrelated neighbours in every directory.
fn files() -> (tempfile::TempDir, Paths) {
    let dirs = tempfile::tempdir().expect("tempdir");
    let root = dirs.path();
    let paths = Paths {
        data_dir: root.join("data"),
        run_dir: root.join("run"),
        cni_conf_dir: root.join("net.d"),
        cni_bin_dir: root.join("bin"),
    };
    for (path, content) in [
        (paths.cni_conf_dir.join("10-nodenet.conflist"), "{}"),
        (paths.cni_conf_dir.join("10-flannel.conflist"), "{}"),
        (paths.cni_bin_dir.join("nodenet"), "binary"),
        (paths.cni_bin_dir.join("bridge"), "binary"),
        (paths.run_dir.join("subnet.env"), "FLANNEL_MTU=1450\n"),
        (paths.run_dir.join("other.env"), "x"),
        (paths.run_dir.join("netpol/pending/10.42.0.9"), "{}"),
        (paths.data_dir.join("cni/ipam/10.42.0.2"), "c1"),
        (paths.data_dir.join("other/keep"), "x"),
    ] {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
    }
    (dirs, paths)
}

fn links(ns: &TestNetns) -> Vec<String> {
    let json = ns.ip_json(&["link", "show"]).expect("ip link");
    let list = json.as_array().expect("array");
    list.iter()
        .filter_map(|l| l["ifname"].as_str().map(String::from))
        .collect()
}

fn tables(ns: &TestNetns) -> Vec<String> {
    let found = ns
        .run(host::nft::list_tables)
        .expect("enter netns")
        .expect("list tables");
    found
        .into_iter()
        .map(|t| format!("{} {}", t.family, t.name))
        .collect()
}

/// Runs cleanup inside the namespace; returns (printed lines, errors).
fn cleanup_in(ns: &TestNetns, paths: &Paths, mode: Mode) -> (Vec<String>, Vec<String>) {
    let paths = paths.clone();
    ns.block_on(move || async move {
        let report = run(&steps(&paths), mode).await;
        let removed = report.removed.iter().map(ToString::to_string).collect();
        (
            removed,
            report.errors.iter().map(ToString::to_string).collect(),
        )
    })
    .expect("enter netns")
}

fn expected_lines(paths: &Paths) -> Vec<String> {
    let p = |path: &Path| path.display().to_string();
    vec![
        "link veth0a1b2c3d".into(),
        "link cni0".into(),
        "nft table inet nodenet-hostport".into(),
        format!(
            "file {}",
            p(&paths.cni_conf_dir.join("10-nodenet.conflist"))
        ),
        format!("file {}", p(&paths.cni_bin_dir.join("nodenet"))),
        format!("file {}", p(&paths.run_dir.join("subnet.env"))),
        format!("dir {}", p(&paths.run_dir.join("netpol"))),
        format!("dir {}", p(&paths.data_dir.join("cni"))),
    ]
}

fn snapshot(f: &Fixture) -> (Vec<String>, Vec<String>, Vec<bool>) {
    let files = expected_lines(&f.paths)
        .iter()
        .filter_map(|l| {
            l.split_once(' ')
                .filter(|(k, _)| *k == "file" || *k == "dir")
        })
        .map(|(_, path)| Path::new(path).exists())
        .collect();
    (links(&f.ns), tables(&f.ns), files)
}

#[test]
fn dry_run_lists_ours_and_changes_nothing() {
    let f = fixture();
    let before = snapshot(&f);
    let (lines, errors) = cleanup_in(&f.ns, &f.paths, Mode::DryRun);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(lines, expected_lines(&f.paths));
    assert_eq!(snapshot(&f), before, "dry run changed something");
}

#[test]
fn removes_ours_and_keeps_the_rest() {
    let f = fixture();
    let (lines, errors) = cleanup_in(&f.ns, &f.paths, Mode::Remove);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(lines, expected_lines(&f.paths));

    let links = links(&f.ns);
    for gone in ["cni0", "veth0a1b2c3d", "pod0"] {
        assert!(
            !links.contains(&gone.to_string()),
            "{gone} still there: {links:?}"
        );
    }
    for kept in [
        "lo",
        "vethunrelated",
        "pod1",
        "br-other",
        "veth9other",
        "pod2",
    ] {
        assert!(
            links.contains(&kept.to_string()),
            "{kept} removed: {links:?}"
        );
    }
    let tables = tables(&f.ns);
    assert!(
        !tables.contains(&"inet nodenet-hostport".to_string()),
        "{tables:?}"
    );
    assert!(tables.contains(&"inet unrelated".to_string()), "{tables:?}");
    assert!(
        tables.contains(&"ip nodenet-hostport".to_string()),
        "other family kept: {tables:?}"
    );

    let p = &f.paths;
    for gone in [
        p.cni_conf_dir.join("10-nodenet.conflist"),
        p.cni_bin_dir.join("nodenet"),
        p.run_dir.join("subnet.env"),
        p.data_dir.join("cni"),
    ] {
        assert!(!gone.exists(), "{} still there", gone.display());
    }
    for kept in [
        p.cni_conf_dir.join("10-flannel.conflist"),
        p.cni_bin_dir.join("bridge"),
        p.run_dir.join("other.env"),
        p.data_dir.join("other/keep"),
    ] {
        assert!(kept.exists(), "{} removed", kept.display());
    }

    let (again, errors) = cleanup_in(&f.ns, &f.paths, Mode::Remove);
    assert!(
        again.is_empty() && errors.is_empty(),
        "second run: {again:?} {errors:?}"
    );
}
