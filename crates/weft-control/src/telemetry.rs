//! The mesh's traffic as the dashboard shows it, computed from the
//! proxies' own metrics: the control plane polls each proxy's
//! `/stats/json` (the same series `/metrics` exposes to Prometheus) and
//! keeps a window of samples, from which it derives request rates, error
//! ratios and latency percentiles per edge.
//!
//! Each request is counted once: by the destination's proxy
//! (`reporter="destination"`, which also knows whether it arrived over
//! mTLS), or by the source's proxy when the destination has none.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};

/// How far back the dashboard can look.
pub const KEEP: Duration = Duration::from_secs(30 * 60);

/// One edge of traffic: who called which service, served by whom.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EdgeKey {
    pub src_ns: String,
    pub src_workload: String,
    pub src_app: String,
    pub src_version: String,
    pub dst_ns: String,
    pub dst_workload: String,
    pub dst_app: String,
    pub dst_version: String,
    /// The service host (`reviews.default.svc.cluster.local`).
    pub service: String,
    pub service_name: String,
    pub service_ns: String,
    pub protocol: String,
    pub mtls: bool,
}

#[derive(Debug, Clone, Default)]
struct Counters {
    requests: f64,
    errors: f64,
    /// Per duration bucket, not cumulative.
    buckets: Vec<f64>,
    tcp_bytes: f64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.tcp_bytes += o.tcp_bytes;
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0.0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }

    /// `self - earlier`, each part at least zero.
    fn since(&self, earlier: Option<&Counters>) -> Counters {
        let Some(e) = earlier else {
            return self.clone();
        };
        Counters {
            requests: (self.requests - e.requests).max(0.0),
            errors: (self.errors - e.errors).max(0.0),
            tcp_bytes: (self.tcp_bytes - e.tcp_bytes).max(0.0),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, b)| (b - e.buckets.get(i).copied().unwrap_or(0.0)).max(0.0))
                .collect(),
        }
    }
}

struct Sample {
    at: Instant,
    edges: HashMap<EdgeKey, Counters>,
}

/// What was last read from one proxy, to turn its counters (which restart
/// with the process) into ever-growing totals.
#[derive(Default)]
struct ProxyState {
    raw: HashMap<EdgeKey, Counters>,
    total: HashMap<EdgeKey, Counters>,
}

#[derive(Default)]
struct Inner {
    samples: VecDeque<Sample>,
    proxies: HashMap<String, ProxyState>,
    bounds: Vec<f64>,
}

pub struct Traffic {
    inner: Mutex<Inner>,
    /// When this began watching (Unix milliseconds).
    started_unix_ms: u64,
}

fn label<'a>(l: &'a Value, k: &str) -> &'a str {
    l[k].as_str().unwrap_or("unknown")
}

