//! The enforcer's side of the hand-over with the CNI plugin, so a new pod's
//! isolation is live before its containers run (the plugin's side and the
//! protocol are described in `flannel::cni::netpol_handshake`).
//!
//! The plugin writes `<run-dir>/netpol/pending/<ip>` (JSON `namespace`,
//! `name`, `containerID`) during ADD and waits for `ready/<ip>` holding the
//! container ID. The component treats each pending IP as a running local
//! pod as soon as the Pod object is in its store (the kubelet reports the
//! IP to the API only after ADD returned), applies that plan, and then
//! writes `ready/<ip>`. Without this, the unknown-pod guard would block
//! every new pod, even one no policy selects, until the API caught up.

mod merge;

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use host::names::{NETPOL_HANDSHAKE_DIR, NETPOL_PENDING_DIR, NETPOL_READY_DIR};

pub use merge::{Disposition, PendingPod, merge_pending};

/// A hand-over file or directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("netpol hand-over {what} {path}: {source}")]
pub struct HandshakeError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn fail(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HandshakeError {
    let path = path.to_path_buf();
    move |source| HandshakeError { what, path, source }
}

/// `<run-dir>/netpol` and what the component did with its entries.
#[derive(Debug)]
pub struct Handshake {
    dir: PathBuf,
    /// Entries whose Pod was in the store at some plan: if it is missing
    /// later, the pod is gone and the entry is dropped.
    seen: BTreeSet<PendingPod>,
}

impl Handshake {
    /// Creates `<run-dir>/netpol/{pending,ready}` (0700) and clears
    /// `ready/`: confirmations of a previous run are not ours. Pending
    /// entries stay; their plugins may still be waiting.
    pub fn start(run_dir: &Path) -> Result<Handshake, HandshakeError> {
        let dir = run_dir.join(NETPOL_HANDSHAKE_DIR);
        for sub in [
            dir.clone(),
            dir.join(NETPOL_PENDING_DIR),
            dir.join(NETPOL_READY_DIR),
        ] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&sub)
                .map_err(fail("directory", &sub))?;
            std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700))
                .map_err(fail("directory", &sub))?;
        }
        let ready = dir.join(NETPOL_READY_DIR);
        for entry in std::fs::read_dir(&ready).map_err(fail("directory", &ready))? {
            let path = entry.map_err(fail("directory", &ready))?.path();
            std::fs::remove_file(&path).map_err(fail("stale ready file", &path))?;
        }
        Ok(Handshake {
            dir,
            seen: BTreeSet::new(),
        })
    }

    /// `<run-dir>/netpol`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pending entries, sorted. Files that are not `<ip>` with a valid
    /// body (temporary files of an atomic write, garbage) are ignored.
    pub fn scan(&self) -> Result<Vec<PendingPod>, HandshakeError> {
        let pending = self.dir.join(NETPOL_PENDING_DIR);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&pending).map_err(fail("directory", &pending))? {
            let entry = entry.map_err(fail("directory", &pending))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // Gone between readdir and read: DEL removed it.
            let Ok(body) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            match parse_pending(ip, &body) {
                Some(p) => out.push(p),
                None => {
                    tracing::debug!(component = "netpol", path = %entry.path().display(), "ignoring unreadable pending file")
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Acts on one plan's dispositions, once that plan is live: confirms
    /// merged and settled entries, drops settled ones and those whose pod
    /// went away.
    pub fn settle(
        &mut self,
        pending: &[PendingPod],
        dispositions: &[Disposition],
    ) -> Result<(), HandshakeError> {
        for (entry, disposition) in pending.iter().zip(dispositions) {
            match disposition {
                Disposition::Merged => {
                    self.confirm(entry)?;
                    self.seen.insert(entry.clone());
                }
                Disposition::Settled => {
                    self.confirm(entry)?;
                    self.drop_pending(entry)?;
                    self.seen.remove(entry);
                }
                Disposition::Wait if self.seen.remove(entry) => self.drop_pending(entry)?,
                Disposition::Wait => {}
            }
        }
        let current: BTreeSet<&PendingPod> = pending.iter().collect();
        self.seen.retain(|e| current.contains(e));
        Ok(())
    }

    /// Writes `ready/<ip>` = container ID (atomically), unless it already
    /// says so.
    fn confirm(&self, entry: &PendingPod) -> Result<(), HandshakeError> {
        let name = entry.ip.to_string();
        let ready = self.dir.join(NETPOL_READY_DIR);
        let path = ready.join(&name);
        if std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == entry.container_id) {
            return Ok(());
        }
        let tmp = ready.join(format!(".{name}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(entry.container_id.as_bytes())?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(fail("ready file", &path))
    }

    /// Removes `pending/<ip>` if it still names this entry's container (a
    /// new pod may have been given the IP since the scan).
    fn drop_pending(&self, entry: &PendingPod) -> Result<(), HandshakeError> {
        let path = self.dir.join(NETPOL_PENDING_DIR).join(entry.ip.to_string());
        let current = std::fs::read_to_string(&path)
            .ok()
            .and_then(|body| parse_pending(entry.ip, &body));
        if current.as_ref() != Some(entry) {
            return Ok(());
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(fail("pending file", &path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Removes `<run-dir>/netpol` (netpol is disabled): without it the CNI
/// plugin does not wait for an enforcer. Absent is fine.
pub fn remove(run_dir: &Path) -> Result<(), HandshakeError> {
    let dir = run_dir.join(NETPOL_HANDSHAKE_DIR);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail("directory", &dir)(e)),
        _ => Ok(()),
    }
}

/// The body of `pending/<ip>`; `None` if a field is missing or not a string.
pub fn parse_pending(ip: IpAddr, body: &str) -> Option<PendingPod> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let field = |key: &str| {
        value
            .get(key)
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Some(PendingPod {
        ip,
        namespace: field("namespace")?,
        name: field("name")?,
        container_id: field("containerID")?,
    })
}

#[cfg(test)]
mod tests;
