//! The nodes' "real" upstream resolver: a dnsmasq in the underlay
//! namespace at 172.30.0.1:53 (UDP and TCP), and in a dual-stack lab also
//! at [fd30::1]:53, where every node's `--resolv-conf` points (see
//! [`crate::nodenet`]). It has no upstream of
//! its own and reads no file of the machine's, so no lab query leaves
//! the lab: it serves a fixed set of external test names and answers
//! NXDOMAIN for any other name under [`DOMAIN`] and REFUSED elsewhere.
//!
//! Tests start it when they need forwarding ([`crate::Lab::start_upstream_dns`])
//! and may stop it by PID to play an upstream outage; the lab records its
//! PID like every process it starts, so teardown (also `nodenet-lab down`
//! after a crash) kills it, and its files live under the lab directory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::netns::{self, Enter};
use crate::procs::ProcRegistry;
use crate::topology::{UNDERLAY_GATEWAY, UNDERLAY_GATEWAY_V6};

/// The domain the upstream is authoritative for (nothing under it is
/// forwarded anywhere: unknown names are NXDOMAIN).
pub const DOMAIN: &str = "upstream.test";
/// One A record.
pub const WWW: (&str, Ipv4Addr) = ("www.upstream.test", Ipv4Addr::new(203, 0, 113, 10));
/// A name with [`MANY_COUNT`] A records: 1 600 bytes of answers, more than
/// the 1 232 bytes EDNS allows over UDP, so every UDP hop sets TC.
pub const MANY: &str = "many.upstream.test";
pub const MANY_COUNT: u8 = 100;
/// A TXT record and its text.
pub const TXT: (&str, &str) = ("txt.upstream.test", "nodenet lab upstream");
/// Answered NXDOMAIN (under [`DOMAIN`], not in the fixed set).
pub const MISSING: &str = "missing.upstream.test";
/// Other names for cache tests: plain A records like [`WWW`].
pub const SPARE: [(&str, Ipv4Addr); 2] = [
    ("cached.upstream.test", Ipv4Addr::new(203, 0, 113, 11)),
    ("uncached.upstream.test", Ipv4Addr::new(203, 0, 113, 12)),
];
/// A name with one A and one AAAA record (dual-stack tests).
pub const DUAL: (&str, Ipv4Addr, Ipv6Addr) = (
    "dual.upstream.test",
    Ipv4Addr::new(203, 0, 113, 20),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x20),
);
/// TTL of every answer (dnsmasq's default for local names is 0, which a
/// cache may not keep).
pub const TTL: u32 = 300;
/// Where it listens.
pub const ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(UNDERLAY_GATEWAY), 53);
/// Where it also listens in a dual-stack lab.
pub const ADDR_V6: SocketAddr = SocketAddr::new(IpAddr::V6(UNDERLAY_GATEWAY_V6), 53);

/// The addresses it listens on: [`ADDR`]'s, and [`ADDR_V6`]'s in a
/// dual-stack lab (the nodes' upstream resolv.conf lists the same).
pub fn listen_addrs(dual_stack: bool) -> Vec<IpAddr> {
    let v6 = dual_stack.then_some(ADDR_V6.ip());
    std::iter::once(ADDR.ip()).chain(v6).collect()
}

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The addresses of [`MANY`], in hosts-file order.
pub fn many_addrs() -> Vec<Ipv4Addr> {
    (1..=MANY_COUNT)
        .map(|i| Ipv4Addr::new(198, 51, 100, i))
        .collect()
}

/// The hosts file dnsmasq serves.
fn hosts_file() -> String {
    let mut text = String::new();
    for (name, ip) in std::iter::once(WWW).chain(SPARE) {
        text.push_str(&format!("{ip} {name}\n"));
    }
    for ip in many_addrs() {
        text.push_str(&format!("{ip} {MANY}\n"));
    }
    text.push_str(&format!("{} {}\n{} {}\n", DUAL.1, DUAL.0, DUAL.2, DUAL.0));
    text
}

/// A running upstream.
#[derive(Debug)]
pub struct UpstreamDns {
    child: Child,
    log: PathBuf,
}

