//! A minimal fake API server for the flannel component test: serves the
//! Node list, holds watches open and pushes events into them, records posted
//! Events. Just enough of the protocol for kube-runtime's watcher.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

type Body = BoxBody<Bytes, Infallible>;
type WatchTx = mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

#[derive(Default)]
pub struct FakeApi {
    node: Mutex<Value>,
    version: Mutex<u64>,
    watches: Mutex<Vec<WatchTx>>,
    pub events: Mutex<Vec<Value>>,
}

impl FakeApi {
    pub fn new(node: Value) -> Arc<Self> {
        let api = FakeApi::default();
        *api.node.lock().expect("lock") = node;
        Arc::new(api)
    }

    /// Replaces the Node and sends MODIFIED to every open watch.
    pub fn modify(&self, mut node: Value) {
        let version = self.bump();
        node["metadata"]["resourceVersion"] = json!(version.to_string());
        *self.node.lock().expect("lock") = node.clone();
        let line = format!("{}\n", json!({"type": "MODIFIED", "object": node}));
        for tx in self.watches.lock().expect("lock").iter() {
            let _ = tx.unbounded_send(Ok(Frame::data(Bytes::from(line.clone()))));
        }
    }

    fn bump(&self) -> u64 {
        let mut version = self.version.lock().expect("lock");
        *version += 1;
        *version
    }

    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        let watch = req.uri().query().is_some_and(|q| q.contains("watch=true"));
        Ok(match (req.method().clone(), path.as_str()) {
            (Method::GET, "/api/v1/nodes") if watch => self.open_watch(),
            (Method::GET, "/api/v1/nodes") => self.list(),
            (Method::POST, "/api/v1/namespaces/default/events") => self.post_event(req).await,
            (Method::PATCH, "/api/v1/nodes/node-1") => self.patch_annotations(req).await,
            _ => respond(
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "code": 404}),
            ),
        })
    }

    fn list(&self) -> Response<Body> {
        let version = self.bump();
        let mut node = self.node.lock().expect("lock").clone();
        node["metadata"]["resourceVersion"] = json!(version.to_string());
        let list = json!({
            "apiVersion": "v1", "kind": "NodeList",
            "metadata": {"resourceVersion": version.to_string()},
            "items": [node],
        });
        respond(StatusCode::OK, list)
    }

    fn open_watch(&self) -> Response<Body> {
        let (tx, rx) = mpsc::unbounded();
        self.watches.lock().expect("lock").push(tx);
        let mut response = Response::new(StreamBody::new(rx).boxed());
        response
            .headers_mut()
            .insert("content-type", "application/json".parse().expect("header"));
        response
    }

    /// The overlay's merge patch of our Node's annotations (the only patch
    /// the component sends).
    async fn patch_annotations(&self, req: Request<Incoming>) -> Response<Body> {
        let patch = body_json(req).await;
        let mut node = self.node.lock().expect("lock").clone();
        if let Some(added) = patch["metadata"]["annotations"].as_object() {
            for (key, value) in added {
                node["metadata"]["annotations"][key] = value.clone();
            }
        }
        self.modify(node.clone());
        respond(StatusCode::OK, node)
    }

    async fn post_event(&self, req: Request<Incoming>) -> Response<Body> {
        let event = body_json(req).await;
        self.events.lock().expect("lock").push(event.clone());
        respond(StatusCode::CREATED, event)
    }
}

async fn body_json(req: Request<Incoming>) -> Value {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn respond(code: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().expect("header"));
    response
}