/// The edges one proxy's snapshot contributes.
fn edges_of(snapshot: &Value) -> HashMap<EdgeKey, Counters> {
    let mut out: HashMap<EdgeKey, Counters> = HashMap::new();
    for s in snapshot["http"].as_array().into_iter().flatten() {
        let l = &s["labels"];
        let reporter = label(l, "reporter");
        let dest_known = label(l, "destination_workload") != "unknown";
        // Counted once: by the destination, or by the source when the
        // destination has no proxy.
        if reporter != "destination" && dest_known {
            continue;
        }
        let code = l["response_code"].as_u64().unwrap_or(0);
        let requests = s["requests"].as_f64().unwrap_or(0.0);
        let key = key_of(l, label(l, "connection_security_policy") == "mutual_tls");
        let c = Counters {
            requests,
            errors: if code >= 500 { requests } else { 0.0 },
            buckets: s["durationBuckets"]
                .as_array()
                .map(|b| b.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
                .unwrap_or_default(),
            tcp_bytes: 0.0,
        };
        out.entry(key).or_default().add(&c);
    }
    for s in snapshot["tcp"].as_array().into_iter().flatten() {
        let l = &s["labels"];
        let key = key_of(l, false);
        let c = Counters {
            requests: s["opened"].as_f64().unwrap_or(0.0),
            tcp_bytes: s["sent"].as_f64().unwrap_or(0.0) + s["received"].as_f64().unwrap_or(0.0),
            ..Counters::default()
        };
        out.entry(key).or_default().add(&c);
    }
    out
}

fn key_of(l: &Value, mtls: bool) -> EdgeKey {
    let s = |k: &str| label(l, k).to_owned();
    EdgeKey {
        src_ns: s("source_workload_namespace"),
        src_workload: s("source_workload"),
        src_app: s("source_app"),
        src_version: s("source_version"),
        dst_ns: s("destination_workload_namespace"),
        dst_workload: s("destination_workload"),
        dst_app: s("destination_app"),
        dst_version: s("destination_version"),
        service: s("destination_service"),
        service_name: s("destination_service_name"),
        service_ns: s("destination_service_namespace"),
        protocol: s("request_protocol"),
        mtls,
    }
}

/// Istio's request-duration buckets' percentile, interpolated inside the
/// bucket as Prometheus's `histogram_quantile` does.
fn quantile(q: f64, bounds: &[f64], buckets: &[f64]) -> Option<f64> {
    let total: f64 = buckets.iter().sum();
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    let mut seen = 0.0;
    for (i, count) in buckets.iter().enumerate() {
        if seen + count >= target && *count > 0.0 {
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            let upper = bounds.get(i).copied().unwrap_or(lower);
            return Some(lower + (upper - lower) * (target - seen) / count);
        }
        seen += count;
    }
    bounds.last().copied()
}

/// How nodes are grouped, as Kiali's graph types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    VersionedApp,
    App,
    Workload,
    Service,
}

impl View {
    pub fn parse(s: &str) -> View {
        match s {
            "app" => View::App,
            "workload" => View::Workload,
            "service" => View::Service,
            _ => View::VersionedApp,
        }
    }
}

/// A node's id and what it shows.
fn node(view: View, ns: &str, workload: &str, app: &str, version: &str) -> (String, Value) {
    let unknown = workload == "unknown";
    let (id, label, kind) = match view {
        _ if unknown => ("unknown".to_owned(), "unknown".to_owned(), "unknown"),
        View::Workload | View::Service => (
            format!("wl:{ns}/{workload}"),
            workload.to_owned(),
            "workload",
        ),
        View::App if app != "unknown" => (format!("app:{ns}/{app}"), app.to_owned(), "app"),
        View::VersionedApp if app != "unknown" => (
            format!("vapp:{ns}/{app}/{version}"),
            if version == "unknown" {
                app.to_owned()
            } else {
                format!("{app} {version}")
            },
            "app",
        ),
        _ => (
            format!("wl:{ns}/{workload}"),
            workload.to_owned(),
            "workload",
        ),
    };
    let v = json!({"id": id, "label": label, "kind": kind, "namespace": ns, "workload": workload, "app": app, "version": version});
    (id, v)
}

fn service_node(e: &EdgeKey) -> (String, Value) {
    let id = format!("svc:{}", e.service);
    let label = if e.service_name == "unknown" {
        e.service.clone()
    } else {
        e.service_name.clone()
    };
    let v = json!({"id": id, "label": label, "kind": "service", "namespace": e.service_ns, "service": e.service});
    (id, v)
}

/// Kiali's health thresholds on the error ratio.
fn health(requests: f64, errors: f64) -> &'static str {
    if requests <= 0.0 {
        "idle"
    } else if errors / requests > 0.10 {
        "failing"
    } else if errors / requests > 0.001 {
        "degraded"
    } else {
        "healthy"
    }
}

#[derive(Default)]
struct Agg {
    requests: f64,
    errors: f64,
    buckets: Vec<f64>,
    tcp_bytes: f64,
    mtls: bool,
    protocols: std::collections::BTreeSet<String>,
}

