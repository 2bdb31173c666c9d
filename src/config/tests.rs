//! Flag parsing and validation: defaults, merge, and that every error names
//! its flag.

use std::io::Write;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn run_args(extra: &[&str]) -> RunArgs {
    let mut argv = vec!["nodenet", "run"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).expect("clap accepts").command {
        Command::Run(args) => *args,
        Command::Cleanup(_) => panic!("parsed as cleanup"),
    }
}

fn config(extra: &[&str]) -> Result<Config, ConfigError> {
    Config::from_args_with(run_args(extra), None, || Ok("Host-A\n".into()))
}

fn error(extra: &[&str]) -> String {
    config(extra).expect_err("must be rejected").to_string()
}

#[test]
fn defaults_are_k3s_defaults() {
    let c = config(&[]).expect("defaults are valid");
    assert_eq!(
        c.cluster_cidrs,
        vec!["10.42.0.0/16".parse::<IpNet>().expect("net")]
    );
    assert_eq!(
        c.service_cidrs,
        vec!["10.43.0.0/16".parse::<IpNet>().expect("net")]
    );
    assert_eq!(
        c.cluster_dns,
        vec!["10.43.0.10".parse::<IpAddr>().expect("ip")]
    );
    assert_eq!(c.cluster_domain, "cluster.local");
    assert_eq!(c.flannel_backend, Some(Backend::Vxlan));
    assert_eq!(c.paths.data_dir, PathBuf::from("/var/lib/nodenet"));
    assert_eq!(c.paths.run_dir, PathBuf::from("/run/nodenet"));
    assert_eq!(c.paths.cni_conf_dir, PathBuf::from("/etc/cni/net.d"));
    assert_eq!(c.paths.cni_bin_dir, PathBuf::from("/opt/cni/bin"));
    assert_eq!(
        c.metrics_addr,
        "127.0.0.1:10260".parse::<SocketAddr>().expect("addr")
    );
    assert_eq!(c.log_format, LogFormat::Text);
    assert!(c.disabled.is_empty());
    assert_eq!(c.node_name, "host-a", "hostname is trimmed and lower-cased");
}

#[test]
fn agent_is_an_alias_of_run() {
    let cli = Cli::try_parse_from(["nodenet", "agent", "--node-name", "n1"]).expect("alias");
    assert!(matches!(cli.command, Command::Run(_)));
}

#[test]
fn node_name_flag_then_env_then_hostname() {
    let flag = run_args(&["--node-name", "flagged"]);
    let c = Config::from_args_with(flag, Some("env-node".into()), || Ok("h".into()));
    assert_eq!(c.expect("valid").node_name, "flagged");
    let c = Config::from_args_with(run_args(&[]), Some("env-node".into()), || Ok("h".into()));
    assert_eq!(c.expect("valid").node_name, "env-node");
    let failing = || Err(std::io::Error::other("no hostname"));
    let err = Config::from_args_with(run_args(&[]), None, failing).expect_err("no name");
    assert!(err.to_string().contains("--node-name"), "{err}");
}

#[test]
fn disable_is_a_repeatable_comma_list_with_k3s_aliases() {
    let c = config(&["--disable", "traefik,coredns", "--disable", "servicelb"]).expect("valid");
    let want: BTreeSet<_> = [
        Disableable::Ingress,
        Disableable::Dns,
        Disableable::Servicelb,
    ]
    .into();
    assert_eq!(c.disabled, want);
    assert!(c.enabled(Disableable::Netpol));
    let c = config(&["--disable-network-policy"]).expect("valid");
    assert!(!c.enabled(Disableable::Netpol));
}

#[test]
fn unknown_component_lists_valid_names() {
    let text = error(&["--disable", "dns,local-storage"]);
    assert!(
        text.contains("--disable") && text.contains("local-storage"),
        "{text}"
    );
    for name in [
        "servicelb",
        "netpol",
        "dns",
        "ingress",
        "traefik",
        "coredns",
    ] {
        assert!(text.contains(name), "{text} lacks {name}");
    }
}

#[test]
fn backends_and_none() {
    let c = config(&["--flannel-backend", "host-gw"]).expect("valid");
    assert_eq!(c.flannel_backend, Some(Backend::HostGw));
    let c = config(&["--flannel-backend", "wireguard-native"]).expect("valid");
    assert_eq!(c.flannel_backend, Some(Backend::WireguardNative));
    assert_eq!(
        config(&["--flannel-backend", "none"])
            .expect("valid")
            .flannel_backend,
        None
    );
}

