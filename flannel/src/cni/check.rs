//! CHECK: verify that what ADD made is still there; the error names every
//! missing piece.

use host::link::{AddressFamilyFilter, Netlink};
use host::names;

use super::config::NetConf;
use super::error::{CniError, code};
use super::portmap;
use super::request::Target;
use super::state::{self, ContainerState};

pub(super) async fn check(target: &Target, conf: &NetConf) -> Result<(), CniError> {
    let Some(saved) = state::load(&conf.state_dir(), &target.container_id)? else {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "container {} was never added (no state)",
                target.container_id
            ),
            "",
        ));
    };
    let mut missing = host_missing(&saved).await?;
    missing.extend(pod_missing(target, &saved).await?);
    missing.extend(ports_missing(&saved)?);
    if missing.is_empty() {
        return Ok(());
    }
    Err(CniError::new(
        code::CHECK_FAILED,
        format!(
            "container {}: missing {}",
            target.container_id,
            missing.join("; ")
        ),
        "",
    ))
}

async fn host_missing(saved: &ContainerState) -> Result<Vec<String>, CniError> {
    let nl = Netlink::connect().map_err(|e| CniError::kernel("open netlink", e))?;
    let kernel = |e| CniError::kernel("look up links", e);
    let Some(bridge) = nl.link_by_name(names::BRIDGE).await.map_err(kernel)? else {
        return Ok(vec![format!("bridge {}", names::BRIDGE)]);
    };
    match nl.link_by_name(&saved.host_veth).await.map_err(kernel)? {
        None => Ok(vec![format!("host veth {}", saved.host_veth)]),
        Some(veth) if veth.master != Some(bridge.index) => Ok(vec![format!(
            "host veth {} attached to {}",
            saved.host_veth,
            names::BRIDGE
        )]),
        Some(_) => Ok(Vec::new()),
    }
}

async fn pod_missing(target: &Target, saved: &ContainerState) -> Result<Vec<String>, CniError> {
    let netns = target.netns.clone().unwrap_or_else(|| saved.netns.clone());
    let ifname = target.ifname.clone();
    let found = host::netns::exec_in_netns(&netns, move || async move {
        let nl = Netlink::connect()?;
        match nl.link_by_name(&ifname).await? {
            None => Ok(None),
            Some(_) => nl
                .addresses(&ifname, AddressFamilyFilter::Any)
                .await
                .map(Some),
        }
    })
    .await
    .map_err(|e| CniError::kernel("enter pod network namespace", e))?
    .map_err(|e| CniError::kernel("inspect pod interface", e))?;
    let Some(addrs) = found else {
        return Ok(vec![format!(
            "interface {} in {}",
            target.ifname,
            netns.display()
        )]);
    };
    Ok(saved
        .ips
        .iter()
        .filter(|ip| !addrs.contains(ip))
        .map(|ip| format!("address {ip} on {} in the pod", target.ifname))
        .collect())
}

fn ports_missing(saved: &ContainerState) -> Result<Vec<String>, CniError> {
    let Some(chain) = &saved.hostport_chain else {
        return Ok(Vec::new());
    };
    let table = host::nft::table_json(names::NFT_HOSTPORT_FAMILY, names::NFT_HOSTPORT_TABLE)
        .map_err(|e| CniError::kernel("read hostPort table", e))?;
    Ok(portmap::missing(
        table.as_ref(),
        chain,
        &saved.port_mappings,
        &saved.ips,
    ))
}