impl Agg {
    fn add(&mut self, c: &Counters, e: &EdgeKey) {
        self.requests += c.requests;
        self.errors += c.errors;
        self.tcp_bytes += c.tcp_bytes;
        if self.buckets.len() < c.buckets.len() {
            self.buckets.resize(c.buckets.len(), 0.0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&c.buckets) {
            *a += b;
        }
        self.mtls |= e.mtls;
        self.protocols.insert(e.protocol.clone());
    }
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic::new()
    }
}

impl Traffic {
    /// Starts from an empty sample: counts a proxy made after this
    /// began (it started later) are traffic of the first interval, even
    /// when they came before the first time the proxy was read.
    pub fn new() -> Traffic {
        let mut inner = Inner::default();
        inner.samples.push_back(Sample {
            at: Instant::now(),
            edges: HashMap::new(),
        });
        Traffic {
            inner: Mutex::new(inner),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }

    /// Records one round of snapshots, one per proxy (by name).
    pub fn record(&self, snapshots: Vec<(String, Value)>) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        for (proxy, snap) in snapshots {
            if let Some(b) = snap["durationBounds"].as_array() {
                inner.bounds = b.iter().filter_map(Value::as_f64).collect();
            }
            let raw = edges_of(&snap);
            // A proxy first read now: what it counted before is this
            // interval's traffic if it started after this began watching,
            // history otherwise (a control plane restarted under
            // long-running proxies must not show hours as one spike).
            let first_read = !inner.proxies.contains_key(&proxy);
            let counted_before_us = snap["startedUnixMs"]
                .as_u64()
                .is_none_or(|started| started < self.started_unix_ms);
            let state = inner.proxies.entry(proxy).or_default();
            if first_read && counted_before_us {
                state.raw = raw;
                continue;
            }
            for (k, now) in &raw {
                let before = state.raw.get(k);
                // A counter that went down means the proxy restarted.
                let delta = match before {
                    Some(b) if now.requests >= b.requests => now.since(Some(b)),
                    _ => now.clone(),
                };
                state.total.entry(k.clone()).or_default().add(&delta);
            }
            state.raw = raw;
        }
        let mut edges: HashMap<EdgeKey, Counters> = HashMap::new();
        for state in inner.proxies.values() {
            for (k, c) in &state.total {
                edges.entry(k.clone()).or_default().add(c);
            }
        }
        let now = Instant::now();
        inner.samples.push_back(Sample { at: now, edges });
        while inner
            .samples
            .front()
            .is_some_and(|s| now.duration_since(s.at) > KEEP)
        {
            inner.samples.pop_front();
        }
    }

