//! [`Overlay`]: one idempotent pass from (our node, all Nodes) to kernel
//! state, diff-based, in the network namespace of the calling thread.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use host::link::mac::MacAddr;
use host::link::{LinkError, Netlink};
use host::names;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::annotations::{self as ann, FamilyFacts, LocalFacts, VxlanData};
use super::masq::{self, MasqFamily, Ruleset};
use super::plan::{self, DesiredOverlay, Peer, PlanInput, SkippedNode};
use super::underlay::{self, Underlay};
use super::wireguard::{self, Wireguard, WireguardData, WireguardMode};
use super::{
    Backend, Families, LocalNode, OverlayConfig, OverlayError, hostgw, state, vtep_mac, vxlan,
};

/// The VXLAN device name of a family.
pub fn device_name(v6: bool) -> &'static str {
    if v6 {
        names::VXLAN_DEVICE_V6
    } else {
        names::VXLAN_DEVICE_V4
    }
}

/// Kernel objects (neighbours, FDB entries, routes, addresses, MTU)
/// written or removed by one reconcile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub written: usize,
    pub removed: usize,
}

/// What one [`Overlay::reconcile`] did and what the daemon must do next.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileReport {
    /// Merge patch for our Node (`metadata.annotations`), `None` when the
    /// annotations are already right. The daemon sends it.
    pub annotations_patch: Option<serde_json::Value>,
    /// Peers programmed, by name.
    pub peers: Vec<Peer>,
    /// Nodes that got nothing, with the field at fault (for warnings/Events).
    pub skipped: Vec<SkippedNode>,
    pub changes: ChangeCounts,
    /// VXLAN devices created (first start, or re-created after deletion).
    pub devices_created: Vec<String>,
    /// VXLAN devices removed (backend switched away from VXLAN).
    pub devices_removed: Vec<String>,
    /// Whether the nftables tables were (re)written.
    pub masq_applied: bool,
}

impl ReconcileReport {
    /// Whether the pass changed anything in the kernel.
    pub fn changed_kernel(&self) -> bool {
        self.changes != ChangeCounts::default()
            || !self.devices_created.is_empty()
            || !self.devices_removed.is_empty()
            || self.masq_applied
    }
}

/// Accumulates what a pass changed.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub counts: ChangeCounts,
    pub devices_created: Vec<String>,
    pub devices_removed: Vec<String>,
}

impl Outcome {
    pub fn wrote(&mut self, result: Result<(), LinkError>) -> Result<(), OverlayError> {
        result?;
        self.counts.written += 1;
        Ok(())
    }

    pub fn removed(&mut self, result: Result<bool, LinkError>) -> Result<(), OverlayError> {
        if result? {
            self.counts.removed += 1;
        }
        Ok(())
    }
}

/// Our node in one family, validated.
#[derive(Debug, Clone, Copy)]
struct LocalFamily {
    v6: bool,
    cluster: IpNet,
    subnet: IpNet,
    public_ip: IpAddr,
}

/// The overlay of this node. Keeps only what must survive between passes
/// (the VTEP MACs, the last ruleset, the running WireGuard devices);
/// everything else is re-read from the kernel each pass, so it also
/// repairs drift and prunes leftovers.
#[derive(Debug)]
pub struct Overlay {
    config: OverlayConfig,
    /// VTEP MAC per family (index 0 IPv4, 1 IPv6), loaded once.
    macs: [Option<MacAddr>; 2],
    masq: Option<Ruleset>,
    /// WireGuard key and devices; user-space ones live as long as this.
    wireguard: Wireguard,
}

impl Overlay {
    pub fn new(config: OverlayConfig) -> Overlay {
        let wireguard = Wireguard::new(&config.data_dir, None);
        Overlay {
            config,
            macs: [None, None],
            masq: None,
            wireguard,
        }
    }

    /// Serves the WireGuard devices' UAPI sockets (`<dir>/<device>.sock`,
    /// read-only) for `wg show`. Without it only the daemon talks to them.
    pub fn with_wireguard_socket_dir(mut self, dir: PathBuf) -> Overlay {
        let mode = self.wireguard.mode();
        self.wireguard = Wireguard::new(&self.config.data_dir, Some(dir)).with_mode(mode);
        self
    }

