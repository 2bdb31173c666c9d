//! The container-runtime side of CNI: find the network configuration, build
//! each plugin's stdin and environment exactly as containerd does, run the
//! plugin inside the node's namespace, and read its result.

use crate::netns::Enter;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The interface name the runtime asks for in every pod.
pub const POD_IFNAME: &str = "eth0";
/// CNI error code for "try again later".
pub const CODE_TRY_AGAIN: u64 = 11;
/// A plugin that takes longer than this is treated as failed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Failures of one CNI operation.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No `*.conflist` in the node's CNI configuration directory yet.
    #[error("no network config (*.conflist) in {0}: network plugin not ready")]
    NoConfig(PathBuf),
    /// The conflist could not be read or parsed.
    #[error("network config {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    /// The plugin binary named by `type` is not in the CNI bin dir.
    #[error("CNI plugin {0} not found")]
    NoPlugin(PathBuf),
    /// The plugin ran and reported an error result.
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg} {details}")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: String,
    },
    /// The plugin could not be run or its output was not a result.
    #[error("CNI plugin {plugin} {command}: {reason}")]
    Exec {
        plugin: String,
        command: &'static str,
        reason: String,
    },
}

/// A parsed network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
}

impl ConfList {
    /// Parses conflist JSON, naming what is missing.
    pub fn parse(path: &Path, text: &str) -> Result<ConfList, CniError> {
        let bad = |reason: &str| CniError::BadConfig {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let name = v["name"]
            .as_str()
            .ok_or_else(|| bad("field `name` missing"))?;
        let version = v["cniVersion"]
            .as_str()
            .ok_or_else(|| bad("field `cniVersion` missing"))?;
        let plugins = v["plugins"]
            .as_array()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("field `plugins` missing or empty"))?;
        if plugins.iter().any(|p| p["type"].as_str().is_none()) {
            return Err(bad("a plugin has no `type`"));
        }
        Ok(ConfList {
            name: name.into(),
            cni_version: version.into(),
            plugins: plugins.clone(),
        })
    }

    /// The conflist as JSON again (cached per pod for DEL).
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "cniVersion": self.cni_version, "plugins": self.plugins})
    }
}

/// Loads the first `*.conflist` (by name) in `dir`, as a runtime does.
pub fn load_conflist(dir: &Path) -> Result<ConfList, CniError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "conflist"));
    files.sort();
    let path = files
        .into_iter()
        .next()
        .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
    let text = std::fs::read_to_string(&path).map_err(|e| CniError::BadConfig {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    ConfList::parse(&path, &text)
}

/// The CNI operations a runtime performs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command {
    Add,
    Del,
    Check,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// Who the network is for: the parts of a pod CNI needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Sandbox ("infra container") ID.
    pub container_id: String,
    /// /run/netns/... of the pod.
    pub netns: PathBuf,
    pub port_mappings: Vec<Value>,
}

impl PodRef {
    /// Collects what CNI needs from a pod and its namespace path.
    pub fn from_pod(pod: &Pod, netns: PathBuf) -> PodRef {
        let meta = &pod.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        PodRef {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone().unwrap_or_default(),
            container_id: container_id(&uid),
            uid,
            netns,
            port_mappings: port_mappings(pod),
        }
    }
}

/// A stable sandbox ID from the pod UID (64 hex characters, like containerd's).
pub fn container_id(uid: &str) -> String {
    let hex: String = uid
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .collect::<String>()
        .to_lowercase();
    format!("{hex:0<64}")
}

/// `runtimeConfig.portMappings` from containers[].ports[] with a hostPort.
pub fn port_mappings(pod: &Pod) -> Vec<Value> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = p.host_port.filter(|hp| *hp > 0)?;
            let protocol = p.protocol.as_deref().unwrap_or("TCP").to_lowercase();
            let mut m = json!({"hostPort": host_port, "containerPort": p.container_port, "protocol": protocol});
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                m["hostIP"] = json!(ip);
            }
            Some(m)
        })
        .collect()
}

/// CNI_ARGS as containerd passes them for a Kubernetes pod.
pub fn cni_args(pod: &PodRef) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.container_id, pod.uid
    )
}

