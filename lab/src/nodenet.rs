//! Running `nodenet run` on a lab node: inside the node's namespaces, with
//! the node's own directories, logging to a per-node file.

use crate::dirs::NodeDirs;
use crate::netns::{self, Enter};
use crate::procs::ProcRegistry;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Metrics listener inside each node namespace.
pub const METRICS_ADDR: &str = "127.0.0.1:10260";

/// Everything needed to (re)start one node's daemon.
#[derive(Debug, Clone)]
pub struct NodenetSpec {
    pub bin: PathBuf,
    pub kubeconfig: PathBuf,
    pub node_name: String,
    /// `--node-ip`: IPv4, and IPv6 too in a dual-stack lab.
    pub node_ips: Vec<IpAddr>,
    /// `--cluster-cidr`, when not nodenet's default (a dual-stack lab).
    pub cluster_cidrs: Option<String>,
    pub netns: String,
    pub dirs: NodeDirs,
    pub extra_args: Vec<String>,
}

impl NodenetSpec {
    /// The argument list of `nodenet run` for this node.
    pub fn args(&self) -> Vec<String> {
        let p = |p: &Path| p.display().to_string();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--kubeconfig".into(),
            p(&self.kubeconfig),
            "--node-name".into(),
            self.node_name.clone(),
            "--node-ip".into(),
            self.node_ip_arg(),
            "--data-dir".into(),
            p(&self.dirs.data),
            "--run-dir".into(),
            p(&self.dirs.run),
            "--cni-conf-dir".into(),
            p(&self.dirs.cni_conf),
            "--cni-bin-dir".into(),
            p(&self.dirs.cni_bin),
            "--metrics-addr".into(),
            METRICS_ADDR.into(),
        ];
        if !self.has_extra("--resolv-conf") {
            args.extend(["--resolv-conf".into(), p(&self.upstream_resolv_conf())]);
        }
        if let Some(cidrs) = self.cluster_cidrs.as_ref()
            && !self.has_extra("--cluster-cidr")
        {
            args.extend(["--cluster-cidr".into(), cidrs.clone()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Whether the test's extra arguments set `flag` themselves.
    fn has_extra(&self, flag: &str) -> bool {
        self.extra_args.iter().any(|a| a.starts_with(flag))
    }

    fn node_ip_arg(&self) -> String {
        let ips: Vec<String> = self.node_ips.iter().map(ToString::to_string).collect();
        ips.join(",")
    }

    /// The upstream resolvers of the node's DNS: the underlay gateway, inside
    /// the lab, never the machine's own resolvers (no lab packet may leave).
    /// A test that needs forwarding runs a resolver there.
    pub fn upstream_resolv_conf(&self) -> PathBuf {
        self.dirs.run.join("upstream-resolv.conf")
    }

    fn write_upstream_resolv_conf(&self) -> std::io::Result<()> {
        let text = format!("nameserver {}\n", crate::topology::UNDERLAY_GATEWAY);
        std::fs::write(self.upstream_resolv_conf(), text)
    }

    /// Starts the daemon inside the node namespace; the PID is recorded.
    pub fn spawn(&self, registry: &ProcRegistry) -> std::io::Result<Child> {
        self.write_upstream_resolv_conf()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.dirs.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(self.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        Enter::netns(netns::path(&self.netns))
            .apply_std(&mut cmd)
            .map_err(std::io::Error::other)?;
        let child = cmd.spawn()?;
        registry.add(child.id(), false, &format!("nodenet {}", self.node_name));
        Ok(child)
    }
}

/// SIGTERM, up to `grace`, then SIGKILL; reaps the child.
pub fn stop(child: &mut Child, registry: &ProcRegistry, grace: Duration) {
    // SAFETY: kill(2) on our own unreaped child, so the PID cannot be recycled.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    registry.remove(child.id());
}
