//! Posting core/v1 Events that tell an operator which object and which field
//! nodenet rejected (the DESIGN's "bad input is skipped with an Event").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// The same warning about the same object is posted at most this often, so
/// a component retrying on every change does not flood the API server.
const REPEAT_AFTER: Duration = Duration::from_secs(600);

/// Posting an Event failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot post Event {reason} about {kind} {name}: {source}")]
pub struct EventError {
    kind: String,
    name: String,
    reason: String,
    #[source]
    source: kube::Error,
}

/// A warning about one field of one object.
#[derive(Debug, Clone)]
pub struct Warning<'a> {
    /// The object the warning is about (kind, name, namespace, uid).
    pub object: ObjectReference,
    /// A CamelCase reason, e.g. `InvalidPodCIDR`.
    pub reason: &'a str,
    /// The JSON path of the offending field, e.g. `spec.podCIDR`.
    pub field: &'a str,
    /// What is wrong and what nodenet does about it.
    pub message: String,
}

/// Posts Warning Events as one component on one node.
pub struct Recorder {
    client: Client,
    component: String,
    host: String,
    recent: Mutex<HashMap<String, Instant>>,
}

impl Recorder {
    /// A recorder reporting as `component` (e.g. `nodenet-flannel`) on `host`.
    pub fn new(client: Client, component: &str, host: &str) -> Self {
        Recorder {
            client,
            component: component.into(),
            host: host.into(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// Posts `warning` unless the identical warning was posted recently.
    pub async fn warn(&self, warning: &Warning<'_>) -> Result<(), EventError> {
        if !self.first_in_window(warning) {
            return Ok(());
        }
        let event = self.event(warning);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => Ok(()),
            Err(source) => {
                self.forget(warning);
                Err(EventError {
                    kind: warning.object.kind.clone().unwrap_or_default(),
                    name: warning.object.name.clone().unwrap_or_default(),
                    reason: warning.reason.into(),
                    source,
                })
            }
        }
    }

    fn first_in_window(&self, warning: &Warning<'_>) -> bool {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        recent.retain(|_, at| now.duration_since(*at) < REPEAT_AFTER);
        recent.insert(dedup_key(warning), now).is_none()
    }

    fn forget(&self, warning: &Warning<'_>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.remove(&dedup_key(warning));
    }

    fn event(&self, warning: &Warning<'_>) -> Event {
        let object = &warning.object;
        let now = Time(Timestamp::now());
        // Cluster-scoped objects (Nodes) get their Events in "default", as
        // the kubelet does.
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let base = object.name.clone().unwrap_or_else(|| "unknown".into());
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{base}.{:x}", unique_suffix())),
                namespace: Some(namespace),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(warning.reason.into()),
            message: Some(message(warning)),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: Some(self.host.clone()),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        }
    }
}

/// The Event message: the field first, so `kubectl get events` shows it.
pub fn message(warning: &Warning<'_>) -> String {
    format!("{}: {}", warning.field, warning.message)
}

fn dedup_key(warning: &Warning<'_>) -> String {
    let o = &warning.object;
    format!(
        "{:?}/{:?}/{:?}/{}/{}",
        o.kind,
        o.namespace,
        o.name,
        warning.reason,
        message(warning)
    )
}

/// Event names must be unique; like client-go, use the clock in nanoseconds.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_the_field() {
        let warning = Warning {
            object: ObjectReference {
                kind: Some("Node".into()),
                name: Some("node-1".into()),
                ..ObjectReference::default()
            },
            reason: "InvalidPodCIDR",
            field: "spec.podCIDR",
            message: "10.99.0.0/24 is outside --cluster-cidr 10.42.0.0/16".into(),
        };
        let text = message(&warning);
        assert!(text.starts_with("spec.podCIDR: "), "{text}");
        assert!(text.contains("10.99.0.0/24"));
    }
}
