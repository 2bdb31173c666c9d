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
    /// A dual-stack lab: nodenet gets both families' `--cluster-cidr`,
    /// `--service-cidr` and `--cluster-dns`, and both upstream resolvers.
    pub dual_stack: bool,
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
        for (flag, value) in self.dual_stack_flags() {
            if !self.has_extra(flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The address flags of a dual-stack lab (none otherwise: nodenet's
    /// defaults are the IPv4 lab's).
    fn dual_stack_flags(&self) -> Vec<(&'static str, &'static str)> {
        if !self.dual_stack {
            return Vec::new();
        }
        vec![
            ("--cluster-cidr", crate::config::DUAL_STACK_CLUSTER_CIDRS),
            ("--service-cidr", crate::config::DUAL_STACK_SERVICE_CIDRS),
            ("--cluster-dns", crate::config::DUAL_STACK_CLUSTER_DNS),
        ]
    }

    /// Whether the test's extra arguments set `flag` themselves.
    fn has_extra(&self, flag: &str) -> bool {
        self.extra_args.iter().any(|a| a.starts_with(flag))
    }

    fn node_ip_arg(&self) -> String {
        let ips: Vec<String> = self.node_ips.iter().map(ToString::to_string).collect();
        ips.join(",")
    }

    /// The upstream resolvers of the node's DNS: the underlay gateway (both
    /// its addresses in a dual-stack lab), inside the lab, never the
    /// machine's own resolvers (no lab packet may leave). A test that needs
    /// forwarding runs a resolver there ([`crate::upstream`]).
    pub fn upstream_resolv_conf(&self) -> PathBuf {
        self.dirs.run.join("upstream-resolv.conf")
    }

    fn write_upstream_resolv_conf(&self) -> std::io::Result<()> {
        std::fs::write(self.upstream_resolv_conf(), self.upstream_resolv_text())
    }

    /// The text of [`NodenetSpec::upstream_resolv_conf`].
    pub fn upstream_resolv_text(&self) -> String {
        crate::upstream::listen_addrs(self.dual_stack)
            .iter()
            .map(|ip| format!("nameserver {ip}\n"))
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirs::LabDirs;

    fn spec(dual_stack: bool, extra: &[&str]) -> NodenetSpec {
        let dirs = LabDirs::for_prefix("nltest00");
        NodenetSpec {
            bin: "/bin/nodenet".into(),
            kubeconfig: dirs.underlay_kubeconfig(),
            node_name: "node-1".into(),
            node_ips: vec![IpAddr::from([172, 30, 0, 11])],
            dual_stack,
            netns: "nltest00-node-1".into(),
            dirs: dirs.node("node-1"),
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn flag<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == name)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn dual_stack_nodes_get_both_families_of_every_address_flag() {
        let args = spec(true, &[]).args();
        assert_eq!(flag(&args, "--cluster-cidr"), ["10.42.0.0/16,fd42::/56"]);
        assert_eq!(flag(&args, "--service-cidr"), ["10.43.0.0/16,fd43::/112"]);
        assert_eq!(flag(&args, "--cluster-dns"), ["10.43.0.10,fd43::a"]);
        assert_eq!(
            spec(true, &[]).upstream_resolv_text(),
            "nameserver 172.30.0.1\nnameserver fd30::1\n"
        );
        // A test's own value wins.
        let args = spec(true, &["--cluster-dns=10.43.0.10"]).args();
        assert!(flag(&args, "--cluster-dns").is_empty());
        assert_eq!(
            args.last().map(String::as_str),
            Some("--cluster-dns=10.43.0.10")
        );
    }

    #[test]
    fn ipv4_nodes_keep_nodenets_defaults() {
        let args = spec(false, &[]).args();
        for name in ["--cluster-cidr", "--service-cidr", "--cluster-dns"] {
            assert!(flag(&args, name).is_empty(), "{name} in {args:?}");
        }
        assert_eq!(
            spec(false, &[]).upstream_resolv_text(),
            "nameserver 172.30.0.1\n"
        );
    }
}
