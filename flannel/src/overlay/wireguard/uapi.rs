//! The WireGuard cross-platform UAPI text protocol (`get=1` / `set=1`,
//! key=value lines, a blank line ends a message, `errno=N` answers), pure:
//! rendering our requests, parsing the device's answers, and the peer diff.
//!
//! Requests are shaped for boringtun 0.7's parser, which (a) panics when a
//! `set` names a peer it already has, and (b) carries a peer section's
//! endpoint/keepalive/remove flags over into the next section. So a changed
//! peer is removed and added again, removals and additions travel in
//! separate requests, and every added peer states all its fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;

use ipnet::IpNet;

use super::key::{PrivateKey, WgKey};

/// A peer as we program it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub public_key: WgKey,
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: BTreeSet<IpNet>,
    /// Persistent keepalive in seconds; 0 is off.
    pub keepalive: u16,
}

/// What `get=1` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub public_key: Option<WgKey>,
    pub listen_port: Option<u16>,
    pub peers: BTreeMap<WgKey, PeerConfig>,
}

pub const GET: &str = "get=1\n\n";

/// Sets the private key and listen port (peers untouched).
pub fn render_interface(key: &PrivateKey, listen_port: u16) -> String {
    format!(
        "set=1\nprivate_key={}\nlisten_port={listen_port}\n\n",
        key.to_hex()
    )
}

/// Removes the peers `keys`.
pub fn render_remove(keys: &[WgKey]) -> String {
    let mut out = String::from("set=1\n");
    for key in keys {
        let _ = writeln!(out, "public_key={}\nremove=true", key.to_hex());
    }
    out.push('\n');
    out
}

/// Adds `peers` (absent from the device), each with all its fields.
pub fn render_add(peers: &[PeerConfig]) -> String {
    let mut out = String::from("set=1\n");
    for peer in peers {
        let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "endpoint={endpoint}");
        }
        let _ = writeln!(out, "persistent_keepalive_interval={}", peer.keepalive);
        out.push_str("replace_allowed_ips=true\n");
        for net in &peer.allowed_ips {
            let _ = writeln!(out, "allowed_ip={net}");
        }
    }
    out.push('\n');
    out
}

/// The `errno=` of an answer: Ok for 0, the errno otherwise.
pub fn check_errno(answer: &str) -> Result<(), String> {
    let errno = answer
        .lines()
        .find_map(|l| l.strip_prefix("errno="))
        .ok_or_else(|| format!("answer without errno: {answer:?}"))?;
    match errno.trim().parse::<i32>() {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "errno={n} ({})",
            std::io::Error::from_raw_os_error(n)
        )),
        Err(_) => Err(format!("unparsable errno {errno:?}")),
    }
}

/// Parses a `get=1` answer (keys in hex).
pub fn parse_get(answer: &str) -> Result<DeviceState, String> {
    check_errno(answer)?;
    let mut state = DeviceState::default();
    let mut peer: Option<PeerConfig> = None;
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line:?} is not key=value"))?;
        let bad = |e: String| format!("{key}: {e}");
        match key {
            "own_public_key" => state.public_key = Some(WgKey::from_hex(value).map_err(bad)?),
            "listen_port" => {
                state.listen_port = Some(value.parse().map_err(|e| bad(format!("{e}")))?)
            }
            "public_key" => {
                let public_key = WgKey::from_hex(value).map_err(bad)?;
                if let Some(done) = peer.replace(PeerConfig {
                    public_key,
                    endpoint: None,
                    allowed_ips: BTreeSet::new(),
                    keepalive: 0,
                }) {
                    state.peers.insert(done.public_key, done);
                }
            }
            "endpoint" | "allowed_ip" | "persistent_keepalive_interval" => {
                let current = peer
                    .as_mut()
                    .ok_or_else(|| bad("before any public_key".into()))?;
                peer_field(current, key, value).map_err(bad)?;
            }
            // Statistics, handshake times, fwmark, protocol version, errno.
            _ => {}
        }
    }
    if let Some(done) = peer {
        state.peers.insert(done.public_key, done);
    }
    Ok(state)
}

fn peer_field(peer: &mut PeerConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        "endpoint" => peer.endpoint = Some(value.parse().map_err(|e| format!("{value:?}: {e}"))?),
        "allowed_ip" => {
            let net: IpNet = value.parse().map_err(|e| format!("{value:?}: {e}"))?;
            peer.allowed_ips.insert(net.trunc());
        }
        _ => peer.keepalive = value.parse().map_err(|e| format!("{value:?}: {e}"))?,
    }
    Ok(())
}

/// Which peers to remove and which to add so the device holds `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerDiff {
    pub remove: Vec<WgKey>,
    pub add: Vec<PeerConfig>,
}

impl PeerDiff {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }
}

/// Diffs by public key. Allowed IPs and keepalive are compared with the
/// device; the endpoint with what we programmed last (`programmed`), because
/// WireGuard roams: the device's endpoint follows where the peer's packets
/// come from (NAT), and re-adding on that difference would churn forever.
/// A peer missing from `programmed` (new device) counts as changed only
/// through the device's fields.
pub fn diff_peers(
    desired: &BTreeMap<WgKey, PeerConfig>,
    device: &BTreeMap<WgKey, PeerConfig>,
    programmed: &BTreeMap<WgKey, PeerConfig>,
) -> PeerDiff {
    let mut diff = PeerDiff::default();
    for (key, have) in device {
        let keep = desired.get(key).is_some_and(|want| {
            want.allowed_ips == have.allowed_ips
                && want.keepalive == have.keepalive
                && programmed
                    .get(key)
                    .is_none_or(|done| done.endpoint == want.endpoint)
        });
        if !keep {
            diff.remove.push(*key);
        }
    }
    diff.add = desired
        .iter()
        .filter(|(key, _)| !device.contains_key(key) || diff.remove.contains(key))
        .map(|(_, want)| want.clone())
        .collect();
    diff
}

#[cfg(test)]
mod tests;