    /// The graph over the last `window`: nodes (with health) and edges
    /// (requests/s, error %, p95 ms, mTLS).
    pub fn graph(&self, window: Duration, view: View) -> Value {
        let Ok(inner) = self.inner.lock() else {
            return json!({"nodes": [], "edges": []});
        };
        let Some(last) = inner.samples.back() else {
            return json!({"nodes": [], "edges": [], "window": window.as_secs()});
        };
        let first = inner
            .samples
            .iter()
            .find(|s| last.at.duration_since(s.at) <= window)
            .unwrap_or(last);
        let secs = last.at.duration_since(first.at).as_secs_f64();
        let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
        let mut edges: BTreeMap<(String, String), Agg> = BTreeMap::new();
        let mut inbound: HashMap<String, (f64, f64)> = HashMap::new();
        for (k, c) in &last.edges {
            let d = c.since(first.edges.get(k));
            if d.requests <= 0.0 && d.tcp_bytes <= 0.0 {
                continue;
            }
            let (src, src_v) = node(view, &k.src_ns, &k.src_workload, &k.src_app, &k.src_version);
            let (svc, svc_v) = service_node(k);
            nodes.entry(src.clone()).or_insert(src_v);
            nodes.entry(svc.clone()).or_insert(svc_v);
            edges.entry((src, svc.clone())).or_default().add(&d, k);
            let inb = inbound.entry(svc.clone()).or_default();
            inb.0 += d.requests;
            inb.1 += d.errors;
            if view != View::Service && k.dst_workload != "unknown" {
                let (dst, dst_v) =
                    node(view, &k.dst_ns, &k.dst_workload, &k.dst_app, &k.dst_version);
                nodes.entry(dst.clone()).or_insert(dst_v);
                let inb = inbound.entry(dst.clone()).or_default();
                inb.0 += d.requests;
                inb.1 += d.errors;
                edges.entry((svc, dst)).or_default().add(&d, k);
            }
        }
        let per = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        let nodes: Vec<Value> = nodes
            .into_iter()
            .map(|(id, mut v)| {
                let (r, e) = inbound.get(&id).copied().unwrap_or_default();
                v["health"] = json!(health(r, e));
                v["inboundRps"] = json!(per(r));
                v["errorPercent"] = json!(if r > 0.0 { 100.0 * e / r } else { 0.0 });
                v
            })
            .collect();
        let edges: Vec<Value> = edges
            .into_iter()
            .map(|((s, t), a)| {
                json!({
                    "id": format!("{s}->{t}"),
                    "source": s,
                    "target": t,
                    "rps": per(a.requests),
                    "errorPercent": if a.requests > 0.0 { 100.0 * a.errors / a.requests } else { 0.0 },
                    "p95Ms": quantile(0.95, &inner.bounds, &a.buckets),
                    "tcpBytesPerSecond": per(a.tcp_bytes),
                    "mtls": a.mtls,
                    "protocol": a.protocols.into_iter().collect::<Vec<_>>().join(","),
                    "health": health(a.requests, a.errors),
                })
            })
            .collect();
        json!({"window": window.as_secs(), "measuredSeconds": secs, "nodes": nodes, "edges": edges})
    }

    /// A node's traffic over time: per sample interval, its inbound and
    /// outbound requests/s, error % and p95.
    pub fn series(&self, id: &str, window: Duration) -> Value {
        let Ok(inner) = self.inner.lock() else {
            return json!({});
        };
        let Some(last) = inner.samples.back() else {
            return json!({"points": []});
        };
        let matches = |k: &EdgeKey, dst: bool| -> bool {
            let (ns, wl, app, ver) = if dst {
                (&k.dst_ns, &k.dst_workload, &k.dst_app, &k.dst_version)
            } else {
                (&k.src_ns, &k.src_workload, &k.src_app, &k.src_version)
            };
            if let Some(svc) = id.strip_prefix("svc:") {
                return dst && k.service == svc;
            }
            [View::VersionedApp, View::App, View::Workload]
                .iter()
                .any(|v| node(*v, ns, wl, app, ver).0 == id)
        };
        let samples: Vec<&Sample> = inner
            .samples
            .iter()
            .filter(|s| last.at.duration_since(s.at) <= window)
            .collect();
        let mut points = Vec::new();
        for pair in samples.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let dt = b.at.duration_since(a.at).as_secs_f64();
            if dt <= 0.0 {
                continue;
            }
            let mut inb = Agg::default();
            let mut out = Agg::default();
            for (k, c) in &b.edges {
                let d = c.since(a.edges.get(k));
                if matches(k, true) {
                    inb.add(&d, k);
                }
                if matches(k, false) {
                    out.add(&d, k);
                }
            }
            let ago = last.at.duration_since(b.at).as_secs_f64();
            let pct = |a: &Agg| {
                if a.requests > 0.0 {
                    100.0 * a.errors / a.requests
                } else {
                    0.0
                }
            };
            points.push(json!({
                "secondsAgo": ago,
                "inboundRps": inb.requests / dt,
                "inboundErrorPercent": pct(&inb),
                "inboundP95Ms": quantile(0.95, &inner.bounds, &inb.buckets),
                "outboundRps": out.requests / dt,
                "outboundErrorPercent": pct(&out),
                "outboundP95Ms": quantile(0.95, &inner.bounds, &out.buckets),
            }));
        }
        json!({"id": id, "points": points})
    }
}

