//! A running lab: namespaces, API server, controllers, kubelets and one
//! nodenet per node, all owned by a `Lab` value whose `down` (or Drop)
//! removes every namespace, process and file it made.

use crate::apiserver::{ApiServer, kubeconfig_yaml};
use crate::config::LabConfig;
use crate::dirs::LabDirs;
use crate::kubelet::{self, NodeCtx, cni::CniRuntime, exec, resolv::ClusterDns};
use crate::netns::{self, Enter};
use crate::nodenet::{self, NodenetSpec};
use crate::procs::{self, ProcRegistry};
use crate::topology::{self, Topology};
use crate::upstream::UpstreamDns;
use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `up` waits for every node to report Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// Grace for nodenet and pod processes at teardown.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A new random lab prefix: `nl` + 6 hex digits.
pub fn random_prefix() -> String {
    let mut b = [0u8; 3];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    format!("nl{:02x}{:02x}{:02x}", b[0], b[1], b[2])
}

struct Shared {
    prefix: String,
    dirs: LabDirs,
    topo: Topology,
    cfg: LabConfig,
    api_addr: Mutex<Option<SocketAddr>>,
    registry: Arc<ProcRegistry>,
    created_netns: Arc<Mutex<BTreeSet<String>>>,
    nodenet: Mutex<BTreeMap<String, Child>>,
    /// Per node, `--flag=value` arguments replacing the lab's own
    /// ([`Lab::restart_nodenet_with`]).
    arg_overrides: Mutex<BTreeMap<String, Vec<String>>>,
    /// The nodes' upstream resolver, while a test has it running.
    upstream: Mutex<Option<UpstreamDns>>,
    kubeconfig: PathBuf,
}

/// A running lab.
pub struct Lab {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Lab {
    /// Builds a lab with a random prefix and waits until every node is Ready.
    pub async fn up(cfg: LabConfig) -> anyhow::Result<Lab> {
        Lab::up_with_prefix(cfg, &random_prefix()).await
    }

