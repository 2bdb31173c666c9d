//! What a lab is built from, and finding the binaries it runs.

use std::path::{Path, PathBuf};

/// Configuration of a lab.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// Number of nodes (node-1..node-N).
    pub nodes: usize,
    /// The `nodenet` binary run on every node (also the CNI plugin).
    pub nodenet_bin: PathBuf,
    /// The `nodenet-workload` binary pods run.
    pub workload_bin: PathBuf,
    /// Extra arguments appended to every `nodenet run`.
    pub nodenet_args: Vec<String>,
    /// Address ranges the API server allocates from (a small
    /// `node_cidr_prefix` lets a test exhaust a node's pod subnet).
    pub api: crate::apiserver::ApiServerConfig,
}

/// The binaries were not found.
#[derive(Debug, thiserror::Error)]
#[error("{name} binary not found ({searched}): run cargo build --workspace first, or set {env}")]
pub struct MissingBinary {
    pub name: &'static str,
    pub env: &'static str,
    pub searched: String,
}

fn find(name: &'static str, env: &'static str) -> Result<PathBuf, MissingBinary> {
    if let Some(p) = std::env::var_os(env).map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(MissingBinary {
                name,
                env,
                searched: format!("{env}={}", p.display()),
            })
        };
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dirs: Vec<&Path> = exe.ancestors().skip(1).take(3).collect();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| MissingBinary {
            name,
            env,
            searched: dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl LabConfig {
    /// Finds `nodenet` and `nodenet-workload` beside the running executable
    /// (integration tests run from target/debug/deps) or via NODENET_BIN /
    /// NODENET_WORKLOAD_BIN.
    pub fn from_target_dir(nodes: usize) -> anyhow::Result<Self> {
        Ok(LabConfig {
            nodes,
            nodenet_bin: find("nodenet", "NODENET_BIN")?,
            workload_bin: find("nodenet-workload", "NODENET_WORKLOAD_BIN")?,
            nodenet_args: Vec::new(),
            api: crate::apiserver::ApiServerConfig::default(),
        })
    }
}
