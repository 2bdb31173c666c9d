//! Supervisor behaviour under paused tokio time (no real sleeping).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// Fails its first `failures` runs (after turning ready, to prove the
/// supervisor resets readiness), then runs ready until cancelled.
struct Flaky {
    name: &'static str,
    failures: AtomicU32,
    panics: bool,
    /// How long each failing run lasts before it fails.
    run_for: Duration,
    starts: Mutex<Vec<Instant>>,
}

impl Flaky {
    fn new(name: &'static str, failures: u32, panics: bool) -> Arc<Self> {
        Arc::new(Flaky {
            name,
            failures: AtomicU32::new(failures),
            panics,
            run_for: Duration::ZERO,
            starts: Mutex::new(Vec::new()),
        })
    }

    fn starts(&self) -> Vec<Instant> {
        self.starts.lock().expect("lock").clone()
    }
}

impl Component for Flaky {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(self: Arc<Self>, ready: watch::Sender<bool>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move {
            self.starts.lock().expect("lock").push(Instant::now());
            ready.send_replace(true);
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                tokio::time::sleep(self.run_for).await;
                self.failures.store(left - 1, Ordering::SeqCst);
                assert!(!self.panics, "deliberate panic of {}", self.name);
                anyhow::bail!("deliberate failure, {left} left");
            }
            std::future::pending::<()>().await;
            Ok(())
        })
    }
}

const BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(4),
    reset_after: Duration::from_secs(3600),
};

struct Running {
    status: Arc<ComponentStatus>,
    task: tokio::task::JoinHandle<()>,
}

fn start(component: Arc<Flaky>, shutdown: &watch::Sender<bool>) -> Running {
    start_with(component, shutdown, BACKOFF)
}

fn start_with(component: Arc<Flaky>, shutdown: &watch::Sender<bool>, backoff: Backoff) -> Running {
    let status = Arc::new(ComponentStatus::new(component.name));
    let task = tokio::spawn(supervise(
        component,
        status.clone(),
        backoff,
        shutdown.subscribe(),
    ));
    Running { status, task }
}

fn gaps(starts: &[Instant]) -> Vec<u64> {
    starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect()
}

#[tokio::test(start_paused = true)]
async fn failing_component_restarts_with_capped_backoff_and_others_keep_running() {
    let (shutdown, _) = watch::channel(false);
    let flaky = Flaky::new("flaky", 5, false);
    let steady = Flaky::new("steady", 0, false);
    let f = start(flaky.clone(), &shutdown);
    let s = start(steady.clone(), &shutdown);
    tokio::time::sleep(Duration::from_secs(60)).await;

    assert_eq!(
        flaky.starts().len(),
        6,
        "5 failures + the run that stays up"
    );
    assert_eq!(
        gaps(&flaky.starts()),
        vec![1, 2, 4, 4, 4],
        "doubling, capped at 4 s"
    );
    assert_eq!(f.status.restarts(), 5);
    assert!(f.status.is_ready());
    assert!(
        f.status
            .last_error()
            .expect("error kept")
            .contains("deliberate failure")
    );

    assert_eq!(
        steady.starts().len(),
        1,
        "the healthy component was never restarted"
    );
    assert_eq!(s.status.restarts(), 0);
    assert!(s.status.is_ready());

    shutdown.send_replace(true);
    f.task.await.expect("flaky supervisor ends on shutdown");
    s.task.await.expect("steady supervisor ends on shutdown");
}

#[tokio::test(start_paused = true)]
async fn failed_component_is_not_ready_during_backoff() {
    let (shutdown, _) = watch::channel(false);
    let flaky = Flaky::new("flaky", 1, false);
    let f = start(flaky.clone(), &shutdown);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!f.status.is_ready(), "ready while waiting to restart");
    assert_eq!(f.status.restarts(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(f.status.is_ready());
    shutdown.send_replace(true);
    f.task.await.expect("ends");
}

#[tokio::test(start_paused = true)]
async fn panicking_component_is_contained_and_restarted() {
    let (shutdown, _) = watch::channel(false);
    let panicky = Flaky::new("panicky", 2, true);
    let p = start(panicky.clone(), &shutdown);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(panicky.starts().len(), 3);
    assert_eq!(p.status.last_error().as_deref(), Some("panicked"));
    assert!(p.status.is_ready());
    shutdown.send_replace(true);
    p.task.await.expect("ends");
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_backoff_stops_without_restart() {
    let (shutdown, _) = watch::channel(false);
    let flaky = Flaky::new("flaky", 100, false);
    let f = start(flaky.clone(), &shutdown);
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.send_replace(true);
    f.task.await.expect("ends");
    assert_eq!(flaky.starts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn backoff_resets_after_a_long_run() {
    let (shutdown, _) = watch::channel(false);
    let mut flaky = Flaky::new("long", 3, false);
    Arc::get_mut(&mut flaky).expect("unshared").run_for = Duration::from_secs(20);
    let backoff = Backoff {
        reset_after: Duration::from_secs(10),
        ..BACKOFF
    };
    let f = start_with(flaky.clone(), &shutdown, backoff);
    tokio::time::sleep(Duration::from_secs(200)).await;
    // Each run lasted 20 s >= reset_after, so every delay is the initial 1 s.
    assert_eq!(gaps(&flaky.starts()), vec![21, 21, 21]);
    shutdown.send_replace(true);
    f.task.await.expect("ends");
}

#[test]
fn backoff_doubles_up_to_max() {
    let b = Backoff::default();
    assert_eq!(b.next(Duration::from_secs(1)), Duration::from_secs(2));
    assert_eq!(b.next(Duration::from_secs(50)), b.max);
}
