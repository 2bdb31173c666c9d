//! Test harness: a server on 127.0.0.1 with a table from fixtures, a
//! hickory-proto client, and a fake upstream resolver.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dns::forward::{ForwardConfig, Forwarder};
use dns::records::{Sources, Table, Zone, ZoneConfig, full_table};
use dns::server::{Context, Server, ServerConfig};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub fn zone() -> Arc<Zone> {
    let config = ZoneConfig {
        ns_addrs: vec!["10.43.0.10".parse().expect("ip")],
        ..ZoneConfig::default()
    };
    Arc::new(Zone::new(&config).expect("zone"))
}

fn from<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("fixture"))
}

/// A table with: web (ClusterIP, ports http/80), big (headless, 120
/// endpoints, port http/8080), ext (ExternalName), node-1.
pub fn fixture_table() -> Table {
    let services = vec![
        from(json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "ports": [{"name": "http", "port": 80}]}})),
        from(json!({"metadata": {"namespace": "default", "name": "big"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}})),
        from(json!({"metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "foo.example.com"}})),
    ];
    let endpoints: Vec<Value> = (0..120)
        .map(|i| json!({"addresses": [format!("10.42.1.{}", i + 1)]}))
        .collect();
    let slices = vec![from(
        json!({"metadata": {"namespace": "default", "name": "big-1",
            "labels": {"kubernetes.io/service-name": "big"}},
        "addressType": "IPv4", "endpoints": endpoints, "ports": [{"name": "http", "port": 8080}]}),
    )];
    let nodes = vec![from(json!({"metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.11"}]}}))];
    let sources = Sources {
        services: &services,
        slices: &slices,
        nodes: &nodes,
        ..Sources::default()
    };
    let mut skipped = Vec::new();
    let mut table = full_table(zone(), sources, &mut skipped);
    assert!(skipped.is_empty(), "{skipped:?}");
    table.set_serial(42);
    table
}

pub struct Running {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub table: Arc<ArcSwap<Table>>,
    pub forwarder: Arc<Forwarder>,
    pub metrics: Arc<dns::metrics::Metrics>,
    _server: Server,
}

pub async fn start(table: Table, upstreams: Vec<SocketAddr>) -> Running {
    start_with(
        table,
        ForwardConfig {
            upstreams,
            ..ForwardConfig::default()
        },
    )
    .await
}

pub async fn start_with(table: Table, forward: ForwardConfig) -> Running {
    let table = Arc::new(ArcSwap::from_pointee(table));
    let metrics = Arc::new(dns::metrics::Metrics::new());
    let forwarder = Arc::new(Forwarder::with_stats(forward, metrics.forward_stats()));
    let ctx = Arc::new(Context {
        table: table.clone(),
        forwarder: forwarder.clone(),
        metrics: metrics.clone(),
    });
    let config = ServerConfig {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        udp_sockets: 2,
        ..ServerConfig::default()
    };
    let server = Server::bind(&config, ctx).await.expect("bind");
    Running {
        udp: server.udp_addrs()[0],
        tcp: server.tcp_addrs()[0],
        table,
        forwarder,
        metrics,
        _server: server,
    }
}

pub fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut msg = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    msg.metadata.recursion_desired = true;
    // from_ascii keeps the spelling (from_str applies IDNA, which lower-cases).
    msg.add_query(Query::query(Name::from_ascii(name).expect("name"), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        msg.set_edns(e);
    }
    msg
}

pub async fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(bytes, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let got = tokio::time::timeout(Duration::from_secs(3), socket.recv(&mut buf))
        .await
        .ok()?;
    let n = got.expect("recv");
    buf.truncate(n);
    Some(buf)
}

pub async fn udp(server: SocketAddr, msg: &Message) -> Message {
    let raw = udp_raw(server, &msg.to_vec().expect("encode"))
        .await
        .expect("an answer");
    let answer = Message::from_vec(&raw).expect("decode answer");
    assert_eq!(answer.metadata.id, msg.metadata.id);
    answer
}

