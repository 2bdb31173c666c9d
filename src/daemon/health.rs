//! Per-component status shared by the supervisor, /readyz and /metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Live status of one supervised component.
#[derive(Debug)]
pub struct ComponentStatus {
    name: &'static str,
    ready: watch::Sender<bool>,
    restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ComponentStatus {
    /// A component that is not ready yet and never restarted.
    pub fn new(name: &'static str) -> Self {
        ComponentStatus {
            name,
            ready: watch::Sender::new(false),
            restarts: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The handle a component run sets its readiness through.
    pub fn ready_handle(&self) -> watch::Sender<bool> {
        self.ready.clone()
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The error of the last failed run, shown by /readyz?verbose.
    pub fn last_error(&self) -> Option<String> {
        self.lock().clone()
    }

    /// Marks a failed run: not ready, one more restart, why.
    pub fn record_failure(&self, reason: String) {
        self.ready.send_replace(false);
        self.restarts.fetch_add(1, Ordering::Relaxed);
        *self.lock() = Some(reason);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.last_error.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// All supervised components, in start order.
#[derive(Debug, Clone, Default)]
pub struct Health {
    components: Vec<Arc<ComponentStatus>>,
}

impl Health {
    pub fn new(components: Vec<Arc<ComponentStatus>>) -> Self {
        Health { components }
    }

    pub fn components(&self) -> &[Arc<ComponentStatus>] {
        &self.components
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ComponentStatus>> {
        self.components.iter().find(|c| c.name() == name)
    }

    /// Ready when every enabled component is (vacuously true with none).
    pub fn all_ready(&self) -> bool {
        self.components.iter().all(|c| c.is_ready())
    }
}
