//! The teardown steps of each component, in the order they must run.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use host::link::Netlink;
use host::names;

use crate::dns::NodeLocalDns;
use crate::iptables;
use crate::item::Item;
use crate::k3s::{self, K3sLinks};
use crate::kube_router::{KubeRouterChains, KubeRouterIpsets, KubeRouterNftTables};
use crate::overlay::OverlayState;
use crate::run::Cause;

/// Boxed future of a step's `find`.
pub type Found<'a> = Pin<Box<dyn Future<Output = Result<Vec<Item>, Cause>> + Send + 'a>>;

/// Boxed future of a step's `remove_all`: what went, and every failure.
pub type RemovedAll<'a> = Pin<Box<dyn Future<Output = (Vec<Item>, Vec<Cause>)> + Send + 'a>>;

/// One teardown step: finds the leftovers of one kind that are ours.
/// Finding must not change anything (dry runs rely on it).
pub trait Step: Send + Sync {
    /// Short name for messages, e.g. `pod veths`.
    fn name(&self) -> &'static str;
    fn find(&self) -> Found<'_>;
    /// For a step whose objects are removed together by the component that
    /// made them (a VXLAN device takes its neighbours and routes with it):
    /// removes everything `find` would list. `None` (the default): the
    /// runner removes the found items one by one.
    fn remove_all(&self) -> Option<RemovedAll<'_>> {
        None
    }
}

/// The directories the daemon wrote to (the same flags as `nodenet run`).
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_dir: PathBuf,
    pub run_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
}

/// All steps, in order. The order matters:
/// 1. pod veths before the bridge: only while they are enslaved to cni0 do
///    we know they are ours (K3s's pod veths and cni0 look the same);
/// 2. the bridge;
/// 3. the overlay (its devices take their routes with them, then our
///    routes and nftables tables); it also removes K3s's `flannel.1` /
///    `flannel-v6.1`, which have our names and kind;
/// 4. K3s's WireGuard links;
/// 5. the hostPort table, the node-local DNS address and table, the
///    NetworkPolicy table and the tables of kube-router's nftables backend;
/// 6. K3s flannel's and kube-router's iptables chains in each front-end,
///    then kube-router's ipsets (a set in use by a rule cannot go), then
///    flannel's nftables tables (flannel's nftables mode);
/// 7. the conflist before the plugin binary, so a runtime never picks our
///    network and then finds no plugin;
/// 8. the plugin binary, then subnet.env (read by the plugin at ADD), then
///    the CNI/netpol handshake directory (its presence makes ADD wait);
/// 9. the CNI state directory last: the IPAM records are the only trace of
///    what was allocated until the kernel side is gone.
pub fn steps(paths: &Paths) -> Vec<Box<dyn Step>> {
    let mut steps: Vec<Box<dyn Step>> = vec![
        Box::new(PodVeths),
        Box::new(Bridge),
        Box::new(OverlayState),
        Box::new(K3sLinks),
        Box::new(NftTable {
            family: names::NFT_HOSTPORT_FAMILY,
            name: names::NFT_HOSTPORT_TABLE,
        }),
        Box::new(NodeLocalDns),
        Box::new(NftTable {
            family: names::NFT_NETPOL_FAMILY,
            name: names::NFT_NETPOL_TABLE,
        }),
        Box::new(KubeRouterNftTables),
    ];
    for tool in iptables::TOOLS {
        steps.push(Box::new(iptables::FlannelChains { tool }));
        steps.push(Box::new(KubeRouterChains { tool }));
    }
    steps.push(Box::new(KubeRouterIpsets));
    for (family, name) in k3s::FLANNEL_NFT_TABLES {
        steps.push(Box::new(NftTable { family, name }));
    }
    steps.extend(file_steps(paths));
    steps
}

fn file_steps(paths: &Paths) -> [Box<dyn Step>; 5] {
    [
        Box::new(FileStep::new(
            "CNI conflist",
            paths.cni_conf_dir.join(names::CNI_CONFLIST_FILE),
        )),
        Box::new(FileStep::new(
            "CNI plugin",
            paths.cni_bin_dir.join(names::CNI_PLUGIN_TYPE),
        )),
        Box::new(FileStep::new(
            "subnet file",
            paths.run_dir.join(names::SUBNET_ENV_FILE),
        )),
        // After subnet.env: without it ADD fails before it would wait here.
        Box::new(DirStep::new(
            "netpol handshake",
            paths.run_dir.join(names::NETPOL_HANDSHAKE_DIR),
        )),
        Box::new(DirStep::new(
            "CNI state",
            paths.data_dir.join(names::CNI_STATE_DIR),
        )),
    ]
}

/// `veth*` links whose master is our bridge.
struct PodVeths;

impl Step for PodVeths {
    fn name(&self) -> &'static str {
        "pod veths"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let links = Netlink::connect()?.links().await?;
            let Some(bridge) = links.iter().find(|l| l.name == names::BRIDGE) else {
                return Ok(Vec::new());
            };
            let ours = links.iter().filter(|l| {
                l.master == Some(bridge.index) && l.name.starts_with(names::VETH_PREFIX)
            });
            Ok(ours.map(|l| Item::Link(l.name.clone())).collect())
        })
    }
}

/// The `cni0` bridge (only if it is a bridge: a link of another kind with
/// that name is not ours).
struct Bridge;

impl Step for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let link = Netlink::connect()?.link_by_name(names::BRIDGE).await?;
            let ours = link.filter(|l| l.kind.as_deref() == Some("bridge"));
            Ok(ours.map(|l| Item::Link(l.name)).into_iter().collect())
        })
    }
}

/// One nftables table of ours.
struct NftTable {
    family: &'static str,
    name: &'static str,
}

impl Step for NftTable {
    fn name(&self) -> &'static str {
        "nftables"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let exists = host::nft::table_exists(self.family, self.name)?;
            let item = Item::NftTable {
                family: self.family.into(),
                name: self.name.into(),
            };
            Ok(if exists { vec![item] } else { Vec::new() })
        })
    }
}

/// A file at a fixed path of ours.
struct FileStep {
    name: &'static str,
    path: PathBuf,
}

impl FileStep {
    fn new(name: &'static str, path: PathBuf) -> Self {
        FileStep { name, path }
    }
}

impl Step for FileStep {
    fn name(&self) -> &'static str {
        self.name
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let found = kind_of(&self.path)?.is_some_and(|is_dir| !is_dir);
            Ok(if found {
                vec![Item::File(self.path.clone())]
            } else {
                Vec::new()
            })
        })
    }
}

/// A directory of ours, removed with its contents.
struct DirStep {
    name: &'static str,
    path: PathBuf,
}

impl DirStep {
    fn new(name: &'static str, path: PathBuf) -> Self {
        DirStep { name, path }
    }
}

impl Step for DirStep {
    fn name(&self) -> &'static str {
        self.name
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let found = kind_of(&self.path)?.unwrap_or(false);
            Ok(if found {
                vec![Item::Dir(self.path.clone())]
            } else {
                Vec::new()
            })
        })
    }
}

/// `Some(is_dir)` if something exists at `path` (symlinks not followed).
fn kind_of(path: &Path) -> Result<Option<bool>, Cause> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta.is_dir())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Cause::Io(e)),
    }
}
