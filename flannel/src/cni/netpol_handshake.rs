//! The plugin's side of the hand-over to the netpol component, so that a
//! new pod's isolation is live before its containers run.
//!
//! Without it, netpol learns a pod's IP only when the kubelet reports it to
//! the API server, after ADD returned and the containers started; until
//! then the fail-closed guard rejects the IP, so even a pod no policy
//! selects would be blocked for a moment.
//!
//! Protocol (files under `<run-dir>/netpol/`, which exists only while
//! netpol runs): ADD writes `pending/<ip>` = JSON `{namespace, name,
//! containerID}` for each pod IP, then waits until netpol writes
//! `ready/<ip>` holding the same container ID (it has programmed the pod
//! with that IP by then). DEL removes both files. Files are written by
//! rename, so a reader never sees half a file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use host::names::{NETPOL_HANDSHAKE_DIR, NETPOL_PENDING_DIR, NETPOL_READY_DIR};

use super::request::PodRef;

/// How long ADD waits for netpol. Past it the pod still starts: the
/// unknown-pod guard keeps it fail-closed until netpol catches up.
pub const WAIT_LIMIT: Duration = Duration::from_secs(3);
/// How often ADD looks for the ready files.
pub const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How a hand-over ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// netpol does not run on this node (no handshake directory).
    Disabled,
    /// netpol confirmed every IP.
    Ready,
    /// These IPs were not confirmed within the limit.
    TimedOut(Vec<IpAddr>),
}

/// Errors writing the pending files.
#[derive(Debug, thiserror::Error)]
#[error("netpol hand-over file {path}: {source}")]
pub struct HandshakeError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// `<run-dir>/netpol`, where run-dir holds the subnet file.
pub fn dir_for(subnet_file: &Path) -> PathBuf {
    subnet_file
        .parent()
        .unwrap_or(Path::new("/"))
        .join(NETPOL_HANDSHAKE_DIR)
}

