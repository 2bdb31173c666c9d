//! Names of every kernel object and file nodenet creates for pod networking.
//!
//! One module so that the CNI plugin, the daemon and `nodenet cleanup` agree
//! on what is ours. Names follow what K3s/flannel use where a compatible
//! name exists (`cni0`, `cbr0`, `subnet.env`).

/// The per-node pod bridge (same name as the CNI bridge plugin's default).
pub const BRIDGE: &str = "cni0";
/// nftables table (family [`NFT_HOSTPORT_FAMILY`]) holding hostPort DNAT rules.
pub const NFT_HOSTPORT_TABLE: &str = "nodenet-hostport";
/// Family of [`NFT_HOSTPORT_TABLE`].
pub const NFT_HOSTPORT_FAMILY: &str = "inet";
/// `type` of our plugin in the CNI conflist; also the plugin binary's name.
pub const CNI_PLUGIN_TYPE: &str = "nodenet";
/// CNI network name (same as K3s's flannel conflist).
pub const CNI_NETWORK_NAME: &str = "cbr0";
/// File name of the conflist in the CNI conf dir.
pub const CNI_CONFLIST_FILE: &str = "10-nodenet.conflist";
/// File name of the subnet file inside `--run-dir`.
pub const SUBNET_ENV_FILE: &str = "subnet.env";
/// Directory inside `--data-dir` holding all CNI plugin state.
pub const CNI_STATE_DIR: &str = "cni";

/// Prefix of host-side veth names (`veth` + 8 hex digits, like the bridge plugin).
pub const VETH_PREFIX: &str = "veth";
/// Prefix of per-container hostPort chains inside [`NFT_HOSTPORT_TABLE`].
pub const HOSTPORT_CONTAINER_CHAIN_PREFIX: &str = "ctr-";
/// Base chains of [`NFT_HOSTPORT_TABLE`].
pub const HOSTPORT_PREROUTING_CHAIN: &str = "prerouting";
/// Base chain for locally originated connections to a hostPort.
pub const HOSTPORT_OUTPUT_CHAIN: &str = "output";
/// Base chain that masquerades marked (hairpin / localhost) hostPort traffic.
pub const HOSTPORT_POSTROUTING_CHAIN: &str = "postrouting";
/// Regular chain jumped to from prerouting and output; holds the per-container jumps.
pub const HOSTPORT_DNAT_CHAIN: &str = "hostports";
/// Packet mark bit set on hostPort traffic that must be masqueraded
/// (same bit as the portmap plugin's CNI-HOSTPORT-SETMARK).
pub const HOSTPORT_MASQ_MARK: u32 = 0x2000;

/// rtnetlink protocol number (`proto 231` in `ip route`) on every route the
/// overlay installs, so it can list and prune exactly its own routes. 231
/// (0xE7) is unassigned in the kernel's rtnetlink.h and iproute2's
/// rt_protos (which stop at 192, eigrp) and far from the 1-18/42/99/186-192
/// numbers routing daemons use.
pub const RTPROT_NODENET: u8 = 0xE7;
/// nftables table (families `ip` and `ip6`) holding the overlay's
/// masquerade and forward rules (flannel's FLANNEL-POSTRTG / FLANNEL-FWD).
pub const NFT_FLANNEL_TABLE: &str = "nodenet-flannel";
/// VXLAN device of the IPv4 overlay (flannel's name for VNI 1).
pub const VXLAN_DEVICE_V4: &str = "flannel.1";
/// VXLAN device of the IPv6 overlay.
pub const VXLAN_DEVICE_V6: &str = "flannel-v6.1";
/// File under `--data-dir` keeping the VXLAN VTEP MAC across restarts.
pub const VTEP_MAC_FILE: &str = "flannel/vtep-mac";

/// Maximum length of a Linux interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// nftables table (family [`NFT_NETPOL_FAMILY`]) holding NetworkPolicy
/// enforcement (the `netpol` component; removed by `nodenet cleanup`).
pub const NFT_NETPOL_TABLE: &str = "nodenet-netpol";
/// Family of [`NFT_NETPOL_TABLE`]: one `inet` table serves IPv4 and IPv6.
pub const NFT_NETPOL_FAMILY: &str = "inet";

/// nftables table (family [`NFT_DNS_FAMILY`]) of the node-local cluster DNS:
/// notrack for port 53 to and from the cluster DNS address (the `dns`
/// component; removed by `nodenet cleanup`).
pub const NFT_DNS_TABLE: &str = "nodenet-dns";
/// Family of [`NFT_DNS_TABLE`].
pub const NFT_DNS_FAMILY: &str = "inet";

/// Directory inside `--run-dir` through which the CNI plugin and the netpol
/// component hand over new pods (exists only while netpol is enabled).
pub const NETPOL_HANDSHAKE_DIR: &str = "netpol";
/// Sub-directory of [`NETPOL_HANDSHAKE_DIR`]: one file per new pod IP, named
/// by the IP, written by CNI ADD (JSON `namespace`, `name`, `containerID`).
pub const NETPOL_PENDING_DIR: &str = "pending";
/// Sub-directory of [`NETPOL_HANDSHAKE_DIR`]: one file per pod IP, named by
/// the IP and holding the container ID, written by netpol once that pod's
/// isolation is live.
pub const NETPOL_READY_DIR: &str = "ready";

/// Host-side veth name for a container interface: `veth` + 8 hex digits of a
/// stable hash of (container id, interface name). Stable so that DEL can find
/// the link even if the per-container state file was lost.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let hash = fnv1a64(&[container_id.as_bytes(), b"/", ifname.as_bytes()]);
    format!("{VETH_PREFIX}{:08x}", (hash >> 32) as u32 ^ hash as u32)
}

/// Per-container hostPort chain name inside [`NFT_HOSTPORT_TABLE`].
pub fn hostport_container_chain(container_id: &str) -> String {
    let hash = fnv1a64(&[container_id.as_bytes()]);
    format!("{HOSTPORT_CONTAINER_CHAIN_PREFIX}{hash:016x}")
}

/// FNV-1a, 64 bit: tiny, stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_name_is_stable_short_and_distinct() {
        let a = host_veth_name("abc123", "eth0");
        assert_eq!(a, host_veth_name("abc123", "eth0"));
        assert_eq!(a.len(), 12);
        assert!(a.len() <= MAX_IFNAME_LEN);
        assert!(a.starts_with("veth"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, host_veth_name("abc124", "eth0"));
        assert_ne!(a, host_veth_name("abc123", "eth1"));
    }

    #[test]
    fn container_chain_is_stable_and_distinct() {
        let a = hostport_container_chain("c1");
        assert_eq!(a, hostport_container_chain("c1"));
        assert_eq!(a.len(), 4 + 16);
        assert_ne!(a, hostport_container_chain("c2"));
    }

    #[test]
    fn fnv_matches_reference_vector() {
        // Published FNV-1a 64 test vector for "a".
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }
}
