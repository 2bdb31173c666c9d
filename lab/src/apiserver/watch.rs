//! Watch streams: events after a resourceVersion from the kept history (or
//! synthetic ADDED events for the current state), then live events, filtered
//! by namespace and selectors, with periodic bookmarks and a timeout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::error::ApiError;
use super::ops::ListOptions;
use super::query::WatchOptions;
use super::render::Shape;
use super::resources::ResourceType;
use super::store::{Event, EventKind, State};

/// Bookmarks are sent this often when the client allows them.
const BOOKMARK_PERIOD: Duration = Duration::from_secs(3);
/// Watches without timeoutSeconds end after this long, as in Kubernetes.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What one watch selects and how it renders objects.
#[derive(Debug, Clone)]
pub struct WatchFilter {
    pub res: &'static ResourceType,
    pub ns: Option<String>,
    pub list: ListOptions,
    /// How objects are rendered (one-row Tables for kubectl get -w).
    pub shape: Shape,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = self
            .ns
            .as_deref()
            .is_none_or(|ns| super::meta::namespace(obj) == ns);
        ns_ok && self.list.labels.matches(obj) && self.list.fields.matches(obj)
    }

    /// The event type this watcher sees for a store event, if any: an object
    /// that starts matching is ADDED, one that stops matching is DELETED.
    fn translate(&self, ev: &Event) -> Option<&'static str> {
        if ev.res != self.res.index() {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
        match (ev.kind, before, now) {
            (EventKind::Added, _, true) => Some("ADDED"),
            (EventKind::Deleted, _, true) => Some("DELETED"),
            (EventKind::Modified, true, true) => Some("MODIFIED"),
            (EventKind::Modified, false, true) => Some("ADDED"),
            (EventKind::Modified, true, false) => Some("DELETED"),
            _ => None,
        }
    }

    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let object = self.shape.one(self.res, obj);
        let mut text = json!({"type": kind, "object": object}).to_string();
        text.push('\n');
        Bytes::from(text)
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.res.kind, "apiVersion": self.res.api_version(), "metadata": metadata});
        let mut text = json!({"type": "BOOKMARK", "object": obj}).to_string();
        text.push('\n');
        Bytes::from(text)
    }
}

/// Where a watch starts: lines to send first, the rv they bring the client
/// to, and the live receiver.
pub struct Start {
    initial: Vec<Bytes>,
    rv: u64,
    rx: broadcast::Receiver<Arc<Event>>,
}

/// Prepares a watch under the store lock, so no event is missed or repeated.
pub fn start(state: &State, filter: &WatchFilter, opts: &WatchOptions) -> Result<Start, ApiError> {
    match opts.resource_version.filter(|_| !opts.send_initial_events) {
        Some(rv) => {
            let (past, rx) = state.events_since(rv).ok_or(ApiError::Expired {
                requested: rv,
                oldest: state.oldest_rv(),
            })?;
            let initial = past
                .iter()
                .filter_map(|e| Some(filter.line(filter.translate(e)?, &e.object)))
                .collect();
            Ok(Start {
                initial,
                rv: state.rv(),
                rx,
            })
        }
        None => {
            let mut initial: Vec<Bytes> = state
                .list(filter.res, filter.ns.as_deref())
                .into_iter()
                .filter(|o| filter.matches(o))
                .map(|o| filter.line("ADDED", o))
                .collect();
            if opts.send_initial_events {
                initial.push(filter.bookmark(state.rv(), true));
            }
            Ok(Start {
                initial,
                rv: state.rv(),
                rx: state.subscribe(),
            })
        }
    }
}

