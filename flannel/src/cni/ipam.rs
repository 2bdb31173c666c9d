//! host-local style IPAM: one file per allocated address in
//! `<dataDir>/networks/<name>/`, containing `<containerID>\n<ifname>`.
//!
//! All operations take an [`IpamLock`] (exclusive flock on `lock` in the
//! store), so concurrent plugin invocations cannot hand out the same address.

use std::fs::File;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// Upper bound on addresses probed per allocation; only reachable for huge
/// (IPv6) ranges, where it stops a scan of 2^64 addresses.
const MAX_PROBES: u128 = 1 << 16;

/// Errors from the IPAM store.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("IPAM store {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every usable address of the range is taken.
    #[error("no IP addresses available in range {range}")]
    Exhausted { range: IpNet },
    /// The same (container, interface) already holds an address.
    #[error(
        "container {container_id} interface {ifname} already has address {address} in range {range}"
    )]
    Duplicate {
        container_id: String,
        ifname: String,
        address: IpAddr,
        range: IpNet,
    },
}

/// The store directory of one network.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
}

/// Proof that the store's exclusive lock is held; released on drop.
#[derive(Debug)]
pub struct IpamLock {
    _file: File,
}

/// An address range: `subnet` minus network, `gateway` and (IPv4) broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNet,
    pub gateway: IpAddr,
}

/// An allocated address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub address: IpAddr,
    pub range: Range,
}

impl Ipam {
    pub fn new(dir: impl Into<PathBuf>) -> Ipam {
        Ipam { dir: dir.into() }
    }

    /// Creates the store if needed and takes its exclusive lock (blocking).
    pub fn lock(&self) -> Result<IpamLock, IpamError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io(&self.dir, e))?;
        let path = self.dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| self.io(&path, e))?;
        file.lock().map_err(|e| self.io(&path, e))?;
        Ok(IpamLock { _file: file })
    }

    /// Reserves the next free address of `range` after the last one reserved
    /// in it (round robin), for (`container_id`, `ifname`).
    pub fn allocate(
        &self,
        _lock: &IpamLock,
        range: Range,
        container_id: &str,
        ifname: &str,
    ) -> Result<Allocation, IpamError> {
        if let Some(address) = self
            .find_owned(container_id, Some(ifname))?
            .into_iter()
            .find(|a| range.subnet.contains(a))
        {
            return Err(IpamError::Duplicate {
                container_id: container_id.into(),
                ifname: ifname.into(),
                address,
                range: range.subnet,
            });
        }
        let last = self.last_reserved(&range);
        for address in candidates(&range, last) {
            if self.try_reserve(address, container_id, ifname)? {
                self.set_last_reserved(&range, address)?;
                return Ok(Allocation { address, range });
            }
        }
        Err(IpamError::Exhausted {
            range: range.subnet,
        })
    }

    /// Releases every address of (`container_id`, `ifname`); if none matches,
    /// those of `container_id` alone (as host-local does). Returns them.
    pub fn release(
        &self,
        _lock: &IpamLock,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let mut owned = self.find_owned(container_id, Some(ifname))?;
        if owned.is_empty() {
            owned = self.find_owned(container_id, None)?;
        }
        for address in &owned {
            let path = self.dir.join(address.to_string());
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&path, e)),
            }
        }
        Ok(owned)
    }

    /// Releases one specific address (rollback of a failed ADD).
    pub fn release_address(&self, _lock: &IpamLock, address: IpAddr) -> Result<(), IpamError> {
        let path = self.dir.join(address.to_string());
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(self.io(&path, e)),
            _ => Ok(()),
        }
    }

    /// All reserved addresses with their owner `(containerID, ifname)`.
    pub fn reservations(&self) -> Result<Vec<(IpAddr, String, String)>, IpamError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(&self.dir, e)),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(address) = name.to_str().and_then(|n| n.parse::<IpAddr>().ok()) else {
                continue;
            };
            let text =
                std::fs::read_to_string(entry.path()).map_err(|e| self.io(&entry.path(), e))?;
            let (id, ifname) = parse_owner(&text);
            found.push((address, id, ifname));
        }
        found.sort();
        Ok(found)
    }

    fn find_owned(
        &self,
        container_id: &str,
        ifname: Option<&str>,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let all = self.reservations()?;
        Ok(all
            .into_iter()
            .filter(|(_, id, ifn)| id == container_id && ifname.is_none_or(|want| want == ifn))
            .map(|(address, _, _)| address)
            .collect())
    }

    /// Creates the address file exclusively; false if already taken.
    fn try_reserve(
        &self,
        address: IpAddr,
        container_id: &str,
        ifname: &str,
    ) -> Result<bool, IpamError> {
        use std::io::Write;
        let path = self.dir.join(address.to_string());
        let mut file = match File::options().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(self.io(&path, e)),
        };
        let written = file
            .write_all(format!("{container_id}\n{ifname}").as_bytes())
            .and_then(|()| file.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&path);
            return Err(self.io(&path, e));
        }
        Ok(true)
    }

    fn last_reserved_path(&self, range: &Range) -> PathBuf {
        let family = if range.subnet.addr().is_ipv4() { 0 } else { 1 };
        self.dir.join(format!("last_reserved_ip.{family}"))
    }

    fn last_reserved(&self, range: &Range) -> Option<IpAddr> {
        let text = std::fs::read_to_string(self.last_reserved_path(range)).ok()?;
        text.trim()
            .parse()
            .ok()
            .filter(|a| range.subnet.contains(a))
    }

    fn set_last_reserved(&self, range: &Range, address: IpAddr) -> Result<(), IpamError> {
        let path = self.last_reserved_path(range);
        std::fs::write(&path, address.to_string()).map_err(|e| self.io(&path, e))
    }

    fn io(&self, path: &Path, source: std::io::Error) -> IpamError {
        IpamError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `<id>\n<ifname>`; also accepts host-local's `\r\n` and a bare id.
fn parse_owner(text: &str) -> (String, String) {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r').trim());
    let id = lines.next().unwrap_or_default().to_string();
    let ifname = lines.next().unwrap_or_default().to_string();
    (id, ifname)
}

/// Usable addresses of `range`, starting after `last` and wrapping around.
fn candidates(range: &Range, last: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
    let (first, end) = usable_bounds(&range.subnet);
    let size = if end >= first {
        (end - first).saturating_add(1)
    } else {
        0
    };
    let start = match last.map(to_u128) {
        Some(l) if l >= first && l < end => l + 1,
        _ => first,
    };
    let v4 = range.subnet.addr().is_ipv4();
    (0..size.min(MAX_PROBES))
        .map(move |i| first + (start - first + i) % size)
        .map(move |n| from_u128(n, v4))
        .filter(move |a| *a != range.gateway)
}

/// First and last usable host numbers: skip the network address, and for
/// IPv4 the broadcast address.
fn usable_bounds(subnet: &IpNet) -> (u128, u128) {
    let network = to_u128(subnet.network());
    let last = to_u128(subnet.broadcast());
    match subnet {
        IpNet::V4(_) => (network + 1, last.saturating_sub(1)),
        IpNet::V6(_) => (network + 1, last),
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(std::net::Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(n))
    }
}

#[cfg(test)]
#[path = "ipam_tests.rs"]
mod tests;
