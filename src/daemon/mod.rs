//! `nodenet run`: wires the API client, the shared reflectors, the
//! supervised components and the metrics listener, then waits for a signal.

mod components;
pub mod health;
pub mod http;
pub mod metrics;
pub mod supervisor;

use std::sync::Arc;

use cluster::{ReflectorStats, Reflectors};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use health::{ComponentStatus, Health};
use supervisor::{Backoff, Component};

/// Runs the daemon until SIGTERM or SIGINT. Shutdown leaves the dataplane
/// as it is: only `nodenet cleanup` removes kernel state.
pub async fn run(config: Config) -> anyhow::Result<()> {
    log_config(&config);
    components::log_plan(&config);
    components::release_disabled_dns(&config).await;
    let listener = TcpListener::bind(config.metrics_addr).await.map_err(|e| {
        anyhow::anyhow!("--metrics-addr {}: cannot listen: {e}", config.metrics_addr)
    })?;
    let client = cluster::client(config.kubeconfig.as_deref()).await?;
    let reflectors = Arc::new(Reflectors::new(client));
    let components::Built {
        components,
        metrics: component_metrics,
    } = components::build(&config, &reflectors);
    let (shutdown, stop) = watch::channel(false);
    let (health, mut tasks) = start_components(components, &stop);
    let state = Arc::new(http::State {
        health,
        metrics: Arc::new(RegistryMetrics {
            reflectors: reflectors.clone(),
            components: component_metrics,
        }),
    });
    tasks.spawn(http::serve(listener, state, stop));
    tracing::info!(addr = %config.metrics_addr, "serving /healthz, /readyz, /metrics");
    wait_for_signal().await?;
    tracing::info!("shutting down; the dataplane stays in place");
    shutdown.send_replace(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn log_config(config: &Config) {
    tracing::info!(
        node = %config.node_name,
        version = env!("CARGO_PKG_VERSION"),
        node_ips = ?config.node_ips,
        node_external_ips = ?config.node_external_ips,
        cluster_cidrs = ?config.cluster_cidrs,
        service_cidrs = ?config.service_cidrs,
        cluster_dns = ?config.cluster_dns,
        cluster_domain = %config.cluster_domain,
        "nodenet starting"
    );
}

fn start_components(
    components: Vec<Arc<dyn Component>>,
    stop: &watch::Receiver<bool>,
) -> (Health, JoinSet<()>) {
    let mut tasks = JoinSet::new();
    let mut statuses = Vec::new();
    for component in components {
        let status = Arc::new(ComponentStatus::new(component.name()));
        let run =
            supervisor::supervise(component, status.clone(), Backoff::default(), stop.clone());
        tasks.spawn(run);
        statuses.push(status);
    }
    (Health::new(statuses), tasks)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler =
        |kind, name| signal(kind).map_err(|e| anyhow::anyhow!("cannot handle {name}: {e}"));
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut int = handler(SignalKind::interrupt(), "SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

/// Metrics read from the live reflector registry and the components.
struct RegistryMetrics {
    reflectors: Arc<Reflectors>,
    components: Vec<Arc<dyn metrics::ComponentMetrics>>,
}

impl metrics::MetricsSource for RegistryMetrics {
    fn reflectors(&self) -> Vec<Arc<ReflectorStats>> {
        self.reflectors.stats()
    }

    fn render_components(&self, out: &mut String) {
        for component in &self.components {
            component.render(out);
        }
    }
}
