//! nodenet's node-local cluster DNS: an authoritative server for the
//! cluster domain answering from the shared views, and a caching
//! forwarder for everything else.
//!
//! - [`records`]: the pure, immutable record table (Kubernetes DNS spec).
//! - [`wire`]: zero-allocation query parsing and response writing.
//! - [`server`]: UDP/TCP listeners answering from the current table.
//! - [`forward`]: upstreams from resolv.conf, cache, in-flight dedup.
//! - [`run`]: the server and sync loop for a given configuration.
//! - [`component`]: what the daemon runs: node-local setup, kube-dns
//!   Service, server on `<cluster-dns>:53`.
//! - [`node_local`]: the address on `lo` and the notrack table.
//! - [`metrics`]: CoreDNS-compatible Prometheus metrics.

pub mod component;
pub mod forward;
pub mod metrics;
pub mod node_local;
pub mod records;
pub mod run;
pub mod server;
pub mod wire;

pub use component::{DnsComponent, DnsComponentConfig, run_component};
pub use run::{DnsConfig, DnsError, DnsViews, Upstreams, run};
