//! A named network namespace for privileged tests, removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::NetnsError;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh named network namespace (`ip netns add`), deleted when dropped,
/// panics included. Names start with `nntest-` so that a leftover from a
/// killed test run is recognisable. Loopback is brought up at creation.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates `nntest-<tag>-<pid>-<n>`. Fails (never skips) when not root.
    pub fn new(tag: &str) -> Result<TestNetns, NetnsError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("nntest-{tag}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = TestNetns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// Runs `ip -n <name> args...`; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Runs `ip -n <name> -j args...` and parses the JSON output.
    pub fn ip_json(&self, args: &[&str]) -> Result<serde_json::Value, NetnsError> {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        let out = self.ip(&full)?;
        let text = if out.trim().is_empty() {
            "[]"
        } else {
            out.as_str()
        };
        serde_json::from_str(text).map_err(|e| NetnsError::IpNetns {
            command: format!("ip -n {} {}", self.name, full.join(" ")),
            stderr: format!("unparsable JSON output: {e}"),
        })
    }

    /// Runs synchronous work inside this namespace (see [`super::run_in_netns`]).
    pub fn run<F, T>(&self, work: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        super::run_in_netns(&self.path(), work)
    }

    /// Runs async work inside this namespace (see [`super::block_on_in_netns`]).
    pub fn block_on<F, Fut, T>(&self, work: F) -> Result<T, NetnsError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        super::block_on_in_netns(&self.path(), work)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "delete", &self.name]) {
            // Drop cannot fail; say loudly what is left behind.
            eprintln!("TestNetns: could not delete {}: {e}", self.name);
        }
    }
}

/// Runs `ip args...` (in the caller's namespace); returns stdout.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::IpNetns {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(NetnsError::IpNetns {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