    /// Runs WireGuard devices with `mode`'s engine (default `auto`).
    pub fn with_wireguard_mode(mut self, mode: WireguardMode) -> Overlay {
        self.wireguard = self.wireguard.with_mode(mode);
        self
    }

    /// The WireGuard state (devices, key), for status and tests.
    pub fn wireguard(&self) -> &Wireguard {
        &self.wireguard
    }

    pub fn config(&self) -> &OverlayConfig {
        &self.config
    }

    /// One pass: device(s), peers, masquerade, and the annotation patch for
    /// our Node. Idempotent: a second pass with the same inputs changes
    /// nothing. Runs in the calling thread's network namespace.
    pub async fn reconcile(
        &mut self,
        local: &LocalNode,
        nodes: &[Node],
    ) -> Result<ReconcileReport, OverlayError> {
        let families = self.local_families(local)?;
        let current = own_annotations(local, nodes);
        let netlink = Netlink::connect()?;
        let mut underlays = Vec::new();
        for family in &families {
            underlays.push(underlay::resolve(&netlink, family.public_ip).await?);
        }
        let mut outcome = Outcome::default();
        let devices = self
            .ensure_devices(&netlink, &families, &underlays, &current, &mut outcome)
            .await?;
        let annotations_patch =
            ann::annotations_patch(&current, &self.desired_annotations(&families, &current));
        let desired = self.plan(local, nodes);
        self.apply_backend(
            &netlink,
            &families,
            &underlays,
            &devices,
            &desired,
            &mut outcome,
        )
        .await?;
        let masq_applied = self.ensure_masq(&families)?;
        Ok(ReconcileReport {
            annotations_patch,
            peers: desired.peers,
            skipped: desired.skipped,
            changes: outcome.counts,
            devices_created: outcome.devices_created,
            devices_removed: outcome.devices_removed,
            masq_applied,
        })
    }

    fn local_families(&self, local: &LocalNode) -> Result<Vec<LocalFamily>, OverlayError> {
        let families = Families::of(&self.config.cluster_cidrs);
        if !families.v4 && !families.v6 {
            return Err(local_err(local, "no cluster CIDR configured".into()));
        }
        families
            .iter()
            .map(|v6| local_family(&self.config, local, v6))
            .collect()
    }

    /// VXLAN: the device per family (index per family, in `families` order).
    async fn ensure_devices(
        &mut self,
        netlink: &Netlink,
        families: &[LocalFamily],
        underlays: &[Underlay],
        current: &BTreeMap<String, String>,
        outcome: &mut Outcome,
    ) -> Result<Vec<u32>, OverlayError> {
        if self.config.backend == Backend::Wireguard {
            self.ensure_wireguard(netlink, families, underlays, outcome)
                .await?;
            return Ok(Vec::new());
        }
        if self.config.backend != Backend::Vxlan {
            return Ok(Vec::new());
        }
        let mut indexes = Vec::new();
        for (family, underlay) in families.iter().zip(underlays) {
            let mac = self.vtep_mac(family.v6, current)?;
            let want = vxlan::DeviceWant {
                v6: family.v6,
                underlay,
                mac,
                own_subnet: family.subnet,
            };
            indexes.push(vxlan::ensure_device(netlink, &want, outcome).await?);
        }
        Ok(indexes)
    }

    /// WireGuard: the key, then the device per family.
    async fn ensure_wireguard(
        &mut self,
        netlink: &Netlink,
        families: &[LocalFamily],
        underlays: &[Underlay],
        outcome: &mut Outcome,
    ) -> Result<(), OverlayError> {
        self.wireguard.public_key()?;
        for (family, underlay) in families.iter().zip(underlays) {
            let want = wireguard::DeviceWant {
                v6: family.v6,
                underlay_mtu: underlay.mtu,
                own_subnet: family.subnet,
                cluster: family.cluster,
            };
            self.wireguard
                .ensure_device(netlink, &want, outcome)
                .await?;
        }
        Ok(())
    }