#[test]
fn dual_stack_cidrs_are_accepted() {
    let c = config(&[
        "--cluster-cidr",
        "10.42.0.0/16,fd00:42::/56",
        "--service-cidr",
        "10.43.0.0/16,fd00:43::/112",
        "--cluster-dns",
        "10.43.0.10,fd00:43::a",
        "--node-ip",
        "192.168.1.5,fd00::5",
    ])
    .expect("valid dual-stack");
    assert_eq!(c.cluster_cidrs.len(), 2);
    assert_eq!(c.cluster_dns.len(), 2);
    assert_eq!(c.node_ips.len(), 2);
}

/// Every rejected value: (args, the flag the message must name).
const BAD: &[(&[&str], &str)] = &[
    (&["--cluster-cidr", "10.42.0.0/33"], "--cluster-cidr"),
    (&["--cluster-cidr", "banana"], "--cluster-cidr"),
    (&["--cluster-cidr", "10.42.1.0/16"], "--cluster-cidr"),
    (&["--cluster-cidr", ","], "--cluster-cidr"),
    (
        &["--cluster-cidr", "10.42.0.0/16,10.44.0.0/16"],
        "--cluster-cidr",
    ),
    (&["--service-cidr", "10.43.0.0/x"], "--service-cidr"),
    (&["--cluster-dns", "10.43.0.300"], "--cluster-dns"),
    (&["--cluster-dns", "10.99.0.10"], "--cluster-dns"),
    (&["--node-ip", "1.2.3"], "--node-ip"),
    (&["--node-ip", "1.2.3.4,5.6.7.8"], "--node-ip"),
    (&["--node-external-ip", "nope"], "--node-external-ip"),
    (&["--cluster-domain", "Cluster_Local"], "--cluster-domain"),
    (&["--node-name", "UPPER"], "--node-name"),
    (&["--flannel-backend", "udp"], "--flannel-backend"),
    (&["--log-format", "xml"], "--log-format"),
    (&["--metrics-addr", "localhost"], "--metrics-addr"),
    (&["--disable", "kube-proxy"], "--disable"),
    (&["--flannel-iface", ""], "--flannel-iface"),
    (&["--flannel-iface", "sixteen-chars-ab"], "--flannel-iface"),
    (&["--flannel-iface", "eth/0"], "--flannel-iface"),
    (&["--flannel-iface", "eth0:1"], "--flannel-iface"),
    (&["--flannel-iface", "eth 0"], "--flannel-iface"),
    (&["--flannel-iface", ".."], "--flannel-iface"),
    (&["--flannel-external-ip"], "--flannel-external-ip"),
    (&["--flannel-ipv6-masq"], "--flannel-ipv6-masq"),
    (
        &[
            "--flannel-backend",
            "wireguard-native",
            "--flannel-wireguard-mode",
            "boringtun",
        ],
        "--flannel-wireguard-mode",
    ),
    (
        &["--flannel-wireguard-mode", "kernel"],
        "--flannel-wireguard-mode",
    ),
];

#[test]
fn every_error_names_its_flag() {
    for (args, flag) in BAD {
        let text = error(args);
        assert!(
            text.contains(flag),
            "{args:?}: {text:?} does not name {flag}"
        );
    }
}

#[test]
fn overlapping_cluster_and_service_cidrs_are_rejected() {
    let text = error(&[
        "--cluster-cidr",
        "10.0.0.0/8",
        "--cluster-dns",
        "10.43.0.10",
    ]);
    assert!(
        text.contains("--cluster-cidr 10.0.0.0/8") && text.contains("--service-cidr 10.43.0.0/16"),
        "{text}"
    );
    let text = error(&[
        "--service-cidr",
        "10.42.128.0/20",
        "--cluster-dns",
        "10.42.128.10",
    ]);
    assert!(text.contains("overlaps"), "{text}");
}

#[test]
fn config_errors_exit_64() {
    assert_eq!(EXIT_CONFIG, 64);
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("write");
    file
}

