//! The WireGuard side of a lab node's overlay: what its user-space device
//! reports over the UAPI socket the daemon serves (`<run-dir>/wireguard/
//! <device>.sock`, `get=1`), plus the device's link facts from `ip -j`.
//! Parsed here on its own (not with the daemon's parser), keys turned into
//! the base64 form the annotations carry.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use flannel::overlay::wireguard::key::{PrivateKey, WgKey};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use lab::Lab;
use serde_json::Value;

use super::json_of;

/// Persistent keepalive K3s configures (flannel.md §1.4).
pub const KEEPALIVE: u16 = 25;

/// The device name and listen port of a family.
pub fn device_of(v6: bool) -> (&'static str, u16) {
    if v6 {
        ("flannel-wg-v6", 51821)
    } else {
        ("flannel-wg", 51820)
    }
}

/// A peer as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct WgPeer {
    /// base64, as in `backend-data`.
    pub public_key: String,
    pub endpoint: Option<String>,
    /// Sorted.
    pub allowed_ips: Vec<String>,
    pub keepalive: u16,
}

impl WgPeer {
    /// The peer nodenet must program for a node: its key, `public_ip:port`,
    /// its pod subnet, keepalive 25.
    pub fn expected(public_key: &str, public_ip: &str, port: u16, subnet: &str) -> WgPeer {
        let ip: std::net::IpAddr = public_ip.parse().expect("public IP of a fixture");
        WgPeer {
            public_key: public_key.to_string(),
            endpoint: Some(std::net::SocketAddr::new(ip, port).to_string()),
            allowed_ips: vec![subnet.to_string()],
            keepalive: KEEPALIVE,
        }
    }

    /// Whether the key, the endpoint's address or an allowed IP (or its
    /// network address) is `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        let endpoint_ip = self
            .endpoint
            .as_deref()
            .and_then(|e| e.parse::<std::net::SocketAddr>().ok())
            .map(|e| e.ip().to_string());
        self.public_key == needle
            || endpoint_ip.as_deref() == Some(needle)
            || self
                .allowed_ips
                .iter()
                .any(|a| a == needle || a.split('/').next() == Some(needle))
    }
}

/// One family's WireGuard device on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgDevice {
    /// base64, as in `backend-data`.
    pub public_key: String,
    pub listen_port: u16,
    /// Sorted.
    pub peers: Vec<WgPeer>,
    /// `info_kind` of the link (`tun` for the user-space device).
    pub kind: String,
    pub mtu: u64,
    /// `address/prefix`, sorted, link-local left out.
    pub addresses: Vec<String>,
}

/// The device of one family on `node`, or `None` while it has no link or
/// its UAPI socket does not answer (not started, or restarting).
pub async fn wg_device(lab: &Lab, node: &str, v6: bool) -> Option<WgDevice> {
    let (name, _) = device_of(v6);
    let socket = lab
        .dirs()
        .node(node)
        .run
        .join(format!("wireguard/{name}.sock"));
    // No socket file: not a WireGuard node (spares an exec per poll).
    if !socket.exists() {
        return None;
    }
    let link = json_of(lab, node, &["ip", "-j", "-d", "addr", "show", "dev", name]).await?;
    let link = link.first()?;
    let answer = uapi_get(&socket)?;
    let mut device = parse_get(&answer).unwrap_or_else(|e| panic!("{node} {name} UAPI: {e}"));
    device.kind = link["linkinfo"]["info_kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    device.mtu = link["mtu"].as_u64().unwrap_or_default();
    device.addresses = addresses(link);
    Some(device)
}

fn addresses(link: &Value) -> Vec<String> {
    let mut out: Vec<String> = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect();
    out.sort();
    out
}

/// `get=1` over the socket; `None` when nothing answers there.
fn uapi_get(socket: &Path) -> Option<String> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("socket timeout");
    stream.write_all(b"get=1\n\n").ok()?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"\n\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    Some(String::from_utf8_lossy(&answer).into_owned())
}

