//! `serve`: TCP greeting + echo, UDP echo, HTTP echo, SCTP greeting.

use crate::{http, identity_fields, json_obj, json_str};
use std::net::{Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

#[derive(Debug, Default, PartialEq)]
pub struct ServeConfig {
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    pub sctp: Vec<u16>,
    pub http: Vec<u16>,
}

pub fn parse(args: &[String]) -> Result<ServeConfig, String> {
    let mut cfg = ServeConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a PORT"))?;
        let port: u16 = value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a port number"))?;
        match flag.as_str() {
            "--tcp" => cfg.tcp.push(port),
            "--udp" => cfg.udp.push(port),
            "--sctp" => cfg.sctp.push(port),
            "--http" => cfg.http.push(port),
            other => return Err(format!("unknown serve flag {other:?}")),
        }
    }
    if cfg == ServeConfig::default() {
        return Err("serve needs at least one --tcp/--udp/--sctp/--http PORT".into());
    }
    Ok(cfg)
}

pub async fn run(cfg: ServeConfig) -> ExitCode {
    let mut tasks = tokio::task::JoinSet::new();
    for port in cfg.tcp {
        match bind_tcp(port).await {
            Ok(l) => drop(tasks.spawn(tcp_loop(l, false))),
            Err(e) => return report_bind_error("tcp", port, &e),
        }
    }
    for port in cfg.http {
        match bind_tcp(port).await {
            Ok(l) => drop(tasks.spawn(tcp_loop(l, true))),
            Err(e) => return report_bind_error("http", port, &e),
        }
    }
    for port in cfg.udp {
        match UdpSocket::bind(dual_stack(port)).await {
            Ok(s) => drop(tasks.spawn(udp_loop(s))),
            Err(e) => return report_bind_error("udp", port, &e),
        }
    }
    for port in cfg.sctp {
        start_sctp(port);
    }
    println!("{}", json_obj(&[("event", json_str("serving"))]));
    while tasks.join_next().await.is_some() {}
    ExitCode::SUCCESS
}

fn report_bind_error(proto: &str, port: u16, e: &std::io::Error) -> ExitCode {
    eprintln!(
        "{}",
        json_obj(&[
            (
                "error",
                json_str(&format!("cannot listen on {proto} port {port}: {e}"))
            ),
            ("proto", json_str(proto)),
            ("port", port.to_string()),
        ])
    );
    ExitCode::FAILURE
}

/// `[::]:port` accepts IPv4 too (bindv6only is 0 by default); fall back to
/// IPv4 only when the namespace has IPv6 disabled.
fn dual_stack(port: u16) -> SocketAddr {
    if std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).is_ok() {
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        SocketAddr::from(([0, 0, 0, 0], port))
    }
}

async fn bind_tcp(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(dual_stack(port)).await
}

async fn tcp_loop(listener: TcpListener, http_mode: bool) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        if http_mode {
            tokio::spawn(http::serve_one(stream, peer));
        } else {
            tokio::spawn(tcp_session(stream, peer));
        }
    }
}

/// The reply line every TCP-ish connection starts with.
pub fn greeting(proto: &str, peer: SocketAddr) -> String {
    let mut fields = vec![
        ("proto", json_str(proto)),
        ("peer", json_str(&crate::peer_str(peer))),
    ];
    fields.extend(identity_fields());
    json_obj(&fields) + "\n"
}

async fn tcp_session(mut stream: TcpStream, peer: SocketAddr) {
    if stream
        .write_all(greeting("tcp", peer).as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn udp_loop(sock: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let mut fields = vec![
            ("proto", json_str("udp")),
            ("peer", json_str(&crate::peer_str(peer))),
            ("echo", json_str(&String::from_utf8_lossy(&buf[..n]))),
        ];
        fields.extend(identity_fields());
        let _ = sock.send_to(json_obj(&fields).as_bytes(), peer).await;
    }
}

/// SCTP has no std/tokio type; a one-to-one SCTP socket accepts, reads and
/// writes like TCP, so after socket() it is driven through std's TCP types.
fn start_sctp(port: u16) {
    match sctp_listener(port) {
        Ok(listener) => {
            std::thread::spawn(move || sctp_accept_loop(listener));
        }
        Err(e) => eprintln!(
            "{}",
            json_obj(&[
                (
                    "warning",
                    json_str(&format!(
                        "SCTP port {port} not served: the kernel lacks SCTP sockets ({e}); other ports keep serving"
                    ))
                ),
                ("proto", json_str("sctp")),
                ("port", port.to_string()),
            ])
        ),
    }
}

fn sctp_listener(port: u16) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the fd is owned by the listener below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            libc::IPPROTO_SCTP,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_in of the given length.
    let rc = unsafe { libc::bind(fd, (&raw const addr).cast(), len) };
    // SAFETY: listen on our own fd.
    if rc != 0 || unsafe { libc::listen(fd, 128) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

fn sctp_accept_loop(listener: std::net::TcpListener) {
    use std::io::Write;
    for mut stream in listener.incoming().flatten() {
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let _ = stream.write_all(greeting("sctp", peer).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_repeated_ports() {
        let cfg = parse(&args("--tcp 80 --udp 53 --tcp 81 --http 8080 --sctp 9")).unwrap();
        assert_eq!(cfg.tcp, vec![80, 81]);
        assert_eq!(cfg.udp, vec![53]);
        assert_eq!(cfg.http, vec![8080]);
        assert_eq!(cfg.sctp, vec![9]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&args("--tcp")).is_err());
        assert!(parse(&args("--tcp 70000")).is_err());
        assert!(parse(&args("--quic 1")).is_err());
        assert!(parse(&[]).is_err());
    }
}
