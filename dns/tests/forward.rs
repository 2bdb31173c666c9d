//! The forwarder against a fake upstream on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use dns::forward::ForwardConfig;
use dns::{DnsConfig, Upstreams};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[tokio::test]
async fn names_outside_the_zone_are_forwarded_and_cached() {
    let up = upstream(Duration::ZERO).await;
    let s = start(fixture_table(), vec![up.addr]).await;
    let m = ask(s.udp, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&m),
        vec!["192.0.2.1".parse::<std::net::Ipv4Addr>().expect("ip")]
    );
    assert_eq!(m.answers[0].ttl, 60);
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // Same question, other spelling: a cache hit, no second upstream query.
    let m = ask(s.udp, "WWW.example.COM.", RecordType::A).await;
    assert_eq!(a_records(&m).len(), 1);
    assert_eq!(m.queries[0].name().to_ascii(), "WWW.example.COM.");
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn nxdomain_is_cached_by_its_soa() {
    let up = upstream(Duration::ZERO).await;
    let s = start(fixture_table(), vec![up.addr]).await;
    for _ in 0..3 {
        let m = ask(s.udp, "nx.example.com.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(has_soa(&m));
    }
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn identical_in_flight_questions_are_asked_once() {
    let up = upstream(Duration::from_millis(300)).await;
    let s = start(fixture_table(), vec![up.addr]).await;
    let asks = (0..10).map(|_| ask(s.udp, "slow.example.com.", RecordType::A));
    let answers = futures::future::join_all(asks).await;
    assert!(answers.iter().all(|m| a_records(m).len() == 1));
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn truncated_upstream_answers_are_fetched_over_tcp() {
    let up = upstream(Duration::ZERO).await;
    let s = start(fixture_table(), vec![up.addr]).await;
    let got = tcp(s.tcp, &[query("many.example.com.", RecordType::A, None)]).await;
    assert_eq!(got[0].answers.len(), 100);
    // UDP client without EDNS: TC, then the cached full answer over TCP.
    let m = udp(s.udp, &query("many.example.com.", RecordType::A, None)).await;
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
}

#[tokio::test]
async fn a_dead_upstream_gives_servfail_after_the_timeout() {
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let forward = ForwardConfig {
        upstreams: vec![dead.local_addr().expect("addr")],
        timeout: Duration::from_millis(200),
        ..ForwardConfig::default()
    };
    let s = start_with(fixture_table(), forward).await;
    let m = ask(s.udp, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn upstreams_that_are_ourselves_are_never_asked_and_the_server_stays_up() {
    let listen = free_local_addr();
    let config = DnsConfig {
        upstreams: Upstreams::Static(vec![listen]),
        server: dns::server::ServerConfig {
            listen: vec![listen],
            ..Default::default()
        },
        ..DnsConfig::default()
    };
    let views = views_that_never_sync();
    let (tx, _rx) = tokio::sync::watch::channel(false);
    let metrics = std::sync::Arc::new(dns::metrics::Metrics::new());
    let running = {
        let metrics = metrics.clone();
        tokio::spawn(async move { dns::run(&config, &views, &metrics, &tx).await })
    };
    let m = ask_when_listening(listen, "www.example.com.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(
        metrics
            .forward_stats()
            .upstream_queries
            .load(Ordering::SeqCst),
        0,
        "a query went to ourselves"
    );
    assert!(!running.is_finished(), "the component stopped: {running:?}");
    running.abort();
}

/// A loopback address whose UDP and TCP ports were free a moment ago.
fn free_local_addr() -> std::net::SocketAddr {
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    tcp.local_addr().expect("addr")
}

/// Asks until the server has bound its sockets (a UDP query to a closed
/// port gets no answer).
async fn ask_when_listening(
    server: std::net::SocketAddr,
    name: &str,
) -> hickory_proto::op::Message {
    let bytes = query(name, RecordType::A, None).to_vec().expect("encode");
    for _ in 0..100 {
        if let Some(reply) = udp_raw(server, &bytes).await {
            return hickory_proto::op::Message::from_vec(&reply).expect("decode");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no answer from {server}");
}

/// `run` validates upstreams before it touches the views; these views are
/// never polled.
fn views_that_never_sync() -> dns::DnsViews {
    let client = kube::Client::try_from(kube::Config::new(
        "http://127.0.0.1:1".parse().expect("uri"),
    ))
    .expect("client");
    let rt = cluster::Reflectors::new(client);
    let views = dns::DnsViews {
        services: rt.shared(),
        slices: rt.shared(),
        nodes: rt.shared(),
        namespaces: None,
    };
    std::mem::forget(rt);
    views
}

#[tokio::test]
async fn over_the_concurrency_bound_a_query_gets_servfail_at_once() {
    let up = upstream(Duration::from_millis(500)).await;
    let s = start_with(
        fixture_table(),
        ForwardConfig {
            upstreams: vec![up.addr],
            max_concurrent: 1,
            ..ForwardConfig::default()
        },
    )
    .await;
    let slow = ask(s.udp, "one.example.com.", RecordType::A);
    let rejected = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let m = ask(s.udp, "two.example.com.", RecordType::A).await;
        // Answered while the first question is still at the upstream.
        (m, up.queries.load(Ordering::SeqCst))
    };
    let (first, (second, asked_meanwhile)) = tokio::join!(slow, rejected);
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    assert_eq!(second.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(asked_meanwhile, 1, "the second question waited for a slot");
    assert_eq!(
        up.queries.load(Ordering::SeqCst),
        1,
        "the second was never sent"
    );
}

#[tokio::test]
async fn cached_ttls_count_down_and_expired_answers_are_asked_again() {
    let up = upstream(Duration::ZERO).await;
    let s = start(fixture_table(), vec![up.addr]).await;
    let m = ask(s.udp, "ttl.example.com.", RecordType::A).await;
    assert_eq!(m.answers[0].ttl, 60);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let m = ask(s.udp, "ttl.example.com.", RecordType::A).await;
    let ttl = m.answers[0].ttl;
    assert!(
        (57..=58).contains(&ttl),
        "TTL counted down by the time cached: {ttl}"
    );
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);

    // Capped at 1 s of caching: after that the upstream is asked again.
    let up = upstream(Duration::ZERO).await;
    let s = start_with(
        fixture_table(),
        ForwardConfig {
            upstreams: vec![up.addr],
            ttl: dns::forward::TtlPolicy {
                max_positive: 1,
                max_negative: 1,
            },
            ..ForwardConfig::default()
        },
    )
    .await;
    ask(s.udp, "short.example.com.", RecordType::A).await;
    ask(s.udp, "short.example.com.", RecordType::A).await;
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ask(s.udp, "short.example.com.", RecordType::A).await;
    assert_eq!(
        up.queries.load(Ordering::SeqCst),
        2,
        "expired entry refetched"
    );
}

#[tokio::test]
async fn a_full_cache_evicts_and_stays_bounded() {
    let up = upstream(Duration::ZERO).await;
    let s = start_with(
        fixture_table(),
        ForwardConfig {
            upstreams: vec![up.addr],
            cache_size: 16,
            ..ForwardConfig::default()
        },
    )
    .await;
    for i in 0..200 {
        ask(s.udp, &format!("n{i}.example.com."), RecordType::A).await;
    }
    let len = s.forwarder.cache().len();
    assert!((1..=16).contains(&len), "cache holds {len} entries");
    assert_eq!(up.queries.load(Ordering::SeqCst), 200);
    // Evicted names are fetched again, not answered stale.
    let before = up.queries.load(Ordering::SeqCst);
    for i in 0..200 {
        ask(s.udp, &format!("n{i}.example.com."), RecordType::A).await;
    }
    let refetched = up.queries.load(Ordering::SeqCst) - before;
    assert!(
        refetched >= 200 - 16,
        "only cached names skip the upstream: {refetched}"
    );
}
