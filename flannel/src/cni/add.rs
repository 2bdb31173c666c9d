//! ADD: allocate, wire, map ports, persist; undo everything on failure.

use std::fs::File;
use std::net::IpAddr;
use std::path::Path;

use host::link::Netlink;
use host::names;
use ipnet::IpNet;
use serde_json::Value;

use super::config::NetConf;
use super::error::{CniError, code};
use super::ipam::{Allocation, Ipam, IpamLock, Range};
use super::netpol_handshake::{self, Handover};
use super::request::Target;
use super::result::{Interfaces, add_result};
use super::state::{self, ContainerState};
use super::wire::{self, PodAddress};
use super::{ipam_error, portmap};
use crate::subnet::{SubnetEnv, SubnetEnvError};

/// What a failed ADD must undo; filled in as steps succeed.
#[derive(Default)]
struct Undo {
    addresses: Vec<Allocation>,
    host_veth: Option<String>,
    hostport_chain: Option<String>,
}

pub(super) async fn add(target: &Target, conf: &NetConf) -> Result<Value, CniError> {
    let env = read_subnet_env(&conf.subnet_file)?;
    let netns = target
        .netns
        .as_deref()
        .ok_or_else(|| CniError::bad_env("CNI_NETNS", "not set"))?;
    let pod_ns = File::open(netns).map_err(|e| {
        CniError::bad_env(
            "CNI_NETNS",
            &format!("cannot open {}: {e}", netns.display()),
        )
    })?;
    let ipam = Ipam::new(conf.ipam_dir());
    let lock = ipam.lock().map_err(ipam_error)?;
    if let Some(existing) = state::load(&conf.state_dir(), &target.container_id)? {
        return Err(CniError::new(
            code::IPAM,
            format!(
                "container {} is already attached as {}",
                target.container_id, existing.ifname
            ),
            "run DEL before adding it again",
        ));
    }
    let ctx = AddCtx {
        target,
        conf,
        env,
        netns,
        pod_ns,
        ipam,
        lock,
    };
    let mut undo = Undo::default();
    let outcome = add_steps(&ctx, &mut undo).await;
    if let Err(err) = &outcome {
        tracing::warn!(container = %target.container_id, error = %err, "ADD failed; rolling back");
        rollback(&undo, &ctx.ipam, &ctx.lock).await;
    }
    // The IPAM lock goes before the wait, so other pods' ADDs go on.
    drop(ctx);
    let (result, ips) = outcome?;
    hand_over_to_netpol(target, conf, &ips);
    Ok(result)
}

/// Waits until the netpol component has programmed the pod's IPs (see
/// [`netpol_handshake`]). Never fails ADD: without netpol's answer the
/// unknown-pod guard still rejects the pod's traffic, which is fail-closed.
fn hand_over_to_netpol(target: &Target, conf: &NetConf, ips: &[IpAddr]) {
    let Some(pod) = &target.pod else {
        return;
    };
    let dir = netpol_handshake::dir_for(&conf.subnet_file);
    let outcome = netpol_handshake::announce_and_wait(
        &dir,
        pod,
        &target.container_id,
        ips,
        netpol_handshake::WAIT_LIMIT,
    );
    // stderr: the runtime logs a plugin's stderr; the plugin has no
    // tracing subscriber of its own.
    match outcome {
        Ok(Handover::Disabled | Handover::Ready) => {}
        Ok(Handover::TimedOut(waiting)) => eprintln!(
            "nodenet: netpol did not confirm {waiting:?} of pod {}/{} within {:?}; the pod starts fail-closed",
            pod.namespace,
            pod.name,
            netpol_handshake::WAIT_LIMIT
        ),
        Err(err) => eprintln!(
            "nodenet: cannot announce pod {}/{} to netpol: {err}; the pod starts fail-closed",
            pod.namespace, pod.name
        ),
    }
}

/// Everything ADD validated and opened before touching the kernel.
struct AddCtx<'a> {
    target: &'a Target,
    conf: &'a NetConf,
    env: SubnetEnv,
    netns: &'a Path,
    pod_ns: File,
    ipam: Ipam,
    lock: IpamLock,
}

