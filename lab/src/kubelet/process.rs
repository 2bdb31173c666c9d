//! Container processes: a container's command run inside its pod's
//! namespaces, with the environment a kubelet would give it.

use crate::dirs::{LabDirs, find_program};
use crate::netns::Enter;
use crate::procs::ProcRegistry;
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Why a container could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Neither `command` nor `args` is set: lab pods run commands, not images.
    #[error("container {container}: no command (lab pods run a command, images are not pulled)")]
    NoCommand { container: String },
    /// `command[0]` is not in the lab bin dir or PATH.
    #[error("container {container}: executable {program:?} not found in the lab bin dir or PATH")]
    NotFound { container: String, program: String },
    /// Spawning failed.
    #[error("container {container}: cannot start: {reason}")]
    Spawn { container: String, reason: String },
}

/// Where and how a pod's processes run.
#[derive(Debug, Clone)]
pub struct PodContext {
    pub enter: Enter,
    pub search_path: String,
    pub base_env: Vec<(String, String)>,
    pub log_dir: PathBuf,
}

/// Values a `fieldRef` can read (the downward API subset the lab supports).
#[derive(Debug, Clone, Default)]
pub struct PodFields {
    pub pod_ip: String,
    pub host_ip: String,
    pub node_name: String,
}

/// argv of a container: command then args (no image entrypoint here).
pub fn argv(c: &Container) -> Result<Vec<String>, ProcessError> {
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(ProcessError::NoCommand {
            container: c.name.clone(),
        });
    }
    Ok(argv)
}

/// The value of one env entry; `None` when it reads something unsupported.
pub fn env_value(var: &EnvVar, pod: &Pod, fields: &PodFields) -> Option<String> {
    if let Some(v) = &var.value {
        return Some(v.clone());
    }
    let path = var
        .value_from
        .as_ref()?
        .field_ref
        .as_ref()?
        .field_path
        .as_str();
    let meta = &pod.metadata;
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => Some(fields.node_name.clone()),
        "spec.serviceAccountName" => pod.spec.as_ref()?.service_account_name.clone(),
        "status.podIP" | "status.podIPs" => Some(fields.pod_ip.clone()),
        "status.hostIP" | "status.hostIPs" => Some(fields.host_ip.clone()),
        _ => None,
    }
}

/// Environment of a container: lab defaults, then the container's own.
pub fn container_env(
    ctx: &PodContext,
    c: &Container,
    pod: &Pod,
    fields: &PodFields,
) -> Vec<(String, String)> {
    let mut env = ctx.base_env.clone();
    env.push(("PATH".into(), ctx.search_path.clone()));
    for var in c.env.iter().flatten() {
        if let Some(v) = env_value(var, pod, fields) {
            env.retain(|(k, _)| k != &var.name);
            env.push((var.name.clone(), v));
        }
    }
    env
}

/// Starts one container process, recorded in the registry.
pub fn spawn(
    ctx: &PodContext,
    dirs: &LabDirs,
    argv: &[String],
    env: &[(String, String)],
    name: &str,
    registry: &ProcRegistry,
) -> Result<tokio::process::Child, ProcessError> {
    let err = |reason: String| ProcessError::Spawn {
        container: name.into(),
        reason,
    };
    let program = find_program(dirs, &argv[0]).ok_or_else(|| ProcessError::NotFound {
        container: name.into(),
        program: argv[0].clone(),
    })?;
    let log = open_log(&ctx.log_dir.join(format!("{name}.log"))).map_err(|e| err(e.to_string()))?;
    let log2 = log.try_clone().map_err(|e| err(e.to_string()))?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env.iter().cloned())
        .current_dir("/");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
    ctx.enter.apply(&mut cmd).map_err(|e| err(e.to_string()))?;
    let child = cmd
        .spawn()
        .map_err(|e| err(format!("{}: {e}", program.display())))?;
    if let Some(pid) = child.id() {
        registry.add(pid, ctx.enter.new_group, &format!("container {name}"));
    }
    Ok(child)
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// SIGTERM to the container's process group, `grace` to exit, then SIGKILL.
pub async fn stop(
    child: &mut tokio::process::Child,
    grace: Duration,
) -> Option<std::process::ExitStatus> {
    let pid = child.id()? as i32;
    signal_group(pid, libc::SIGTERM);
    if let Ok(Ok(status)) = tokio::time::timeout(grace, child.wait()).await {
        signal_group(pid, libc::SIGKILL); // leftovers of the group
        return Some(status);
    }
    signal_group(pid, libc::SIGKILL);
    child.wait().await.ok()
}

fn signal_group(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) on the process group led by a child we started.
    unsafe {
        libc::kill(-pid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVarSource, ObjectFieldSelector};

    #[test]
    fn argv_joins_command_and_args() {
        let c = Container {
            name: "c".into(),
            command: Some(vec!["nodenet-workload".into()]),
            args: Some(vec!["serve".into(), "--tcp".into(), "80".into()]),
            ..Default::default()
        };
        assert_eq!(
            argv(&c).unwrap(),
            vec!["nodenet-workload", "serve", "--tcp", "80"]
        );
        assert!(matches!(
            argv(&Container {
                name: "x".into(),
                ..Default::default()
            }),
            Err(ProcessError::NoCommand { .. })
        ));
    }

    #[test]
    fn field_refs_resolve() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("p".into());
        let var = |path: &str| EnvVar {
            name: "X".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: path.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let f = PodFields {
            pod_ip: "10.42.0.5".into(),
            host_ip: "172.30.0.11".into(),
            node_name: "node-1".into(),
        };
        assert_eq!(
            env_value(&var("metadata.name"), &pod, &f).as_deref(),
            Some("p")
        );
        assert_eq!(
            env_value(&var("status.podIP"), &pod, &f).as_deref(),
            Some("10.42.0.5")
        );
        assert_eq!(env_value(&var("metadata.labels['x']"), &pod, &f), None);
    }
}