/// dnsmasq's arguments: foreground, no configuration or hosts file of the
/// machine, no upstream, only our addresses.
fn args(dir: &Path, listen: &[IpAddr]) -> Vec<String> {
    let p = |name: &str| dir.join(name).display().to_string();
    vec![
        "--keep-in-foreground".into(),
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-poll".into(),
        "--no-hosts".into(),
        format!("--addn-hosts={}", p("hosts")),
        format!("--txt-record={},{}", TXT.0, TXT.1),
        format!("--local=/{DOMAIN}/"),
        format!("--local-ttl={TTL}"),
        format!("--listen-address={}", join(listen)),
        "--bind-interfaces".into(),
        "--port=53".into(),
        // Root keeps it able to read the lab directory; it never drops
        // into a user that might not exist on the machine.
        "--user=root".into(),
        "--group=root".into(),
        format!("--pid-file={}", p("dnsmasq.pid")),
        "--log-queries".into(),
        format!("--log-facility={}", p("dnsmasq.log")),
    ]
}

fn join(ips: &[IpAddr]) -> String {
    let texts: Vec<String> = ips.iter().map(ToString::to_string).collect();
    texts.join(",")
}

impl UpstreamDns {
    /// Writes its files under `dir`, starts dnsmasq in the namespace
    /// `underlay` on `listen` (see [`listen_addrs`]; recording its PID) and
    /// waits until it accepts TCP on each.
    pub fn start(
        dir: &Path,
        underlay: &str,
        listen: &[IpAddr],
        registry: &ProcRegistry,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("hosts"), hosts_file())?;
        let log = dir.join("dnsmasq.log");
        let out = std::fs::File::create(dir.join("dnsmasq.out"))?;
        let mut cmd = Command::new("dnsmasq");
        cmd.args(args(dir, listen))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        Enter::netns(netns::path(underlay)).apply_std(&mut cmd)?;
        let child = cmd
            .spawn()
            .context("cannot run dnsmasq (scripts/install-deps installs it)")?;
        registry.add(child.id(), false, "upstream dnsmasq");
        let mut upstream = UpstreamDns { child, log };
        if let Err(e) = upstream.wait_serving(underlay, listen) {
            upstream.stop(registry);
            let out = std::fs::read_to_string(dir.join("dnsmasq.out")).unwrap_or_default();
            return Err(e.context(format!("dnsmasq output: {}", out.trim())));
        }
        Ok(upstream)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// dnsmasq's query log.
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn wait_serving(&mut self, underlay: &str, listen: &[IpAddr]) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        for ip in listen {
            let addr = SocketAddr::new(*ip, 53);
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("dnsmasq exited at start: {status}");
                }
                let connect =
                    move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
                if netns::run_in(&netns::path(underlay), connect).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("dnsmasq does not accept TCP on {addr} after {START_TIMEOUT:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Kills it by PID (our unreaped child, so the PID is still its own)
    /// and reaps it; blocking.
    pub fn stop(mut self, registry: &ProcRegistry) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        registry.remove(self.child.id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_many_name_needs_tcp_and_every_name_is_in_the_hosts_file() {
        // 16 bytes per compressed A record: over the 1232-byte EDNS limit.
        assert!(usize::from(MANY_COUNT) * 16 > 1232);
        let hosts = hosts_file();
        assert_eq!(hosts.lines().filter(|l| l.ends_with(MANY)).count(), 100);
        assert!(hosts.contains("203.0.113.10 www.upstream.test\n"));
        let dir = Path::new("/run/nodenet-lab/x/upstream");
        let args4 = args(dir, &listen_addrs(false));
        assert!(args4.contains(&"--no-resolv".to_string()));
        assert!(args4.contains(&"--listen-address=172.30.0.1".to_string()));
        let args6 = args(dir, &listen_addrs(true));
        assert!(args6.contains(&"--listen-address=172.30.0.1,fd30::1".to_string()));
        assert!(hosts.contains("2001:db8::20 dual.upstream.test\n"));
    }
}