    fn vtep_mac(
        &mut self,
        v6: bool,
        current: &BTreeMap<String, String>,
    ) -> Result<MacAddr, OverlayError> {
        let slot = usize::from(v6);
        if let Some(mac) = self.macs[slot] {
            return Ok(mac);
        }
        let key = if v6 {
            ann::BACKEND_V6_DATA
        } else {
            ann::BACKEND_DATA
        };
        let annotated = (current.get(ann::BACKEND_TYPE).map(String::as_str) == Some("vxlan"))
            .then(|| {
                current
                    .get(key)
                    .and_then(|text| VxlanData::parse(text).ok())
            })
            .flatten()
            .map(|data| data.vtep_mac);
        let file = vtep_mac::path(&self.config.data_dir, v6);
        let (mac, source) = vtep_mac::load_or_create(&file, annotated)?;
        tracing::info!(component = "flannel", device = device_name(v6), %mac, ?source, "VTEP MAC");
        self.macs[slot] = Some(mac);
        Ok(mac)
    }

    fn desired_annotations(
        &self,
        families: &[LocalFamily],
        current: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let facts_of = |v6: bool| {
            families.iter().find(|f| f.v6 == v6).map(|f| FamilyFacts {
                public_ip: f.public_ip,
                vtep_mac: self.macs[usize::from(v6)]
                    .filter(|_| self.config.backend == Backend::Vxlan),
                wireguard: self.wireguard_data(v6),
            })
        };
        let facts = LocalFacts {
            backend: self.config.backend,
            v4: facts_of(false),
            v6: facts_of(true),
            overwrites: self.config.public_ip_overwrites.clone(),
        };
        ann::desired_annotations(&facts, current)
    }

    /// Our WireGuard annotation data (key loaded by `ensure_wireguard`).
    fn wireguard_data(&self, v6: bool) -> Option<WireguardData> {
        (self.config.backend == Backend::Wireguard)
            .then(|| self.wireguard.loaded_public_key())
            .flatten()
            .map(|public_key| WireguardData {
                public_key,
                port: Some(wireguard::listen_port(v6)),
            })
    }

    fn plan(&self, local: &LocalNode, nodes: &[Node]) -> DesiredOverlay {
        let macs: Vec<MacAddr> = self.macs.iter().flatten().copied().collect();
        let input = PlanInput {
            local,
            backend: self.config.backend,
            cluster_cidrs: &self.config.cluster_cidrs,
            local_vtep_macs: &macs,
            local_wg_key: self.wireguard.loaded_public_key(),
        };
        plan::plan(&input, nodes)
    }

    async fn apply_backend(
        &mut self,
        netlink: &Netlink,
        families: &[LocalFamily],
        underlays: &[Underlay],
        devices: &[u32],
        desired: &DesiredOverlay,
        outcome: &mut Outcome,
    ) -> Result<(), OverlayError> {
        let cluster = &self.config.cluster_cidrs;
        let backend = self.config.backend;
        for v6 in [false, true] {
            let configured = families.iter().any(|f| f.v6 == v6);
            if !(backend == Backend::Wireguard && configured) {
                self.wireguard.remove_family(netlink, v6, outcome).await?;
            }
            if !configured {
                // A family the cluster dropped (dual-stack -> single) keeps
                // no host-gw routes: every route of ours in it goes.
                let scope = hostgw::Scope {
                    v6,
                    cluster_cidrs: &[],
                };
                hostgw::apply(netlink, &scope, &Default::default(), None, outcome).await?;
            }
        }
        match backend {
            Backend::Vxlan => {
                remove_devices(netlink, |v6| !families.iter().any(|f| f.v6 == v6), outcome).await?;
                for (family, index) in families.iter().zip(devices) {
                    let objects = state::vxlan_objects(&desired.peers, family.v6);
                    vxlan::apply_objects(netlink, *index, family.v6, &objects, outcome).await?;
                    let scope = hostgw::Scope {
                        v6: family.v6,
                        cluster_cidrs: cluster,
                    };
                    hostgw::apply(netlink, &scope, &Default::default(), None, outcome).await?;
                }
            }
            Backend::HostGw => {
                remove_devices(netlink, |_| true, outcome).await?;
                for (family, underlay) in families.iter().zip(underlays) {
                    let routes = state::host_gw_routes(&desired.peers, family.v6);
                    let scope = hostgw::Scope {
                        v6: family.v6,
                        cluster_cidrs: cluster,
                    };
                    hostgw::apply(netlink, &scope, &routes, Some(underlay.index), outcome).await?;
                }
            }
            Backend::Wireguard => {
                remove_devices(netlink, |_| true, outcome).await?;
                for family in families {
                    let scope = hostgw::Scope {
                        v6: family.v6,
                        cluster_cidrs: cluster,
                    };
                    hostgw::apply(netlink, &scope, &Default::default(), None, outcome).await?;
                    let peers = wireguard::desired_peers(&desired.peers, family.v6);
                    self.wireguard.apply_peers(family.v6, peers, outcome)?;
                }
            }
        }
        Ok(())
    }

