//! The flannel-compatible overlay component and nodenet's CNI plugin.

pub mod cni;
pub mod component;
pub mod conflist;
pub mod overlay;
pub mod subnet;
