//! `probe`: one attempt against one destination, one JSON line, exit 0/1.

use crate::{http, json_obj, json_str};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, PartialEq)]
pub struct ProbeConfig {
    pub proto: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub timeout: Duration,
}

pub fn parse(args: &[String]) -> Result<ProbeConfig, String> {
    let (proto, target) = match args {
        [p, t, ..] => (p.clone(), t.clone()),
        _ => return Err("probe needs PROTO and HOST:PORT".into()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "http") {
        return Err(format!("probe protocol {proto:?} is not tcp, udp or http"));
    }
    let mut timeout = Duration::from_millis(2000);
    match &args[2..] {
        [] => {}
        [flag, ms] if flag == "--timeout" => {
            timeout = Duration::from_millis(
                ms.parse()
                    .map_err(|_| format!("--timeout: {ms:?} is not milliseconds"))?,
            )
        }
        rest => return Err(format!("unexpected probe arguments {rest:?}")),
    }
    let (hostport, path) = match target.find('/') {
        Some(i) => (&target[..i], target[i..].to_string()),
        None => (target.as_str(), "/".to_string()),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("target {target:?} is not HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("target {target:?}: bad port"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(ProbeConfig {
        proto,
        host,
        port,
        path,
        timeout,
    })
}

pub async fn run(cfg: ProbeConfig) -> ExitCode {
    let started = Instant::now();
    let outcome = tokio::time::timeout(cfg.timeout, attempt(&cfg))
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {} ms", cfg.timeout.as_millis())));
    let mut fields = vec![
        ("proto", json_str(&cfg.proto)),
        ("target", json_str(&format!("{}:{}", cfg.host, cfg.port))),
        ("elapsed_ms", started.elapsed().as_millis().to_string()),
    ];
    let ok = outcome.is_ok();
    match outcome {
        Ok(extra) => fields.extend(extra),
        Err(e) => fields.push(("error", json_str(&e))),
    }
    fields.insert(0, ("ok", ok.to_string()));
    println!("{}", json_obj(&fields));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

type Fields = Vec<(&'static str, String)>;

async fn attempt(cfg: &ProbeConfig) -> Result<Fields, String> {
    let addr = resolve(&cfg.host, cfg.port).await?;
    match cfg.proto.as_str() {
        "tcp" => tcp(addr, cfg.timeout).await,
        "udp" => udp(addr).await,
        _ => http_get(addr, cfg).await,
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    let mut addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?;
    addrs.next().ok_or_else(|| format!("{host} has no address"))
}

async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<Fields, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let local = stream
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    // A greeting is optional (not every server sends one): wait briefly.
    let mut buf = vec![0u8; 4096];
    let wait = timeout.min(Duration::from_millis(500));
    let reply = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).trim_end().to_string(),
        _ => String::new(),
    };
    Ok(vec![
        ("local", json_str(&local)),
        ("reply", json_str(&reply)),
    ])
}

async fn udp(addr: SocketAddr) -> Result<Fields, String> {
    let bind: SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    sock.connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let payload = format!("probe-{}", std::process::id());
    sock.send(payload.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 65536];
    let n = sock
        .recv(&mut buf)
        .await
        .map_err(|e| format!("recv: {e}"))?;
    let local = sock.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let reply = String::from_utf8_lossy(&buf[..n]).to_string();
    Ok(vec![
        ("local", json_str(&local)),
        ("reply", json_str(&reply)),
    ])
}

async fn http_get(addr: SocketAddr, cfg: &ProbeConfig) -> Result<Fields, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (status, body) = http::get(stream, &cfg.host, &cfg.path)
        .await
        .map_err(|e| format!("http: {e}"))?;
    let fields = vec![("status", status.to_string()), ("body", json_str(&body))];
    if (200..400).contains(&status) {
        Ok(fields)
    } else {
        Err(format!("HTTP status {status}: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_targets() {
        let c = parse(&args("http 10.0.0.1:80/healthz --timeout 300")).unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("10.0.0.1", 80, "/healthz")
        );
        assert_eq!(c.timeout, Duration::from_millis(300));
        let c = parse(&args("udp [fd00::1]:53")).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("fd00::1", 53));
        assert!(parse(&args("icmp 1.2.3.4:1")).is_err());
        assert!(parse(&args("tcp 1.2.3.4")).is_err());
        assert!(parse(&args("tcp 1.2.3.4:1 --timeout x")).is_err());
    }
}
