//! HTTP serving: connection handling, routing to the verbs and rendering of
//! results and errors (the one place errors become responses).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::ApiServer;
use super::discovery;
use super::error::ApiError;
use super::openapi;
use super::ops::{self, Part};
use super::patch::{self, PatchKind};
use super::protobuf;
use super::query::Query;
use super::render::Shape;
use super::resources::ResourceType;
use super::route::{self, ResourcePath, Route};
use super::watch::{self, WatchFilter};

type Body = BoxBody<Bytes, Infallible>;

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 32 << 20;

pub async fn serve(server: Arc<ApiServer>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if transient(&e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(handle(&server, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The parts of a request the handlers need.
struct Req {
    method: Method,
    query: Query,
    accept: String,
    content_type: String,
    body: Bytes,
}

enum Reply {
    Json(StatusCode, Value),
    Stream(mpsc::Receiver<Bytes>),
    Text(&'static str),
}

async fn handle(server: &ApiServer, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::BadRequest(format!(
                "reading the request body: {e}"
            )));
        }
    };
    let req = Req {
        method: parts.method.clone(),
        query: Query::parse(parts.uri.query()),
        accept: header(ACCEPT),
        content_type: header(CONTENT_TYPE),
        body,
    };
    let result = route::parse(&path).and_then(|r| dispatch(server, &req, r));
    tracing::debug!(method = %req.method, path, ok = result.is_ok(), "api request");
    match result {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Stream(rx)) => stream_response(rx),
        Ok(Reply::Text(text)) => {
            Response::new(Full::new(Bytes::from_static(text.as_bytes())).boxed())
        }
        Err(e) => error_response(&e),
    }
}

fn dispatch(server: &ApiServer, req: &Req, route: Route) -> Result<Reply, ApiError> {
    if req.method != Method::GET && !matches!(route, Route::Resource(_)) {
        return Err(ApiError::MethodNotAllowed(req.method.to_string()));
    }
    let ok = |v: Value| Ok(Reply::Json(StatusCode::OK, v));
    match route {
        Route::Version => ok(discovery::version()),
        Route::Health => Ok(Reply::Text("ok")),
        Route::CoreVersions => ok(discovery::core_versions()),
        Route::GroupList => ok(discovery::group_list()),
        Route::Group(g) => ok(discovery::group(&g)?),
        Route::ResourceList { group, version } => ok(discovery::resource_list(&group, &version)?),
        Route::OpenApiRoot => ok(openapi::root()),
        Route::OpenApi(gv) => ok(openapi::group_version(&gv)?),
        Route::Resource(rp) => resource(server, req, rp),
    }
}

fn resource(server: &ApiServer, req: &Req, rp: ResourcePath) -> Result<Reply, ApiError> {
    if req.query.get("dryRun").is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::BadRequest(
            "dryRun is not supported by the lab API server".into(),
        ));
    }
    let m = &req.method;
    match (rp.name.as_deref(), rp.sub.as_deref()) {
        (None, None) if *m == Method::GET && req.query.flag("watch") => {
            start_watch(server, req, &rp)
        }
        (None, None) if *m == Method::GET => list(server, req, &rp),
        (None, None) if *m == Method::POST => create(server, req, &rp),
        (None, None) if *m == Method::DELETE => delete_collection(server, req, &rp),
        (Some(name), sub @ (None | Some("status"))) => {
            object_verb(server, req, &rp, name, part(sub))
        }
        (Some(name), Some("binding")) if *m == Method::POST && rp.res.kind == "Pod" => {
            bind(server, req, &rp, name)
        }
        _ => Err(ApiError::MethodNotAllowed(format!(
            "{m} {}",
            rp.res.qualified()
        ))),
    }
}

fn part(sub: Option<&str>) -> Part {
    if sub == Some("status") {
        Part::Status
    } else {
        Part::Main
    }
}

fn object_verb(
    server: &ApiServer,
    req: &Req,
    rp: &ResourcePath,
    name: &str,
    part: Part,
) -> Result<Reply, ApiError> {
    let ns = rp.ns.as_deref().unwrap_or("");
    let mut state = server.store.lock();
    let (res, m) = (rp.res, &req.method);
    let value = if *m == Method::GET {
        let obj = ops::get(&state, res, ns, name)?;
        return Ok(Reply::Json(StatusCode::OK, shape(req).one(res, &obj)));
    } else if *m == Method::PUT {
        ops::update(&mut state, res, ns, name, parse_body(req, res)?, part)?
    } else if *m == Method::PATCH {
        return patch(&mut state, req, rp, name, part);
    } else if *m == Method::DELETE && part == Part::Main {
        ops::delete(
            &mut state,
            res,
            ns,
            name,
            &req.query.delete_options(&req.body)?,
        )?
    } else {
        return Err(ApiError::MethodNotAllowed(format!(
            "{m} {}",
            res.qualified()
        )));
    };
    Ok(Reply::Json(StatusCode::OK, value))
}

