//! Dual-stack cluster DNS in a network namespace this test creates: every
//! `--cluster-dns` address (an IPv4 and an IPv6 one) goes on lo with its
//! notrack rules in the one table, is answered over UDP and TCP by the
//! server the component configures, and cleanup finds and removes both.
//! Needs root; fails (never skips) without it.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dns::DnsComponentConfig;
use dns::forward::{ForwardConfig, Forwarder};
use dns::metrics::Metrics;
use dns::node_local;
use dns::server::{Context, Server};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use host::netns::TestNetns;

const V4: &str = "10.43.0.10";
const V6: &str = "fd00:43::a";
const NAME: &str = "web.default.svc.cluster.local.";

fn addrs() -> Vec<IpAddr> {
    [V4, V6].map(|a| a.parse().expect("ip")).to_vec()
}

fn lo_addrs(ns: &TestNetns) -> Vec<String> {
    let json = ns.ip_json(&["addr", "show", "dev", "lo"]).expect("ip addr");
    json[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
        .collect()
}

/// One UDP exchange from a socket of `server`'s family.
async fn udp(server: SocketAddr) -> Message {
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().expect("addr")
    } else {
        "[::]:0".parse().expect("addr")
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.expect("bind");
    let msg = common::query(NAME, RecordType::A, Some(1232));
    let bytes = msg.to_vec().expect("encode");
    socket.send_to(&bytes, server).await.expect("send");
    let mut buf = vec![0u8; 4096];
    let recv = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf));
    let n = recv.await.expect("an answer in time").expect("recv");
    let answer = Message::from_vec(&buf[..n]).expect("decode");
    assert_eq!(answer.metadata.id, msg.metadata.id);
    answer
}

/// Sets up both addresses, serves the fixture table on the listen
/// addresses the component derives from its flags, and asks each over
/// UDP and TCP; returns the A records per (address, transport).
async fn serve_and_ask() -> Vec<(SocketAddr, &'static str, Vec<std::net::Ipv4Addr>)> {
    let changed = node_local::ensure_all(&addrs()).await.expect("ensure");
    assert!(changed.address && changed.table, "{changed:?}");
    let again = node_local::ensure_all(&addrs()).await.expect("ensure");
    assert!(!again.address && !again.table, "idempotent: {again:?}");
    let config = DnsComponentConfig {
        cluster_dns: addrs(),
        cluster_domain: "cluster.local".into(),
        resolv_conf: None,
    };
    let ctx = Arc::new(Context {
        table: Arc::new(ArcSwap::from_pointee(common::fixture_table())),
        forwarder: Arc::new(Forwarder::new(ForwardConfig::default())),
        metrics: Arc::new(Metrics::new()),
    });
    let server = Server::bind(&config.dns_config().server, ctx)
        .await
        .expect("bind every cluster DNS address");
    let serving = tokio::spawn(server.serve());
    let mut got = Vec::new();
    for ip in addrs() {
        let target = SocketAddr::new(ip, 53);
        got.push((target, "udp", common::a_records(&udp(target).await)));
        let msg = common::query(NAME, RecordType::A, None);
        let tcp = common::tcp(target, &[msg]).await.remove(0);
        got.push((target, "tcp", common::a_records(&tcp)));
    }
    serving.abort();
    got
}

#[test]
fn every_cluster_dns_address_is_served_and_cleaned_up() {
    common::require_root();
    let ns = TestNetns::new("dnsdual").expect("netns");
    let answers = ns.block_on(serve_and_ask).expect("netns");
    assert_eq!(answers.len(), 4);
    for (target, transport, records) in &answers {
        assert_eq!(
            records,
            &["10.43.0.20".parse::<std::net::Ipv4Addr>().expect("ip")],
            "{target} over {transport}"
        );
    }
    let lo = lo_addrs(&ns);
    assert!(lo.contains(&format!("{V4}/32")), "{lo:?}");
    assert!(lo.contains(&format!("{V6}/128")), "{lo:?}");
    let recorded = ns
        .run(node_local::recorded_addresses)
        .expect("netns")
        .expect("nft");
    assert_eq!(recorded, addrs());

    let removed = ns
        .block_on(|| node_local::teardown_recorded(false))
        .expect("netns")
        .expect("teardown");
    assert_eq!(
        removed,
        [
            format!("address {V4}/32 on lo"),
            format!("address {V6}/128 on lo"),
            "nftables table inet nodenet-dns".to_string(),
        ]
    );
    let lo = lo_addrs(&ns);
    assert!(
        !lo.iter().any(|a| a.starts_with(V4) || a.starts_with(V6)),
        "{lo:?}"
    );
}