/// A workload's inbound HTTP requests over a window, as its own proxy
/// counted them (Istio's `reporter="destination"`).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadTraffic {
    pub requests: f64,
    /// Those answered 5xx.
    pub errors: f64,
    /// The 99th percentile of their durations, in milliseconds.
    pub p99_ms: Option<f64>,
}

impl Traffic {
    /// What reached `namespace/workload` over the last `window` (less
    /// when watching began later), as Prometheus's `rate(…[window])`
    /// would see it.
    pub fn workload_traffic(
        &self,
        namespace: &str,
        workload: &str,
        window: Duration,
    ) -> WorkloadTraffic {
        let mut out = WorkloadTraffic {
            requests: 0.0,
            errors: 0.0,
            p99_ms: None,
        };
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        let Some(last) = inner.samples.back() else {
            return out;
        };
        let first = inner
            .samples
            .iter()
            .find(|s| last.at.duration_since(s.at) <= window)
            .unwrap_or(last);
        let mut buckets: Vec<f64> = Vec::new();
        for (k, c) in &last.edges {
            if k.dst_ns != namespace || k.dst_workload != workload || k.protocol == "tcp" {
                continue;
            }
            let d = c.since(first.edges.get(k));
            out.requests += d.requests;
            out.errors += d.errors;
            if buckets.len() < d.buckets.len() {
                buckets.resize(d.buckets.len(), 0.0);
            }
            for (a, b) in buckets.iter_mut().zip(&d.buckets) {
                *a += b;
            }
        }
        out.p99_ms = quantile(0.99, &inner.bounds, &buckets);
        out
    }
}

/// Reads `/stats/json` from each proxy admin address, together, each
/// within a second; proxies that do not answer are left out of this round.
pub async fn scrape(proxies: Vec<(String, SocketAddr)>) -> Vec<(String, Value)> {
    let fetches: Vec<_> = proxies
        .into_iter()
        .map(|(name, addr)| {
            tokio::spawn(async move {
                let r = tokio::time::timeout(Duration::from_secs(1), get_json(addr)).await;
                (name, r.ok().flatten())
            })
        })
        .collect();
    let mut out = Vec::new();
    for f in fetches {
        if let Ok((name, Some(v))) = f.await {
            out.push((name, v));
        }
    }
    out
}

