//! Istio's standard metrics, with Istio's names and labels, on the proxy's
//! `/metrics`.
//!
//! Recording takes no lock: each label set's series is found in an
//! `ArcSwap`ed map (a new series is added by copy-on-write, which happens
//! once per label set) and holds plain atomics. Label values that do not
//! change per request (this proxy's identity, each endpoint's workload) are
//! built once per configuration as shared strings, so building a label set
//! clones reference counts, not text.

use std::sync::Arc;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use weft_model::{Endpoint, ProxyIdentity};

use crate::telemetry::metric_tags::TagPlan;
use crate::telemetry::Text;

fn text(s: &str) -> Text {
    Arc::new(if s.is_empty() {
        "unknown".to_owned()
    } else {
        s.to_owned()
    })
}

/// One side of a request (source or destination), as Istio labels it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub workload: Text,
    pub namespace: Text,
    pub principal: Text,
    pub app: Text,
    pub version: Text,
}

impl Peer {
    pub fn unknown() -> Peer {
        let u = text("");
        Peer {
            workload: u.clone(),
            namespace: u.clone(),
            principal: u.clone(),
            app: u.clone(),
            version: u,
        }
    }

    pub fn of_proxy(p: &ProxyIdentity) -> Peer {
        Peer {
            workload: text(&p.workload),
            namespace: text(&p.namespace),
            principal: text(&p.spiffe_id),
            app: text(p.labels.get("app").map_or("", String::as_str)),
            version: text(p.labels.get("version").map_or("", String::as_str)),
        }
    }

    pub fn of_endpoint(e: &Endpoint) -> Peer {
        Peer {
            workload: text(&e.workload),
            namespace: text(&e.namespace),
            principal: text(&e.identity),
            app: text(e.labels.get("app").map_or("", String::as_str)),
            version: text(e.labels.get("version").map_or("", String::as_str)),
        }
    }
}

/// `destination_service`, `_name`, `_namespace` from a service host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceNames {
    pub service: Text,
    pub name: Text,
    pub namespace: Text,
}

