//! One-way UDP load for the netpol per-packet benchmark (benches/netpol/run.sh).
//!
//! iperf3 (TCP, and UDP after its handshake) is conntrack-established after
//! the first packet, so the policy path runs once per flow. A flow that is
//! never answered stays in conntrack state "new": every datagram walks the
//! whole path (dispatch map, class chain, policy chain, set lookups), which
//! is what "per-packet cost independent of the policy count" is about.
//!
//!   netpol_udpblast recv PORT SECONDS   # prints {"packets":N,"bytes":B,"pps":P,"gbps":G}
//!   netpol_udpblast send IP:PORT SECONDS [SIZE]   # prints {"sent":N}

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["recv", port, secs] => recv(port.parse()?, secs.parse()?),
        ["send", addr, secs] => send(addr.parse()?, secs.parse()?, 1400),
        ["send", addr, secs, size] => send(addr.parse()?, secs.parse()?, size.parse()?),
        _ => bail!("usage: netpol_udpblast recv PORT SECONDS | send IP:PORT SECONDS [SIZE]"),
    }
}

/// Counts datagrams for `secs` seconds; the rate is taken between the first
/// and the last datagram (so start-up skew between the two sides is not
/// counted as idle time).
fn recv(port: u16, secs: f64) -> Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", port)).context("bind")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = vec![0u8; 65536];
    let (mut packets, mut bytes) = (0u64, 0u64);
    let (mut first, mut last) = (None, Instant::now());
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                last = Instant::now();
                first.get_or_insert(last);
                packets += 1;
                bytes += n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("recv"),
        }
    }
    let span = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let rate = |v: f64| if span > 0.0 { v / span } else { 0.0 };
    println!(
        "{{\"packets\":{packets},\"bytes\":{bytes},\"pps\":{:.0},\"gbps\":{:.4}}}",
        rate(packets as f64),
        rate(bytes as f64 * 8.0) / 1e9
    );
    Ok(())
}

/// Sends as fast as the socket takes datagrams; send errors (a full queue,
/// an ICMP error from a reject) are counted out, not fatal.
fn send(addr: SocketAddr, secs: f64, size: usize) -> Result<()> {
    let sock = UdpSocket::bind(("0.0.0.0", 0)).context("bind")?;
    sock.connect(addr).context("connect")?;
    let buf = vec![0x5au8; size];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        for _ in 0..64 {
            if sock.send(&buf).is_ok() {
                sent += 1;
            }
        }
    }
    println!("{{\"sent\":{sent}}}");
    Ok(())
}
