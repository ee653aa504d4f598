//! Flagger's own metrics (`pkg/metrics/recorder.go`), under the same
//! names and labels, for the control plane's `/metrics`: the dashboards
//! and alerts written for Flagger read them unchanged.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use weft_canary::machine::{Outcome, Routes};
use weft_canary::settings::Settings;
use weft_canary::status::Phase;

/// Prometheus's default histogram buckets, which Flagger's duration uses.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Recorder {
    /// (target, namespace) → phase value.
    status: BTreeMap<(String, String), u8>,
    /// (workload, namespace) → weight.
    weight: BTreeMap<(String, String), u32>,
    /// (target, namespace, metric) → last value.
    analysis: BTreeMap<(String, String, String), f64>,
    /// (target, namespace, strategy, analysis status) → count.
    successes: BTreeMap<(String, String, String, String), u64>,
    failures: BTreeMap<(String, String, String, String), u64>,
    duration: BTreeMap<(String, String), Histogram>,
    /// namespace → canaries.
    total: BTreeMap<String, usize>,
}

impl Recorder {
    pub fn set_total(&mut self, total: BTreeMap<String, usize>) {
        self.total = total;
    }

    pub fn set_status(&mut self, s: &Settings, phase: Phase) {
        self.status.insert(
            (s.target.clone(), s.namespace.clone()),
            phase.metric_value(),
        );
    }

    pub fn set_weight(&mut self, s: &Settings, routes: Routes) {
        self.weight
            .insert((s.primary(), s.namespace.clone()), routes.primary);
        self.weight
            .insert((s.target.clone(), s.namespace.clone()), routes.canary);
    }

    pub fn set_analysis(&mut self, s: &Settings, metric: &str, value: f64) {
        self.analysis.insert(
            (s.target.clone(), s.namespace.clone(), metric.to_owned()),
            value,
        );
    }

    pub fn outcome(&mut self, s: &Settings, outcome: Outcome) {
        let status = if outcome == Outcome::Skipped {
            "skipped"
        } else {
            "completed"
        };
        let key = (
            s.target.clone(),
            s.namespace.clone(),
            s.strategy.label().to_owned(),
            status.to_owned(),
        );
        let map = if outcome == Outcome::Failed {
            &mut self.failures
        } else {
            &mut self.successes
        };
        *map.entry(key).or_default() += 1;
    }

    pub fn observe_duration(&mut self, s: &Settings, took: Duration) {
        let h = self
            .duration
            .entry((s.target.clone(), s.namespace.clone()))
            .or_default();
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let head = |o: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut o,
            "flagger_info",
            "gauge",
            "Flagger version and mesh provider information",
        );
        let _ = writeln!(
            o,
            "flagger_info{{mesh_provider=\"istio\",version=\"weft-{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        head(
            &mut o,
            "flagger_canary_total",
            "gauge",
            "Total number of canary object",
        );
        for (ns, n) in &self.total {
            let _ = writeln!(o, "flagger_canary_total{{namespace=\"{ns}\"}} {n}");
        }
        head(
            &mut o,
            "flagger_canary_status",
            "gauge",
            "Last canary analysis result",
        );
        for ((name, ns), v) in &self.status {
            let _ = writeln!(
                o,
                "flagger_canary_status{{name=\"{name}\",namespace=\"{ns}\"}} {v}"
            );
        }
        head(
            &mut o,
            "flagger_canary_weight",
            "gauge",
            "The virtual service destination weight current value",
        );
        for ((workload, ns), v) in &self.weight {
            let _ = writeln!(
                o,
                "flagger_canary_weight{{namespace=\"{ns}\",workload=\"{workload}\"}} {v}"
            );
        }
        head(
            &mut o,
            "flagger_canary_metric_analysis",
            "gauge",
            "Last canary analysis result per metric",
        );
        for ((name, ns, metric), v) in &self.analysis {
            let _ = writeln!(
                o,
                "flagger_canary_metric_analysis{{metric=\"{metric}\",name=\"{name}\",namespace=\"{ns}\"}} {v}"
            );
        }
        for (metric, help, map) in [
            (
                "flagger_canary_successes_total",
                "Total number of canary successes",
                &self.successes,
            ),
            (
                "flagger_canary_failures_total",
                "Total number of canary failures",
                &self.failures,
            ),
        ] {
            head(&mut o, metric, "counter", help);
            for ((name, ns, strategy, status), n) in map {
                let _ = writeln!(
                    o,
                    "{metric}{{analysis_status=\"{status}\",deployment_strategy=\"{strategy}\",name=\"{name}\",namespace=\"{ns}\"}} {n}"
                );
            }
        }
        head(
            &mut o,
            "flagger_canary_duration_seconds",
            "histogram",
            "Seconds spent performing canary analysis.",
        );
        for ((name, ns), h) in &self.duration {
            let labels = format!("name=\"{name}\",namespace=\"{ns}\"");
            for (b, c) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    o,
                    "flagger_canary_duration_seconds_bucket{{{labels},le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                o,
                "flagger_canary_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\nflagger_canary_duration_seconds_sum{{{labels}}} {}\nflagger_canary_duration_seconds_count{{{labels}}} {}",
                h.count, h.sum, h.count
            );
        }
        o
    }
}
