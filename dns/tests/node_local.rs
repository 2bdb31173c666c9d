//! Node-local serving in network namespaces this test creates: the address
//! on lo, the notrack table, queries from a second namespace routed
//! through the first, and what a client sees once nothing listens.
//! Needs root; fails (never skips) without it.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dns::forward::{ForwardConfig, Forwarder};
use dns::metrics::Metrics;
use dns::node_local::{self, Changed};
use dns::server::{Context, Server, ServerConfig};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use host::names::{NFT_DNS_FAMILY, NFT_DNS_TABLE};
use host::netns::TestNetns;
use serde_json::Value;

const DNS: &str = "10.43.0.10";

fn addr() -> IpAddr {
    DNS.parse().expect("ip")
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

fn table(ns: &TestNetns) -> Option<Value> {
    ns.run(|| host::nft::table_json(NFT_DNS_FAMILY, NFT_DNS_TABLE))
        .expect("netns")
        .expect("nft")
}

/// (chain, handle, packets) of every rule of a table.
fn rules(json: &Value) -> Vec<(String, i64, i64)> {
    json["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("rule"))
        .map(|r| {
            let packets = r["expr"]
                .as_array()
                .into_iter()
                .flatten()
                .find_map(|e| e["counter"]["packets"].as_i64())
                .unwrap_or(-1);
            let chain = r["chain"].as_str().unwrap_or("?").to_string();
            (chain, r["handle"].as_i64().unwrap_or(-1), packets)
        })
        .collect()
}

#[test]
fn address_and_table_are_set_up_once_and_torn_down_precisely() {
    common::require_root();
    let ns = TestNetns::new("dnsnl").expect("netns");
    let ensure = || ns.block_on(|| node_local::ensure(addr())).expect("netns");
    let first = ensure().expect("ensure");
    assert_eq!(
        first,
        Changed {
            address: true,
            table: true
        }
    );
    assert!(lo_addrs(&ns).contains(&"10.43.0.10/32".to_string()));
    let before = rules(&table(&ns).expect("table present"));
    assert_eq!(before.len(), 3, "{before:?}");
    // A re-run changes nothing: same rule handles.
    assert_eq!(ensure().expect("ensure"), Changed::default());
    assert_eq!(rules(&table(&ns).expect("table")), before);
    // A tampered table is rewritten.
    ns.run(|| host::nft::apply("flush chain inet nodenet-dns output\n"))
        .expect("netns")
        .expect("flush");
    assert!(ensure().expect("ensure").table);
    assert_eq!(rules(&table(&ns).expect("table")).len(), 3);

    // Somebody else's addresses on lo: another /32 and ours with a /24.
    ns.ip(&["addr", "add", "10.43.0.11/32", "dev", "lo"])
        .expect("add");
    let teardown = |dry| {
        ns.block_on(move || node_local::teardown(addr(), dry))
            .expect("netns")
            .expect("teardown")
    };
    let would = teardown(true);
    assert_eq!(
        would,
        [
            "address 10.43.0.10/32 on lo",
            "nftables table inet nodenet-dns"
        ]
    );
    assert!(table(&ns).is_some(), "dry run removes nothing");
    assert!(lo_addrs(&ns).contains(&"10.43.0.10/32".to_string()));
    assert_eq!(teardown(false), would);
    let left = lo_addrs(&ns);
    assert!(!left.contains(&"10.43.0.10/32".to_string()), "{left:?}");
    assert!(left.contains(&"10.43.0.11/32".to_string()), "{left:?}");
    assert!(left.contains(&"127.0.0.1/8".to_string()), "{left:?}");
    assert!(table(&ns).is_none());
    assert!(teardown(false).is_empty(), "second teardown finds nothing");

    // The same address with another prefix is not ours.
    ns.ip(&["addr", "add", "10.43.0.10/24", "dev", "lo"])
        .expect("add");
    assert!(teardown(false).is_empty());
    assert!(lo_addrs(&ns).contains(&"10.43.0.10/24".to_string()));
}

#[test]
fn cleanup_without_configuration_finds_the_address_in_our_table() {
    common::require_root();
    let ns = TestNetns::new("dnsrec").expect("netns");
    let v6: IpAddr = "fd00:43::a".parse().expect("ip");
    ns.block_on(move || node_local::ensure(v6))
        .expect("netns")
        .expect("ensure");
    assert!(lo_addrs(&ns).contains(&"fd00:43::a/128".to_string()));
    let removed = ns
        .block_on(|| node_local::teardown_recorded(false))
        .expect("netns")
        .expect("teardown");
    assert_eq!(
        removed,
        [
            "address fd00:43::a/128 on lo",
            "nftables table inet nodenet-dns"
        ]
    );
    assert!(!lo_addrs(&ns).contains(&"fd00:43::a/128".to_string()));
}

/// A node namespace serving DNS, and a pod namespace routed through it.
struct Pair {
    node: TestNetns,
    pod: TestNetns,
}

fn pair() -> Pair {
    let node = TestNetns::new("dnsnode").expect("netns");
    let pod = TestNetns::new("dnspod").expect("netns");
    let peer = format!("netns {}", pod.name());
    let mut args = vec![
        "link", "add", "nnd0", "type", "veth", "peer", "name", "nnd1",
    ];
    args.extend(peer.split(' '));
    node.ip(&args).expect("veth");
    node.ip(&["addr", "add", "10.99.1.1/24", "dev", "nnd0"])
        .expect("addr");
    node.ip(&["link", "set", "nnd0", "up"]).expect("up");
    pod.ip(&["addr", "add", "10.99.1.2/24", "dev", "nnd1"])
        .expect("addr");
    pod.ip(&["link", "set", "nnd1", "up"]).expect("up");
    pod.ip(&["route", "add", DNS, "via", "10.99.1.1"])
        .expect("route");
    // Counts, after conntrack (priority 0), what conntrack made of DNS
    // packets: untracked is what we want, new would mean tracked.
    let probe = "table inet probe {\n chain pre {\n  type filter hook prerouting priority 0; policy accept;\n  ip daddr 10.43.0.10 ct state untracked counter\n  ip daddr 10.43.0.10 ct state new counter\n }\n}\n";
    node.run(move || host::nft::apply(probe))
        .expect("netns")
        .expect("probe table");
    Pair { node, pod }
}

/// Runs the server inside the node namespace until `stop` is dropped.
fn serve(node: &TestNetns) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let path = node.path();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        host::netns::block_on_in_netns(&path, move || async move {
            node_local::ensure(addr()).await.expect("ensure");
            let metrics = Arc::new(Metrics::new());
            let ctx = Arc::new(Context {
                table: Arc::new(ArcSwap::from_pointee(common::fixture_table())),
                forwarder: Arc::new(Forwarder::new(ForwardConfig::default())),
                metrics,
            });
            let config = ServerConfig {
                listen: vec![SocketAddr::new(addr(), 53)],
                ..ServerConfig::default()
            };
            let server = Server::bind(&config, ctx).await.expect("bind");
            ready_tx.send(()).expect("ready");
            let stop = tokio::task::spawn_blocking(move || stop_rx.recv());
            tokio::select! {
                () = server.serve() => {}
                _ = stop => {}
            }
        })
        .expect("netns");
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server ready");
    (stop_tx, thread)
}

fn query_bytes(name: &str) -> Vec<u8> {
    common::query(name, RecordType::A, None)
        .to_vec()
        .expect("encode")
}

/// One UDP exchange from the pod namespace: the answer, or the error.
fn udp_from(pod: &TestNetns, name: &str) -> std::io::Result<Message> {
    let bytes = query_bytes(name);
    pod.run(move || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_secs(3)))?;
        s.connect((DNS, 53))?;
        s.send(&bytes)?;
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf)?;
        Message::from_vec(&buf[..n]).map_err(std::io::Error::other)
    })
    .expect("netns")
}