pub async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp(server, &query(name, rtype, Some(1232))).await
}

/// Sends `msgs` over one TCP connection, one after the other.
pub async fn tcp(server: SocketAddr, msgs: &[Message]) -> Vec<Message> {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    let mut out = Vec::new();
    for msg in msgs {
        let bytes = msg.to_vec().expect("encode");
        stream.write_u16(bytes.len() as u16).await.expect("write");
        stream.write_all(&bytes).await.expect("write");
        let len = stream.read_u16().await.expect("read len");
        let mut buf = vec![0u8; len as usize];
        stream.read_exact(&mut buf).await.expect("read");
        out.push(Message::from_vec(&buf).expect("decode"));
    }
    out
}

pub fn a_records(msg: &Message) -> Vec<Ipv4Addr> {
    let mut v: Vec<Ipv4Addr> = msg
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

pub fn has_soa(msg: &Message) -> bool {
    msg.authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA)
}

/// A fake upstream on 127.0.0.1 (UDP and TCP, same port): `*.example.com`
/// A 192.0.2.1 TTL 60; `nx.example.com` NXDOMAIN with SOA; `many.example.com`
/// 100 A records (TC over UDP); answers after `delay`.
pub struct Upstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
}

pub async fn upstream(delay: Duration) -> Upstream {
    let (udp, tcp) = udp_and_tcp_on_one_port().await;
    let addr = udp.local_addr().expect("addr");
    let queries = Arc::new(AtomicUsize::new(0));
    let udp = Arc::new(udp);
    let q = queries.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                return;
            };
            q.fetch_add(1, Ordering::SeqCst);
            let req = Message::from_vec(&buf[..n]).expect("upstream got a valid query");
            let udp = udp.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let resp = upstream_answer(&req, true);
                let _ = udp.send_to(&resp, peer).await;
            });
        }
    });
    let q = queries.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                return;
            };
            q.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let len = s.read_u16().await.expect("len");
                let mut buf = vec![0u8; len as usize];
                s.read_exact(&mut buf).await.expect("read");
                let req = Message::from_vec(&buf).expect("query");
                let resp = upstream_answer(&req, false);
                s.write_u16(resp.len() as u16).await.expect("write");
                s.write_all(&resp).await.expect("write");
            });
        }
    });
    Upstream { addr, queries }
}

/// A UDP socket and a TCP listener on the same free port (the port a UDP
/// bind picked may be taken for TCP by a parallel test: try another).
async fn udp_and_tcp_on_one_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = udp.local_addr().expect("addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP after 50 tries");
}

fn upstream_answer(req: &Message, over_udp: bool) -> Vec<u8> {
    let q = req.queries[0].clone();
    let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.recursion_available = true;
    resp.add_query(q.clone());
    let name = q.name().to_ascii().to_lowercase();
    let zone = Name::from_str("example.com.").expect("name");
    if name == "nx.example.com." {
        resp.metadata.response_code = ResponseCode::NXDomain;
        let soa = SOA::new(zone.clone(), zone.clone(), 1, 60, 60, 60, 30);
        resp.add_authority(Record::from_rdata(zone, 120, RData::SOA(soa)));
    } else if name == "many.example.com." && over_udp {
        resp.metadata.truncation = true;
    } else if q.query_type() == RecordType::A {
        let count = if name == "many.example.com." { 100 } else { 1 };
        for i in 0..count {
            let mut r = Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 1 + i as u8)),
            );
            r.dns_class = DNSClass::IN;
            resp.add_answer(r);
        }
    }
    if req.edns.is_some() {
        resp.set_edns(Edns::new());
    }
    resp.to_vec().expect("encode")
}

/// Privileged tests create network namespaces: without root they fail,
/// saying so, rather than pass having tested nothing.
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid line");
    assert_eq!(
        uid, "0",
        "this test creates network namespaces and must run as root"
    );
}
