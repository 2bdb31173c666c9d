//! The user-space WireGuard device: boringtun over a TUN device, inside the
//! daemon. Its threads and sockets belong to the network namespace of the
//! thread that calls [`UserspaceDevice::create`]; the TUN device exists as
//! long as this value (and so the daemon) does, like flannel's device is
//! deleted on exit.
//!
//! The device is configured through a socket pair speaking the UAPI text
//! protocol (boringtun's `uapi_fd`), not through the shared path
//! `/var/run/wireguard/<iface>.sock`: two nodes in one mount namespace
//! cannot collide, and boringtun installs no SIGINT/SIGTERM handlers of its
//! own in that mode. Operators' `wg` gets the path from [`super::socket`].

use std::io::{Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boringtun::device::{DeviceConfig, DeviceHandle};

use super::WireguardError;

/// How long a UAPI answer may take (the device answers on one of its
/// packet threads, normally in microseconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer accepted (a get with thousands of peers is well below).
const MAX_ANSWER: usize = 16 << 20;

/// Our end of the device's UAPI channel, shared with the socket proxy.
#[derive(Clone)]
pub struct Control {
    name: String,
    stream: Arc<Mutex<UnixStream>>,
}

impl Control {
    /// Sends one request (ending in a blank line) and returns the answer
    /// (ending in `errno=N` and a blank line). Requests are serialised:
    /// the device reads each with a fresh buffer.
    pub fn exchange(&self, request: &str) -> Result<String, WireguardError> {
        let mut stream = self
            .stream
            .lock()
            .map_err(|_| self.uapi_err("the control channel lock is poisoned".into()))?;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| self.uapi_err(format!("write: {e}")))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        while !is_complete(&answer) {
            let n = stream
                .read(&mut buf)
                .map_err(|e| self.uapi_err(format!("read: {e}")))?;
            if n == 0 {
                return Err(self.uapi_err("the device closed its control channel".into()));
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.len() > MAX_ANSWER {
                return Err(self.uapi_err("answer too large".into()));
            }
        }
        String::from_utf8(answer).map_err(|_| self.uapi_err("answer is not UTF-8".into()))
    }

    fn uapi_err(&self, reason: String) -> WireguardError {
        WireguardError::Uapi {
            device: self.name.clone(),
            reason,
        }
    }
}

/// An answer ends with the blank line after its `errno=` line.
fn is_complete(answer: &[u8]) -> bool {
    answer.ends_with(b"\n\n")
        && answer
            .split(|b| *b == b'\n')
            .any(|line| line.starts_with(b"errno="))
}

/// A running boringtun device.
pub struct UserspaceDevice {
    control: Control,
    /// Dropping it stops the device threads, which closes the TUN.
    _handle: DeviceHandle,
}

impl UserspaceDevice {
    /// Creates TUN device `name` and its WireGuard threads in the calling
    /// thread's network namespace.
    pub fn create(name: &str) -> Result<UserspaceDevice, WireguardError> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| WireguardError::Device {
            device: name.to_string(),
            reason: format!("socketpair: {e}"),
        })?;
        ours.set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| ours.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .map_err(|e| WireguardError::Device {
                device: name.to_string(),
                reason: format!("socket timeout: {e}"),
            })?;
        let config = DeviceConfig {
            n_threads: threads(),
            use_connected_socket: true,
            use_multi_queue: true,
            // boringtun takes ownership of the fd and closes it on exit.
            uapi_fd: theirs.into_raw_fd(),
        };
        let handle = DeviceHandle::new(name, config).map_err(|e| WireguardError::Device {
            device: name.to_string(),
            reason: e.to_string(),
        })?;
        Ok(UserspaceDevice {
            control: Control {
                name: name.to_string(),
                stream: Arc::new(Mutex::new(ours)),
            },
            _handle: handle,
        })
    }

    pub fn control(&self) -> &Control {
        &self.control
    }
}

/// How long a previous device of ours may take to let go of its port.
const PORT_RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Waits until no socket in this thread's namespace holds UDP `port`.
///
/// A device dropped in this process (its link deleted by hand, a backend
/// switch) closes its sockets only when its threads have wound down. Until
/// then its socket connected to a peer is the kernel's best match for that
/// peer's packets, so the new device's first handshake answer would land in
/// the old one and the handshake would wait for its 5 s retry.
pub fn wait_port_free(port: u16) {
    let deadline = std::time::Instant::now() + PORT_RELEASE_TIMEOUT;
    while !port_free(port) {
        if std::time::Instant::now() >= deadline {
            tracing::warn!(
                component = "flannel",
                port,
                "UDP port still held; starting the WireGuard device anyway"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Free when a plain (not SO_REUSEPORT) bind of either family succeeds.
fn port_free(port: u16) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok();
    let v6 = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, port)) {
        Ok(_) => true,
        Err(e) => e.kind() != std::io::ErrorKind::AddrInUse,
    };
    v4 && v6
}

/// One packet thread per core, at most 4 (boringtun's default).
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(2)
        .clamp(1, 4)
}

impl std::fmt::Debug for UserspaceDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserspaceDevice({})", self.control.name)
    }
}
