//! Kernel-side helpers shared by all nodenet components: object names,
//! nftables, rtnetlink links/addresses/routes, network namespaces, sysctls.
//!
//! Everything acts on the network namespace of the calling thread; use
//! [`netns`] to act on another one.

pub mod link;
pub mod names;
pub mod netns;
pub mod nft;
pub mod sysctl;
