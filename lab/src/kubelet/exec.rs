//! Running a one-off command inside a pod's or node's namespaces (for
//! exec probes, `Lab::exec_in_pod` and `nodenet-lab exec`).

use crate::dirs::{LabDirs, find_program};
use crate::netns::Enter;
use std::process::Stdio;
use std::time::Duration;

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Empty argv.
    #[error("no command given")]
    Empty,
    /// `argv[0]` not found in the lab bin dir or PATH.
    #[error("{0:?} not found in the lab bin dir or PATH")]
    NotFound(String),
    /// Namespace or spawn failure.
    #[error("cannot run {program:?}: {reason}")]
    Spawn { program: String, reason: String },
    /// The command did not finish in time (it was killed).
    #[error("{program:?} did not finish within {timeout:?}")]
    Timeout { program: String, timeout: Duration },
}

/// Runs `argv` entered as `enter` describes, with the lab bin dir on PATH;
/// the child is killed if it outlives `timeout`.
pub async fn run(
    dirs: &LabDirs,
    enter: &Enter,
    argv: &[&str],
    timeout: Duration,
) -> Result<std::process::Output, ExecError> {
    let (first, rest) = argv.split_first().ok_or(ExecError::Empty)?;
    let program =
        find_program(dirs, first).ok_or_else(|| ExecError::NotFound(first.to_string()))?;
    let spawn_err = |reason: String| ExecError::Spawn {
        program: first.to_string(),
        reason,
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(rest)
        .env("PATH", dirs.search_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    enter
        .apply(&mut cmd)
        .map_err(|e| spawn_err(e.to_string()))?;
    let child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| spawn_err(e.to_string())),
        Err(_) => Err(ExecError::Timeout {
            program: first.to_string(),
            timeout,
        }),
    }
}
