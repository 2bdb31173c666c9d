//! nodenet's NetworkPolicy enforcer.
//!
//! * [`model`]: validated NetworkPolicies, pods and namespaces (bad fields
//!   become [`model::Problem`]s, never panics, never wider access).
//! * [`plan`]: the pure compiler to the desired `inet nodenet-netpol` table,
//!   its full rendering and the diff between two plans.
//! * [`apply`]: one nft transaction per change, drift repair, counters.
//! * [`handshake`]: the hand-over with the CNI plugin (a new pod is
//!   programmed before its containers run).
//! * [`run`]: the daemon component tying reflectors to the above, through
//!   [`ApiPlanner`] (objects converted once per version, incremental plan).

pub mod apply;
mod component;
pub mod handshake;
pub mod model;
pub mod plan;

pub use component::{
    ApiPlanner, Context, NetpolConfig, NetpolError, Snapshot, Update, run, views_from_api,
};
