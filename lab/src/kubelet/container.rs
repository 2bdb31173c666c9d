//! One container's life: start, watch, restart per restartPolicy, probe
//! readiness, stop on request. Every change is sent to the pod worker.

use super::NodeCtx;
use super::probe::{self, Check, Timing};
use super::process::{self, PodContext, PodFields};
use super::status::{ContainerRun, RunState};
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Exit code reported when a container's command cannot be started.
const CANNOT_RUN_EXIT: i32 = 128;
/// Restart backoff bounds (kubelet uses 10 s .. 5 min; the lab is impatient).
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A container that ran this long starts its backoff afresh.
const BACKOFF_RESET: Duration = Duration::from_secs(30);

/// `None` keeps running; `Some(grace)` asks the container to stop.
pub type StopSignal = watch::Receiver<Option<Duration>>;

/// Everything a container task needs.
pub struct ContainerTask {
    pub ctx: Arc<NodeCtx>,
    pub pod: Arc<Pod>,
    pub index: usize,
    pub spec: Container,
    pub pod_ctx: PodContext,
    pub fields: PodFields,
    pub pod_ip: Option<IpAddr>,
    pub updates: mpsc::UnboundedSender<(usize, ContainerRun)>,
    pub stop: StopSignal,
}

pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn restarts(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

impl ContainerTask {
    fn send(&self, run: &ContainerRun) {
        let _ = self.updates.send((self.index, run.clone()));
    }

    fn policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn stopping(&self) -> Option<Duration> {
        *self.stop.borrow()
    }

    /// Runs until the container is finished for good or asked to stop.
    pub async fn run(mut self) {
        let image = self.spec.image.clone().unwrap_or_default();
        let mut run = ContainerRun::waiting(&self.spec.name, &image, "ContainerCreating");
        let mut backoff = BACKOFF_START;
        loop {
            let started = std::time::Instant::now();
            let terminated = self.run_once(&mut run).await;
            if started.elapsed() > BACKOFF_RESET {
                backoff = BACKOFF_START;
            }
            let Some((code, state)) = terminated else {
                return;
            };
            let again = restarts(&self.policy(), code) && self.stopping().is_none();
            run.probe_ready = false;
            run.finished = !again;
            if !again {
                run.state = state;
                self.send(&run);
                return;
            }
            // Between restarts a kubelet reports the last termination and
            // a waiting state, as `kubectl get` shows it (CrashLoopBackOff).
            run.last = Some(state);
            run.restart_count += 1;
            run.state = RunState::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: format!(
                    "back-off {backoff:?} restarting failed container {}",
                    self.spec.name
                ),
            };
            self.send(&run);
            if !self.sleep_or_stop(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Starts the process once and follows it. `None` = stopped on request.
    async fn run_once(&mut self, run: &mut ContainerRun) -> Option<(i32, RunState)> {
        let started = now();
        let mut child = match self.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(node = %self.ctx.node_name, error = %e, "container did not start");
                self.ctx.event(&self.pod, "Failed", &e.to_string()).await;
                let st = RunState::Terminated {
                    exit_code: CANNOT_RUN_EXIT,
                    reason: "ContainerCannotRun".into(),
                    started: None,
                    finished: now(),
                };
                return Some((CANNOT_RUN_EXIT, st));
            }
        };
        let pid = child.id();
        run.state = RunState::Running {
            started: started.clone(),
        };
        let probe = probe::readiness(&self.spec);
        run.probe_ready = probe.is_none();
        self.send(run);
        let status = self.follow(&mut child, run, probe).await;
        if let Some(pid) = pid {
            self.ctx.registry.remove(pid);
        }
        let code = exit_code(status?);
        let reason = if code == 0 { "Completed" } else { "Error" };
        Some((
            code,
            RunState::Terminated {
                exit_code: code,
                reason: reason.into(),
                started: Some(started),
                finished: now(),
            },
        ))
    }

    fn spawn(&self) -> Result<tokio::process::Child, process::ProcessError> {
        let argv = process::argv(&self.spec)?;
        let env = process::container_env(&self.pod_ctx, &self.spec, &self.pod, &self.fields);
        process::spawn(
            &self.pod_ctx,
            &self.ctx.dirs,
            &argv,
            &env,
            &self.spec.name,
            &self.ctx.registry,
        )
    }

    /// Waits for exit while probing; stops the process when asked.
    async fn follow(
        &mut self,
        child: &mut tokio::process::Child,
        run: &mut ContainerRun,
        probe: Option<Result<(Check, Timing), String>>,
    ) -> Option<std::process::ExitStatus> {
        let (check, timing) = match probe {
            Some(Ok(p)) => (Some(p.0), p.1),
            Some(Err(e)) => {
                self.ctx.event(&self.pod, "Unhealthy", &e).await;
                (
                    None,
                    Timing {
                        initial_delay: Duration::ZERO,
                        period: Duration::from_secs(3600),
                        timeout: Duration::ZERO,
                    },
                )
            }
            None => (
                None,
                Timing {
                    initial_delay: Duration::ZERO,
                    period: Duration::from_secs(3600),
                    timeout: Duration::ZERO,
                },
            ),
        };
        let mut next_probe = tokio::time::Instant::now() + timing.initial_delay;
        loop {
            tokio::select! {
                status = child.wait() => return status.ok(),
                _ = self.stop.changed() => {
                    let grace = self.stopping().unwrap_or(Duration::ZERO);
                    process::stop(child, grace).await;
                    return None;
                }
                _ = tokio::time::sleep_until(next_probe), if check.is_some() => {
                    next_probe += timing.period;
                    if let Some(chk) = &check {
                        let ok = self.probe(chk, timing.timeout).await;
                        if ok != run.probe_ready {
                            run.probe_ready = ok;
                            self.send(run);
                        }
                    }
                }
            }
        }
    }

    async fn probe(&self, check: &Check, timeout: Duration) -> bool {
        match (check, self.pod_ip) {
            (Check::Exec(argv), _) => self.exec_probe(argv, timeout).await,
            (_, Some(ip)) => {
                probe::network_check(&self.ctx.node_netns_path(), ip, check, timeout).await
            }
            (_, None) => false,
        }
    }

    async fn exec_probe(&self, argv: &[String], timeout: Duration) -> bool {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = super::exec::run(&self.ctx.dirs, &self.pod_ctx.enter, &argv, timeout).await;
        out.is_ok_and(|o| o.status.success())
    }

    /// Sleeps for a restart backoff; false if a stop came first.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping().is_none(),
            _ = self.stop.changed() => false,
        }
    }
}