/// Stdin for plugin `index` of the list: the plugin's own config plus
/// `name`, `cniVersion`, the runtimeConfig entries for capabilities it
/// declares, and `prevResult` for chained plugins.
pub fn plugin_stdin(list: &ConfList, index: usize, pod: &PodRef, prev: Option<&Value>) -> Value {
    let mut conf = list
        .plugins
        .get(index)
        .cloned()
        .unwrap_or_else(|| json!({}));
    conf["name"] = json!(list.name);
    conf["cniVersion"] = json!(list.cni_version);
    let wants_ports = conf["capabilities"]["portMappings"].as_bool() == Some(true);
    if let Some(obj) = conf.as_object_mut() {
        obj.remove("capabilities");
    }
    if wants_ports {
        conf["runtimeConfig"] = json!({"portMappings": pod.port_mappings});
    }
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    conf
}

/// The CNI_* environment for one invocation.
pub fn plugin_env(command: Command, pod: &PodRef, cni_path: &Path) -> Vec<(String, String)> {
    vec![
        ("CNI_COMMAND".into(), command.as_str().into()),
        ("CNI_CONTAINERID".into(), pod.container_id.clone()),
        ("CNI_NETNS".into(), pod.netns.display().to_string()),
        ("CNI_IFNAME".into(), POD_IFNAME.into()),
        ("CNI_PATH".into(), cni_path.display().to_string()),
        ("CNI_ARGS".into(), cni_args(pod)),
    ]
}

/// Pod addresses from a CNI result (`ips[].address`, CIDR notation).
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .collect()
}

/// Where a node's plugins live and run.
#[derive(Debug, Clone)]
pub struct CniRuntime {
    pub conf_dir: PathBuf,
    pub bin_dir: PathBuf,
    /// The node namespace plugins run in (as a runtime on that host would).
    pub node_netns: PathBuf,
}

impl CniRuntime {
    /// ADD through the whole list; returns the final result.
    pub async fn add(&self, list: &ConfList, pod: &PodRef) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for i in 0..list.plugins.len() {
            let stdin = plugin_stdin(list, i, pod, prev.as_ref());
            prev = Some(self.invoke(Command::Add, &stdin, pod).await?);
        }
        Ok(prev.unwrap_or_else(|| json!({})))
    }

    /// DEL through the list in reverse order.
    pub async fn del(&self, list: &ConfList, pod: &PodRef) -> Result<(), CniError> {
        for i in (0..list.plugins.len()).rev() {
            let stdin = plugin_stdin(list, i, pod, None);
            self.invoke(Command::Del, &stdin, pod).await?;
        }
        Ok(())
    }

    async fn invoke(
        &self,
        command: Command,
        stdin: &Value,
        pod: &PodRef,
    ) -> Result<Value, CniError> {
        let plugin = stdin["type"].as_str().unwrap_or_default().to_string();
        let bin = self.bin_dir.join(&plugin);
        if !bin.is_file() {
            return Err(CniError::NoPlugin(bin));
        }
        let exec_err = |reason: String| CniError::Exec {
            plugin: plugin.clone(),
            command: command.as_str(),
            reason,
        };
        let out = self
            .run(&bin, command, stdin, pod)
            .await
            .map_err(exec_err)?;
        interpret(&plugin, command, out)
    }

    async fn run(
        &self,
        bin: &Path,
        command: Command,
        stdin: &Value,
        pod: &PodRef,
    ) -> Result<std::process::Output, String> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.env_clear()
            .envs(plugin_env(command, pod, &self.bin_dir))
            .env("PATH", crate::dirs::SYSTEM_PATH);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Enter::netns(self.node_netns.clone())
            .apply(&mut cmd)
            .map_err(|e| e.to_string())?;
        let mut child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.to_string().as_bytes())
                .await
                .map_err(|e| format!("writing stdin: {e}"))?;
        }
        tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("no answer within {PLUGIN_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
    }
}

