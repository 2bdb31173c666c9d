//! Prometheus text exposition (format 0.0.4), rendered by hand: the daemon
//! exports a handful of gauges and counters.

use std::fmt::Write;
use std::sync::Arc;

use cluster::ReflectorStats;

use super::health::Health;

/// Where the metric values come from.
pub trait MetricsSource: Send + Sync {
    fn reflectors(&self) -> Vec<Arc<ReflectorStats>>;
}

/// Renders every metric.
pub fn render(health: &Health, source: &dyn MetricsSource) -> String {
    let mut out = String::new();
    build_info(&mut out);
    components(&mut out, health);
    reflectors(&mut out, &source.reflectors());
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
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
