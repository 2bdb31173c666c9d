//! The record table: a pure, immutable view of every name the cluster DNS
//! serves, built from Services, EndpointSlices, Namespaces and Nodes per
//! the Kubernetes DNS-Based Service Discovery specification.
//!
//! Pod records use CoreDNS's `pods insecure` mode (the K3s default): the
//! address is read from `a-b-c-d.<ns>.pod.<zone>` itself and the namespace
//! must exist; no Pod watch is needed, which keeps memory independent of
//! the number of pods.

mod cowmap;
mod hosts;
mod lookup;
mod names;
mod service;
mod skip;
mod sources;
mod table;
mod zone;

#[cfg(test)]
mod tests;

/// The hasher of the maps every query looks names up in: randomly seeded
/// per process (names come from the wire and from upstream answers), and
/// much cheaper than std's SipHash on short keys.
pub(crate) type NameHasher = foldhash::fast::RandomState;
/// A map keyed by names on the query path.
pub(crate) type NameMap<K, V> = std::collections::HashMap<K, V, NameHasher>;

pub use hosts::{HostAddrs, Hosts, parse_hosts_file};
pub use lookup::{Answer, Resolution, pod_ip, reverse_ip, rtype};
pub use names::{MAX_LABELS, MAX_NAME, NameError, OwnedName, QueryName, is_dns_label};
pub use service::{
    Endpoint, Kind, LabelBuf, Proto, SERVICE_NAME_LABEL, ServiceRecords, Srv,
    build as build_service, dashed, dashed_into,
};
pub use skip::Skipped;
pub use sources::{ServiceKey, Sources, full_table, service_key, slice_service, slices_by_service};
pub use table::{PtrEntry, PtrRank, PtrTarget, Table};
pub use zone::{SCHEMA_VERSION, SOA_TIMERS, VERSION_TTL, Zone, ZoneConfig};