fn tcp_from(pod: &TestNetns, name: &str) -> std::io::Result<Message> {
    let name = name.to_string();
    pod.block_on(move || async move {
        let target: SocketAddr = SocketAddr::new(addr(), 53);
        tokio::net::TcpStream::connect(target).await?;
        let msg = common::query(&name, RecordType::A, None);
        Ok(common::tcp(target, &[msg]).await.remove(0))
    })
    .expect("netns")
}

fn counters(json: &Value) -> Vec<i64> {
    rules(json).into_iter().map(|r| r.2).collect()
}

#[test]
fn a_routed_query_is_answered_untracked_and_a_stopped_server_fails_fast() {
    common::require_root();
    let p = pair();
    let (stop, thread) = serve(&p.node);
    let name = "web.default.svc.cluster.local.";
    let m = udp_from(&p.pod, name).expect("UDP answer");
    assert_eq!(
        common::a_records(&m),
        ["10.43.0.20".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    let m = tcp_from(&p.pod, name).expect("TCP answer");
    assert_eq!(common::a_records(&m).len(), 1);

    let ours = counters(&table(&p.node).expect("table"));
    // prerouting (queries in), output to the server (none: no local
    // client), output from the server (answers out).
    assert!(ours[0] >= 2, "queries passed the notrack rule: {ours:?}");
    assert!(ours[2] >= 2, "answers passed the notrack rule: {ours:?}");
    let probe = p
        .node
        .run(|| host::nft::table_json("inet", "probe"))
        .expect("netns")
        .expect("nft")
        .expect("probe table");
    let ct = counters(&probe);
    assert!(ct[0] >= 2, "DNS packets must be untracked: {ct:?}");
    assert_eq!(
        ct[1], 0,
        "no DNS packet may create a conntrack entry: {ct:?}"
    );
    // Control: without our table the same query is tracked, so the probe
    // does see conntrack at work.
    p.node
        .run(|| host::nft::delete_table(NFT_DNS_FAMILY, NFT_DNS_TABLE))
        .expect("netns")
        .expect("delete");
    udp_from(&p.pod, name).expect("UDP answer");
    let probe = p
        .node
        .run(|| host::nft::table_json("inet", "probe"))
        .expect("netns")
        .expect("nft")
        .expect("probe table");
    assert!(counters(&probe)[1] >= 1, "tracked without notrack");

    drop(stop);
    thread.join().expect("server thread");
    // The address stays with nothing bound: refused, not a timeout. The
    // kernel rate-limits port-unreachable replies per peer; switch that off
    // in this test's node so every refusal gets its ICMP.
    p.node
        .run(|| host::sysctl::ensure("net.ipv4.icmp_ratelimit", "0"))
        .expect("netns")
        .expect("sysctl in the test node");
    let err = udp_from(&p.pod, name).expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let err = tcp_from(&p.pod, name).expect_err("nothing listens");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}
