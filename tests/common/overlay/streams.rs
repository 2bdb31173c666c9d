//! Continuous streams between pods (`nodenet-workload stream`) while the
//! daemons restart: what "a restart loses no packet" is measured with.

use std::sync::Arc;
use std::time::Duration;

use lab::Lab;
use serde_json::{Value, json};

use super::{TCP_PORT, UDP_PORT, probe_until_ok, wait_nodenet_ready};
use crate::common::{create_pod, pod_ip, workload_pod};

/// Messages of a stream across restarts: at 5 ms apart it runs ~20 s,
/// longer than two daemon restarts take (asserted in
/// [`streams_across_restarts`], so no test passes with the restarts
/// outside the streams).
pub const ACROSS_RESTARTS: &str = "4000";
const INTERVAL_MS: &str = "5";

/// Pod `a` on node-1 (idle) and pod `b` on node-2 serving TCP and UDP,
/// `b` reachable from `a` over both; `b`'s address.
pub async fn client_and_server(lab: &Lab) -> std::net::IpAddr {
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    create_pod(lab, workload_pod("a", "node-1", &["sleep"], json!([]))).await;
    let b = create_pod(lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let ip_b = pod_ip(&b);
    probe_until_ok(lab, "a", "udp", &format!("{ip_b}:{UDP_PORT}")).await;
    probe_until_ok(lab, "a", "tcp", &format!("{ip_b}:{TCP_PORT}")).await;
    ip_b
}

/// Runs `count` messages from `pod` to `target`; exit status and report.
pub async fn stream(lab: &Lab, pod: &str, proto: &str, target: &str, count: &str) -> (bool, Value) {
    let argv = [
        "nodenet-workload",
        "stream",
        proto,
        target,
        "--count",
        count,
        "--interval-ms",
        INTERVAL_MS,
    ];
    let out = lab
        .exec_in_pod("default", pod, &argv, Duration::from_secs(120))
        .await
        .expect("exec stream");
    let text = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{proto} stream report {text:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

/// Streams from pod `from` to each `(proto, target)` while nodenet
/// restarts on each of `nodes` in turn; the reports, in order.
pub async fn streams_across_restarts(
    lab: &Arc<Lab>,
    from: &str,
    targets: &[(&str, String)],
    nodes: &[&str],
) -> Vec<(bool, Value)> {
    let mut streams = Vec::new();
    for (proto, target) in targets {
        let (lab, from, proto, target) = (
            lab.clone(),
            from.to_string(),
            proto.to_string(),
            target.clone(),
        );
        streams.push(tokio::spawn(async move {
            stream(&lab, &from, &proto, &target, ACROSS_RESTARTS).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in nodes {
        lab.restart_nodenet(node).await.expect("restart nodenet");
        wait_nodenet_ready(lab, node).await;
    }
    assert!(
        streams.iter().all(|s| !s.is_finished()),
        "the streams ended before the restarts were done; the test proves nothing (raise ACROSS_RESTARTS)"
    );
    let mut reports = Vec::new();
    for stream in streams {
        reports.push(stream.await.expect("stream task"));
    }
    reports
}

/// Every message of the stream came back.
pub fn assert_lost_nothing((ok, report): &(bool, Value)) {
    assert!(ok, "the stream lost messages: {report}");
    assert_eq!(report["lost_count"], json!(0), "{report}");
    assert_eq!(report["received"], report["sent"], "{report}");
}
