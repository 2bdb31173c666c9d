//! The CNI invocation (environment + stdin) parsed into a validated request.
//! Pure: no file system or kernel access.

use std::path::PathBuf;

use host::names::MAX_IFNAME_LEN;

use super::config::NetConf;
use super::error::{CniError, code};

/// CNI versions we accept in configs and answer to VERSION with.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

/// The raw CNI environment variables of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl CniEnv {
    /// Reads the `CNI_*` variables of this process.
    pub fn from_process_env() -> CniEnv {
        CniEnv::from_lookup(|key| std::env::var(key).ok())
    }

    /// Builds the environment from any lookup (tests use a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> CniEnv {
        CniEnv {
            command: lookup("CNI_COMMAND"),
            container_id: lookup("CNI_CONTAINERID"),
            netns: lookup("CNI_NETNS"),
            ifname: lookup("CNI_IFNAME"),
            args: lookup("CNI_ARGS"),
            path: lookup("CNI_PATH"),
        }
    }
}

/// A CNI command we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
}

/// What ADD, DEL and CHECK operate on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub container_id: String,
    /// Path of the pod's network namespace; optional for DEL only.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// The Kubernetes pod, from `CNI_ARGS` (`K8S_POD_NAMESPACE`,
    /// `K8S_POD_NAME`); `None` when the runtime did not pass both.
    pub pod: Option<PodRef>,
}

/// The pod a container belongs to, as the kubelet names it in `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
}

/// Reads `K8S_POD_NAMESPACE` and `K8S_POD_NAME` from `CNI_ARGS`
/// (`KEY=VALUE;KEY=VALUE`); both must be present and non-empty.
pub fn pod_from_args(args: Option<&str>) -> Option<PodRef> {
    let mut namespace = None;
    let mut name = None;
    for pair in args.unwrap_or_default().split(';') {
        match pair.split_once('=') {
            Some(("K8S_POD_NAMESPACE", v)) if !v.is_empty() => namespace = Some(v.to_string()),
            Some(("K8S_POD_NAME", v)) if !v.is_empty() => name = Some(v.to_string()),
            _ => {}
        }
    }
    Some(PodRef {
        namespace: namespace?,
        name: name?,
    })
}

/// A validated invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Version,
    Add(Target, NetConf),
    Del(Target, NetConf),
    Check(Target, NetConf),
}

/// Parses the command name (`CNI_COMMAND`).
pub fn parse_command(env: &CniEnv) -> Result<Command, CniError> {
    match env.command.as_deref() {
        Some("ADD") => Ok(Command::Add),
        Some("DEL") => Ok(Command::Del),
        Some("CHECK") => Ok(Command::Check),
        Some("VERSION") => Ok(Command::Version),
        Some(other) => Err(CniError::bad_env(
            "CNI_COMMAND",
            &format!("unsupported command {other:?} (supported: ADD, DEL, CHECK, VERSION)"),
        )),
        None => Err(CniError::bad_env("CNI_COMMAND", "not set")),
    }
}

/// Parses and validates a whole invocation.
pub fn parse(env: &CniEnv, stdin: &[u8]) -> Result<Request, CniError> {
    let command = parse_command(env)?;
    if command == Command::Version {
        return Ok(Request::Version);
    }
    let conf = NetConf::parse(stdin)?;
    let target = parse_target(env, command)?;
    Ok(match command {
        Command::Add => Request::Add(target, conf),
        Command::Del => Request::Del(target, conf),
        Command::Check => Request::Check(target, conf),
        Command::Version => Request::Version,
    })
}

fn parse_target(env: &CniEnv, command: Command) -> Result<Target, CniError> {
    let container_id = required(&env.container_id, "CNI_CONTAINERID")?;
    validate_container_id(&container_id)?;
    let ifname = required(&env.ifname, "CNI_IFNAME")?;
    validate_ifname(&ifname)?;
    let netns = match (command, env.netns.as_deref().filter(|s| !s.is_empty())) {
        (_, Some(path)) if !path.starts_with('/') => {
            return Err(CniError::bad_env("CNI_NETNS", "must be an absolute path"));
        }
        (_, Some(path)) => Some(PathBuf::from(path)),
        (Command::Del, None) => None,
        (_, None) => return Err(CniError::bad_env("CNI_NETNS", "not set")),
    };
    Ok(Target {
        container_id,
        netns,
        ifname,
        pod: pod_from_args(env.args.as_deref()),
    })
}

fn required(value: &Option<String>, var: &str) -> Result<String, CniError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(CniError::bad_env(var, "not set")),
    }
}

/// Container ids name files and nft chains: only `[A-Za-z0-9_.-]`, starting
/// with an alphanumeric (the CNI spec's rule).
fn validate_container_id(id: &str) -> Result<(), CniError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let first_ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !id.chars().all(ok_char) || id.len() > 256 {
        return Err(CniError::bad_env(
            "CNI_CONTAINERID",
            "must be 1-256 characters of [A-Za-z0-9_.-] starting with a letter or digit",
        ));
    }
    Ok(())
}

/// Linux interface name rules.
fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad_char = |c: char| c == '/' || c == ':' || c.is_whitespace() || c.is_control();
    if name.len() > MAX_IFNAME_LEN || name == "." || name == ".." || name.chars().any(bad_char) {
        return Err(CniError::bad_env(
            "CNI_IFNAME",
            "must be at most 15 characters without '/', ':' or whitespace",
        ));
    }
    Ok(())
}

/// The VERSION answer.
pub fn version_result(cni_version: &str) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": cni_version,
        "supportedVersions": SUPPORTED_VERSIONS,
    })
}

/// The code for an unsupported `cniVersion`.
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        return Ok(());
    }
    Err(CniError::new(
        code::INCOMPATIBLE_VERSION,
        format!("incompatible CNI version {version:?} in config field cniVersion"),
        format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
    ))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
