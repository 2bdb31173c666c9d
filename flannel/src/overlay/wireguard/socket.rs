//! The UAPI socket `<dir>/<iface>.sock` for operators' tools (`wg show
//! flannel-wg`), relayed to the device's control channel. The path is
//! shared by every network namespace of a mount namespace, so an existing
//! socket that still answers belongs to someone else and is left alone.
//!
//! Read-only: `set=1` is refused with EPERM. The daemon owns the peers (a
//! change would be undone on the next pass), and boringtun 0.7 panics a
//! packet thread when a `set` names a peer it already has.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::WireguardError;
use super::device::Control;

/// A served socket; dropping it stops the relay and removes the file.
pub struct UapiSocket {
    path: PathBuf,
    stop: Arc<AtomicBool>,
}

impl UapiSocket {
    /// Binds `<dir>/<name>.sock` and relays requests to `control`.
    pub fn serve(dir: &Path, name: &str, control: Control) -> Result<UapiSocket, WireguardError> {
        let path = dir.join(format!("{name}.sock"));
        let err = |reason: String| WireguardError::Socket {
            path: path.clone(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("create the directory: {e}")))?;
        if UnixStream::connect(&path).is_ok() {
            return Err(err(
                "another live WireGuard device serves this path (give each node its own /var/run/wireguard)"
                    .into(),
            ));
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).map_err(|e| err(format!("bind: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name(format!("uapi-{name}"))
            .spawn(move || accept_loop(&listener, &control, &flag))
            .map_err(|e| err(format!("thread: {e}")))?;
        Ok(UapiSocket { path, stop })
    }
}

impl Drop for UapiSocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag and exits.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

fn accept_loop(listener: &UnixListener, control: &Control, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        if let Err(e) = relay(conn, control) {
            tracing::debug!(component = "flannel", error = %e, "UAPI client");
        }
    }
}

/// One request per connection, as `wg` does.
fn relay(conn: UnixStream, control: &Control) -> Result<(), String> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Ok(());
        }
        request.push_str(&line);
        if line == "\n" {
            break;
        }
    }
    let answer = match request.trim() {
        "get=1" => control
            .exchange(super::uapi::GET)
            .map_err(|e| e.to_string())?,
        _ if request.starts_with("set=1\n") => format!("errno={}\n\n", libc::EPERM),
        _ => format!("errno={}\n\n", libc::EINVAL),
    };
    (&conn)
        .write_all(answer.as_bytes())
        .map_err(|e| e.to_string())
}