/// The CNI result and the pod's addresses.
async fn add_steps(ctx: &AddCtx<'_>, undo: &mut Undo) -> Result<(Value, Vec<IpAddr>), CniError> {
    let (target, conf, env, netns) = (ctx.target, ctx.conf, &ctx.env, ctx.netns);
    let addrs = allocate(ctx, undo)?;
    let nl = Netlink::connect().map_err(|e| CniError::kernel("open netlink", e))?;
    let bridge = wire::ensure_bridge(&nl, env).await?;
    wire::enable_forwarding(env)?;
    let host_veth = names::host_veth_name(&target.container_id, &target.ifname);
    let veth = wire::create_veth(&nl, &host_veth, &target.ifname, env.mtu, &ctx.pod_ns).await?;
    undo.host_veth = Some(host_veth.clone());
    let pod_mac = wire::configure_pod(netns, &target.ifname, &addrs).await?;
    let ips: Vec<IpNet> = addrs.iter().map(|a| a.address).collect();
    let hostport_chain = map_ports(target, conf, &ips, undo)?;
    let saved = ContainerState {
        container_id: target.container_id.clone(),
        ifname: target.ifname.clone(),
        netns: netns.to_path_buf(),
        host_veth: host_veth.clone(),
        ips,
        gateways: addrs.iter().map(|a| a.gateway).collect(),
        port_mappings: conf.port_mappings.clone(),
        hostport_chain,
    };
    state::save(&conf.state_dir(), &saved)?;
    let ifs = Interfaces {
        bridge: (names::BRIDGE, bridge.mac),
        host_veth: (&host_veth, veth.mac),
        pod: (&target.ifname, pod_mac),
        sandbox: netns,
    };
    let ips = addrs.iter().map(|a| a.address.addr()).collect();
    Ok((add_result(&conf.cni_version, &ifs, &addrs), ips))
}

/// One address per family present in subnet.env.
fn allocate(ctx: &AddCtx<'_>, undo: &mut Undo) -> Result<Vec<PodAddress>, CniError> {
    let (env, target) = (&ctx.env, ctx.target);
    let v4 = env
        .subnet
        .map(|gw| (IpNet::V4(gw), env.network.map(IpNet::V4)));
    let v6 = env
        .ipv6_subnet
        .map(|gw| (IpNet::V6(gw), env.ipv6_network.map(IpNet::V6)));
    let mut addrs = Vec::new();
    for (gateway, cluster) in v4.into_iter().chain(v6) {
        let range = Range {
            subnet: gateway.trunc(),
            gateway: gateway.addr(),
        };
        let allocation = ctx
            .ipam
            .allocate(&ctx.lock, range, &target.container_id, &target.ifname)
            .map_err(ipam_error)?;
        undo.addresses.push(allocation);
        let address = IpNet::new(allocation.address, gateway.prefix_len())
            .map_err(|e| CniError::kernel("build pod address", e))?;
        addrs.push(PodAddress {
            address,
            gateway: gateway.addr(),
            cluster,
        });
    }
    Ok(addrs)
}

/// Installs hostPort DNAT if the runtime passed mappings.
fn map_ports(
    target: &Target,
    conf: &NetConf,
    ips: &[IpNet],
    undo: &mut Undo,
) -> Result<Option<String>, CniError> {
    if conf.port_mappings.is_empty() {
        return Ok(None);
    }
    if ips.iter().any(|ip| ip.addr().is_ipv4()) {
        // Lets DNAT of 127.0.0.1-originated connections route out of cni0.
        wire::sysctl(
            &format!("net/ipv4/conf/{}/route_localnet", names::BRIDGE),
            "1",
        )?;
    }
    let chain = names::hostport_container_chain(&target.container_id);
    undo.hostport_chain = Some(chain.clone());
    portmap::install(&chain, &target.container_id, &conf.port_mappings, ips)
        .map_err(|e| CniError::kernel("install hostPort mappings", e))?;
    Ok(Some(chain))
}

/// Best-effort undo in reverse order; failures are logged, the original
/// error is what the runtime sees.
async fn rollback(undo: &Undo, ipam: &Ipam, lock: &IpamLock) {
    if let Some(chain) = &undo.hostport_chain
        && let Err(e) = portmap::uninstall(chain)
    {
        tracing::warn!(%chain, error = %e, "rollback: cannot remove hostPort chain");
    }
    if let Some(veth) = &undo.host_veth
        && let Err(e) = host::link::delete_link(veth).await
    {
        tracing::warn!(%veth, error = %e, "rollback: cannot delete veth");
    }
    for allocation in &undo.addresses {
        if let Err(e) = ipam.release_address(lock, allocation.address) {
            tracing::warn!(address = %allocation.address, error = %e, "rollback: cannot release");
        }
    }
}

/// subnet.env, with "not yet written" as try-again-later (code 11).
fn read_subnet_env(path: &Path) -> Result<SubnetEnv, CniError> {
    SubnetEnv::read(path).map_err(|e| match e {
        SubnetEnvError::NotFound { path } => CniError::new(
            code::TRY_AGAIN,
            "subnet.env not yet written: is nodenet running on this node?",
            format!("{} does not exist", path.display()),
        ),
        SubnetEnvError::Io { .. } => CniError::io("subnet file", e),
        other => CniError::invalid_config("subnetFile", other),
    })
}
