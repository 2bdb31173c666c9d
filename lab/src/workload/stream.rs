//! `stream`: a steady flow of numbered messages to a `serve` port, counting
//! the replies, so a test can prove an event (a daemon restart) lost none.
//! UDP: one datagram per number, echoed by `serve --udp`; a number without
//! a reply by the end of the grace period is lost. TCP: one line per number
//! on one connection, echoed by `serve --tcp`; a broken connection fails.

use crate::{json_obj, json_str};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

/// How long replies are awaited after the last message was sent.
const GRACE: Duration = Duration::from_millis(1500);
/// Lost numbers listed in the report (the count is always complete).
const LOST_SHOWN: usize = 20;

#[derive(Debug, PartialEq)]
pub struct StreamConfig {
    pub proto: String,
    pub target: SocketAddr,
    pub count: u32,
    pub interval: Duration,
}

pub fn parse(args: &[String]) -> Result<StreamConfig, String> {
    let [proto, target, rest @ ..] = args else {
        return Err("stream needs PROTO and IP:PORT".into());
    };
    if !matches!(proto.as_str(), "tcp" | "udp") {
        return Err(format!("stream protocol {proto:?} is not tcp or udp"));
    }
    let target: SocketAddr = target
        .parse()
        .map_err(|_| format!("stream target {target:?} is not IP:PORT"))?;
    let (mut count, mut interval_ms) = (1000u32, 10u64);
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: {value:?} is not a number");
        match flag.as_str() {
            "--count" => count = value.parse().map_err(|_| bad())?,
            "--interval-ms" => interval_ms = value.parse().map_err(|_| bad())?,
            other => return Err(format!("unknown stream flag {other:?}")),
        }
    }
    if count == 0 {
        return Err("--count must be at least 1".into());
    }
    Ok(StreamConfig {
        proto: proto.clone(),
        target,
        count,
        interval: Duration::from_millis(interval_ms),
    })
}