    /// Rewrites the nftables tables when the wanted ruleset changed or the
    /// kernel's copy lost a rule/table; otherwise leaves them untouched.
    fn ensure_masq(&mut self, families: &[LocalFamily]) -> Result<bool, OverlayError> {
        let wanted: Vec<MasqFamily> = families
            .iter()
            .map(|f| MasqFamily {
                cluster: f.cluster,
                pod: f.subnet,
                masquerade: !f.v6 || self.config.ipv6_masq,
            })
            .collect();
        let ruleset = masq::render(&wanted);
        if self.masq.as_ref() == Some(&ruleset) && masq::is_intact(&ruleset)? {
            return Ok(false);
        }
        host::nft::apply(&ruleset.script)?;
        self.masq = Some(ruleset);
        Ok(true)
    }
}

/// Deletes the VXLAN devices of the families `unwanted` selects.
pub(super) async fn remove_devices(
    netlink: &Netlink,
    unwanted: impl Fn(bool) -> bool,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    for v6 in [false, true].into_iter().filter(|v6| unwanted(*v6)) {
        let name = device_name(v6);
        if netlink.delete_link(name).await? {
            tracing::info!(component = "flannel", device = name, "removed VXLAN device");
            outcome.devices_removed.push(name.to_string());
        }
    }
    Ok(())
}

fn local_family(
    config: &OverlayConfig,
    local: &LocalNode,
    v6: bool,
) -> Result<LocalFamily, OverlayError> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let cluster = *config
        .cluster_cidrs
        .iter()
        .find(|c| c.addr().is_ipv6() == v6)
        .ok_or_else(|| local_err(local, format!("no {family} cluster CIDR")))?;
    let subnet = local
        .pod_cidrs
        .iter()
        .find(|c| c.addr().is_ipv6() == v6)
        .map(IpNet::trunc)
        .ok_or_else(|| {
            local_err(
                local,
                format!("no {family} pod CIDR, but the cluster CIDR {cluster} is {family}"),
            )
        })?;
    if !cluster.contains(&subnet) {
        return Err(local_err(
            local,
            format!("{subnet} is outside the cluster CIDR {cluster}"),
        ));
    }
    let public_ip = if v6 {
        local.public_ipv6.map(IpAddr::V6)
    } else {
        local.public_ipv4.map(IpAddr::V4)
    };
    let public_ip = public_ip.ok_or(OverlayError::MissingPublicIp {
        node: local.name.clone(),
        family,
    })?;
    Ok(LocalFamily {
        v6,
        cluster,
        subnet,
        public_ip,
    })
}

fn local_err(local: &LocalNode, reason: String) -> OverlayError {
    OverlayError::LocalPodCidr {
        node: local.name.clone(),
        reason,
    }
}

fn own_annotations(local: &LocalNode, nodes: &[Node]) -> BTreeMap<String, String> {
    nodes
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some(local.name.as_str()))
        .map(ann::of_node)
        .unwrap_or_default()
}
