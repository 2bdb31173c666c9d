//! nodenet's node-local cluster DNS: an authoritative server for the
//! cluster domain answering from the shared views, and a caching
//! forwarder for everything else.
//!
//! - [`records`]: the pure, immutable record table (Kubernetes DNS spec).
//! - [`wire`]: zero-allocation query parsing and response writing.
//! - [`server`]: UDP/TCP listeners answering from the current table.
//! - [`forward`]: upstreams from resolv.conf, cache, in-flight dedup.
//! - [`run`]: the component entry point the daemon calls.

pub mod forward;
pub mod records;
pub mod run;
pub mod server;
pub mod wire;

pub use run::{DnsConfig, DnsError, DnsViews, Upstreams, run};
