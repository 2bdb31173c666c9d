//! `nodenet-workload`: the small program lab pods run instead of container
//! images. `serve` answers TCP, UDP, SCTP and HTTP; `probe` checks one
//! destination and prints a one-line JSON report; `stream` sends numbered
//! messages and reports the ones lost; `sleep` idles.

// Unit tests may unwrap: a panic is how a test reports failure.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod batch;
mod http;
mod probe;
mod serve;
mod stream;

use std::process::ExitCode;

const USAGE: &str = "usage:
  nodenet-workload serve [--tcp PORT]... [--udp PORT]... [--sctp PORT]... [--http PORT]...
  nodenet-workload probe tcp|udp|http HOST:PORT[/PATH] [--timeout MS]
  nodenet-workload probe-many [--timeout MS] tcp|udp/IP:PORT...
  nodenet-workload hammer --seconds N [--attempt-ms M] IP:PORT...
  nodenet-workload hold IP:PORT --seconds N [--interval-ms M]
  nodenet-workload stream tcp|udp IP:PORT [--count N] [--interval-ms MS]
  nodenet-workload sleep";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd.as_str() {
        "serve" => serve::parse(rest).map(|cfg| runtime.block_on(serve::run(cfg))),
        "probe" => probe::parse(rest).map(|cfg| runtime.block_on(probe::run(cfg))),
        "stream" => stream::parse(rest).map(|cfg| runtime.block_on(stream::run(cfg))),
        "probe-many" => batch::parse_many(rest).map(|cfg| runtime.block_on(batch::run_many(cfg))),
        "hammer" => batch::parse_hammer(rest).map(|cfg| runtime.block_on(batch::run_hammer(cfg))),
        "hold" => batch::parse_hold(rest).map(|cfg| runtime.block_on(batch::run_hold(cfg))),
        "sleep" => Ok(runtime.block_on(sleep_forever())),
        other => Err(format!("unknown subcommand {other:?}")),
    };
    result.unwrap_or_else(|msg| {
        eprintln!("{msg}\n{USAGE}");
        ExitCode::from(2)
    })
}

async fn sleep_forever() -> ExitCode {
    // A terminated `sleep` is a normal stop, so SIGTERM exits 0 like pause does.
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
            ExitCode::SUCCESS
        }
        Err(_) => loop {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        },
    }
}

/// The pod's identity as the process sees it: UTS hostname and $POD_NAME.
pub fn identity() -> (String, Option<String>) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    (host, std::env::var("POD_NAME").ok())
}

/// JSON string literal for `s` (std only, so no serde here).
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `"k":v` pairs joined into a JSON object; values must already be JSON.
pub fn json_obj(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", json_str(k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// The identity fields every reply carries.
pub fn identity_fields() -> Vec<(&'static str, String)> {
    let (host, pod) = identity();
    vec![
        ("hostname", json_str(&host)),
        (
            "pod_name",
            pod.map(|p| json_str(&p)).unwrap_or_else(|| "null".into()),
        ),
    ]
}

/// Peer address as the client sent it (IPv4 peers of a dual-stack socket
/// arrive v4-mapped).
pub fn peer_str(peer: std::net::SocketAddr) -> String {
    std::net::SocketAddr::new(peer.ip().to_canonical(), peer.port()).to_string()
}