/// Announces the pod's IPs to netpol and waits (at most `limit`) until it
/// confirms each of them.
pub fn announce_and_wait(
    dir: &Path,
    pod: &PodRef,
    container_id: &str,
    ips: &[IpAddr],
    limit: Duration,
) -> Result<Handover, HandshakeError> {
    if !dir.is_dir() {
        return Ok(Handover::Disabled);
    }
    let body = serde_json::json!({
        "namespace": pod.namespace,
        "name": pod.name,
        "containerID": container_id,
    })
    .to_string();
    for ip in ips {
        let path = dir.join(NETPOL_PENDING_DIR).join(ip.to_string());
        crate::subnet::write_file_atomic(&path, body.as_bytes()).map_err(|e| HandshakeError {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(wait_ready(dir, container_id, ips, limit))
}

/// Polls `ready/<ip>` for every IP until all hold `container_id`.
fn wait_ready(dir: &Path, container_id: &str, ips: &[IpAddr], limit: Duration) -> Handover {
    let deadline = Instant::now() + limit;
    let mut waiting: Vec<IpAddr> = ips.to_vec();
    loop {
        waiting.retain(|ip| !is_ready(dir, *ip, container_id));
        if waiting.is_empty() {
            return Handover::Ready;
        }
        if Instant::now() >= deadline {
            return Handover::TimedOut(waiting);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn is_ready(dir: &Path, ip: IpAddr, container_id: &str) -> bool {
    let path = dir.join(NETPOL_READY_DIR).join(ip.to_string());
    std::fs::read_to_string(path).is_ok_and(|text| text.trim() == container_id)
}

/// DEL: removes the pending and ready files of `ips` that belong to
/// `container_id` (a file naming another container is left alone).
/// Best-effort: a file that cannot be removed is returned, not fatal.
pub fn withdraw(dir: &Path, container_id: &str, ips: &[IpAddr]) -> Vec<HandshakeError> {
    let mut errors = Vec::new();
    for ip in ips {
        let pending = dir.join(NETPOL_PENDING_DIR).join(ip.to_string());
        let ready = dir.join(NETPOL_READY_DIR).join(ip.to_string());
        let owned = [
            (pending.clone(), pending_owner(&pending)),
            (ready.clone(), std::fs::read_to_string(&ready).ok()),
        ];
        for (path, owner) in owned {
            if owner.as_deref().map(str::trim) != Some(container_id) {
                continue;
            }
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    errors.push(HandshakeError { path, source: e });
                }
                _ => {}
            }
        }
    }
    errors
}

/// The containerID field of a pending file, if readable.
fn pending_owner(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value
        .get("containerID")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> PodRef {
        PodRef {
            namespace: "x".into(),
            name: "a".into(),
        }
    }

    fn handshake_dir(root: &Path) -> PathBuf {
        let dir = dir_for(&root.join("subnet.env"));
        for sub in [NETPOL_PENDING_DIR, NETPOL_READY_DIR] {
            std::fs::create_dir_all(dir.join(sub)).expect("create handshake dirs");
        }
        dir
    }

    #[test]
    fn without_the_directory_nothing_is_written_or_awaited() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = dir_for(&root.path().join("subnet.env"));
        let ips = ["10.42.0.5".parse().expect("ip")];
        let started = Instant::now();
        let out = announce_and_wait(&dir, &pod(), "c1", &ips, WAIT_LIMIT).expect("no error");
        assert_eq!(out, Handover::Disabled);
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(!dir.exists());
    }

    #[test]
    fn writes_pending_and_returns_once_ready_names_the_container() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = handshake_dir(root.path());
        let ips: Vec<IpAddr> = vec![
            "10.42.0.5".parse().expect("ip"),
            "fd00::5".parse().expect("ip"),
        ];
        let ready = dir.join(NETPOL_READY_DIR);
        // A stale ready file of another container must not count.
        std::fs::write(ready.join("10.42.0.5"), "old").expect("write");
        let enforcer = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let pending = dir.join(NETPOL_PENDING_DIR);
                while !["10.42.0.5", "fd00::5"]
                    .iter()
                    .all(|ip| pending.join(ip).exists())
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let body = std::fs::read_to_string(pending.join("fd00::5")).expect("pending v6");
                let value: serde_json::Value = serde_json::from_str(&body).expect("json");
                assert_eq!(value["namespace"], "x");
                assert_eq!(value["name"], "a");
                for ip in ["10.42.0.5", "fd00::5"] {
                    std::fs::write(dir.join(NETPOL_READY_DIR).join(ip), "c1\n").expect("ready");
                }
            })
        };
        let out = announce_and_wait(&dir, &pod(), "c1", &ips, WAIT_LIMIT).expect("no error");
        enforcer.join().expect("enforcer thread");
        assert_eq!(out, Handover::Ready);
        assert_eq!(
            pending_owner(&dir.join(NETPOL_PENDING_DIR).join("10.42.0.5")).as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn gives_up_after_the_limit_naming_the_unconfirmed_ips() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = handshake_dir(root.path());
        let ips: Vec<IpAddr> = vec!["10.42.0.7".parse().expect("ip")];
        let limit = Duration::from_millis(60);
        let started = Instant::now();
        let out = announce_and_wait(&dir, &pod(), "c1", &ips, limit).expect("no error");
        assert_eq!(out, Handover::TimedOut(ips));
        assert!(started.elapsed() >= limit);
    }

    #[test]
    fn withdraw_removes_only_this_containers_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = handshake_dir(root.path());
        let ips: Vec<IpAddr> = vec![
            "10.42.0.5".parse().expect("ip"),
            "10.42.0.6".parse().expect("ip"),
        ];
        let pending =
            |cid: &str| format!(r#"{{"namespace":"x","name":"a","containerID":"{cid}"}}"#);
        std::fs::write(
            dir.join(NETPOL_PENDING_DIR).join("10.42.0.5"),
            pending("c1"),
        )
        .expect("w");
        std::fs::write(dir.join(NETPOL_READY_DIR).join("10.42.0.5"), "c1").expect("w");
        std::fs::write(
            dir.join(NETPOL_PENDING_DIR).join("10.42.0.6"),
            pending("c2"),
        )
        .expect("w");
        assert!(withdraw(&dir, "c1", &ips).is_empty());
        assert!(!dir.join(NETPOL_PENDING_DIR).join("10.42.0.5").exists());
        assert!(!dir.join(NETPOL_READY_DIR).join("10.42.0.5").exists());
        assert!(dir.join(NETPOL_PENDING_DIR).join("10.42.0.6").exists());
    }
}
