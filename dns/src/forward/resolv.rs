//! Upstream servers from a resolv.conf, without ourselves.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The file systemd-resolved writes with the real upstream servers.
pub const SYSTEMD_RESOLVED_UPSTREAMS: &str = "/run/systemd/resolve/resolv.conf";
/// systemd-resolved's local stub address.
const RESOLVED_STUB: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 53));

/// Reading upstreams failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolvError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// No usable nameserver remained (after dropping our own addresses).
    #[error("{path}: no usable nameserver (skipped: {skipped:?})")]
    NoUpstream {
        path: PathBuf,
        skipped: Vec<SocketAddr>,
    },
}

/// The `nameserver` addresses of resolv.conf text, port 53.
pub fn parse(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == "nameserver").then_some(())?;
            // A scope suffix (`fe80::1%eth0`) cannot be used from a socket
            // address string; such servers are skipped.
            fields.next()?.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Drops upstreams that are our own listen addresses (a forwarding loop).
/// Returns (kept, skipped).
pub fn without_self(
    upstreams: Vec<SocketAddr>,
    listen: &[SocketAddr],
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    upstreams.into_iter().partition(|u| !is_self(*u, listen))
}

fn is_self(upstream: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen.iter().any(|l| {
        l.port() == upstream.port()
            && (l.ip() == upstream.ip() || (l.ip().is_unspecified() && upstream.ip().is_loopback()))
    })
}

/// Upstreams from `path`: if it only names systemd-resolved's stub and
/// `resolved` exists, the real servers are read from there instead.
pub fn load(
    path: &Path,
    resolved: &Path,
    listen: &[SocketAddr],
) -> Result<Vec<SocketAddr>, ResolvError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ResolvError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut servers = parse(&read(path)?);
    let mut from = path;
    let only_stub = !servers.is_empty() && servers.iter().all(|s| s.ip() == RESOLVED_STUB);
    if only_stub && resolved.exists() {
        servers = parse(&read(resolved)?);
        from = resolved;
    }
    let (kept, skipped) = without_self(servers, listen);
    for s in &skipped {
        tracing::warn!(upstream = %s, file = %from.display(), "skipping upstream: it is our own listen address (forwarding loop)");
    }
    if kept.is_empty() {
        return Err(ResolvError::NoUpstream {
            path: from.to_path_buf(),
            skipped,
        });
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_and_our_own_address_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "search x\nnameserver 10.43.0.10\nnameserver 192.0.2.53\n# nameserver 1.1.1.1\n",
        )
        .expect("write");
        let listen: Vec<SocketAddr> = vec!["10.43.0.10:53".parse().expect("addr")];
        let got = load(&path, Path::new("/nonexistent"), &listen).expect("upstreams");
        assert_eq!(
            got,
            vec!["192.0.2.53:53".parse::<SocketAddr>().expect("addr")]
        );
    }

    #[test]
    fn only_ourselves_is_an_error_not_a_loop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.1\n").expect("write");
        let listen: Vec<SocketAddr> = vec!["0.0.0.0:53".parse().expect("addr")];
        let err = load(&path, Path::new("/nonexistent"), &listen).expect_err("loop");
        assert!(matches!(err, ResolvError::NoUpstream { .. }), "{err}");
    }

    #[test]
    fn the_systemd_resolved_stub_is_followed_to_the_real_servers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stub = dir.path().join("stub.conf");
        let real = dir.path().join("real.conf");
        std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0\n").expect("write");
        std::fs::write(&real, "nameserver 192.0.2.1\nnameserver 2001:db8::1\n").expect("write");
        let got = load(&stub, &real, &[]).expect("upstreams");
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1],
            "[2001:db8::1]:53".parse::<SocketAddr>().expect("addr")
        );
    }
}
