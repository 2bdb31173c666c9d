//! Listing and destroying ipsets through the `ipset` CLI (package ipset).
//! ipsets belong to the network namespace of the calling thread.

use std::io::ErrorKind;
use std::process::Command;

/// An ipset command failed.
#[derive(Debug, thiserror::Error)]
pub enum IpsetError {
    /// The program could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// The program exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// Names of every set; `None` when the `ipset` CLI is not installed (K3s
/// ships its own copy, so sets may exist anyway: that is logged).
pub fn list_names() -> Result<Option<Vec<String>>, IpsetError> {
    match run(&["list", "-n"]) {
        Err(IpsetError::Spawn { source, .. }) if source.kind() == ErrorKind::NotFound => {
            tracing::warn!("ipset is not installed; kube-router ipsets cannot be looked for");
            Ok(None)
        }
        Err(e) => Err(e),
        Ok(out) => {
            let names = out.lines().map(str::trim).filter(|l| !l.is_empty());
            Ok(Some(names.map(String::from).collect()))
        }
    }
}

/// Destroys set `name`; Ok(false) if it did not exist.
pub fn destroy(name: &str) -> Result<bool, IpsetError> {
    match run(&["destroy", name]) {
        Ok(_) => Ok(true),
        Err(IpsetError::Failed { stderr, .. }) if stderr.contains("does not exist") => Ok(false),
        Err(e) => Err(e),
    }
}

fn run(args: &[&str]) -> Result<String, IpsetError> {
    let command = format!("ipset {}", args.join(" "));
    let out = Command::new("ipset")
        .args(args)
        .output()
        .map_err(|source| IpsetError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(IpsetError::Failed {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
