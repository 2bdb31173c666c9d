use std::collections::{BTreeMap, BTreeSet};

use netlink_packet_core::{Emitable, ParseableParametrized};
use netlink_packet_generic::GenlHeader;

use super::*;

fn peer(n: u8, nets: &[&str], endpoint: &str) -> PeerConfig {
    PeerConfig {
        public_key: WgKey([n; 32]),
        endpoint: Some(endpoint.parse().expect("endpoint")),
        allowed_ips: nets.iter().map(|n| n.parse().expect("net")).collect(),
        keepalive: 25,
    }
}

/// What the kernel would read: our message emitted to bytes and parsed
/// back by the packet crate, so a wrong attribute or nesting shows.
fn on_the_wire(message: &WireguardMessage) -> WireguardMessage {
    let mut bytes = vec![0; message.buffer_len()];
    message.emit(&mut bytes);
    let header = GenlHeader {
        cmd: message.cmd.into(),
        version: 1,
    };
    WireguardMessage::parse_with_param(&bytes[..], header).expect("parses")
}

#[test]
fn added_peers_read_back_as_the_same_peers() {
    let peers = vec![
        peer(2, &["10.42.1.0/24"], "192.168.50.2:51820"),
        peer(3, &["fd42:0:0:2::/64"], "[fd50::3]:51821"),
    ];
    let messages: Vec<_> = add_peers(7, &peers).iter().map(on_the_wire).collect();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].cmd, WireguardCmd::SetDevice);
    assert_eq!(messages[0].attributes[0], WireguardAttribute::IfIndex(7));
    let state = device_state(&messages).expect("state");
    let expected: BTreeMap<_, _> = peers.into_iter().map(|p| (p.public_key, p)).collect();
    assert_eq!(state.peers, expected);
}

#[test]
fn every_added_peer_replaces_its_allowed_ips() {
    let message = on_the_wire(&add_peers(1, &[peer(2, &["10.42.1.0/24"], "1.2.3.4:51820")])[0]);
    let WireguardAttribute::Peers(peers) = &message.attributes[1] else {
        panic!("no peers attribute: {message:?}");
    };
    assert!(peers[0].0.contains(&WireguardPeerAttribute::Flags(
        WireguardPeerFlags::ReplaceAllowedIps
    )));
}

#[test]
fn removals_carry_only_key_and_remove_flag() {
    let message = on_the_wire(&remove_peers(4, &[WgKey([9; 32])])[0]);
    let expected = WireguardAttribute::Peers(vec![WireguardPeer(vec![
        WireguardPeerAttribute::PublicKey([9; 32]),
        WireguardPeerAttribute::Flags(WireguardPeerFlags::RemoveMe),
    ])]);
    assert_eq!(
        message.attributes,
        vec![WireguardAttribute::IfIndex(4), expected]
    );
}

#[test]
fn many_peers_are_split_into_messages_below_the_attribute_limit() {
    let peers: Vec<PeerConfig> = (0..=255u8)
        .chain(0..44)
        .enumerate()
        .map(|(i, b)| {
            let mut p = peer(b, &["fd42:0:0:1::/64", "10.42.1.0/24"], "[fd50::1]:51821");
            p.public_key.0[0] = (i / 256) as u8;
            p
        })
        .collect();
    let messages = add_peers(1, &peers);
    assert_eq!(messages.len(), peers.len().div_ceil(PEERS_PER_MESSAGE));
    for message in &messages {
        let nested = message.attributes[1].buffer_len();
        assert!(
            nested < u16::MAX as usize,
            "peers attribute of {nested} bytes"
        );
    }
    let parsed: Vec<_> = messages.iter().map(on_the_wire).collect();
    assert_eq!(
        device_state(&parsed).expect("state").peers.len(),
        peers.len()
    );
    assert_eq!(remove_peers(1, &[WgKey([1; 32]); 300]).len(), 3);
}

#[test]
fn a_peer_split_over_dump_messages_is_merged() {
    let first = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![
            WireguardAttribute::PublicKey([5; 32]),
            WireguardAttribute::ListenPort(51820),
            WireguardAttribute::Peers(vec![peer_attributes(&peer(
                2,
                &["10.42.1.0/24"],
                "1.1.1.1:51820",
            ))]),
        ],
    };
    let mut rest = peer(2, &["10.42.9.0/24"], "1.1.1.1:51820");
    rest.endpoint = None;
    let second = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::Peers(vec![peer_attributes(&rest)])],
    };
    let state = device_state(&[on_the_wire(&first), on_the_wire(&second)]).expect("state");
    assert_eq!(state.public_key, Some(WgKey([5; 32])));
    assert_eq!(state.listen_port, Some(51820));
    let merged = &state.peers[&WgKey([2; 32])];
    let nets: BTreeSet<IpNet> = ["10.42.1.0/24", "10.42.9.0/24"]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect();
    assert_eq!(merged.allowed_ips, nets);
    assert_eq!(
        merged.endpoint,
        Some("1.1.1.1:51820".parse().expect("endpoint"))
    );
}

#[test]
fn malformed_dump_parts_are_errors_not_panics() {
    let keyless = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::Peers(vec![WireguardPeer(vec![
            WireguardPeerAttribute::PersistentKeepalive(25),
        ])])],
    };
    assert!(device_state(&[keyless]).is_err());
    let no_prefix = WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::Peers(vec![WireguardPeer(vec![
            WireguardPeerAttribute::PublicKey([1; 32]),
            WireguardPeerAttribute::AllowedIps(vec![WireguardAllowedIp(vec![
                WireguardAllowedIpAttr::IpAddr("10.0.0.0".parse().expect("ip")),
            ])]),
        ])])],
    };
    let error = device_state(&[no_prefix]).expect_err("no prefix");
    assert!(error.contains("allowed IP"), "{error}");
}

#[test]
fn the_interface_message_sets_key_and_port_only() {
    let key = PrivateKey::from_bytes([7; 32]);
    let message = on_the_wire(&set_interface(3, &key, 51821));
    assert_eq!(
        message.attributes,
        vec![
            WireguardAttribute::IfIndex(3),
            WireguardAttribute::PrivateKey(key.to_bytes()),
            WireguardAttribute::ListenPort(51821),
        ]
    );
}