async fn get_json(addr: SocketAddr) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /stats/json HTTP/1.0\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.take(64 << 20).read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A proxy's snapshot; it started after the control plane did.
    fn snap(requests: u64, code: u16, reporter: &str, dst: &str) -> Value {
        snap_of_proxy_started_at(requests, code, reporter, dst, u64::MAX)
    }

    fn snap_of_proxy_started_at(
        requests: u64,
        code: u16,
        reporter: &str,
        dst: &str,
        started_unix_ms: u64,
    ) -> Value {
        json!({
            "startedUnixMs": started_unix_ms,
            "durationBounds": [1.0, 10.0, 100.0],
            "http": [{
                "labels": {
                    "reporter": reporter, "source_workload": "productpage-v1",
                    "source_workload_namespace": "default", "source_app": "productpage",
                    "source_version": "v1", "destination_workload": dst,
                    "destination_workload_namespace": "default", "destination_app": "reviews",
                    "destination_version": "v2",
                    "destination_service": "reviews.default.svc.cluster.local",
                    "destination_service_name": "reviews", "destination_service_namespace": "default",
                    "request_protocol": "http", "response_code": code, "response_flags": "-",
                    "connection_security_policy": if reporter == "destination" { "mutual_tls" } else { "unknown" },
                },
                "requests": requests,
                "durationBuckets": [0, requests, 0, 0],
            }],
            "tcp": [],
        })
    }

    #[test]
    fn a_workloads_traffic_is_what_its_own_proxy_counted_in_the_window() {
        let t = Traffic::new();
        t.record(vec![(
            "a".into(),
            snap(10, 200, "destination", "reviews-v2"),
        )]);
        std::thread::sleep(Duration::from_millis(20));
        let mut errors = snap(4, 503, "destination", "reviews-v2");
        errors["http"]
            .as_array_mut()
            .unwrap()
            .push(snap(30, 200, "destination", "reviews-v2")["http"][0].clone());
        t.record(vec![("a".into(), errors)]);
        let w = t.workload_traffic("default", "reviews-v2", Duration::from_secs(60));
        assert_eq!((w.requests, w.errors), (34.0, 4.0));
        assert!(w.p99_ms.is_some_and(|p| p > 1.0 && p <= 10.0), "{w:?}");
        let none = t.workload_traffic("default", "reviews-v3", Duration::from_secs(60));
        assert_eq!(none.requests, 0.0);
    }

    #[test]
    fn rates_errors_and_restarts() {
        let t = Traffic::new();
        t.record(vec![
            ("reviews".into(), snap(10, 200, "destination", "reviews-v2")),
            // The source's view of the same requests is not counted again.
            ("productpage".into(), snap(10, 200, "source", "reviews-v2")),
        ]);
        std::thread::sleep(Duration::from_millis(50));
        t.record(vec![(
            "reviews".into(),
            snap(30, 200, "destination", "reviews-v2"),
        )]);
        let g = t.graph(Duration::from_secs(60), View::VersionedApp);
        let edges = g["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 2, "{g}");
        let to_service = edges
            .iter()
            .find(|e| e["target"] == "svc:reviews.default.svc.cluster.local")
            .unwrap();
        assert!(to_service["rps"].as_f64().unwrap() > 0.0);
        assert_eq!(to_service["mtls"], true);
        let p95 = to_service["p95Ms"].as_f64().unwrap();
        assert!((1.0..=10.0).contains(&p95), "{p95}");
        // The proxy restarts: its counter starts again; the total still grows.
        std::thread::sleep(Duration::from_millis(50));
        t.record(vec![(
            "reviews".into(),
            snap(5, 200, "destination", "reviews-v2"),
        )]);
        let inner = t.inner.lock().unwrap();
        let last = inner.samples.back().unwrap();
        let total: f64 = last.edges.values().map(|c| c.requests).sum();
        assert_eq!(total, 35.0);
    }

    /// Requests made before the control plane first read a proxy are in
    /// the graph when the proxy started after the control plane (they
    /// happened while it watched), and not when it started before (a
    /// restarted control plane must not show a proxy's history as one
    /// burst).
    #[test]
    fn traffic_before_the_first_read_counts_only_if_the_proxy_is_newer() {
        let t = Traffic::new();
        let since = t.started_unix_ms;
        std::thread::sleep(Duration::from_millis(20));
        t.record(vec![
            (
                "new".into(),
                snap_of_proxy_started_at(7, 200, "destination", "reviews-v2", since + 1),
            ),
            (
                "old".into(),
                snap_of_proxy_started_at(1000, 200, "destination", "reviews-v3", since - 1),
            ),
        ]);
        let g = t.graph(Duration::from_secs(60), View::Workload);
        let edges = g["edges"].as_array().unwrap();
        let targets: Vec<&str> = edges.iter().filter_map(|e| e["target"].as_str()).collect();
        assert!(
            targets
                .iter()
                .any(|t| t.contains("reviews-v2") || t.starts_with("svc:")),
            "{g}"
        );
        let inner = t.inner.lock().unwrap();
        let total: f64 = inner
            .samples
            .back()
            .unwrap()
            .edges
            .values()
            .map(|c| c.requests)
            .sum();
        assert_eq!(total, 7.0, "only the newer proxy's counts are traffic");
    }

    #[test]
    fn health_follows_kialis_thresholds() {
        assert_eq!(health(0.0, 0.0), "idle");
        assert_eq!(health(1000.0, 0.0), "healthy");
        assert_eq!(health(1000.0, 2.0), "degraded");
        assert_eq!(health(100.0, 11.0), "failing");
    }
}
