//! `probe-many`: many probes in parallel from one process, one line per
//! target (`ok`/`fail`, the target, the error) — a conformance matrix costs
//! one exec per source pod instead of one per pair. `hold`: one long-lived
//! TCP connection exchanging echoes at an interval, to prove established
//! connections survive (a daemon restart, a policy change).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Parsed `probe-many` arguments.
#[derive(Debug, PartialEq)]
pub struct ManyConfig {
    pub timeout: Duration,
    /// (protocol, address) pairs, in argument order.
    pub targets: Vec<(String, SocketAddr)>,
}

/// `[--timeout MS] PROTO/IP:PORT...` with PROTO tcp or udp.
pub fn parse_many(args: &[String]) -> Result<ManyConfig, String> {
    let mut timeout = Duration::from_millis(1000);
    let mut rest = args;
    if let [flag, ms, tail @ ..] = args
        && flag == "--timeout"
    {
        let ms: u64 = ms
            .parse()
            .map_err(|_| format!("--timeout: {ms:?} is not milliseconds"))?;
        timeout = Duration::from_millis(ms);
        rest = tail;
    }
    let targets = rest.iter().map(|t| target(t)).collect::<Result<_, _>>()?;
    Ok(ManyConfig { timeout, targets })
}

fn target(text: &str) -> Result<(String, SocketAddr), String> {
    let (proto, addr) = text
        .split_once('/')
        .ok_or_else(|| format!("target {text:?} is not PROTO/IP:PORT"))?;
    if !matches!(proto, "tcp" | "udp") {
        return Err(format!("target {text:?}: protocol is not tcp or udp"));
    }
    let addr = addr
        .parse()
        .map_err(|_| format!("target {text:?}: {addr:?} is not IP:PORT"))?;
    Ok((proto.to_string(), addr))
}

/// Probes every target at once; prints `ok|fail PROTO/ADDR [error]` per
/// target in argument order. Exit 0: the probes ran (their verdicts are the
/// output).
pub async fn run_many(cfg: ManyConfig) -> ExitCode {
    let tasks: Vec<_> = cfg
        .targets
        .iter()
        .map(|(proto, addr)| {
            let (proto, addr, timeout) = (proto.clone(), *addr, cfg.timeout);
            tokio::spawn(async move {
                let attempt = async {
                    match proto.as_str() {
                        "tcp" => tcp_once(addr).await,
                        _ => udp_echo(addr, timeout).await,
                    }
                };
                tokio::time::timeout(timeout, attempt)
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()))
            })
        })
        .collect();
    for ((proto, addr), task) in cfg.targets.iter().zip(tasks) {
        let verdict = task.await.unwrap_or_else(|e| Err(e.to_string()));
        match verdict {
            Ok(()) => println!("ok {proto}/{addr}"),
            Err(e) => println!("fail {proto}/{addr} {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// Connected and greeted (the server's greeting proves the far end is the
/// workload, not some middlebox answering the SYN).
async fn tcp_once(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut buf = [0u8; 512];
    match stream.read(&mut buf).await {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("closed before the greeting".into()),
        Err(e) => Err(format!("read: {e}")),
    }
}

/// Sends up to three datagrams (a lost first one, e.g. while the neighbour
/// entry resolves, is not a denial) and waits for an echo.
async fn udp_echo(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
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
        .map_err(|e| format!("connect: {e}"))?;
    let mut buf = [0u8; 2048];
    let step = timeout / 3;
    loop {
        sock.send(b"probe")
            .await
            .map_err(|e| format!("send: {e}"))?;
        match tokio::time::timeout(step, sock.recv(&mut buf)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => return Err(format!("recv: {e}")),
            Err(_) => continue,
        }
    }
}

/// Parsed `hammer` arguments.
#[derive(Debug, PartialEq)]
pub struct HammerConfig {
    pub duration: Duration,
    /// Bound of one connection attempt.
    pub attempt: Duration,
    pub targets: Vec<SocketAddr>,
}

/// `--seconds N [--attempt-ms M] IP:PORT...`.
pub fn parse_hammer(args: &[String]) -> Result<HammerConfig, String> {
    let mut rest = args;
    let (mut duration, mut attempt) = (None, Duration::from_millis(200));
    while let [flag, value, tail @ ..] = rest
        && flag.starts_with("--")
    {
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--seconds" => duration = Some(Duration::from_secs(n)),
            "--attempt-ms" => attempt = Duration::from_millis(n.max(1)),
            other => return Err(format!("unexpected hammer flag {other:?}")),
        }
        rest = tail;
    }
    let targets = rest
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|_| format!("hammer: {t:?} is not IP:PORT"))
        })
        .collect::<Result<_, _>>()?;
    let duration = duration.ok_or("hammer needs --seconds")?;
    Ok(HammerConfig {
        duration,
        attempt,
        targets,
    })
}

/// Connects to every target over and over (one loop per target, no pause
/// but the attempt itself) until the duration is over. Prints per target
/// `ADDR attempts connected first_connect_ms` (-1: never); a connect that
/// completes counts, greeting or not.
pub async fn run_hammer(cfg: HammerConfig) -> ExitCode {
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let tasks: Vec<_> = cfg
        .targets
        .iter()
        .map(|addr| tokio::spawn(hammer_one(*addr, cfg.attempt, started, deadline)))
        .collect();
    for (addr, task) in cfg.targets.iter().zip(tasks) {
        let (attempts, connected, first) = task.await.unwrap_or((0, 0, None));
        let first = first.map_or(-1, |ms| ms as i64);
        println!("{addr} {attempts} {connected} {first}");
    }
    ExitCode::SUCCESS
}

