//! Prometheus text exposition (format 0.0.4), rendered by hand: the daemon
//! exports a handful of gauges and counters.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::ReflectorStats;
use netpol::apply::CounterSample;
use netpol::model::Direction;
use netpol::plan::Plan;
use tokio::sync::watch;

use super::health::Health;

/// Where the metric values come from.
pub trait MetricsSource: Send + Sync {
    fn reflectors(&self) -> Vec<Arc<ReflectorStats>>;
    /// Series that components export themselves (netpol counters, DNS).
    fn render_components(&self, _out: &mut String) {}
}

/// A component's own metric series, appended to /metrics.
pub trait ComponentMetrics: Send + Sync {
    fn render(&self, out: &mut String);
}

/// Renders every metric.
pub fn render(health: &Health, source: &dyn MetricsSource) -> String {
    let mut out = String::new();
    build_info(&mut out);
    components(&mut out, health);
    reflectors(&mut out, &source.reflectors());
    source.render_components(&mut out);
    if let Some(rss) = resident_bytes() {
        header(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {rss}");
    }
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn build_info(out: &mut String) {
    header(
        out,
        "nodenet_build_info",
        "gauge",
        "Build information; always 1.",
    );
    let version = escape(env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "nodenet_build_info{{version=\"{version}\"}} 1");
}

fn components(out: &mut String, health: &Health) {
    header(
        out,
        "nodenet_component_ready",
        "gauge",
        "1 when the component is ready.",
    );
    for c in health.components() {
        let _ = writeln!(
            out,
            "nodenet_component_ready{{component=\"{}\"}} {}",
            c.name(),
            u8::from(c.is_ready())
        );
    }
    header(
        out,
        "nodenet_component_restarts_total",
        "counter",
        "Restarts after a failed run.",
    );
    for c in health.components() {
        let _ = writeln!(
            out,
            "nodenet_component_restarts_total{{component=\"{}\"}} {}",
            c.name(),
            c.restarts()
        );
    }
}

/// name, type, help, value of one reflector series.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&ReflectorStats) -> u64,
);

fn reflectors(out: &mut String, stats: &[Arc<ReflectorStats>]) {
    let series: [Series; 3] = [
        (
            "nodenet_reflector_events_total",
            "counter",
            "Watch events applied to the shared store.",
            |s| s.events(),
        ),
        (
            "nodenet_reflector_errors_total",
            "counter",
            "List/watch failures (retried with backoff).",
            |s| s.errors(),
        ),
        (
            "nodenet_reflector_ready",
            "gauge",
            "1 once the first full list is stored.",
            |s| u64::from(s.ready()),
        ),
    ];
    for (name, kind, help, value) in series {
        header(out, name, kind, help);
        for s in stats {
            let _ = writeln!(out, "{name}{{kind=\"{}\"}} {}", escape(&s.kind), value(s));
        }
    }
}

/// How old cached netpol counters may be: a scrape never runs nft itself
/// (rendering is synchronous on an async worker), it reads this cache.
const NETPOL_CACHE: Duration = Duration::from_secs(5);

/// Per-policy allow/deny counters of the live netpol table, read off the
/// async workers by a background task and cached.
pub struct NetpolCounters {
    cache: Mutex<Vec<CounterSample>>,
    /// Set by a scrape, cleared by a refresh: nft only runs while someone
    /// reads /metrics (and after every new plan).
    wanted: AtomicBool,
}

impl NetpolCounters {
    /// Follows the counters of the plans `plans` announces, refreshing
    /// them in the background; must run inside the runtime.
    pub fn start(plans: watch::Receiver<Option<Arc<Plan>>>) -> Arc<NetpolCounters> {
        let counters = Arc::new(NetpolCounters {
            cache: Mutex::new(Vec::new()),
            wanted: AtomicBool::new(true),
        });
        tokio::spawn(counters.clone().refresh_loop(plans));
        counters
    }

    fn scraped(&self) -> Vec<CounterSample> {
        self.wanted.store(true, Ordering::Relaxed);
        self.cache.lock().map(|c| c.clone()).unwrap_or_default()
    }

    async fn refresh_loop(self: Arc<Self>, mut plans: watch::Receiver<Option<Arc<Plan>>>) {
        let mut tick = tokio::time::interval(NETPOL_CACHE);
        loop {
            tokio::select! {
                changed = plans.changed() => if changed.is_err() { return },
                _ = tick.tick() => if !self.wanted.swap(false, Ordering::Relaxed) { continue },
            }
            let plan = plans.borrow().clone();
            let samples = read(plan).await;
            match samples {
                Ok(samples) => {
                    if let Ok(mut cache) = self.cache.lock() {
                        *cache = samples;
                    }
                }
                Err(err) => {
                    tracing::warn!(component = "netpol", error = %err, "cannot read counters")
                }
            }
        }
    }
}

impl ComponentMetrics for NetpolCounters {
    fn render(&self, out: &mut String) {
        netpol_series(out, &self.scraped());
    }
}

/// The DNS component's CoreDNS-named series.
pub struct DnsMetrics(pub Arc<dns::metrics::Metrics>);

impl ComponentMetrics for DnsMetrics {
    fn render(&self, out: &mut String) {
        self.0.render_metrics(out);
    }
}

/// The live values of `plan`'s counters, read on the blocking pool.
async fn read(plan: Option<Arc<Plan>>) -> Result<Vec<CounterSample>, String> {
    let Some(plan) = plan else {
        return Ok(Vec::new());
    };
    match tokio::task::spawn_blocking(move || netpol::apply::read_counters(&plan)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// name, help, value of one netpol counter series.
type NetpolSeries = (&'static str, &'static str, fn(&CounterSample) -> u64);

fn netpol_series(out: &mut String, samples: &[CounterSample]) {
    let series: [NetpolSeries; 2] = [
        (
            "nodenet_netpol_packets_total",
            "Packets allowed or rejected per NetworkPolicy and direction (policy=\"\": pods not known yet).",
            |s| s.packets,
        ),
        (
            "nodenet_netpol_bytes_total",
            "Bytes allowed or rejected per NetworkPolicy and direction.",
            |s| s.bytes,
        ),
    ];
    for (name, help, value) in series {
        header(out, name, "counter", help);
        for s in samples {
            let direction = match s.direction {
                Some(Direction::Ingress) => "ingress",
                Some(Direction::Egress) => "egress",
                None => "",
            };
            let _ = writeln!(
                out,
                "{name}{{policy=\"{}\",direction=\"{direction}\",verdict=\"{}\"}} {}",
                escape(&s.policy),
                s.verdict,
                value(s)
            );
        }
    }
}

/// Label value escaping per the exposition format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Resident set size from VmRSS in /proc/self/status (kB). /proc/self/statm
/// has the same figure in pages, but would need the page size (sysconf).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::health::ComponentStatus;

    struct NoReflectors;
    impl MetricsSource for NoReflectors {
        fn reflectors(&self) -> Vec<Arc<ReflectorStats>> {
            Vec::new()
        }
    }

    #[test]
    fn renders_component_series() {
        let flannel = Arc::new(ComponentStatus::new("flannel"));
        flannel.ready_handle().send_replace(true);
        flannel.record_failure("boom".into());
        flannel.ready_handle().send_replace(true);
        let text = render(&Health::new(vec![flannel]), &NoReflectors);
        assert!(
            text.contains("nodenet_component_ready{component=\"flannel\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("nodenet_component_restarts_total{component=\"flannel\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE nodenet_component_restarts_total counter\n"));
        assert!(
            text.contains("nodenet_build_info{version=\"0.1.0\"} 1\n"),
            "{text}"
        );
        let rss = text
            .lines()
            .find(|l| l.starts_with("process_resident_memory_bytes "));
        let value: u64 = rss
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|v| v.parse().ok())
            .expect("rss");
        assert!(value > 0);
    }

    #[test]
    fn vm_rss_is_parsed_in_bytes() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn netpol_counters_have_policy_direction_and_verdict() {
        let sample = |policy: &str, direction, verdict, packets| CounterSample {
            policy: policy.into(),
            direction,
            verdict,
            packets,
            bytes: packets * 60,
        };
        let samples = [
            sample("x/deny-all", Some(Direction::Ingress), "deny", 3),
            sample("x/web", Some(Direction::Egress), "allow", 5),
            sample("", None, "deny", 1),
        ];
        let mut text = String::new();
        netpol_series(&mut text, &samples);
        for line in [
            "# TYPE nodenet_netpol_packets_total counter",
            "nodenet_netpol_packets_total{policy=\"x/deny-all\",direction=\"ingress\",verdict=\"deny\"} 3",
            "nodenet_netpol_packets_total{policy=\"x/web\",direction=\"egress\",verdict=\"allow\"} 5",
            "nodenet_netpol_packets_total{policy=\"\",direction=\"\",verdict=\"deny\"} 1",
            "nodenet_netpol_bytes_total{policy=\"x/web\",direction=\"egress\",verdict=\"allow\"} 300",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
