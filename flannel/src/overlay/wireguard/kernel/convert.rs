//! Pure translation between our peer model and the kernel's WireGuard
//! generic-netlink messages (`WG_CMD_GET_DEVICE` answers, `WG_CMD_SET_DEVICE`
//! requests).
//!
//! A dump answer may split the device over several messages: later
//! messages repeat a peer's public key to carry more of its allowed IPs, so
//! peers are merged by key. Requests are split too: one nested attribute
//! holds at most 64 KiB, so peers travel in chunks of [`PEERS_PER_MESSAGE`].

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardMessage, WireguardPeer, WireguardPeerAttribute, WireguardPeerFlags,
};

use super::super::key::{PrivateKey, WgKey};
use super::super::uapi::{DeviceState, PeerConfig};

/// Peers per `WG_CMD_SET_DEVICE`: a peer of ours (key, endpoint, keepalive,
/// flags, one or two allowed IPs) encodes in well under 200 bytes, so a
/// chunk stays far below the 64 KiB limit of the nested peers attribute.
pub const PEERS_PER_MESSAGE: usize = 128;

/// The dump request for device `index`.
pub fn get_request(index: u32) -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::IfIndex(index)],
    }
}

/// Sets the private key and listen port; peers untouched.
pub fn set_interface(index: u32, key: &PrivateKey, listen_port: u16) -> WireguardMessage {
    set_device(
        index,
        vec![
            WireguardAttribute::PrivateKey(key.to_bytes()),
            WireguardAttribute::ListenPort(listen_port),
        ],
    )
}

/// Removes the peers `keys`, in as many messages as needed.
pub fn remove_peers(index: u32, keys: &[WgKey]) -> Vec<WireguardMessage> {
    keys.chunks(PEERS_PER_MESSAGE)
        .map(|chunk| {
            let peers = chunk
                .iter()
                .map(|key| {
                    WireguardPeer(vec![
                        WireguardPeerAttribute::PublicKey(key.0),
                        WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
                    ])
                })
                .collect();
            set_device(index, vec![WireguardAttribute::Peers(peers)])
        })
        .collect()
}

/// Adds (or replaces) `peers`, each with all its fields; its allowed IPs
/// replace whatever the device had for that key.
pub fn add_peers(index: u32, peers: &[PeerConfig]) -> Vec<WireguardMessage> {
    peers
        .chunks(PEERS_PER_MESSAGE)
        .map(|chunk| {
            let peers = chunk.iter().map(peer_attributes).collect();
            set_device(index, vec![WireguardAttribute::Peers(peers)])
        })
        .collect()
}

fn set_device(index: u32, mut attributes: Vec<WireguardAttribute>) -> WireguardMessage {
    attributes.insert(0, WireguardAttribute::IfIndex(index));
    WireguardMessage {
        cmd: WireguardCmd::SetDevice,
        attributes,
    }
}

fn peer_attributes(peer: &PeerConfig) -> WireguardPeer {
    let mut attributes = vec![
        WireguardPeerAttribute::PublicKey(peer.public_key.0),
        WireguardPeerAttribute::Flags(WireguardPeerFlags::ReplaceAllowedIps),
        WireguardPeerAttribute::PersistentKeepalive(peer.keepalive),
    ];
    if let Some(endpoint) = peer.endpoint {
        attributes.push(WireguardPeerAttribute::Endpoint(endpoint));
    }
    let allowed = peer.allowed_ips.iter().map(allowed_ip).collect();
    attributes.push(WireguardPeerAttribute::AllowedIps(allowed));
    WireguardPeer(attributes)
}

fn allowed_ip(net: &IpNet) -> WireguardAllowedIp {
    let family = match net.addr() {
        IpAddr::V4(_) => WireguardAddressFamily::Ipv4,
        IpAddr::V6(_) => WireguardAddressFamily::Ipv6,
    };
    WireguardAllowedIp(vec![
        WireguardAllowedIpAttr::Family(family),
        WireguardAllowedIpAttr::IpAddr(net.addr()),
        WireguardAllowedIpAttr::Cidr(net.prefix_len()),
    ])
}

/// The device as a dump reports it, merged over all its messages.
pub fn device_state(messages: &[WireguardMessage]) -> Result<DeviceState, String> {
    let mut state = DeviceState::default();
    for attribute in messages.iter().flat_map(|m| &m.attributes) {
        match attribute {
            WireguardAttribute::PublicKey(key) => state.public_key = Some(WgKey(*key)),
            WireguardAttribute::ListenPort(port) => state.listen_port = Some(*port),
            WireguardAttribute::Peers(peers) => {
                for peer in peers {
                    merge_peer(&mut state, peer)?;
                }
            }
            _ => {}
        }
    }
    Ok(state)
}

fn merge_peer(state: &mut DeviceState, peer: &WireguardPeer) -> Result<(), String> {
    let key = peer
        .0
        .iter()
        .find_map(|a| match a {
            WireguardPeerAttribute::PublicKey(key) => Some(WgKey(*key)),
            _ => None,
        })
        .ok_or("a peer without a public key")?;
    let entry = state.peers.entry(key).or_insert_with(|| PeerConfig {
        public_key: key,
        endpoint: None,
        allowed_ips: BTreeSet::new(),
        keepalive: 0,
    });
    for attribute in &peer.0 {
        match attribute {
            WireguardPeerAttribute::Endpoint(endpoint) => entry.endpoint = Some(*endpoint),
            WireguardPeerAttribute::PersistentKeepalive(seconds) => entry.keepalive = *seconds,
            WireguardPeerAttribute::AllowedIps(ips) => {
                for ip in ips {
                    entry.allowed_ips.insert(allowed_net(ip, key)?);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn allowed_net(ip: &WireguardAllowedIp, peer: WgKey) -> Result<IpNet, String> {
    let addr = ip.0.iter().find_map(|a| match a {
        WireguardAllowedIpAttr::IpAddr(addr) => Some(*addr),
        _ => None,
    });
    let cidr = ip.0.iter().find_map(|a| match a {
        WireguardAllowedIpAttr::Cidr(cidr) => Some(*cidr),
        _ => None,
    });
    let (Some(addr), Some(cidr)) = (addr, cidr) else {
        return Err(format!(
            "peer {peer}: an allowed IP without address or prefix"
        ));
    };
    IpNet::new(addr, cidr)
        .map(|net| net.trunc())
        .map_err(|e| format!("peer {peer}: allowed IP {addr}/{cidr}: {e}"))
}

#[cfg(test)]
mod tests;
