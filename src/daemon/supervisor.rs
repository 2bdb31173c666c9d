//! Runs each component as its own task and keeps it running: a failing,
//! exiting or panicking component is logged, marked not ready and restarted
//! after an exponential backoff; the others never notice. On shutdown the
//! runs are dropped where they are: the dataplane stays in place.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::time::Instant;

use super::health::ComponentStatus;

/// A supervised unit of the daemon.
pub trait Component: Send + Sync + 'static {
    /// The name used in logs, /readyz and metrics.
    fn name(&self) -> &'static str;
    /// One run: should run until shutdown, setting `ready` as it goes.
    /// Returning (Ok or Err) or panicking counts as a failure.
    fn run(self: Arc<Self>, ready: watch::Sender<bool>) -> BoxFuture<'static, anyhow::Result<()>>;
}

/// Restart delays: `initial`, doubled per consecutive failure up to `max`;
/// back to `initial` after a run that lasted `reset_after`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(120),
        }
    }
}

impl Backoff {
    fn next(&self, delay: Duration) -> Duration {
        (delay * 2).min(self.max)
    }
}

/// Supervises `component` until `shutdown` turns true.
pub async fn supervise(
    component: Arc<dyn Component>,
    status: Arc<ComponentStatus>,
    backoff: Backoff,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = component.name();
    let mut delay = backoff.initial;
    loop {
        let started = Instant::now();
        let Some(reason) = run_once(&component, &status, &mut shutdown).await else {
            return;
        };
        if started.elapsed() >= backoff.reset_after {
            delay = backoff.initial;
        }
        status.record_failure(reason.clone());
        let restarts = status.restarts();
        tracing::error!(component = name, error = %reason, restarts, retry_in = ?delay, "component failed; restarting");
        if wait_or_shutdown(delay, &mut shutdown).await {
            return;
        }
        delay = backoff.next(delay);
    }
}

/// One run as its own task (so a panic is contained). `None` on shutdown,
/// else why the run ended.
async fn run_once(
    component: &Arc<dyn Component>,
    status: &ComponentStatus,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<String> {
    tracing::info!(component = component.name(), "starting");
    let mut task = tokio::spawn(component.clone().run(status.ready_handle()));
    tokio::select! {
        outcome = &mut task => Some(describe(outcome)),
        _ = shutdown.wait_for(|stop| *stop) => {
            task.abort();
            None
        }
    }
}

fn describe(outcome: Result<anyhow::Result<()>, tokio::task::JoinError>) -> String {
    match outcome {
        Ok(Ok(())) => "exited unexpectedly".into(),
        Ok(Err(err)) => err.to_string(),
        Err(join) if join.is_panic() => "panicked".into(),
        Err(join) => format!("task ended: {join}"),
    }
}

/// Sleeps `delay`; true if shutdown came first.
async fn wait_or_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

#[cfg(test)]
mod tests;
