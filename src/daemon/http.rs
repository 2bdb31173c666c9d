//! The metrics listener: /healthz, /readyz[/<component>][?verbose], /metrics.

use std::convert::Infallible;
use std::fmt::Write;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::health::Health;
use super::metrics::{self, MetricsSource};

/// What the handlers read.
pub struct State {
    pub health: Health,
    pub metrics: Arc<dyn MetricsSource>,
}

/// Serves connections on `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, _)) => spawn_connection(stream, state.clone()),
            Err(err) => tracing::warn!(error = %err, "metrics listener: accept failed"),
        }
    }
}

fn spawn_connection(stream: tokio::net::TcpStream, state: Arc<State>) {
    tokio::spawn(async move {
        let service = service_fn(move |req: Request<Incoming>| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(respond(&state, req.method(), req.uri())) }
        });
        if let Err(err) = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(error = %err, "metrics connection ended with an error");
        }
    });
}

/// Maps a request to its response (no I/O: testable without sockets).
pub fn respond(state: &State, method: &Method, uri: &hyper::Uri) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    let verbose = uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == "verbose" || p.starts_with("verbose="))
    });
    match uri.path() {
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" => readyz(&state.health, verbose),
        "/metrics" => metrics_response(state),
        path => match path.strip_prefix("/readyz/") {
            Some(name) => readyz_one(&state.health, name),
            None => text(StatusCode::NOT_FOUND, "not found\n".into()),
        },
    }
}

fn readyz(health: &Health, verbose: bool) -> Response<Full<Bytes>> {
    let ready = health.all_ready();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = String::new();
    if verbose || !ready {
        for c in health.components() {
            let _ = writeln!(body, "{}", component_line(c));
        }
    }
    body.push_str(if ready {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    text(code, body)
}

fn readyz_one(health: &Health, name: &str) -> Response<Full<Bytes>> {
    match health.get(name) {
        Some(c) if c.is_ready() => text(StatusCode::OK, format!("{}\n", component_line(c))),
        Some(c) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", component_line(c)),
        ),
        None => {
            let names: Vec<_> = health.components().iter().map(|c| c.name()).collect();
            let body = format!(
                "no component {name:?} is running; running: {}\n",
                names.join(", ")
            );
            text(StatusCode::NOT_FOUND, body)
        }
    }
}

/// `[+]flannel ok` or `[-]flannel not ready: <last error>` (Kubernetes style).
fn component_line(c: &super::health::ComponentStatus) -> String {
    if c.is_ready() {
        return format!("[+]{} ok", c.name());
    }
    match c.last_error() {
        Some(err) => format!(
            "[-]{} not ready (restarts {}): {err}",
            c.name(),
            c.restarts()
        ),
        None => format!("[-]{} not ready", c.name()),
    }
}

fn metrics_response(state: &State) -> Response<Full<Bytes>> {
    let body = metrics::render(&state.health, state.metrics.as_ref());
    let mut response = text(StatusCode::OK, body);
    let content_type =
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, content_type);
    response
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    let content_type = hyper::header::HeaderValue::from_static("text/plain; charset=utf-8");
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, content_type);
    response
}

#[cfg(test)]
mod tests;
