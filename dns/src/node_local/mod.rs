//! Node-local serving of the cluster DNS address (issue 5): the address
//! terminates on every node, bypassing DNAT and conntrack.
//!
//! Two pieces of kernel state, both in the current network namespace (the
//! daemon runs in the node's):
//!
//! - each cluster DNS address (one per family on a dual-stack cluster)
//!   as a /32 (/128) on `lo` (this kernel has no
//!   dummy links). The kernel then delivers packets for it locally: a pod's
//!   query arriving on `cni0` never reaches kube-proxy's DNAT (that only
//!   applies to connections conntrack has seen, see below) and never
//!   crosses the overlay;
//! - nftables table `inet nodenet-dns` with `notrack` for UDP/TCP port 53
//!   to and from those addresses, in `prerouting` and `output` chains at raw
//!   priority (-300, before conntrack at -200). Untracked packets skip
//!   every NAT hook, so a kube-proxy DNAT rule for the kube-dns ClusterIP
//!   cannot steal them, they use no conntrack entry (no table growth, no
//!   30 s UDP entries) and cannot hit the conntrack insertion race behind
//!   the 5 s A/AAAA timeouts (kubernetes#56903).
//!
//! Failure behaviour ("disabling or crashing the component must not
//! blackhole DNS"): nothing here intercepts or redirects traffic; the
//! table only turns connection tracking off. If the process crashes or the
//! component stops, the address stays on `lo` with no socket bound to it,
//! so the kernel answers every UDP query with ICMP port unreachable and
//! every TCP SYN with a RST: resolvers fail at once (glibc moves to its
//! next nameserver immediately) instead of timing out, and a restarted
//! component serves again the moment it binds. This is the opposite of
//! NodeLocal DNSCache's failure mode, whose leftover iptables rules steer
//! queries to a dead listener address that drops them silently.
//!
//! Graceful stop keeps the address and the table, on purpose: the daemon
//! leaves the dataplane in place across restarts, and removing the address
//! would turn the fast failure into a slow one (queries would be routed
//! off the node towards a ClusterIP with no backend and time out). What
//! must remove both is turning the component off: `--disable=dns` (the
//! daemon calls [`teardown`] at start when DNS is disabled, so a CoreDNS
//! the user runs instead gets its ClusterIP back) and `nodenet cleanup`.

mod addr;
mod table;

use std::net::IpAddr;

pub use addr::{ensure_address, remove_address};
pub use table::{ensure_table, recorded_addresses, remove_table, table_script};

/// Setting up or removing the node-local state failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeLocalError {
    #[error("cluster DNS address {addr} on lo: {source}")]
    Address {
        addr: IpAddr,
        #[source]
        source: Box<host::link::LinkError>,
    },
    #[error("nftables table inet {}: {source}", host::names::NFT_DNS_TABLE)]
    Nft {
        #[source]
        source: Box<host::nft::NftError>,
    },
    /// `nft` ran in a blocking task that could not finish.
    #[error("nft task failed: {0}")]
    Task(String),
}

/// What [`ensure`] had to change (both false on a re-run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changed {
    pub address: bool,
    pub table: bool,
}

/// Makes `addr` terminate locally: the address on `lo` and the notrack
/// table. Idempotent: state that is already right is left untouched
/// (rule handles and counters survive).
pub async fn ensure(addr: IpAddr) -> Result<Changed, NodeLocalError> {
    ensure_all(&[addr]).await
}

/// [`ensure`] for every cluster DNS address at once: one table with the
/// rules of each, and each address on `lo`.
pub async fn ensure_all(addrs: &[IpAddr]) -> Result<Changed, NodeLocalError> {
    let owned = addrs.to_vec();
    let table = blocking(move || ensure_table(&owned)).await?;
    let mut address = false;
    for &addr in addrs {
        address |= ensure_address(addr).await?;
    }
    Ok(Changed { address, table })
}

/// Removes what [`ensure`] created for `addr`: the address from `lo` (only
/// if it is `addr` with a host prefix; nothing else on `lo` is touched)
/// and our nftables table. Returns what was (or, with `dry_run`, would be)
/// removed, for `nodenet cleanup` to print.
pub async fn teardown(addr: IpAddr, dry_run: bool) -> Result<Vec<String>, NodeLocalError> {
    teardown_all(&[addr], dry_run).await
}

/// [`teardown`] for several addresses (a dual-stack cluster DNS).
pub async fn teardown_all(addrs: &[IpAddr], dry_run: bool) -> Result<Vec<String>, NodeLocalError> {
    let mut removed = Vec::new();
    for &addr in addrs {
        if remove_address(addr, dry_run).await? {
            removed.push(format!("address {addr}/{} on lo", host_prefix(addr)));
        }
    }
    if blocking(move || remove_table(dry_run)).await? {
        removed.push(format!(
            "nftables table inet {}",
            host::names::NFT_DNS_TABLE
        ));
    }
    Ok(removed)
}

/// [`teardown`] without knowing the configured addresses (cleanup run
/// without the daemon's configuration): they are read back from our own
/// table's rules, so only addresses we put there are removed.
pub async fn teardown_recorded(dry_run: bool) -> Result<Vec<String>, NodeLocalError> {
    let addrs = blocking(recorded_addresses).await?;
    if addrs.is_empty() {
        return Ok(Vec::new());
    }
    teardown_all(&addrs, dry_run).await
}

/// /32 or /128.
pub fn host_prefix(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// Runs a blocking `nft` call off the async workers. `nft` runs in the
/// namespace of the thread that spawns it; tokio's blocking threads are
/// created by the runtime, which lives in the daemon's (node) namespace.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, host::nft::NftError> + Send + 'static,
) -> Result<T, NodeLocalError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeLocalError::Task(e.to_string()))?
        .map_err(|source| NodeLocalError::Nft {
            source: Box::new(source),
        })
}