fn patch(
    state: &mut super::store::State,
    req: &Req,
    rp: &ResourcePath,
    name: &str,
    part: Part,
) -> Result<Reply, ApiError> {
    let ns = rp.ns.as_deref().unwrap_or("");
    let kind = PatchKind::from_content_type(&req.content_type)?;
    match ops::get(state, rp.res, ns, name) {
        Ok(current) => {
            let patched = patch::apply(kind, &current, &req.body)?;
            let updated = ops::update(state, rp.res, ns, name, patched, part)?;
            Ok(Reply::Json(StatusCode::OK, updated))
        }
        Err(ApiError::NotFound { .. }) if kind == PatchKind::Apply && part == Part::Main => {
            let mut obj = patch::parse_yaml(&req.body)?;
            if obj.pointer("/metadata/name").is_none() {
                super::meta::set(&mut obj, "name", json!(name));
            }
            Ok(Reply::Json(
                StatusCode::CREATED,
                ops::create(state, rp.res, ns, obj)?,
            ))
        }
        Err(e) => Err(e),
    }
}

fn list(server: &ApiServer, req: &Req, rp: &ResourcePath) -> Result<Reply, ApiError> {
    let opts = req.query.list_options()?;
    let list = ops::list(&server.store.lock(), rp.res, rp.ns.as_deref(), &opts)?;
    Ok(Reply::Json(StatusCode::OK, shape(req).list(rp.res, list)))
}

fn shape(req: &Req) -> Shape {
    Shape::from_request(&req.accept, req.query.get("includeObject"))
}

fn create(server: &ApiServer, req: &Req, rp: &ResourcePath) -> Result<Reply, ApiError> {
    let body = parse_body(req, rp.res)?;
    let ns = match (&rp.ns, rp.res.namespaced) {
        (Some(ns), _) => ns.clone(),
        (None, false) => String::new(),
        (None, true) => {
            return Err(ApiError::MethodNotAllowed(format!(
                "POST {} needs a namespace in the path",
                rp.res.plural
            )));
        }
    };
    let created = ops::create(&mut server.store.lock(), rp.res, &ns, body)?;
    Ok(Reply::Json(StatusCode::CREATED, created))
}

fn delete_collection(server: &ApiServer, req: &Req, rp: &ResourcePath) -> Result<Reply, ApiError> {
    let list_opts = req.query.list_options()?;
    let opts = req.query.delete_options(&req.body)?;
    let deleted = ops::delete_collection(
        &mut server.store.lock(),
        rp.res,
        rp.ns.as_deref(),
        &list_opts,
        &opts,
    )?;
    Ok(Reply::Json(StatusCode::OK, deleted))
}

/// pods/binding: sets spec.nodeName of an unbound pod.
fn bind(server: &ApiServer, req: &Req, rp: &ResourcePath, name: &str) -> Result<Reply, ApiError> {
    let body = parse_body(req, rp.res)?;
    let node = body
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            name,
            "target.name",
            "Required value",
        ));
    }
    let ns = rp.ns.as_deref().unwrap_or("");
    let mut state = server.store.lock();
    let mut pod = ops::get(&state, rp.res, ns, name)?;
    if pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
    {
        return Err(ApiError::Conflict {
            resource: rp.res.qualified(),
            name: name.into(),
            message: "pod is already assigned to a node".into(),
        });
    }
    pod["spec"]["nodeName"] = json!(node);
    ops::update(&mut state, rp.res, ns, name, pod, Part::Main)?;
    Ok(Reply::Json(
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

fn start_watch(server: &ApiServer, req: &Req, rp: &ResourcePath) -> Result<Reply, ApiError> {
    let opts = req.query.watch_options()?;
    let filter = WatchFilter {
        res: rp.res,
        ns: rp.ns.clone(),
        list: req.query.list_options()?,
        shape: shape(req),
    };
    let (tx, rx) = mpsc::channel(256);
    let start = watch::start(&server.store.lock(), &filter, &opts);
    match start {
        Ok(start) => {
            tokio::spawn(watch::run(filter, opts, start, tx));
        }
        // Kubernetes reports an expired resourceVersion inside a 200 stream.
        Err(e @ ApiError::Expired { .. }) => {
            let _ = tx.try_send(watch::error_line(&e));
        }
        Err(e) => return Err(e),
    }
    Ok(Reply::Stream(rx))
}

fn parse_body(req: &Req, res: &ResourceType) -> Result<Value, ApiError> {
    if req.content_type.contains("protobuf") {
        return protobuf::decode(res, &req.body);
    }
    serde_json::from_slice(&req.body)
        .or_else(|_| serde_yaml::from_slice(&req.body))
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "the request body is not a valid JSON or YAML object: {e}"
            ))
        })
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.status())
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