/// The ERROR event a watch gets when its resourceVersion is too old.
pub fn error_line(err: &ApiError) -> Bytes {
    let mut text = json!({"type": "ERROR", "object": err.status()}).to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Streams the watch into a channel until the client goes away, the timeout
/// passes or the watcher lags too far behind (then it gets a 410 ERROR).
pub async fn run(filter: WatchFilter, opts: WatchOptions, start: Start, tx: mpsc::Sender<Bytes>) {
    let Start {
        initial,
        mut rv,
        mut rx,
    } = start;
    for line in initial {
        if tx.send(line).await.is_err() {
            return;
        }
    }
    let timeout = opts
        .timeout_seconds
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut bookmarks = tokio::time::interval_at(
        tokio::time::Instant::now() + BOOKMARK_PERIOD,
        BOOKMARK_PERIOD,
    );
    loop {
        let line = tokio::select! {
            _ = tx.closed() => return,
            _ = &mut deadline => return,
            _ = bookmarks.tick(), if opts.bookmarks => filter.bookmark(rv, false),
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    rv = ev.rv;
                    let Some(kind) = filter.translate(&ev) else { continue };
                    filter.line(kind, &ev.object)
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(error_line(&ApiError::Expired { requested: rv, oldest: rv })).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(line).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::ApiServerConfig;
    use crate::apiserver::ops::{self, Part};
    use crate::apiserver::resources::lookup;
    use crate::apiserver::selector::LabelSelector;
    use crate::apiserver::store::Store;

    fn cms() -> &'static ResourceType {
        lookup("", "v1", "configmaps").expect("registered")
    }

    fn filter(labels: &str) -> WatchFilter {
        let list = ListOptions {
            labels: LabelSelector::parse(labels).expect("selector"),
            ..ListOptions::default()
        };
        WatchFilter {
            res: cms(),
            ns: Some("default".into()),
            list,
            shape: Shape::Full,
        }
    }

    fn create(store: &Store, name: &str, team: &str) -> Value {
        let obj = json!({"metadata": {"name": name, "labels": {"team": team}}});
        ops::create(&mut store.lock(), cms(), "default", obj).expect("create")
    }

    fn watch(store: &Store, f: &WatchFilter, opts: WatchOptions) -> mpsc::Receiver<Bytes> {
        let start = start(&store.lock(), f, &opts).expect("watch starts");
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(f.clone(), opts, start, tx));
        rx
    }

    async fn next(rx: &mut mpsc::Receiver<Bytes>) -> (String, String) {
        let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("open");
        let v: Value = serde_json::from_slice(&line).expect("JSON line");
        let name = v["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (v["type"].as_str().unwrap_or("").to_string(), name)
    }

    #[tokio::test]
    async fn resumes_after_rv_and_applies_selectors() {
        let store = Store::new(ApiServerConfig::default());
        create(&store, "before", "net");
        let rv = store.lock().rv();
        create(&store, "other", "db");
        create(&store, "after", "net");
        let mut rx = watch(
            &store,
            &filter("team=net"),
            WatchOptions {
                resource_version: Some(rv),
                ..WatchOptions::default()
            },
        );
        assert_eq!(next(&mut rx).await, ("ADDED".into(), "after".into()));
        let mut moved = ops::get(&store.lock(), cms(), "default", "after").expect("get");
        moved["metadata"]["labels"]["team"] = json!("db");
        ops::update(
            &mut store.lock(),
            cms(),
            "default",
            "after",
            moved,
            Part::Main,
        )
        .expect("relabel");
        assert_eq!(next(&mut rx).await, ("DELETED".into(), "after".into()));
        let mut joined = ops::get(&store.lock(), cms(), "default", "other").expect("get");
        joined["metadata"]["labels"]["team"] = json!("net");
        ops::update(
            &mut store.lock(),
            cms(),
            "default",
            "other",
            joined,
            Part::Main,
        )
        .expect("relabel");
        assert_eq!(next(&mut rx).await, ("ADDED".into(), "other".into()));
    }

    #[tokio::test]
    async fn without_rv_lists_current_objects_first() {
        let store = Store::new(ApiServerConfig::default());
        create(&store, "a", "net");
        let opts = WatchOptions {
            send_initial_events: true,
            ..WatchOptions::default()
        };
        let mut rx = watch(&store, &filter(""), opts);
        assert_eq!(next(&mut rx).await, ("ADDED".into(), "a".into()));
        let (kind, _) = next(&mut rx).await;
        assert_eq!(kind, "BOOKMARK");
        create(&store, "b", "net");
        assert_eq!(next(&mut rx).await, ("ADDED".into(), "b".into()));
    }

    #[tokio::test]
    async fn too_old_rv_is_expired_and_bookmarks_flow() {
        let store = Store::new(ApiServerConfig::default());
        let first = store.lock().rv();
        for i in 0..(super::super::store::HISTORY_LEN + 10) {
            let obj = json!({"metadata": {"name": format!("c{i}")}});
            ops::create(&mut store.lock(), cms(), "default", obj).expect("create");
        }
        let old = WatchOptions {
            resource_version: Some(first),
            ..WatchOptions::default()
        };
        let err = start(&store.lock(), &filter(""), &old)
            .err()
            .expect("expired");
        assert_eq!(err.code(), 410);
        let line: Value = serde_json::from_slice(&error_line(&err)).expect("JSON");
        assert_eq!(
            (line["type"].as_str(), line["object"]["code"].as_u64()),
            (Some("ERROR"), Some(410))
        );

        let current = store.lock().rv();
        let opts = WatchOptions {
            resource_version: Some(current),
            bookmarks: true,
            ..WatchOptions::default()
        };
        let mut rx = watch(&store, &filter(""), opts);
        let line = tokio::time::timeout(BOOKMARK_PERIOD * 2, rx.recv())
            .await
            .expect("bookmark in time")
            .expect("open");
        let v: Value = serde_json::from_slice(&line).expect("JSON");
        assert_eq!(v["type"], "BOOKMARK");
        assert_eq!(
            v["object"]["metadata"]["resourceVersion"],
            current.to_string()
        );
    }

    #[tokio::test]
    async fn timeout_ends_the_stream() {
        let store = Store::new(ApiServerConfig::default());
        let opts = WatchOptions {
            timeout_seconds: Some(1),
            ..WatchOptions::default()
        };
        let mut rx = watch(&store, &filter(""), opts);
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("ends in time");
        assert!(end.is_none());
    }
}