/// Turns plugin output into a result or a typed error.
pub fn interpret(
    plugin: &str,
    command: Command,
    out: std::process::Output,
) -> Result<Value, CniError> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<Value> = serde_json::from_str(stdout.trim()).ok();
    if out.status.success() {
        // DEL and CHECK print nothing on success.
        return Ok(parsed.unwrap_or_else(|| json!({})));
    }
    match parsed {
        Some(err) if err["code"].is_u64() => Err(CniError::Plugin {
            plugin: plugin.into(),
            command: command.as_str(),
            code: err["code"].as_u64().unwrap_or(0),
            msg: err["msg"].as_str().unwrap_or("").into(),
            details: err["details"].as_str().unwrap_or("").into(),
        }),
        _ => Err(CniError::Exec {
            plugin: plugin.into(),
            command: command.as_str(),
            reason: format!(
                "{}; stdout {stdout:?}; stderr {:?}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};
    use std::os::unix::process::ExitStatusExt;

    const LIST: &str = r#"{"name":"cbr0","cniVersion":"1.0.0","plugins":[
        {"type":"nodenet","subnetFile":"/run/x/subnet.env","dataDir":"/d/cni","capabilities":{"portMappings":true}}]}"#;

    fn pod() -> Pod {
        let port = |cp, hp: Option<i32>, proto: &str| ContainerPort {
            container_port: cp,
            host_port: hp,
            protocol: Some(proto.into()),
            ..Default::default()
        };
        let c = Container {
            name: "c".into(),
            ports: Some(vec![
                port(80, Some(8080), "TCP"),
                port(53, Some(5353), "UDP"),
                port(9, None, "TCP"),
            ]),
            ..Default::default()
        };
        let mut p = Pod {
            spec: Some(PodSpec {
                containers: vec![c],
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.name = Some("web".into());
        p.metadata.namespace = Some("demo".into());
        p.metadata.uid = Some("0a1b2c3d-aaaa-bbbb-cccc-0123456789ab".into());
        p
    }

    #[test]
    fn builds_stdin_with_runtime_config() {
        let list = ConfList::parse(Path::new("x"), LIST).unwrap();
        let pod = PodRef::from_pod(&pod(), "/run/netns/p".into());
        let stdin = plugin_stdin(&list, 0, &pod, None);
        assert_eq!(stdin["name"], "cbr0");
        assert_eq!(stdin["cniVersion"], "1.0.0");
        assert_eq!(stdin["type"], "nodenet");
        assert!(stdin.get("capabilities").is_none());
        assert_eq!(
            stdin["runtimeConfig"]["portMappings"],
            json!([{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":5353,"containerPort":53,"protocol":"udp"}])
        );
        assert!(stdin.get("prevResult").is_none());
    }

    #[test]
    fn builds_env_and_args() {
        let pod = PodRef::from_pod(&pod(), "/run/netns/p".into());
        let env = plugin_env(Command::Add, &pod, Path::new("/opt/cni/bin"));
        let get = |k: &str| {
            env.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("CNI_COMMAND"), "ADD");
        assert_eq!(get("CNI_NETNS"), "/run/netns/p");
        assert_eq!(get("CNI_IFNAME"), "eth0");
        assert_eq!(get("CNI_CONTAINERID").len(), 64);
        assert!(
            get("CNI_ARGS")
                .contains("K8S_POD_NAMESPACE=demo;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=")
        );
    }

    #[test]
    fn rejects_bad_conflists() {
        assert!(matches!(
            ConfList::parse(Path::new("x"), "{}"),
            Err(CniError::BadConfig { .. })
        ));
        assert!(
            ConfList::parse(
                Path::new("x"),
                r#"{"name":"a","cniVersion":"1.0.0","plugins":[{}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn reads_results_and_errors() {
        let ok = std::process::Output {
            status: std::process::ExitStatus::from_raw(0),
            stdout: br#"{"cniVersion":"1.0.0","ips":[{"address":"10.42.0.5/24","gateway":"10.42.0.1"}]}"#.to_vec(),
            stderr: vec![],
        };
        let v = interpret("nodenet", Command::Add, ok).unwrap();
        assert_eq!(result_ips(&v), vec!["10.42.0.5".parse::<IpAddr>().unwrap()]);
        let bad = std::process::Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: br#"{"cniVersion":"1.0.0","code":11,"msg":"subnet.env missing"}"#.to_vec(),
            stderr: vec![],
        };
        let err = interpret("nodenet", Command::Add, bad).unwrap_err();
        assert!(
            matches!(
                err,
                CniError::Plugin {
                    code: CODE_TRY_AGAIN,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn picks_first_conflist_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_conflist(dir.path()),
            Err(CniError::NoConfig(_))
        ));
        std::fs::write(dir.path().join("20-b.conflist"), LIST.replace("cbr0", "b")).unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), LIST).unwrap();
        std::fs::write(dir.path().join("00-c.conf"), "{}").unwrap();
        assert_eq!(load_conflist(dir.path()).unwrap().name, "cbr0");
    }
}