#[test]
fn yaml_file_values_apply_and_flags_override_them() {
    let file = config_file(
        "cluster-cidr: 10.50.0.0/16\ndisable: [traefik]\nflannel-backend: host-gw\nnode-name: from-file\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let c = config(&["--config", path, "--flannel-backend", "none"]).expect("valid");
    assert_eq!(
        c.cluster_cidrs,
        vec!["10.50.0.0/16".parse::<IpNet>().expect("net")]
    );
    assert_eq!(c.disabled, [Disableable::Ingress].into());
    assert_eq!(c.flannel_backend, None, "flag overrides file");
    assert_eq!(c.node_name, "from-file");
}

#[test]
fn yaml_file_errors_name_the_file_and_key() {
    let file = config_file("cluster-cidr: 10.42.0.0/99\n");
    let path = file.path().to_str().expect("utf-8 path");
    let text = config(&["--config", path])
        .expect_err("bad CIDR")
        .to_string();
    assert!(text.contains("--cluster-cidr"), "{text}");
    let text = config(&["--config", "/nonexistent/nodenet.yaml"])
        .expect_err("missing")
        .to_string();
    assert!(
        text.contains("--config") && text.contains("/nonexistent/nodenet.yaml"),
        "{text}"
    );
}

#[test]
fn flannel_options_default_off() {
    let c = config(&[]).expect("valid");
    assert_eq!(c.flannel, FlannelOptions::default());
}

#[test]
fn flannel_options_from_flags() {
    let c = config(&[
        "--flannel-iface",
        "enp0s31f6.100",
        "--node-external-ip",
        "203.0.113.7",
        "--flannel-external-ip",
        "--cluster-cidr",
        "10.42.0.0/16,fd00:42::/56",
        "--flannel-ipv6-masq",
    ])
    .expect("valid");
    let want = FlannelOptions {
        iface: Some("enp0s31f6.100".into()),
        external_ip: true,
        ipv6_masq: true,
        wireguard_mode: WireguardMode::Auto,
    };
    assert_eq!(c.flannel, want);
    assert_eq!(
        c.node_external_ips,
        vec!["203.0.113.7".parse::<IpAddr>().expect("ip")]
    );
}

#[test]
fn flannel_option_errors_say_what_is_missing() {
    let text = error(&["--flannel-external-ip"]);
    assert!(text.contains("--node-external-ip"), "{text}");
    let text = error(&["--flannel-ipv6-masq", "--cluster-cidr", "10.42.0.0/16"]);
    assert!(
        text.contains("IPv6") && text.contains("--cluster-cidr"),
        "{text}"
    );
    let text = error(&["--flannel-iface", "a-very-long-name0"]);
    assert!(text.contains("15 bytes"), "{text}");
}

#[test]
fn wireguard_mode_from_flag_or_file_only_with_the_wireguard_backend() {
    let wg = ["--flannel-backend", "wireguard-native"];
    for (value, mode) in [
        ("auto", WireguardMode::Auto),
        ("kernel", WireguardMode::Kernel),
        ("userspace", WireguardMode::Userspace),
    ] {
        let c = config(&[wg[0], wg[1], "--flannel-wireguard-mode", value]).expect("valid");
        assert_eq!(c.flannel.wireguard_mode, mode);
    }
    let c = config(&wg).expect("valid");
    assert_eq!(c.flannel.wireguard_mode, WireguardMode::Auto);
    let file =
        config_file("flannel-backend: wireguard-native\nflannel-wireguard-mode: userspace\n");
    let path = file.path().to_str().expect("utf-8 path");
    let c = config(&["--config", path]).expect("valid");
    assert_eq!(c.flannel.wireguard_mode, WireguardMode::Userspace);
    let text = error(&[
        "--flannel-backend",
        "vxlan",
        "--flannel-wireguard-mode",
        "kernel",
    ]);
    assert!(text.contains("wireguard-native"), "{text}");
    let text = error(&[wg[0], wg[1], "--flannel-wireguard-mode", "wg-go"]);
    assert!(text.contains("auto, kernel, userspace"), "{text}");
}

#[test]
fn flannel_options_from_yaml_file_and_flags_add_to_them() {
    let file = config_file(
        "flannel-iface: eth1\nflannel-external-ip: true\nnode-external-ip: 198.51.100.4\ncluster-cidr: [10.42.0.0/16, fd00:42::/56]\n",
    );
    let path = file.path().to_str().expect("utf-8 path");
    let c = config(&["--config", path]).expect("valid");
    assert_eq!(c.flannel.iface.as_deref(), Some("eth1"));
    assert!(c.flannel.external_ip);
    assert!(!c.flannel.ipv6_masq);
    let c = config(&[
        "--config",
        path,
        "--flannel-iface",
        "eth2",
        "--flannel-ipv6-masq",
    ])
    .expect("valid");
    assert_eq!(
        c.flannel.iface.as_deref(),
        Some("eth2"),
        "flag overrides file"
    );
    assert!(c.flannel.ipv6_masq && c.flannel.external_ip);
    let file = config_file("flannel-ipv6-masq: yes please\n");
    let path = file.path().to_str().expect("utf-8 path");
    let text = config(&["--config", path])
        .expect_err("not a bool")
        .to_string();
    assert!(
        text.contains("flannel-ipv6-masq") || text.contains("bool"),
        "{text}"
    );
}
