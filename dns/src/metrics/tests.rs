use super::*;

fn origin(tcp: bool) -> Origin {
    Origin::new(tcp, "10.42.0.5".parse().expect("ip"), 3)
}

#[test]
fn counters_and_histograms_render_with_coredns_names() {
    let m = Metrics::new();
    let mut noerror = vec![0u8; 12];
    noerror[2] = 0x81;
    let mut nx = noerror.clone();
    nx[3] = 0x83;
    let started = Instant::now();
    m.observe(
        origin(false),
        rtype::A,
        &noerror,
        Source::Kubernetes,
        started,
    );
    m.observe(origin(false), rtype::A, &nx, Source::Kubernetes, started);
    m.observe(origin(true), 99, &noerror, Source::Forward, started);
    m.cache_hit(origin(false), true);
    m.sync_latency(Duration::from_millis(30));
    let mut out = String::new();
    m.render_metrics(&mut out);
    let has = |line: &str| out.lines().any(|l| l == line);
    let l = "server=\"dns://:53\",zone=\".\"";
    assert!(
        has(&format!(
            "coredns_dns_requests_total{{{l},proto=\"udp\",family=\"1\",type=\"A\"}} 2"
        )),
        "{out}"
    );
    assert!(has(&format!(
        "coredns_dns_requests_total{{{l},proto=\"tcp\",family=\"1\",type=\"other\"}} 1"
    )));
    assert!(has(&format!(
        "coredns_dns_responses_total{{{l},rcode=\"NXDOMAIN\",plugin=\"kubernetes\"}} 1"
    )));
    assert!(has(&format!(
        "coredns_dns_responses_total{{{l},rcode=\"NOERROR\",plugin=\"forward\"}} 1"
    )));
    assert!(has(&format!(
        "coredns_dns_request_duration_seconds_count{{{l},type=\"A\"}} 2"
    )));
    assert!(has(&format!(
        "coredns_dns_request_duration_seconds_bucket{{{l},type=\"A\",le=\"+Inf\"}} 2"
    )));
    assert!(has(
        "coredns_cache_hits_total{server=\"dns://:53\",type=\"denial\",zones=\".\"} 1"
    ));
    assert!(has(
        "nodenet_dns_sync_latency_seconds_bucket{le=\"0.025\"} 0"
    ));
    assert!(has(
        "nodenet_dns_sync_latency_seconds_bucket{le=\"0.05\"} 1"
    ));
    assert!(has("nodenet_dns_sync_latency_seconds_count 1"));
}

#[test]
fn histogram_buckets_are_cumulative() {
    let h = Histogram::new(&DURATION_BUCKETS);
    h.observe(Duration::from_micros(100));
    h.observe(Duration::from_micros(300));
    h.observe(Duration::from_secs(20));
    let s = h.snapshot();
    assert_eq!(s.cumulative[0], (0.00025, 1));
    assert_eq!(s.cumulative[1], (0.0005, 2));
    assert_eq!(s.cumulative[15].1, 2, "20 s only in +Inf");
    assert_eq!(s.count, 3);
    assert!((s.sum_seconds - 20.0004).abs() < 1e-6);
}

#[test]
fn ipv4_mapped_peers_count_as_family_1() {
    let o = Origin::new(false, "::ffff:10.0.0.1".parse().expect("ip"), 0);
    assert!(!o.v6);
    assert!(Origin::new(false, "fd00::1".parse().expect("ip"), 0).v6);
}