    /// Same with a chosen prefix (the CLI derives it from the lab's name).
    pub async fn up_with_prefix(cfg: LabConfig, prefix: &str) -> anyhow::Result<Lab> {
        if !nix::unistd::geteuid().is_root() {
            bail!("the lab needs root (network namespaces); run as root");
        }
        if cfg.nodes == 0 || cfg.nodes > topology::MAX_NODES {
            bail!(
                "nodes must be 1..={}, got {}",
                topology::MAX_NODES,
                cfg.nodes
            );
        }
        for (what, p) in [
            ("nodenet", &cfg.nodenet_bin),
            ("nodenet-workload", &cfg.workload_bin),
        ] {
            if !p.is_file() {
                bail!(
                    "{what} binary {} not found: run cargo build --workspace first",
                    p.display()
                );
            }
        }
        let shared = Arc::new(Shared {
            prefix: prefix.to_string(),
            dirs: LabDirs::for_prefix(prefix),
            topo: plan_topology(prefix, &cfg),
            registry: Arc::new(ProcRegistry::new(LabDirs::for_prefix(prefix).pids())),
            cfg,
            api_addr: Mutex::new(None),
            created_netns: Arc::default(),
            nodenet: Mutex::default(),
            arg_overrides: Mutex::default(),
            upstream: Mutex::default(),
            kubeconfig: LabDirs::for_prefix(prefix).kubeconfig(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(format!("lab-{prefix}"))
            .enable_all()
            .build()
            .context("cannot start the lab runtime")?;
        let lab = Lab {
            shared: shared.clone(),
            runtime: Some(runtime),
        };
        let started = lab.rt().spawn(start(shared));
        // On error `lab` is dropped here, which tears down whatever was made.
        started.await.context("lab start-up task failed")??;
        lab.wait_nodes_ready(READY_TIMEOUT).await?;
        Ok(lab)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("runtime present until down")
    }

    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }
    pub fn dir(&self) -> &Path {
        self.shared.dirs.root()
    }
    pub fn dirs(&self) -> &LabDirs {
        &self.shared.dirs
    }
    /// Kubeconfig of the API server on 127.0.0.1 in the root namespace.
    pub fn kubeconfig(&self) -> &Path {
        &self.shared.kubeconfig
    }
    /// Address of the root-namespace API listener.
    pub fn api_addr(&self) -> SocketAddr {
        self.shared
            .api_addr
            .lock()
            .ok()
            .and_then(|a| *a)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// A client for the root-namespace listener (made in the caller's runtime).
    pub fn client(&self) -> kube::Client {
        client_for(self.api_addr()).expect("a plain-HTTP client for a known address always builds")
    }

    pub fn nodes(&self) -> Vec<String> {
        self.shared
            .topo
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect()
    }
    /// Network namespace of a node (`<prefix>-node-<i>`).
    pub fn node_netns(&self, node: &str) -> String {
        self.shared
            .topo
            .node(node)
            .map(|n| n.netns.clone())
            .unwrap_or_default()
    }
    /// The node's first InternalIP: IPv4, or IPv6 in an IPv6-only lab.
    pub fn node_ip(&self, node: &str) -> IpAddr {
        self.shared
            .topo
            .node(node)
            .and_then(|n| internal_ips(&self.shared, n).first().copied())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }
    /// Every namespace the lab created so far (nodes, underlay, pods).
    pub fn netns_names(&self) -> Vec<String> {
        lock(&self.shared.created_netns).iter().cloned().collect()
    }
    /// Kubeconfig the nodes use (the API server on the underlay).
    pub fn underlay_kubeconfig(&self) -> PathBuf {
        self.shared.dirs.underlay_kubeconfig()
    }
    /// PID of the node's running nodenet (e.g. to read its RSS).
    pub fn nodenet_pid(&self, node: &str) -> Option<u32> {
        lock(&self.shared.nodenet).get(node).map(Child::id)
    }
    /// nodenet's log file on a node.
    pub fn nodenet_log(&self, node: &str) -> PathBuf {
        self.shared.dirs.node(node).log
    }

    /// Waits until every node reports Ready.
    pub async fn wait_nodes_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let api: Api<Node> = Api::all(self.client());
        let want = self.nodes().len();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let ready = api.list(&Default::default()).await.map(|l| {
                l.items
                    .iter()
                    .filter(|n| kubelet::node::is_ready(n))
                    .count()
            });
            if ready.as_ref().is_ok_and(|r| *r == want) {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "nodes not Ready after {timeout:?} (ready: {ready:?}); see nodenet logs under {}",
                    self.dir().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the pod is Running and Ready and has an IP.
    pub async fn wait_pod_running(
        &self,
        ns: &str,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<Pod> {
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        loop {
            if let Ok(Some(pod)) = api.get_opt(name).await {
                if pod_running(&pod) {
                    return Ok(pod);
                }
                last = pod.status;
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "pod {ns}/{name} not Running+Ready after {timeout:?}; last status: {}",
                    serde_json::to_string(&last).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `argv` in the pod's network namespace (and its resolv.conf and
    /// hostname), with the lab bin dir on PATH.
    pub async fn exec_in_pod(
        &self,
        ns: &str,
        pod: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<std::process::Output> {
        let api: Api<Pod> = Api::namespaced(self.client(), ns);
        let pod = api
            .get(pod)
            .await
            .with_context(|| format!("pod {ns}/{pod}"))?;
        let enter = pod_enter(&self.shared.prefix, &self.shared.dirs, &pod)?;
        Ok(exec::run(&self.shared.dirs, &enter, argv, timeout).await?)
    }

    /// Runs `argv` in a node's network namespace.
    pub async fn exec_on_node(
        &self,
        node: &str,
        argv: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<std::process::Output> {
        let ns = self
            .shared
            .topo
            .node(node)
            .with_context(|| format!("no node {node} in this lab"))?;
        let enter = Enter::netns(netns::path(&ns.netns));
        Ok(exec::run(&self.shared.dirs, &enter, argv, timeout).await?)
    }

    /// Stops the node's nodenet (SIGTERM, then SIGKILL) and starts it again.
    pub async fn restart_nodenet(&self, node: &str) -> anyhow::Result<()> {
        let shared = self.shared.clone();
        let node = node.to_string();
        tokio::task::spawn_blocking(move || restart_blocking(&shared, &node)).await?
    }

    /// Restarts the node's nodenet with `args` (each `--flag=value` or a
    /// bare `--flag`) in place of the lab's arguments of the same flags,
    /// as an operator reconfiguring one node would; they stay for later
    /// restarts of that node.
    pub async fn restart_nodenet_with(&self, node: &str, args: &[&str]) -> anyhow::Result<()> {
        if let Some(bad) = args.iter().find(|a| !a.starts_with("--")) {
            bail!("restart_nodenet_with: {bad:?} is not --flag=value");
        }
        let args = args.iter().map(|a| a.to_string()).collect();
        lock(&self.shared.arg_overrides).insert(node.to_string(), args);
        self.restart_nodenet(node).await
    }

    /// Starts the nodes' upstream resolver (a dnsmasq with fixed names at
    /// 172.30.0.1:53, and [fd30::1]:53 in a dual-stack lab, see
    /// [`crate::upstream`]); returns its PID.
    pub async fn start_upstream_dns(&self) -> anyhow::Result<u32> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let mut slot = lock(&shared.upstream);
            if slot.is_some() {
                bail!("the upstream DNS of lab {} already runs", shared.prefix);
            }
            let dir = shared.dirs.root().join("upstream");
            let ul = shared.topo.underlay_netns();
            let listen = crate::upstream::listen_addrs(shared.cfg.underlay_ipv6());
            let upstream = UpstreamDns::start(&dir, &ul, &listen, &shared.registry)?;
            let pid = upstream.pid();
            *slot = Some(upstream);
            Ok(pid)
        })
        .await?
    }

    /// The upstream resolver's query log (dnsmasq `--log-queries`: each
    /// query with the address it came from).
    pub fn upstream_dns_log(&self) -> PathBuf {
        self.shared.dirs.root().join("upstream").join("dnsmasq.log")
    }

    /// Kills the upstream resolver by its PID (an upstream outage);
    /// returns whether it was running.
    pub async fn stop_upstream_dns(&self) -> anyhow::Result<bool> {
        let shared = self.shared.clone();
        let stopped = tokio::task::spawn_blocking(move || {
            let upstream = lock(&shared.upstream).take();
            upstream.map(|u| u.stop(&shared.registry)).is_some()
        });
        Ok(stopped.await?)
    }

    /// Removes every namespace, process and file of the lab.
    pub async fn down(mut self) -> anyhow::Result<()> {
        let runtime = self.runtime.take();
        let shared = self.shared.clone();
        let errors = tokio::task::spawn_blocking(move || teardown(&shared, runtime)).await?;
        if errors.is_empty() {
            Ok(())
        } else {
            bail!("lab teardown left problems: {}", errors.join("; "))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            for e in teardown(&self.shared, Some(rt)) {
                eprintln!("lab {}: teardown: {e}", self.shared.prefix);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A kube client for a plain-HTTP API server address.
pub fn client_for(addr: SocketAddr) -> anyhow::Result<kube::Client> {
    let url: http::Uri = format!("http://{addr}").parse()?;
    let mut cfg = kube::Config::new(url);
    cfg.default_namespace = "default".into();
    cfg.read_timeout = Some(Duration::from_secs(300));
    Ok(kube::Client::try_from(cfg)?)
}

/// Phase Running, Ready, and an IP.
pub fn pod_running(pod: &Pod) -> bool {
    let st = pod.status.as_ref();
    st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st.and_then(|s| s.pod_ip.as_ref()).is_some()
        && crate::controllers::labels::is_ready(pod)
}

/// How to enter a pod: its namespace (or its node's for hostNetwork), its
/// resolv.conf and hostname, as its containers were.
pub fn pod_enter(prefix: &str, dirs: &LabDirs, pod: &Pod) -> anyhow::Result<Enter> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod
        .spec
        .as_ref()
        .with_context(|| format!("pod {name} has no spec"))?;
    let node = spec
        .node_name
        .as_deref()
        .with_context(|| format!("pod {name} is not scheduled"))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let (ns, hostname) = if spec.host_network == Some(true) {
        let i = node.trim_start_matches("node-");
        (format!("{prefix}-node-{i}"), node.to_string())
    } else {
        (topology::pod_netns(prefix, &uid), name.clone())
    };
    if !netns::path(&ns).exists() {
        bail!("pod {name} has no network namespace ({ns}) yet");
    }
    let mut enter = Enter::netns(netns::path(&ns));
    enter.hostname = Some(hostname.chars().take(63).collect());
    let resolv = dirs.pod(&uid).join("resolv.conf");
    if resolv.exists() {
        enter
            .binds
            .push((resolv, PathBuf::from("/etc/resolv.conf")));
    }
    Ok(enter)
}

/// Everything `up` does inside the lab runtime.
async fn start(shared: Arc<Shared>) -> anyhow::Result<()> {
    prepare_dirs(&shared)?;
    for name in std::iter::once(shared.topo.underlay_netns())
        .chain(shared.topo.nodes.iter().map(|n| n.netns.clone()))
    {
        lock(&shared.created_netns).insert(name);
    }
    shared
        .topo
        .create()
        .await
        .context("building the lab network")?;
    let api_addr = start_api_server(&shared).await?;
    let client = client_for(api_addr)?;
    for node in &shared.topo.nodes {
        kubelet::node::register(&client, &node.name, &internal_ips(&shared, node))
            .await
            .with_context(|| format!("registering Node {}", node.name))?;
    }
    let (stores, reflectors) = crate::controllers::start_stores(&client);
    let mut tasks = crate::controllers::start(client.clone(), stores);
    tasks.extend(reflectors);
    for node in &shared.topo.nodes {
        let ctx = node_ctx(&shared, node, client.clone());
        let conf = ctx.cni.conf_dir.clone();
        tokio::spawn(kubelet::node::heartbeat(
            client.clone(),
            node.name.clone(),
            ctx.node_ips.clone(),
            conf,
        ));
        tokio::spawn(kubelet::run(Arc::new(ctx)));
    }
    // The tasks run until the runtime is shut down at teardown.
    drop(tasks);
    for node in &shared.topo.nodes {
        spawn_nodenet(&shared, &node.name)?;
    }
    tokio::spawn(watch_nodenet(shared));
    Ok(())
}

/// Reports a nodenet that exits on its own (a crash would otherwise only
/// show as pods that stop getting networks): logged, and appended to that
/// node's nodenet.log. The lab does not restart it; tests decide.
async fn watch_nodenet(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let exited: Vec<(String, std::process::ExitStatus)> = lock(&shared.nodenet)
            .iter_mut()
            .filter_map(|(node, child)| Some((node.clone(), child.try_wait().ok()??)))
            .collect();
        for (node, status) in exited {
            if let Some(child) = lock(&shared.nodenet).remove(&node) {
                shared.registry.remove(child.id());
            }
            tracing::warn!(node = %node, %status, "nodenet exited");
            let line = format!("nodenet-lab: nodenet on {node} exited: {status}\n");
            let log = shared.dirs.node(&node).log;
            let file = std::fs::OpenOptions::new().append(true).open(&log);
            let _ = file.and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
        }
    }
}

/// The lab's network: IPv4, plus IPv6 in a dual-stack or IPv6-only lab.
fn plan_topology(prefix: &str, cfg: &LabConfig) -> Topology {
    let topo = Topology::plan(prefix, cfg.nodes);
    if cfg.underlay_ipv6() {
        topo.with_ipv6()
    } else {
        topo
    }
}

fn prepare_dirs(shared: &Shared) -> anyhow::Result<()> {
    let d = &shared.dirs;
    std::fs::create_dir_all(d.bin()).with_context(|| format!("creating {}", d.bin().display()))?;
    for (name, target) in [
        ("nodenet-workload", &shared.cfg.workload_bin),
        ("nodenet", &shared.cfg.nodenet_bin),
    ] {
        let link = d.bin().join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    for node in &shared.topo.nodes {
        d.node(&node.name)
            .create()
            .with_context(|| format!("creating directories of {}", node.name))?;
    }
    let state = serde_json::json!({"prefix": shared.prefix, "nodes": shared.cfg.nodes, "pid": std::process::id()});
    std::fs::write(d.state(), state.to_string())?;
    Ok(())
}

/// Binds 127.0.0.1:0 in the root namespace and the underlay address
/// ([`underlay_api_addr`]) in the underlay, writes both kubeconfigs, and
/// serves on both.
async fn start_api_server(shared: &Shared) -> anyhow::Result<SocketAddr> {
    let server = ApiServer::new(shared.cfg.api_config());
    let root = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the API server on 127.0.0.1")?;
    let root_addr = root.local_addr()?;
    let ul_addr = underlay_api_addr(&shared.cfg);
    let ul_ns = netns::path(&shared.topo.underlay_netns());
    let std_listener = netns::run_in(&ul_ns, move || {
        let l = std::net::TcpListener::bind(ul_addr)?;
        l.set_nonblocking(true)?;
        Ok(l)
    })
    .with_context(|| format!("binding the API server on {ul_addr} in the underlay"))?;
    let underlay = tokio::net::TcpListener::from_std(std_listener)?;
    tokio::spawn(server.clone().serve(root));
    tokio::spawn(server.serve(underlay));
    let context = format!("nodenet-lab-{}", shared.prefix);
    std::fs::write(
        shared.dirs.kubeconfig(),
        kubeconfig_yaml(&format!("http://{root_addr}"), &context),
    )?;
    std::fs::write(
        shared.dirs.underlay_kubeconfig(),
        kubeconfig_yaml(&format!("http://{ul_addr}"), &context),
    )?;
    *lock(&shared.api_addr) = Some(root_addr);
    Ok(root_addr)
}

/// Where the nodes reach the API server: 172.30.0.1:6443, or
/// [fd30::1]:6443 in an IPv6-only lab, so nodenet's API traffic is IPv6
/// like the rest of that cluster.
fn underlay_api_addr(cfg: &LabConfig) -> SocketAddr {
    let ip: IpAddr = if cfg.ipv6_only {
        topology::UNDERLAY_GATEWAY_V6.into()
    } else {
        topology::UNDERLAY_GATEWAY.into()
    };
    SocketAddr::new(ip, topology::UNDERLAY_API_PORT)
}

/// A node's InternalIPs (and `--node-ip`s): see [`LabConfig::node_ips`].
fn internal_ips(shared: &Shared, node: &topology::NodeNet) -> Vec<IpAddr> {
    shared.cfg.node_ips(&topology::node_ips(node))
}

fn node_ctx(shared: &Shared, node: &topology::NodeNet, client: kube::Client) -> NodeCtx {
    let nd = shared.dirs.node(&node.name);
    let node_ips = internal_ips(shared, node);
    NodeCtx {
        prefix: shared.prefix.clone(),
        node_name: node.name.clone(),
        node_ip: node_ips.first().copied().unwrap_or(topology::node_ip(node)),
        node_ips,
        node_netns: node.netns.clone(),
        dirs: shared.dirs.clone(),
        cni: CniRuntime {
            conf_dir: nd.cni_conf.clone(),
            bin_dir: nd.cni_bin.clone(),
            node_netns: netns::path(&node.netns),
        },
        dns: if shared.cfg.ipv6_only {
            ClusterDns::ipv6_only()
        } else if shared.cfg.dual_stack {
            ClusterDns::dual_stack()
        } else {
            ClusterDns::default()
        },
        client,
        registry: shared.registry.clone(),
        created_netns: shared.created_netns.clone(),
    }
}

fn nodenet_spec(shared: &Shared, node: &str) -> anyhow::Result<NodenetSpec> {
    let n = shared
        .topo
        .node(node)
        .with_context(|| format!("no node {node} in this lab"))?;
    Ok(NodenetSpec {
        bin: shared.cfg.nodenet_bin.clone(),
        kubeconfig: shared.dirs.underlay_kubeconfig(),
        node_name: n.name.clone(),
        node_ips: internal_ips(shared, n),
        // An IPv6-only lab is run as a dual-stack one (upstream resolvers
        // on both underlay addresses) whose address flags the IPv6-only
        // arguments override (the spec leaves flags a test set alone).
        dual_stack: shared.cfg.underlay_ipv6(),
        netns: n.netns.clone(),
        dirs: shared.dirs.node(&n.name),
        extra_args: with_overrides(
            shared
                .cfg
                .ipv6_only_args()
                .into_iter()
                .chain(shared.cfg.nodenet_args.iter().cloned()),
            lock(&shared.arg_overrides).get(node),
        ),
    })
}

/// `args` without the flags `overrides` sets, then `overrides`.
fn with_overrides(
    args: impl Iterator<Item = String>,
    overrides: Option<&Vec<String>>,
) -> Vec<String> {
    let Some(overrides) = overrides else {
        return args.collect();
    };
    let flag = |a: &str| a.split('=').next().unwrap_or_default().to_string();
    let replaced: BTreeSet<String> = overrides.iter().map(|a| flag(a)).collect();
    args.filter(|a| !replaced.contains(&flag(a)))
        .chain(overrides.iter().cloned())
        .collect()
}

fn spawn_nodenet(shared: &Shared, node: &str) -> anyhow::Result<()> {
    let spec = nodenet_spec(shared, node)?;
    let child = spec
        .spawn(&shared.registry)
        .with_context(|| format!("starting nodenet on {node}"))?;
    lock(&shared.nodenet).insert(node.to_string(), child);
    Ok(())
}

fn restart_blocking(shared: &Shared, node: &str) -> anyhow::Result<()> {
    if let Some(mut child) = lock(&shared.nodenet).remove(node) {
        nodenet::stop(&mut child, &shared.registry, STOP_GRACE);
    }
    spawn_nodenet(shared, node)
}

/// Stops everything and removes namespaces and files; returns the problems
/// met (teardown keeps going). Order: tasks first so nothing new starts,
/// then processes (a namespace cannot die while a process holds it), then
/// namespaces, then files.
fn teardown(shared: &Shared, runtime: Option<tokio::runtime::Runtime>) -> Vec<String> {
    if let Some(rt) = runtime {
        rt.shutdown_background();
    }
    for (_, mut child) in std::mem::take(&mut *lock(&shared.nodenet)) {
        nodenet::stop(&mut child, &shared.registry, STOP_GRACE);
    }
    if let Some(upstream) = lock(&shared.upstream).take() {
        upstream.stop(&shared.registry);
    }
    teardown_by_prefix(&shared.prefix, &shared.registry.entries())
}

/// Teardown that needs nothing but the prefix and recorded PIDs (also used
/// by `nodenet-lab down` after the lab process died).
pub fn teardown_by_prefix(prefix: &str, recorded: &[procs::ProcEntry]) -> Vec<String> {
    let mut errors = Vec::new();
    procs::stop_all(recorded, STOP_GRACE);
    let names = netns::list_with_prefix(&format!("{prefix}-"));
    let inodes: Vec<u64> = names
        .iter()
        .filter_map(|n| netns::inode(&netns::path(n)))
        .collect();
    let stray: Vec<procs::ProcEntry> = procs::in_namespaces(&inodes)
        .into_iter()
        .map(|pid| procs::ProcEntry {
            pid,
            start_time: procs::start_time(pid).unwrap_or(0),
            group: false,
            role: "stray".into(),
        })
        .collect();
    procs::stop_all(&stray, Duration::from_millis(500));
    let (_, ns_errors) = topology::teardown(prefix);
    errors.extend(ns_errors.iter().map(|e| e.to_string()));
    let dir = LabDirs::for_prefix(prefix);
    if dir.root().exists()
        && let Err(e) = std::fs::remove_dir_all(dir.root())
    {
        errors.push(format!("removing {}: {e}", dir.root().display()));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::with_overrides;

    #[test]
    fn overrides_replace_the_flags_they_set_and_keep_the_rest() {
        let base = [
            "--flannel-backend=vxlan",
            "--flannel-ipv6-masq",
            "--cluster-cidr=fd42::/56",
        ]
        .map(String::from);
        let overrides = ["--flannel-backend=host-gw", "--cluster-cidr=10.42.0.0/16"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            with_overrides(base.clone().into_iter(), Some(&overrides)),
            [
                "--flannel-ipv6-masq",
                "--flannel-backend=host-gw",
                "--cluster-cidr=10.42.0.0/16"
            ]
        );
        assert_eq!(with_overrides(base.clone().into_iter(), None), base);
    }
}
