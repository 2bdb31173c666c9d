//! `nodenet-lab`: bring a named lab up in the background, take it down,
//! run commands in its pods, list labs.

use crate::config::LabConfig;
use crate::controllers::labels::fnv;
use crate::dirs::{LAB_ROOT, LabDirs};
use crate::lab::{Lab, client_for, pod_enter, teardown_by_prefix};
use crate::procs;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Pod;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "nodenet-lab",
    about = "A Kubernetes cluster of network namespaces running nodenet"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a lab, leave it running in the background, print its kubeconfig.
    Up {
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        #[arg(long, default_value = "demo")]
        name: String,
        /// Extra argument for every `nodenet run` (repeatable).
        #[arg(long = "nodenet-arg", allow_hyphen_values = true)]
        nodenet_args: Vec<String>,
        /// IPv6 too: underlay fd30::/64, pod networks 10.42.0.0/16 and fd42::/56.
        #[arg(long, conflicts_with = "ipv6_only")]
        dual_stack: bool,
        /// IPv6 only: pod network fd42::/56, services fd43::/112, Nodes
        /// with only their fd30::/64 address (the underlay keeps IPv4).
        #[arg(long)]
        ipv6_only: bool,
    },
    /// Run a lab in the foreground until SIGTERM/SIGINT (what `up` starts).
    Serve {
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        #[arg(long, default_value = "demo")]
        name: String,
        #[arg(long = "nodenet-arg", allow_hyphen_values = true)]
        nodenet_args: Vec<String>,
        #[arg(long, conflicts_with = "ipv6_only")]
        dual_stack: bool,
        #[arg(long)]
        ipv6_only: bool,
    },
    /// Remove every namespace, process and file of a lab.
    Down {
        #[arg(long, default_value = "demo")]
        name: String,
    },
    /// Run a command in a pod's (ns/pod) or a node's (node/node-1) network
    /// namespace: exec NAME TARGET -- argv...
    Exec {
        name: String,
        target: String,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
    /// List labs on this machine.
    Status,
}

/// The prefix of a named lab (stable, so `down --name` finds it).
pub fn prefix_for(name: &str) -> String {
    format!("nl{:06x}", fnv(name.as_bytes()) & 0xff_ffff)
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone)]
struct ServeState {
    name: String,
    prefix: String,
    pid: u32,
    start_time: u64,
    nodes: usize,
    kubeconfig: PathBuf,
    api: String,
}

fn serve_state_path(prefix: &str) -> PathBuf {
    LabDirs::for_prefix(prefix).root().join("serve.json")
}

fn read_state(prefix: &str) -> Option<ServeState> {
    serde_json::from_str(&std::fs::read_to_string(serve_state_path(prefix)).ok()?).ok()
}

fn serve_alive(st: &ServeState) -> bool {
    procs::start_time(st.pid as i32) == Some(st.start_time)
}

pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Up {
            nodes,
            name,
            nodenet_args,
            dual_stack,
            ipv6_only,
        } => {
            let shape = Shape {
                nodes,
                dual_stack,
                ipv6_only,
                nodenet_args,
            };
            up(&shape, &name).map(|()| 0)
        }
        Command::Serve {
            nodes,
            name,
            nodenet_args,
            dual_stack,
            ipv6_only,
        } => {
            let shape = Shape {
                nodes,
                dual_stack,
                ipv6_only,
                nodenet_args,
            };
            serve(shape, &name).await.map(|()| 0)
        }
        Command::Down { name } => down(&name).map(|()| 0),
        Command::Exec { name, target, argv } => exec(&name, &target, &argv).await,
        Command::Status => status().map(|()| 0),
    }
}

/// What `up` and `serve` build.
struct Shape {
    nodes: usize,
    dual_stack: bool,
    ipv6_only: bool,
    nodenet_args: Vec<String>,
}