async fn hammer_one(
    addr: SocketAddr,
    attempt: Duration,
    started: Instant,
    deadline: Instant,
) -> (u64, u64, Option<u128>) {
    let (mut attempts, mut connected, mut first) = (0u64, 0u64, None);
    while Instant::now() < deadline {
        attempts += 1;
        let began = Instant::now();
        if let Ok(Ok(_stream)) = tokio::time::timeout(attempt, TcpStream::connect(addr)).await {
            connected += 1;
            first.get_or_insert(started.elapsed().as_millis());
        }
        // A refused connect returns at once; keep the rate near 1000/s.
        if began.elapsed() < Duration::from_millis(1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    (attempts, connected, first)
}

/// Parsed `hold` arguments.
#[derive(Debug, PartialEq)]
pub struct HoldConfig {
    pub addr: SocketAddr,
    pub duration: Duration,
    pub interval: Duration,
}

/// `IP:PORT --seconds N [--interval-ms M]`.
pub fn parse_hold(args: &[String]) -> Result<HoldConfig, String> {
    let Some((addr, mut rest)) = args.split_first() else {
        return Err("hold needs IP:PORT".into());
    };
    let addr = addr
        .parse()
        .map_err(|_| format!("hold: {addr:?} is not IP:PORT"))?;
    let (mut duration, mut interval) = (None, Duration::from_millis(100));
    while let [flag, value, tail @ ..] = rest {
        let n: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--seconds" => duration = Some(Duration::from_secs(n)),
            "--interval-ms" => interval = Duration::from_millis(n.max(1)),
            other => return Err(format!("unexpected hold flag {other:?}")),
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(format!("unexpected hold arguments {rest:?}"));
    }
    let duration = duration.ok_or("hold needs --seconds")?;
    Ok(HoldConfig {
        addr,
        duration,
        interval,
    })
}

/// Connects once, then sends a numbered line every interval and expects
/// its echo within a second, until the duration is over. Prints one JSON
/// line; exit 0 only if every echo came back on the same connection.
pub async fn run_hold(cfg: HoldConfig) -> ExitCode {
    let started = Instant::now();
    let result = hold(&cfg).await;
    let elapsed = started.elapsed().as_millis();
    match result {
        Ok(echoes) => {
            println!("{{\"ok\":true,\"echoes\":{echoes},\"elapsed_ms\":{elapsed}}}");
            ExitCode::SUCCESS
        }
        Err((echoes, e)) => {
            let error = crate::json_str(&e);
            println!(
                "{{\"ok\":false,\"echoes\":{echoes},\"elapsed_ms\":{elapsed},\"error\":{error}}}"
            );
            ExitCode::FAILURE
        }
    }
}

async fn hold(cfg: &HoldConfig) -> Result<u64, (u64, String)> {
    let mut stream = TcpStream::connect(cfg.addr)
        .await
        .map_err(|e| (0, format!("connect: {e}")))?;
    let mut buf = [0u8; 512];
    let greeting = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
    if !matches!(greeting, Ok(Ok(n)) if n > 0) {
        return Err((0, "no greeting".into()));
    }
    let deadline = Instant::now() + cfg.duration;
    let mut echoes = 0u64;
    while Instant::now() < deadline {
        let line = format!("ping {echoes}\n");
        echo(&mut stream, line.as_bytes())
            .await
            .map_err(|e| (echoes, format!("echo {echoes}: {e}")))?;
        echoes += 1;
        tokio::time::sleep(cfg.interval).await;
    }
    Ok(echoes)
}

async fn echo(stream: &mut TcpStream, line: &[u8]) -> Result<(), String> {
    stream
        .write_all(line)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while got.len() < line.len() {
        let read = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await;
        match read {
            Err(_) => return Err("no echo within 1 s".into()),
            Ok(Err(e)) => return Err(format!("read: {e}")),
            Ok(Ok(0)) => return Err("connection closed".into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    if got != line {
        return Err(format!("echo differs: {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_many_targets() {
        let c = parse_many(&args("--timeout 300 tcp/10.0.0.1:80 udp/[fd00::1]:81")).unwrap();
        assert_eq!(c.timeout, Duration::from_millis(300));
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[1].0, "udp");
        assert_eq!(c.targets[1].1, "[fd00::1]:81".parse().unwrap());
        assert!(parse_many(&args("sctp/1.2.3.4:1")).is_err());
        assert!(parse_many(&args("tcp/1.2.3.4")).is_err());
        assert_eq!(parse_many(&[]).unwrap().targets, vec![]);
    }

    #[test]
    fn parses_hammer() {
        let c = parse_hammer(&args("--seconds 3 --attempt-ms 50 10.0.0.1:80 10.0.0.2:80")).unwrap();
        assert_eq!(c.duration, Duration::from_secs(3));
        assert_eq!(c.attempt, Duration::from_millis(50));
        assert_eq!(c.targets.len(), 2);
        assert!(parse_hammer(&args("10.0.0.1:80")).is_err());
        assert!(parse_hammer(&args("--seconds 1 nope")).is_err());
    }

    #[test]
    fn parses_hold() {
        let c = parse_hold(&args("10.0.0.1:80 --seconds 5 --interval-ms 50")).unwrap();
        assert_eq!(c.duration, Duration::from_secs(5));
        assert_eq!(c.interval, Duration::from_millis(50));
        assert!(parse_hold(&args("10.0.0.1:80")).is_err());
        assert!(parse_hold(&args("10.0.0.1:80 --seconds x")).is_err());
        assert!(parse_hold(&args("x --seconds 1")).is_err());
    }
}