/// Parses a `get=1` answer: `own_public_key`/`listen_port`, then one
/// section per peer starting at its `public_key` (keys in hex).
fn parse_get(answer: &str) -> Result<WgDevice, String> {
    let mut device = WgDevice {
        public_key: String::new(),
        listen_port: 0,
        peers: Vec::new(),
        kind: String::new(),
        mtu: 0,
        addresses: Vec::new(),
    };
    for line in answer.lines().filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line:?} is not key=value"))?;
        let peer = device.peers.last_mut();
        match (key, peer) {
            ("errno", _) if value != "0" => return Err(format!("errno={value}")),
            ("own_public_key", _) => device.public_key = base64_of_hex(value)?,
            ("listen_port", _) => device.listen_port = number(key, value)?,
            ("public_key", _) => device.peers.push(WgPeer {
                public_key: base64_of_hex(value)?,
                endpoint: None,
                allowed_ips: Vec::new(),
                keepalive: 0,
            }),
            ("endpoint", Some(p)) => p.endpoint = Some(value.to_string()),
            ("allowed_ip", Some(p)) => p.allowed_ips.push(value.to_string()),
            ("persistent_keepalive_interval", Some(p)) => p.keepalive = number(key, value)?,
            _ => {}
        }
    }
    for peer in &mut device.peers {
        peer.allowed_ips.sort();
    }
    device.peers.sort();
    Ok(device)
}

fn number(key: &str, value: &str) -> Result<u16, String> {
    value.parse().map_err(|e| format!("{key}={value:?}: {e}"))
}

fn base64_of_hex(hex: &str) -> Result<String, String> {
    WgKey::from_hex(hex).map(|k| k.to_base64())
}

/// A valid public key (base64) for fake peer `n`: derived from a fixed
/// private key, so the device accepts it like any node's key.
pub fn fake_key(n: u8) -> String {
    PrivateKey::from_bytes([n; 32]).public_key().to_base64()
}

/// `backend-data` of a WireGuard node, exactly as flannel writes it.
pub fn data(public_key: &str, port: u16) -> String {
    format!(r#"{{"PublicKey":"{public_key}","Port":{port}}}"#)
}

/// The public key in a `backend-data` annotation.
pub fn key_of_data(data: &str) -> String {
    let value: Value =
        serde_json::from_str(data).unwrap_or_else(|e| panic!("backend-data {data:?}: {e}"));
    value["PublicKey"]
        .as_str()
        .unwrap_or_else(|| panic!("no PublicKey in {data}"))
        .to_string()
}

/// Asserts that `node`'s flannel-wg is exactly what the annotations of the
/// lab's nodes `nodes` say: our key (the one in our `backend-data`) and
/// port 51820, one peer per other node (its key, `public-ip:51820`, its
/// podCIDR, keepalive 25), a TUN link with MTU 1500 - 80 and our podCIDR's
/// network address /32, and the one cluster route. Returns the device.
pub async fn assert_device_matches_annotations(lab: &Lab, node: &str, nodes: &[&str]) -> WgDevice {
    let mut own = None;
    let mut want = Vec::new();
    for name in nodes {
        let (cidr, ip, key) = super::real_peer(lab, name).await;
        if *name == node {
            own = Some((cidr, key));
        } else {
            want.push(WgPeer::expected(&key, &ip, 51820, &cidr));
        }
    }
    want.sort();
    let (cidr, key) = own.unwrap_or_else(|| panic!("{node} is not among {nodes:?}"));
    let (kind, data_text) = backend_annotations(lab, node).await;
    assert_eq!(kind, "wireguard", "{node}: backend-type");
    assert_eq!(
        data_text,
        data(&key, 51820),
        "{node}: backend-data in flannel's form"
    );
    let k = super::wait_kernel(lab, node, "WireGuard peers of the annotations", |k| {
        k.wireguard.as_ref().is_some_and(|d| d.peers == want)
    })
    .await;
    let device = k.wireguard.clone().expect("waited for the device");
    let network = cidr.split('/').next().unwrap_or_default();
    assert_eq!(device.public_key, key, "{node}: device key vs backend-data");
    assert_eq!(device.listen_port, 51820, "{node}: {device:#?}");
    assert_eq!(device.kind, "tun", "{node}: user-space device: {device:#?}");
    assert_eq!(device.mtu, 1420, "{node}: underlay 1500 - 80: {device:#?}");
    assert_eq!(device.addresses, vec![format!("{network}/32")], "{node}");
    assert!(super::has_wireguard_route(&k), "{node}: {k:#?}");
    assert_eq!(k.routes.len(), 1, "{node}: only the cluster route: {k:#?}");
    device
}

/// `backend-type` and `backend-data` of a Node ("" when absent).
pub async fn backend_annotations(lab: &Lab, node: &str) -> (String, String) {
    let api: Api<Node> = Api::all(lab.client());
    let object = api.get(node).await.expect("get Node");
    let ann = object.metadata.annotations.unwrap_or_default();
    let get = |k: &str| {
        ann.get(&format!("{}{k}", super::PREFIX))
            .cloned()
            .unwrap_or_default()
    };
    (get("backend-type"), get("backend-data"))
}
