//! Readiness and health responses, checked on the handler (no sockets).

use http_body_util::BodyExt;

use super::*;
use crate::daemon::health::ComponentStatus;
use cluster::ReflectorStats;

struct NoReflectors;
impl MetricsSource for NoReflectors {
    fn reflectors(&self) -> Vec<Arc<ReflectorStats>> {
        Vec::new()
    }
}

fn state(components: &[(&'static str, bool)]) -> State {
    let statuses = components
        .iter()
        .map(|(name, ready)| {
            let status = Arc::new(ComponentStatus::new(name));
            status.ready_handle().send_replace(*ready);
            status
        })
        .collect();
    State {
        health: Health::new(statuses),
        metrics: Arc::new(NoReflectors),
    }
}

async fn get(state: &State, uri: &str) -> (StatusCode, String) {
    let uri: hyper::Uri = uri.parse().expect("uri");
    let response = respond(state, &Method::GET, &uri);
    let code = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (code, String::from_utf8(body.to_vec()).expect("utf-8"))
}

#[tokio::test]
async fn healthz_is_ok_even_when_not_ready() {
    let s = state(&[("flannel", false)]);
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn readyz_needs_every_component() {
    let s = state(&[("flannel", true), ("dns", true)]);
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
    let s = state(&[("flannel", true), ("dns", false)]);
    let (code, body) = get(&s, "/readyz").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("[-]dns not ready") && body.contains("[+]flannel ok"),
        "{body}"
    );
}

#[tokio::test]
async fn readyz_verbose_lists_components() {
    let s = state(&[("flannel", true)]);
    let (code, body) = get(&s, "/readyz?verbose").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("[+]flannel ok"), "{body}");
    let (_, terse) = get(&s, "/readyz").await;
    assert!(!terse.contains("flannel"), "{terse}");
}

#[tokio::test]
async fn readyz_per_component() {
    let s = state(&[("flannel", true), ("dns", false)]);
    assert_eq!(get(&s, "/readyz/flannel").await.0, StatusCode::OK);
    assert_eq!(
        get(&s, "/readyz/dns").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (code, body) = get(&s, "/readyz/ingress").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(body.contains("flannel, dns"), "{body}");
}

#[tokio::test]
async fn failure_reason_is_shown_until_ready_again() {
    let s = state(&[("flannel", true)]);
    let flannel = s.health.get("flannel").expect("status").clone();
    flannel.record_failure("cannot write /run/nodenet/subnet.env".into());
    let (code, body) = get(&s, "/readyz/flannel").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("restarts 1") && body.contains("subnet.env"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_has_prometheus_content_type() {
    let s = state(&[("flannel", true)]);
    let uri: hyper::Uri = "/metrics".parse().expect("uri");
    let response = respond(&s, &Method::GET, &uri);
    let ct = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .expect("content type");
    assert!(ct.to_str().expect("ascii").contains("version=0.0.4"));
}

#[tokio::test]
async fn unknown_path_and_method() {
    let s = state(&[]);
    assert_eq!(get(&s, "/nope").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&s, "/readyz").await.0,
        StatusCode::OK,
        "no components: ready"
    );
    let uri: hyper::Uri = "/healthz".parse().expect("uri");
    assert_eq!(
        respond(&s, &Method::POST, &uri).status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}
