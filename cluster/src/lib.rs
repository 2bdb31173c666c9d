//! The Kubernetes side of nodenet: one API client, reflectors shared between
//! components (each resource type is watched once), coalesced change signals
//! and a small Event recorder for reporting bad input on objects.

pub mod changes;
pub mod client;
pub mod compact;
pub mod events;
pub mod journal;
pub mod reflectors;
pub mod store;
pub mod trim;

pub use changes::Changes;
pub use client::{ClientError, client};
pub use journal::{Changed, Cursor, Journal};
pub use reflectors::{ReflectorStats, Reflectors, Shared};
pub use store::Kept;
pub use trim::Trim;
