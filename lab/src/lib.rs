//! The nodenet lab: an in-memory Kubernetes API server and the runtime that
//! builds network-namespace clusters around it.

// Unit tests may unwrap: a panic is how a test reports failure.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod apiserver;
pub mod cli;
pub mod config;
pub mod controllers;
pub mod dirs;
pub mod kubelet;
pub mod lab;
pub mod netns;
pub mod nodenet;
pub mod procs;
pub mod topology;
pub mod upstream;

pub use config::LabConfig;
pub use lab::Lab;
