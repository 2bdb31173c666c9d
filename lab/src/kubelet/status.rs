//! The pod status a kubelet reports, computed from what the lab observed.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::net::IpAddr;

/// Lifecycle of one container as the lab sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started: Time,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started: Option<Time>,
        finished: Time,
    },
}

/// One container's observed state.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRun {
    pub name: String,
    pub image: String,
    pub state: RunState,
    pub last: Option<RunState>,
    pub restart_count: i32,
    /// Readiness probe result (true when there is no probe).
    pub probe_ready: bool,
    /// No restart will follow the current termination.
    pub finished: bool,
}

impl ContainerRun {
    pub fn waiting(name: &str, image: &str, reason: &str) -> ContainerRun {
        ContainerRun {
            name: name.into(),
            image: image.into(),
            state: RunState::Waiting {
                reason: reason.into(),
                message: String::new(),
            },
            last: None,
            restart_count: 0,
            probe_ready: false,
            finished: false,
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.state, RunState::Running { .. }) && self.probe_ready
    }
}

/// What the lab knows about a pod at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRun {
    pub host_ip: IpAddr,
    pub pod_ips: Vec<IpAddr>,
    pub start_time: Time,
    /// The sandbox (netns + CNI) exists.
    pub sandbox_ready: bool,
    pub containers: Vec<ContainerRun>,
}

/// Pod phase from container states (Kubernetes "Pod phase").
pub fn phase(run: &PodRun) -> &'static str {
    let cs = &run.containers;
    if !run.sandbox_ready || cs.is_empty() {
        return "Pending";
    }
    if cs.iter().all(|c| c.finished) {
        let ok = cs
            .iter()
            .all(|c| matches!(c.state, RunState::Terminated { exit_code: 0, .. }));
        return if ok { "Succeeded" } else { "Failed" };
    }
    if cs
        .iter()
        .any(|c| matches!(c.state, RunState::Waiting { .. }) && c.restart_count == 0)
    {
        return "Pending";
    }
    "Running"
}

fn condition(kind: &str, ok: bool, now: &Time) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    }
}

fn container_state(s: &RunState) -> ContainerState {
    match s.clone() {
        RunState::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason),
                message: Some(message).filter(|m| !m.is_empty()),
            }),
            ..Default::default()
        },
        RunState::Running { started } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started),
            }),
            ..Default::default()
        },
        RunState::Terminated {
            exit_code,
            reason,
            started,
            finished,
        } => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: Some(reason),
                started_at: started,
                finished_at: Some(finished),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

fn container_status(c: &ContainerRun) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone(),
        image_id: String::new(),
        ready: c.is_ready(),
        restart_count: c.restart_count,
        started: Some(matches!(c.state, RunState::Running { .. })),
        state: Some(container_state(&c.state)),
        last_state: c.last.as_ref().map(container_state),
        ..Default::default()
    }
}

/// The full status to PATCH (conditions carry `now` as transition time;
/// callers only send a status when it differs from the last one sent).
pub fn render(run: &PodRun, now: &Time) -> PodStatus {
    let phase = phase(run);
    let all_ready = !run.containers.is_empty() && run.containers.iter().all(ContainerRun::is_ready);
    let ready = all_ready && phase == "Running";
    let started = run.sandbox_ready;
    PodStatus {
        phase: Some(phase.into()),
        host_ip: Some(run.host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: run.host_ip.to_string(),
        }]),
        pod_ip: run.pod_ips.first().map(|ip| ip.to_string()),
        pod_ips: Some(
            run.pod_ips
                .iter()
                .map(|ip| PodIP { ip: ip.to_string() })
                .collect(),
        ),
        start_time: Some(run.start_time.clone()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", started, now),
            condition("Initialized", true, now),
            condition("Ready", ready, now),
            condition("ContainersReady", all_ready, now),
            condition("PodScheduled", true, now),
        ]),
        container_statuses: Some(run.containers.iter().map(container_status).collect()),
        ..Default::default()
    }
}

/// Status without the volatile timestamps, to decide whether to PATCH.
pub fn fingerprint(status: &PodStatus) -> String {
    let mut s = status.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_transition_time = None;
    }
    serde_json::to_string(&s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    fn run(states: Vec<(RunState, bool)>) -> PodRun {
        PodRun {
            host_ip: "172.30.0.11".parse().unwrap(),
            pod_ips: vec!["10.42.0.7".parse().unwrap()],
            start_time: now(),
            sandbox_ready: true,
            containers: states
                .into_iter()
                .map(|(state, finished)| ContainerRun {
                    state,
                    finished,
                    probe_ready: true,
                    ..ContainerRun::waiting("c", "i", "x")
                })
                .collect(),
        }
    }

    fn term(code: i32) -> RunState {
        RunState::Terminated {
            exit_code: code,
            reason: "Completed".into(),
            started: None,
            finished: now(),
        }
    }

    #[test]
    fn phases() {
        assert_eq!(
            phase(&run(vec![(RunState::Running { started: now() }, false)])),
            "Running"
        );
        assert_eq!(phase(&run(vec![(term(0), true)])), "Succeeded");
        assert_eq!(
            phase(&run(vec![(term(0), true), (term(2), true)])),
            "Failed"
        );
        assert_eq!(phase(&run(vec![(term(1), false)])), "Running");
        let mut r = run(vec![(RunState::Running { started: now() }, false)]);
        r.sandbox_ready = false;
        assert_eq!(phase(&r), "Pending");
    }

    #[test]
    fn ready_status_has_ips_and_conditions() {
        let s = render(
            &run(vec![(RunState::Running { started: now() }, false)]),
            &now(),
        );
        assert_eq!(s.pod_ip.as_deref(), Some("10.42.0.7"));
        assert_eq!(s.host_ip.as_deref(), Some("172.30.0.11"));
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert!(s.container_statuses.unwrap()[0].ready);
    }
}