impl ServiceNames {
    pub fn of(host: &str) -> ServiceNames {
        let mut parts = host.split('.');
        let name = parts.next().unwrap_or("");
        let ns = if host.contains(".svc.") {
            parts.next().unwrap_or("")
        } else {
            ""
        };
        ServiceNames {
            service: text(host),
            name: text(name),
            namespace: text(ns),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_workload: Text,
    pub source_workload_namespace: Text,
    pub source_principal: Text,
    pub source_app: Text,
    pub source_version: Text,
    pub destination_workload: Text,
    pub destination_workload_namespace: Text,
    pub destination_principal: Text,
    pub destination_app: Text,
    pub destination_version: Text,
    pub destination_service: Text,
    pub destination_service_name: Text,
    pub destination_service_namespace: Text,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: Text,
    pub connection_security_policy: &'static str,
    /// Values the Telemetry tag overrides read from the request; `None`
    /// unless an override asks for one.
    pub request_tags: Option<Arc<[Text]>>,
}

impl RequestLabels {
    pub fn new(
        reporter: &'static str,
        source: &Peer,
        dest: &Peer,
        svc: &ServiceNames,
        outcome: Outcome,
    ) -> Self {
        RequestLabels {
            reporter,
            source_workload: source.workload.clone(),
            source_workload_namespace: source.namespace.clone(),
            source_principal: source.principal.clone(),
            source_app: source.app.clone(),
            source_version: source.version.clone(),
            destination_workload: dest.workload.clone(),
            destination_workload_namespace: dest.namespace.clone(),
            destination_principal: dest.principal.clone(),
            destination_app: dest.app.clone(),
            destination_version: dest.version.clone(),
            destination_service: svc.service.clone(),
            destination_service_name: svc.name.clone(),
            destination_service_namespace: svc.namespace.clone(),
            request_protocol: outcome.protocol,
            response_code: outcome.code,
            response_flags: outcome.flags,
            connection_security_policy: outcome.security,
            request_tags: None,
        }
    }
}

/// What happened to one request or connection, as labels.
pub struct Outcome {
    pub protocol: &'static str,
    pub code: u16,
    pub flags: Text,
    pub security: &'static str,
}

/// Istio's buckets for request and response sizes, in bytes.
const SIZE_BUCKETS: [f64; 8] = [
    1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0,
];

/// Istio's buckets for request durations, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// A histogram of atomics: per-bucket counts (not cumulative), a count and
/// a sum (an f64 kept in its bits).
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Per-bucket counts (the last is +Inf), not cumulative.
    fn counts(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// Everything recorded for one HTTP label set.
pub struct HttpSeries {
    pub requests: AtomicU64,
    pub duration: Histogram,
    pub request_bytes: Histogram,
    pub response_bytes: Histogram,
}

/// Everything recorded for one TCP label set.
#[derive(Default)]
pub struct TcpSeries {
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
}

type SeriesMap<T> = ArcSwap<HashMap<RequestLabels, Arc<T>>>;

/// Finds the series of `labels`, adding it on first use.
fn series<T>(map: &SeriesMap<T>, labels: &RequestLabels, make: impl Fn() -> T) -> Arc<T> {
    if let Some(s) = map.load().get(labels) {
        return s.clone();
    }
    let fresh = Arc::new(make());
    let mut found = fresh.clone();
    map.rcu(|m| {
        if let Some(s) = m.get(labels) {
            found = s.clone();
            return Arc::clone(m);
        }
        let mut next = HashMap::clone(m);
        next.insert(labels.clone(), fresh.clone());
        found = fresh.clone();
        Arc::new(next)
    });
    found
}

pub struct Metrics {
    http: SeriesMap<HttpSeries>,
    tcp: SeriesMap<TcpSeries>,
    /// Requests the dry-run policies would have allowed or denied, by
    /// Envoy's shadow-rule stat names: `[allow engine, deny engine]` ×
    /// `[allowed, denied]`.
    pub dry_run: [[AtomicU64; 2]; 2],
    /// Shared `-` for requests without flags.
    pub no_flags: Text,
    /// A peer nothing is known about.
    pub unknown: Peer,
    /// When counting began (Unix milliseconds): a reader that started
    /// earlier saw every count happen, one that started later did not.
    started_unix_ms: u64,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            http: ArcSwap::from_pointee(HashMap::new()),
            tcp: ArcSwap::from_pointee(HashMap::new()),
            dry_run: Default::default(),
            no_flags: Arc::new("-".to_owned()),
            unknown: Peer::unknown(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    pub fn http(&self, labels: &RequestLabels) -> Arc<HttpSeries> {
        series(&self.http, labels, || HttpSeries {
            requests: AtomicU64::new(0),
            duration: Histogram::new(&DURATION_BUCKETS),
            request_bytes: Histogram::new(&SIZE_BUCKETS),
            response_bytes: Histogram::new(&SIZE_BUCKETS),
        })
    }

    pub fn tcp(&self, labels: &RequestLabels) -> Arc<TcpSeries> {
        series(&self.tcp, labels, TcpSeries::default)
    }

    /// The same series as JSON, for the control plane's graph: each HTTP
    /// label set with its request count and duration buckets
    /// (non-cumulative, Istio's bounds), each TCP one with its counters.
    pub fn snapshot(&self) -> serde_json::Value {
        let http: Vec<serde_json::Value> = self
            .http
            .load()
            .iter()
            .map(|(l, s)| {
                serde_json::json!({
                    "labels": l.to_json(),
                    "requests": s.requests.load(Ordering::Relaxed),
                    "durationBuckets": s.duration.counts(),
                    "durationSum": f64::from_bits(s.duration.sum.load(Ordering::Relaxed)),
                })
            })
            .collect();
        let tcp: Vec<serde_json::Value> = self
            .tcp
            .load()
            .iter()
            .map(|(l, s)| {
                serde_json::json!({
                    "labels": l.to_json(),
                    "opened": s.opened.load(Ordering::Relaxed),
                    "closed": s.closed.load(Ordering::Relaxed),
                    "sent": s.sent.load(Ordering::Relaxed),
                    "received": s.received.load(Ordering::Relaxed),
                })
            })
            .collect();
        serde_json::json!({
            "startedUnixMs": self.started_unix_ms,
            "durationBounds": DURATION_BUCKETS,
            "http": http,
            "tcp": tcp,
        })
    }

    /// The Prometheus text exposition (format 0.0.4), with the Telemetry
    /// tag overrides applied: series whose labels become equal are summed.
    pub fn render(&self, tags: &TagPlan) -> String {
        let mut out = String::new();
        let http = self.http.load();
        let tcp = self.tcp.load();
        let counter = |name: &str, pick: &dyn Fn(&HttpSeries) -> u64| {
            let mut agg: BTreeMap<String, u64> = BTreeMap::new();
            for (l, s) in http.iter() {
                *agg.entry(l.render(tags, name)).or_default() += pick(s);
            }
            agg
        };
        for (e, engine) in ["allow", "deny"].iter().enumerate() {
            for (r, result) in ["allowed", "denied"].iter().enumerate() {
                let name = format!("envoy_http_rbac_istio_dry_run_{engine}_shadow_{result}");
                let _ = writeln!(
                    out,
                    "# HELP {name} Requests the istio.io/dry-run {engine} policies would have {result}.\n# TYPE {name} counter\n{name} {}",
                    self.dry_run[e][r].load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(out, "# HELP istio_requests_total Requests handled by this proxy.\n# TYPE istio_requests_total counter");
        for (l, n) in counter("istio_requests_total", &|s| {
            s.requests.load(Ordering::Relaxed)
        }) {
            let _ = writeln!(out, "istio_requests_total{{{l}}} {n}");
        }
        for (name, help, pick) in [
            (
                "istio_request_duration_milliseconds",
                "Request duration.",
                (|s: &HttpSeries| &s.duration) as fn(&HttpSeries) -> &Histogram,
            ),
            (
                "istio_request_bytes",
                "Request body sizes.",
                |s: &HttpSeries| &s.request_bytes,
            ),
            (
                "istio_response_bytes",
                "Response body sizes.",
                |s: &HttpSeries| &s.response_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            let mut agg: BTreeMap<String, HistogramTotals> = BTreeMap::new();
            for (l, s) in http.iter() {
                let h = pick(s);
                agg.entry(l.render(tags, name))
                    .or_insert_with(|| HistogramTotals::new(h.bounds))
                    .add(h);
            }
            for (l, h) in &agg {
                h.render(&mut out, name, l);
            }
        }
        for (name, help, pick) in [
            (
                "istio_tcp_connections_opened_total",
                "TCP connections opened.",
                (|s: &TcpSeries| &s.opened) as fn(&TcpSeries) -> &AtomicU64,
            ),
            (
                "istio_tcp_connections_closed_total",
                "TCP connections closed.",
                |s: &TcpSeries| &s.closed,
            ),
            (
                "istio_tcp_sent_bytes_total",
                "Bytes sent to the client on TCP connections.",
                |s: &TcpSeries| &s.sent,
            ),
            (
                "istio_tcp_received_bytes_total",
                "Bytes received from the client on TCP connections.",
                |s: &TcpSeries| &s.received,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let mut agg: BTreeMap<String, u64> = BTreeMap::new();
            for (l, s) in tcp.iter() {
                *agg.entry(l.render(tags, name)).or_default() += pick(s).load(Ordering::Relaxed);
            }
            for (l, n) in agg {
                let _ = writeln!(out, "{name}{{{l}}} {n}");
            }
        }
        out
    }
}

/// A histogram's counts summed over the series that render alike.
struct HistogramTotals {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl HistogramTotals {
    fn new(bounds: &'static [f64]) -> Self {
        HistogramTotals {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn add(&mut self, h: &Histogram) {
        for (total, n) in self.counts.iter_mut().zip(h.counts()) {
            *total += n;
        }
        self.sum += f64::from_bits(h.sum.load(Ordering::Relaxed));
        self.count += h.count.load(Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RequestLabels {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "reporter": self.reporter,
            "source_workload": *self.source_workload,
            "source_workload_namespace": *self.source_workload_namespace,
            "source_principal": *self.source_principal,
            "source_app": *self.source_app,
            "source_version": *self.source_version,
            "destination_workload": *self.destination_workload,
            "destination_workload_namespace": *self.destination_workload_namespace,
            "destination_principal": *self.destination_principal,
            "destination_app": *self.destination_app,
            "destination_version": *self.destination_version,
            "destination_service": *self.destination_service,
            "destination_service_name": *self.destination_service_name,
            "destination_service_namespace": *self.destination_service_namespace,
            "request_protocol": self.request_protocol,
            "response_code": self.response_code,
            "response_flags": *self.response_flags,
            "connection_security_policy": self.connection_security_policy,
        })
    }

    /// `reporter="source",source_workload="…",…` in Istio's label names,
    /// after `metric`'s tag overrides.
    fn render(&self, tags: &TagPlan, metric: &str) -> String {
        let code = self.response_code.to_string();
        let mut labels: Vec<(&str, &str)> = vec![
            ("reporter", self.reporter),
            ("source_workload", &self.source_workload),
            ("source_workload_namespace", &self.source_workload_namespace),
            ("source_principal", &self.source_principal),
            ("source_app", &self.source_app),
            ("source_version", &self.source_version),
            ("destination_workload", &self.destination_workload),
            (
                "destination_workload_namespace",
                &self.destination_workload_namespace,
            ),
            ("destination_principal", &self.destination_principal),
            ("destination_app", &self.destination_app),
            ("destination_version", &self.destination_version),
            ("destination_service", &self.destination_service),
            ("destination_service_name", &self.destination_service_name),
            (
                "destination_service_namespace",
                &self.destination_service_namespace,
            ),
            ("request_protocol", self.request_protocol),
            ("response_flags", &self.response_flags),
            (
                "connection_security_policy",
                self.connection_security_policy,
            ),
            ("response_code", &code),
        ];
        tags.apply(metric, &mut labels, self.request_tags.as_deref());
        let mut out = String::with_capacity(512);
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(v));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_text_is_prometheus() {
        let m = Metrics::new();
        let p = Peer::unknown();
        let svc = ServiceNames::of("reviews.default.svc.cluster.local");
        let labels = RequestLabels::new(
            "source",
            &p,
            &p,
            &svc,
            Outcome {
                protocol: "http",
                code: 200,
                flags: m.no_flags.clone(),
                security: "unknown",
            },
        );
        let s = m.http(&labels);
        s.requests.fetch_add(2, Ordering::Relaxed);
        s.duration.observe(3.0);
        s.duration.observe(700.0);
        assert!(
            Arc::ptr_eq(&s, &m.http(&labels)),
            "one series per label set"
        );
        let text = m.render(&TagPlan::default());
        assert!(
            text.contains("istio_requests_total{reporter=\"source\","),
            "{text}"
        );
        assert!(text.contains(",le=\"5\"} 1\n"), "{text}");
        assert!(text.contains(",le=\"+Inf\"} 2\n"), "{text}");
        assert!(
            text.contains("istio_request_duration_milliseconds_sum{") && text.contains("} 703\n"),
            "{text}"
        );
    }
}