fn up(shape: &Shape, name: &str) -> anyhow::Result<()> {
    let nodes = shape.nodes;
    let prefix = prefix_for(name);
    if let Some(st) = read_state(&prefix).filter(serve_alive) {
        bail!(
            "lab {name} is already running (pid {}); kubeconfig {}",
            st.pid,
            st.kubeconfig.display()
        );
    }
    // Leftovers of a crashed lab of the same name go first.
    teardown_by_prefix(&prefix, &procs::read(&LabDirs::for_prefix(&prefix).pids()));
    LabConfig::from_target_dir(nodes)?;
    let dirs = LabDirs::for_prefix(&prefix);
    std::fs::create_dir_all(LAB_ROOT)?;
    let started = Instant::now();
    let mut child = spawn_serve(shape, name, &dirs)?;
    loop {
        if let Some(st) = read_state(&prefix) {
            println!(
                "lab {name} is up ({nodes} nodes, prefix {prefix}) in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            println!("API server: {}", st.api);
            println!("export KUBECONFIG={}", st.kubeconfig.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dirs.serve_log()).unwrap_or_default();
            let _ = std::fs::remove_file(dirs.serve_log());
            bail!("lab {name} failed to start ({status}):\n{log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_serve(shape: &Shape, name: &str, dirs: &LabDirs) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dirs.serve_log())?;
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["serve", "--nodes", &shape.nodes.to_string(), "--name", name]);
    if shape.dual_stack {
        cmd.arg("--dual-stack");
    }
    if shape.ipv6_only {
        cmd.arg("--ipv6-only");
    }
    for a in &shape.nodenet_args {
        cmd.arg(format!("--nodenet-arg={a}"));
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid(2) only, so the lab survives the terminal that ran `up`.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    Ok(cmd.spawn()?)
}

async fn serve(shape: Shape, name: &str) -> anyhow::Result<()> {
    let nodes = shape.nodes;
    let mut cfg = LabConfig::from_target_dir(nodes)?;
    cfg.nodenet_args = shape.nodenet_args;
    cfg.dual_stack = shape.dual_stack;
    cfg.ipv6_only = shape.ipv6_only;
    let prefix = prefix_for(name);
    let lab = Lab::up_with_prefix(cfg, &prefix).await?;
    let pid = std::process::id();
    let st = ServeState {
        name: name.into(),
        prefix: prefix.clone(),
        pid,
        start_time: procs::start_time(pid as i32).unwrap_or(0),
        nodes,
        kubeconfig: lab.kubeconfig().to_path_buf(),
        api: format!("http://{}", lab.api_addr()),
    };
    let tmp = serve_state_path(&prefix).with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&st)?)?;
    std::fs::rename(&tmp, serve_state_path(&prefix))?;
    tracing::info!(lab = name, prefix = %prefix, "lab up");
    wait_for_stop().await?;
    lab.down().await
}

async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn down(name: &str) -> anyhow::Result<()> {
    let prefix = prefix_for(name);
    if let Some(st) = read_state(&prefix).filter(serve_alive) {
        // The serve process tears down its own lab; wait for it.
        // SAFETY: kill(2) on the recorded PID whose start time still matches.
        unsafe {
            libc::kill(st.pid as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while serve_alive(&st) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if serve_alive(&st) {
            // SAFETY: as above.
            unsafe {
                libc::kill(st.pid as i32, libc::SIGKILL);
            }
        }
    }
    let dirs = LabDirs::for_prefix(&prefix);
    let errors = teardown_by_prefix(&prefix, &procs::read(&dirs.pids()));
    let _ = std::fs::remove_file(dirs.serve_log());
    if !errors.is_empty() {
        bail!("lab {name}: {}", errors.join("; "));
    }
    println!("lab {name} (prefix {prefix}) is down: no namespace, process or file left");
    Ok(())
}

async fn exec(name: &str, target: &str, argv: &[String]) -> anyhow::Result<i32> {
    let prefix = prefix_for(name);
    let st = read_state(&prefix)
        .filter(serve_alive)
        .with_context(|| format!("lab {name} is not running"))?;
    let dirs = LabDirs::for_prefix(&prefix);
    let enter = match target.strip_prefix("node/") {
        Some(node) => node_enter(&prefix, node)?,
        None => pod_target_enter(&st, &prefix, &dirs, target).await?,
    };
    let args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = crate::kubelet::exec::run(&dirs, &enter, &args, Duration::from_secs(3600)).await?;
    use std::io::Write;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    Ok(out.status.code().unwrap_or(1))
}

/// `node/node-2`: the node's own network namespace.
fn node_enter(prefix: &str, node: &str) -> anyhow::Result<crate::netns::Enter> {
    let i = node
        .strip_prefix("node-")
        .with_context(|| format!("node names are node-<i>, not {node}"))?;
    let path = crate::netns::path(&format!("{prefix}-node-{i}"));
    if !path.exists() {
        bail!("lab has no node {node}");
    }
    Ok(crate::netns::Enter::netns(path))
}

/// `ns/pod` (or just `pod` in default): the pod's network namespace.
async fn pod_target_enter(
    st: &ServeState,
    prefix: &str,
    dirs: &LabDirs,
    target: &str,
) -> anyhow::Result<crate::netns::Enter> {
    let (ns, pod_name) = target.split_once('/').unwrap_or(("default", target));
    let addr = st.api.trim_start_matches("http://").parse()?;
    let api: kube::Api<Pod> = kube::Api::namespaced(client_for(addr)?, ns);
    let p = api
        .get(pod_name)
        .await
        .with_context(|| format!("pod {ns}/{pod_name}"))?;
    pod_enter(prefix, dirs, &p)
}

fn status() -> anyhow::Result<()> {
    let Ok(dir) = std::fs::read_dir(LAB_ROOT) else {
        println!("no labs");
        return Ok(());
    };
    for entry in dir.flatten().filter(|e| e.path().is_dir()) {
        let prefix = entry.file_name().to_string_lossy().to_string();
        match read_state(&prefix) {
            Some(st) => println!(
                "{}\tprefix={}\tnodes={}\t{}\tkubeconfig={}",
                st.name,
                prefix,
                st.nodes,
                if serve_alive(&st) {
                    "running"
                } else {
                    "dead (run down)"
                },
                st.kubeconfig.display()
            ),
            None => println!("?\tprefix={prefix}\tnot started by the CLI or still starting"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_only_is_a_flag_of_up_and_serve_and_excludes_dual_stack() {
        let cli = Cli::try_parse_from(["nodenet-lab", "up", "--ipv6-only"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Up {
                ipv6_only: true,
                dual_stack: false,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["nodenet-lab", "serve", "--ipv6-only"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Serve {
                ipv6_only: true,
                ..
            }
        ));
        let both = Cli::try_parse_from(["nodenet-lab", "up", "--ipv6-only", "--dual-stack"]);
        assert!(both.is_err(), "{both:?}");
    }
}
