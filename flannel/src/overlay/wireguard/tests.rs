use std::net::IpAddr;

use super::*;
use crate::overlay::plan::PeerFamily;

fn family(subnet: &str, ip: &str, key: u8, port: Option<u16>) -> PeerFamily {
    PeerFamily {
        subnet: subnet.parse().expect("net"),
        public_ip: ip.parse::<IpAddr>().expect("ip"),
        vtep_mac: None,
        wireguard: Some(WireguardData {
            public_key: WgKey([key; 32]),
            port,
        }),
    }
}

#[test]
fn one_peer_per_node_and_family_with_its_subnet_and_endpoint() {
    let peers = vec![
        Peer {
            name: "node-2".into(),
            families: vec![
                family("10.42.1.0/24", "192.168.50.2", 2, Some(51820)),
                family("fd42:0:0:1::/64", "fd50::2", 2, Some(51821)),
            ],
        },
        // An older flannel without "Port": our own port per family.
        Peer {
            name: "node-3".into(),
            families: vec![
                family("10.42.2.0/24", "192.168.50.3", 3, None),
                family("fd42:0:0:2::/64", "fd50::3", 3, None),
            ],
        },
    ];
    let v4 = desired_peers(&peers, false);
    let got: Vec<(WgKey, String, Vec<String>, u16)> = v4
        .values()
        .map(|p| {
            (
                p.public_key,
                p.endpoint.map(|e| e.to_string()).unwrap_or_default(),
                p.allowed_ips.iter().map(ToString::to_string).collect(),
                p.keepalive,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                WgKey([2; 32]),
                "192.168.50.2:51820".to_string(),
                vec!["10.42.1.0/24".to_string()],
                25
            ),
            (
                WgKey([3; 32]),
                "192.168.50.3:51820".to_string(),
                vec!["10.42.2.0/24".to_string()],
                25
            ),
        ]
    );
    let v6 = desired_peers(&peers, true);
    let endpoints: Vec<String> = v6
        .values()
        .filter_map(|p| p.endpoint.map(|e| e.to_string()))
        .collect();
    assert_eq!(endpoints, vec!["[fd50::2]:51821", "[fd50::3]:51821"]);
}

#[test]
fn names_ports_and_overhead_are_flannels() {
    assert_eq!(
        (device_name(false), listen_port(false)),
        ("flannel-wg", 51820)
    );
    assert_eq!(
        (device_name(true), listen_port(true)),
        ("flannel-wg-v6", 51821)
    );
    assert_eq!(OVERHEAD, 80);
    assert_eq!(KEEPALIVE, 25);
}
