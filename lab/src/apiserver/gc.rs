//! Garbage collection: dependents whose owners are all gone, namespaces that
//! finished terminating, and terminating pods whose node no longer exists.

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;

use super::ApiServer;
use super::meta;
use super::ops::{self, DeleteOptions};
use super::resources::{self, ResourceType};
use super::store::{Key, State};

/// How often the background sweep runs (it also runs after every delete).
const PERIOD: Duration = Duration::from_secs(1);
/// Bound on cascade rounds per sweep; each round deletes at least one object.
const MAX_ROUNDS: usize = 64;

/// Sweeps periodically until the server is dropped.
pub async fn run_periodic(server: Weak<ApiServer>) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        let Some(server) = server.upgrade() else {
            return;
        };
        collect(&mut server.store.lock());
    }
}

thread_local! {
    /// Set while [`collect`] runs on this thread (the store's lock is held
    /// throughout, so one thread is the whole story).
    static COLLECTING: Cell<bool> = const { Cell::new(false) };
}

/// Clears [`COLLECTING`] however `collect` ends.
struct Collecting;

impl Drop for Collecting {
    fn drop(&mut self) {
        COLLECTING.with(|c| c.set(false));
    }
}

/// Runs cascade rounds until nothing more is collectable. A delete below
/// calls back into `collect`; that nested call returns at once, and the
/// next round here picks up what the delete orphaned. (Recursing once per
/// orphan overflowed the stack with a few thousand of them.)
pub fn collect(state: &mut State) {
    if COLLECTING.with(|c| c.replace(true)) {
        return;
    }
    let _collecting = Collecting;
    for _ in 0..MAX_ROUNDS {
        let orphans = orphaned_dependents(state);
        let finished = finished_namespaces(state);
        let stranded = stranded_pods(state);
        if orphans.is_empty() && finished.is_empty() && stranded.is_empty() {
            return;
        }
        for key in orphans {
            if let Some(res) = resources::by_index(key.res) {
                // The object may already be gone through an earlier cascade.
                let _ = ops::delete(state, res, &key.ns, &key.name, &DeleteOptions::default());
            }
        }
        for key in finished.into_iter().chain(stranded) {
            state.remove(&key);
        }
    }
}

/// Objects (not already deleting) with owner references, none of which exists.
fn orphaned_dependents(state: &State) -> Vec<Key> {
    let uids: HashSet<&str> = state.all().map(|(_, o)| meta::uid(o)).collect();
    state
        .all()
        .filter(|(_, o)| !meta::is_deleting(o))
        .filter(|(_, o)| {
            let owners = meta::owner_uids(o);
            !owners.is_empty() && owners.iter().all(|u| !uids.contains(u))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

/// Terminating namespaces with nothing left in them and no finalizers.
fn finished_namespaces(state: &State) -> Vec<Key> {
    let ns_res = resources::namespaces();
    let occupied: HashSet<&str> = state
        .all()
        .filter(|(k, _)| !k.ns.is_empty())
        .map(|(k, _)| k.ns.as_str())
        .collect();
    state
        .list(ns_res, None)
        .into_iter()
        .filter(|ns| meta::is_deleting(ns) && meta::finalizers(ns).is_empty())
        .filter(|ns| !occupied.contains(meta::name(ns)))
        .map(|ns| Key::of(ns_res, ns))
        .collect()
}

/// Terminating pods bound to a node that does not exist: no kubelet will
/// ever confirm their deletion (what the pod GC controller handles).
fn stranded_pods(state: &State) -> Vec<Key> {
    let (Some(pods), Some(nodes)) = (pods(), resources::lookup("", "v1", "nodes")) else {
        return Vec::new();
    };
    state
        .list(pods, None)
        .into_iter()
        .filter(|p| meta::is_deleting(p) && meta::finalizers(p).is_empty())
        .filter(|p| {
            let node = p
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("");
            state.get(&Key::new(nodes, "", node)).is_none()
        })
        .map(|p| Key::of(pods, p))
        .collect()
}

fn pods() -> Option<&'static ResourceType> {
    resources::lookup("", "v1", "pods")
}
