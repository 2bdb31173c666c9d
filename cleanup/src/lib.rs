//! `nodenet cleanup`: removes the kernel state and files nodenet created,
//! and nothing else.
//!
//! Teardown is a list of [`Step`]s. Each step only *finds* what of its kind
//! exists and is provably ours; removal of the found [`Item`]s is shared, so
//! a dry run reports exactly what a real run would remove. Steps run in
//! order, every error is collected and the run keeps going (as netavark's
//! teardown does). Later components add their own steps to [`steps`].
//!
//! Besides our own state it removes what K3s's flannel leaves behind
//! (its links, iptables chains and nftables tables) and what its
//! NetworkPolicy controller leaves (iptables chains and ipsets), so a node
//! migrated from K3s can be cleaned with one command; see [`k3s`],
//! [`iptables`] and [`kube_router`].

mod dns;
pub mod ipset;
pub mod iptables;
mod item;
pub mod k3s;
pub mod kube_router;
mod overlay;
mod run;
pub mod steps;

pub use item::Item;
pub use run::{Cause, CleanupError, Mode, Report, run};
pub use steps::{Paths, Step, steps};
