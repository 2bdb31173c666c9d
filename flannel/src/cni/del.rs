//! DEL: remove everything ADD made for the container. Idempotent and
//! best-effort: missing netns, veth, chain or state are success; every step
//! runs even if an earlier one failed, and the first failure is reported.

use host::names;

use super::config::NetConf;
use super::error::CniError;
use super::ipam::Ipam;
use super::request::Target;
use super::state::ContainerState;
use super::{ipam_error, netpol_handshake, portmap, state, wire};

pub(super) async fn del(target: &Target, conf: &NetConf) -> Result<(), CniError> {
    let ipam = Ipam::new(conf.ipam_dir());
    let lock = ipam.lock().map_err(ipam_error)?;
    // A corrupt state file must not block DEL: fall back to derived names.
    let saved = state::load(&conf.state_dir(), &target.container_id).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring unreadable state file");
        None
    });
    let host_veth = saved
        .as_ref()
        .map(|s| s.host_veth.clone())
        .unwrap_or_else(|| names::host_veth_name(&target.container_id, &target.ifname));
    let chain = names::hostport_container_chain(&target.container_id);
    let mut errors: Vec<CniError> = Vec::new();

    // Host veth first: deleting it removes the pod end too.
    if let Err(e) = host::link::delete_link(&host_veth).await {
        errors.push(CniError::kernel(format!("delete veth {host_veth}"), e));
    }
    // The pod end may survive if the host end was moved or renamed.
    if let Some(netns) = target.netns.clone()
        && let Err(e) = wire::delete_pod_link(netns, &target.ifname).await
    {
        tracing::warn!(error = %e, "pod-side interface not removed (namespace gone?)");
    }
    if let Err(e) = portmap::uninstall(&chain) {
        errors.push(CniError::kernel(
            format!("remove hostPort chain {chain}"),
            e,
        ));
    }
    withdraw_from_netpol(target, conf, saved.as_ref());
    // Addresses and state go last, so a failed DEL can be retried with
    // the state still describing what is left.
    if errors.is_empty() {
        if let Err(e) = ipam.release(&lock, &target.container_id, &target.ifname) {
            errors.push(ipam_error(e));
        }
        if let Err(e) = state::remove(&conf.state_dir(), &target.container_id) {
            errors.push(e);
        }
    }
    match errors.into_iter().next() {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Removes the pod's netpol hand-over files before its IPs can be reused.
/// Best-effort: a left-over file names the old container ID, which the next
/// pod's ADD does not accept as its confirmation.
fn withdraw_from_netpol(target: &Target, conf: &NetConf, saved: Option<&ContainerState>) {
    let Some(saved) = saved else {
        return;
    };
    let dir = netpol_handshake::dir_for(&conf.subnet_file);
    let ips: Vec<std::net::IpAddr> = saved.ips.iter().map(|ip| ip.addr()).collect();
    for err in netpol_handshake::withdraw(&dir, &target.container_id, &ips) {
        tracing::warn!(error = %err, "netpol hand-over file not removed");
    }
}
