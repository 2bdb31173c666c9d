//! Per-container state (`<dataDir>/containers/<id>.json`): what ADD created,
//! so DEL and CHECK know exactly what to look for and remove.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::config::PortMapping;
use super::error::CniError;

/// What ADD made for one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub host_veth: String,
    /// Pod addresses with the pod subnet's prefix (`10.42.0.5/24`).
    pub ips: Vec<IpNet>,
    pub gateways: Vec<IpAddr>,
    pub port_mappings: Vec<PortMapping>,
    /// Per-container nft chain, present when there are port mappings.
    pub hostport_chain: Option<String>,
}

/// Path of the state file of `container_id`.
pub fn path(state_dir: &Path, container_id: &str) -> PathBuf {
    state_dir.join(format!("{container_id}.json"))
}

/// Loads the state; `Ok(None)` if there is none. An unreadable or corrupt
/// file is an error naming it.
pub fn load(state_dir: &Path, container_id: &str) -> Result<Option<ContainerState>, CniError> {
    let path = path(state_dir, container_id);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CniError::io(path.display(), e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| CniError::io(format!("state file {}", path.display()), e))
}

/// Writes the state atomically.
pub fn save(state_dir: &Path, state: &ContainerState) -> Result<(), CniError> {
    let path = path(state_dir, &state.container_id);
    let text = serde_json::to_string_pretty(state).map_err(|e| CniError::io(path.display(), e))?;
    crate::subnet::write_file_atomic(&path, text.as_bytes())
        .map_err(|e| CniError::io(path.display(), e))
}

/// Removes the state file; absent is fine.
pub fn remove(state_dir: &Path, container_id: &str) -> Result<(), CniError> {
    let path = path(state_dir, container_id);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CniError::io(path.display(), e)),
        _ => Ok(()),
    }
}
