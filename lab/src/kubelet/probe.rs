//! Readiness probes as a kubelet runs them: tcpSocket and httpGet from the
//! node (here: sockets opened inside the node namespace), exec inside the
//! container's namespaces.

use crate::netns;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One probe check, resolved against its container.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Tcp(u16),
    Http { port: u16, path: String },
    Exec(Vec<String>),
}

/// Timing of a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
}

/// The container's readiness probe, if it has one the lab can run.
pub fn readiness(c: &Container) -> Option<Result<(Check, Timing), String>> {
    let p = c.readiness_probe.as_ref()?;
    Some(check(p, c).map(|chk| (chk, timing(p))))
}

fn timing(p: &Probe) -> Timing {
    let secs = |v: Option<i32>, d: i32| Duration::from_secs(v.unwrap_or(d).max(0) as u64);
    Timing {
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
    }
}

fn check(p: &Probe, c: &Container) -> Result<Check, String> {
    if let Some(t) = &p.tcp_socket {
        return Ok(Check::Tcp(port(&t.port, c)?));
    }
    if let Some(h) = &p.http_get {
        return Ok(Check::Http {
            port: port(&h.port, c)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
        });
    }
    if let Some(e) = &p.exec {
        return Ok(Check::Exec(e.command.clone().unwrap_or_default()));
    }
    Err(format!(
        "container {}: readinessProbe has no tcpSocket, httpGet or exec",
        c.name
    ))
}

/// Resolves a probe port, numeric or named after a container port.
pub fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    let n = match p {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .map(|cp| cp.container_port)
            .ok_or_else(|| {
                format!(
                    "container {}: probe port {name:?} names no container port",
                    c.name
                )
            })?,
    };
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("container {}: probe port {n} out of range", c.name))
}

/// A TCP connection to `addr` made from inside the namespace at `ns`.
pub async fn connect_from(ns: &Path, addr: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = netns::run_in(ns, move || {
        // SAFETY: socket(2); the fd is wrapped into an OwnedFd at once.
        let fd = unsafe {
            libc::socket(
                domain,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh socket owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    })
    .map_err(std::io::Error::other)?;
    let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
    socket.connect(addr).await
}

/// Runs a tcp or http check against the pod IP from the node namespace.
pub async fn network_check(
    node_ns: &Path,
    pod_ip: IpAddr,
    check: &Check,
    timeout: Duration,
) -> bool {
    let attempt = async {
        match check {
            Check::Tcp(port) => connect_from(node_ns, SocketAddr::new(pod_ip, *port))
                .await
                .is_ok(),
            Check::Http { port, path } => {
                http_ok(node_ns, SocketAddr::new(pod_ip, *port), path).await
            }
            Check::Exec(_) => false,
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

async fn http_ok(ns: &Path, addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = connect_from(ns, addr).await else {
        return false;
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/lab\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 64];
    let n = s.read(&mut head).await.unwrap_or(0);
    status_ok(&head[..n])
}

/// Whether an HTTP response starts with a 2xx or 3xx status line.
pub fn status_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    text.starts_with("HTTP/") && code.is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, TCPSocketAction};

    #[test]
    fn resolves_named_probe_ports() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("web".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            readiness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::String("web".into()),
                    ..Default::default()
                }),
                period_seconds: Some(2),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (chk, t) = readiness(&c).unwrap().unwrap();
        assert_eq!(chk, Check::Tcp(8080));
        assert_eq!(t.period, Duration::from_secs(2));
        assert!(port(&IntOrString::String("nope".into()), &c).is_err());
    }

    #[test]
    fn http_status_lines() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.0 302 Found"));
        assert!(!status_ok(b"HTTP/1.1 503 Unavailable"));
        assert!(!status_ok(b"garbage"));
    }
}
