//! nodenet's CNI plugin (the `nodenet` binary runs it when `CNI_COMMAND` is
//! set): bridge `cni0`, veth pairs, host-local style IPAM, hostPort DNAT.
//!
//! Protocol: CNI spec 1.0.0 (also answers 0.3.0, 0.3.1, 0.4.0 configs).

mod add;
mod check;
pub mod config;
mod del;
pub mod error;
pub mod ipam;
pub mod netpol_handshake;
pub mod portmap;
pub mod request;
pub mod result;
pub mod state;
pub mod wire;

use std::io::{Read, Write};
use std::process::ExitCode;

use serde_json::Value;

pub use config::{NetConf, PortMapping, Protocol};
pub use error::{CniError, code};
pub use request::{CniEnv, Command, PodRef, Request, SUPPORTED_VERSIONS, Target};

/// Entry point for the binary: reads env and stdin, writes the result or
/// error JSON to stdout, returns the exit code. Must be called before any
/// tokio runtime is started in the process (it builds its own).
pub fn run_plugin() -> ExitCode {
    let env = CniEnv::from_process_env();
    let mut stdin = Vec::new();
    let outcome = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => handle(&env, &stdin),
        Err(e) => Err(CniError::io("stdin", e)),
    };
    let (output, exit) = match outcome {
        Ok(Value::Null) => (None, ExitCode::SUCCESS),
        Ok(result) => (Some(result), ExitCode::SUCCESS),
        Err(err) => (Some(err.to_json(&error_version(&stdin))), ExitCode::FAILURE),
    };
    if let Some(value) = output {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{value}");
    }
    exit
}

/// Handles one invocation in the current network namespace (the node's).
/// Returns the JSON to print; `Value::Null` means "print nothing" (DEL, CHECK).
/// Runs its async work on a fresh thread with its own current-thread runtime,
/// so it may be called from any thread, including inside a runtime.
pub fn handle(env: &CniEnv, stdin: &[u8]) -> Result<Value, CniError> {
    let request = request::parse(env, stdin)?;
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CniError::io("tokio runtime", e))?;
            runtime.block_on(dispatch(&request))
        });
        worker
            .join()
            .unwrap_or_else(|_| Err(CniError::new(code::KERNEL, "plugin worker panicked", "")))
    })
}

async fn dispatch(request: &Request) -> Result<Value, CniError> {
    match request {
        Request::Version => Ok(request::version_result("1.0.0")),
        Request::Add(target, conf) => add::add(target, conf).await,
        Request::Del(target, conf) => del::del(target, conf).await.map(|()| Value::Null),
        Request::Check(target, conf) => check::check(target, conf).await.map(|()| Value::Null),
    }
}

/// The cniVersion to put in an error: the config's if readable, else 1.0.0.
fn error_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.0.0".to_string())
}

fn ipam_error(e: ipam::IpamError) -> CniError {
    match e {
        ipam::IpamError::Io { .. } => CniError::io("IPAM store", e),
        other => CniError::new(code::IPAM, other.to_string(), ""),
    }
}