pub async fn run(cfg: StreamConfig) -> ExitCode {
    let result = match cfg.proto.as_str() {
        "udp" => udp(&cfg).await,
        _ => tcp(&cfg).await,
    };
    let (received, error) = match result {
        Ok(received) => (received, None),
        Err((received, e)) => (received, Some(e)),
    };
    let lost: Vec<u32> = (0..cfg.count).filter(|n| !received.contains(n)).collect();
    let shown: Vec<String> = lost.iter().take(LOST_SHOWN).map(u32::to_string).collect();
    let ok = lost.is_empty() && error.is_none();
    let mut fields = vec![
        ("ok", ok.to_string()),
        ("proto", json_str(&cfg.proto)),
        ("target", json_str(&cfg.target.to_string())),
        ("sent", cfg.count.to_string()),
        ("received", received.len().to_string()),
        ("lost_count", lost.len().to_string()),
        ("lost", format!("[{}]", shown.join(","))),
        (
            "first_reply_unix_ms",
            received
                .first_unix_ms
                .map_or_else(|| "null".to_string(), |ms| ms.to_string()),
        ),
    ];
    if let Some(e) = error {
        fields.push(("error", json_str(&e)));
    }
    println!("{}", json_obj(&fields));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The numbers echoed back, and when the first echo arrived (Unix ms, so
/// a benchmark can relate it to an event it timed on the same clock).
#[derive(Debug, Default)]
struct Received {
    seqs: BTreeSet<u32>,
    first_unix_ms: Option<u128>,
}

impl Received {
    fn new() -> Received {
        Received::default()
    }

    fn insert(&mut self, seq: u32) {
        if self.first_unix_ms.is_none() {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            self.first_unix_ms = now.ok().map(|d| d.as_millis());
        }
        self.seqs.insert(seq);
    }

    fn len(&self) -> usize {
        self.seqs.len()
    }

    fn contains(&self, seq: &u32) -> bool {
        self.seqs.contains(seq)
    }
}

async fn udp(cfg: &StreamConfig) -> Result<Received, (Received, String)> {
    let bind: SocketAddr = if cfg.target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let fail = |e: std::io::Error| (Received::new(), e.to_string());
    let sock = UdpSocket::bind(bind).await.map_err(fail)?;
    sock.connect(cfg.target).await.map_err(fail)?;
    let mut received = Received::new();
    let mut tick = tokio::time::interval(cfg.interval);
    let mut buf = vec![0u8; 65536];
    let mut next = 0u32;
    let mut deadline = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if next < cfg.count => {
                // A send error (e.g. no route for a moment) is a lost message.
                let _ = sock.send(format!("seq={next};").as_bytes()).await;
                next += 1;
                if next == cfg.count {
                    deadline = Some(tokio::time::Instant::now() + GRACE);
                }
            }
            Ok(n) = sock.recv(&mut buf) => {
                if let Some(seq) = echoed_seq(&buf[..n]) {
                    received.insert(seq);
                }
            }
            _ = sleep_until(deadline) => return Ok(received),
        }
        if received.len() as u32 == cfg.count {
            return Ok(received);
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The number in `seq=N;` anywhere in a reply (the UDP echo wraps it in JSON).
fn echoed_seq(reply: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(reply);
    let start = text.find("seq=")? + 4;
    let end = start + text[start..].find(';')?;
    text[start..end].parse().ok()
}

async fn tcp(cfg: &StreamConfig) -> Result<Received, (Received, String)> {
    let stream = TcpStream::connect(cfg.target)
        .await
        .map_err(|e| (Received::new(), format!("connect {}: {e}", cfg.target)))?;
    let (read, mut write) = stream.into_split();
    let reader = tokio::spawn(read_lines(BufReader::new(read), cfg.count));
    let mut tick = tokio::time::interval(cfg.interval);
    let mut send_error = None;
    for n in 0..cfg.count {
        tick.tick().await;
        if let Err(e) = write.write_all(format!("seq={n};\n").as_bytes()).await {
            send_error = Some(format!("send {n}: {e}"));
            break;
        }
    }
    let read = tokio::time::timeout(GRACE, reader).await;
    let (received, read_error) = match read {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => (Received::new(), Some(format!("reader: {e}"))),
        Err(_) => (Received::new(), Some("echo incomplete after grace".into())),
    };
    match send_error.or(read_error) {
        Some(e) => Err((received, e)),
        None => Ok(received),
    }
}

/// Reads echoed lines until every number came back or the stream ends.
async fn read_lines(
    mut reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    count: u32,
) -> (Received, Option<String>) {
    let mut received = Received::new();
    let mut line = String::new();
    while (received.len() as u32) < count {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) => return (received, Some("connection closed by the server".into())),
            Ok(_) => {
                if let Some(seq) = echoed_seq(line.as_bytes()) {
                    received.insert(seq);
                }
            }
            Err(e) => return (received, Some(format!("read: {e}"))),
        }
    }
    (received, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_flags() {
        let c = parse(&args("udp 10.42.1.5:8081 --count 50 --interval-ms 2")).unwrap();
        assert_eq!(c.count, 50);
        assert_eq!(c.interval, Duration::from_millis(2));
        assert_eq!(c.target, "10.42.1.5:8081".parse().unwrap());
        assert!(parse(&args("icmp 1.2.3.4:1")).is_err());
        assert!(parse(&args("udp host:1")).is_err());
        assert!(parse(&args("udp 1.2.3.4:1 --count 0")).is_err());
        assert!(parse(&args("udp 1.2.3.4:1 --count")).is_err());
    }

    #[test]
    fn finds_the_number_in_an_echo() {
        assert_eq!(echoed_seq(br#"{"echo":"seq=17;"}"#), Some(17));
        assert_eq!(echoed_seq(b"seq=3;\n"), Some(3));
        assert_eq!(echoed_seq(b"seq=x;"), None);
        assert_eq!(echoed_seq(b"greeting"), None);
    }
}
