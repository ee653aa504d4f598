//! The answers a canary's tick asks for, from the running mesh: the
//! built-in metrics from the proxies' own telemetry (what Flagger asks
//! Prometheus for with its Istio queries), and webhooks over HTTP with
//! Flagger's payload.

use std::io::{Read, Write};
use std::time::Duration;

use weft_api::types::flagger::{CanaryMetric, CanaryWebhook};
use weft_canary::judge::{self, MetricError, MetricKind};
use weft_canary::machine::Checks;
use weft_canary::settings::{Settings, DEFAULT_METRIC_INTERVAL};
use weft_canary::status::Phase;

use crate::telemetry::Traffic;

/// Flagger's webhook timeout when a hook names none.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Live<'a> {
    pub settings: &'a Settings,
    pub traffic: &'a Traffic,
    /// Services' endpoints: a webhook naming a mesh service
    /// (`http://loadtester.test/`) is called at one of them, as cluster
    /// DNS would send Flagger's call.
    pub registry: &'a weft_compile::registry::Registry,
    /// What the user asked with `weft canary`.
    pub manual: &'a super::manual::Manual,
    /// The spec hash the run is about (the payload's `checksum`).
    pub checksum: String,
    /// Divides every interval (tests only; 1 for users).
    pub time_scale: f64,
}

impl Live<'_> {
    fn window(&self, metric: &CanaryMetric) -> Duration {
        let text = metric
            .interval
            .as_deref()
            .unwrap_or(DEFAULT_METRIC_INTERVAL);
        let d = weft_api::types::common::parse_duration(text).unwrap_or(Duration::from_secs(60));
        d.div_f64(self.time_scale.max(1.0))
    }
}

impl Checks for Live<'_> {
    fn providers(&mut self) -> Result<(), String> {
        // The built-ins are the mesh's own telemetry, always there.
        for m in &self.settings.metrics {
            if matches!(judge::kind(m), MetricKind::Query | MetricKind::Template) {
                return Err(format!(
                    "metric {} needs a metrics server, and weft does not query one yet",
                    m.name
                ));
            }
        }
        Ok(())
    }

    fn webhook(&mut self, hook: &CanaryWebhook, phase: Phase) -> Result<(), String> {
        if let Some(answer) = self.manual.answer(hook) {
            return answer;
        }
        let payload = serde_json::json!({
            "name": self.settings.name,
            "namespace": self.settings.namespace,
            "phase": phase.as_str(),
            "checksum": self.checksum,
            "metadata": hook.metadata,
        });
        let timeout = hook
            .timeout
            .as_deref()
            .and_then(|t| weft_api::types::common::parse_duration(t).ok())
            .filter(|t| *t >= Duration::from_secs(1))
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
        let registry = self.registry;
        let namespace = self.settings.namespace.clone();
        post(&hook.url, &payload.to_string(), timeout, &|host, port| {
            service_endpoint(registry, &namespace, host, port)
        })
    }

    fn metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError> {
        let s = self.settings;
        let kind = judge::kind(metric);
        if matches!(kind, MetricKind::Query | MetricKind::Template) {
            return Err(MetricError::Failed(
                "no metrics server: weft computes the built-in metrics from the mesh's own telemetry and does not run PromQL yet".into(),
            ));
        }
        let window = self.window(metric);
        let seen = self
            .traffic
            .workload_traffic(&s.namespace, &s.target, window);
        if seen.requests <= 0.0 {
            return Err(MetricError::NoValues("no values found".into()));
        }
        if seen.requests < f64::from(s.min_requests) {
            return Err(MetricError::NoValues(format!(
                "{} requests in the last {}, fewer than {}",
                seen.requests,
                weft_canary::judge::go_duration(window),
                s.min_requests
            )));
        }
        match kind {
            MetricKind::SuccessRate => Ok(100.0 * (seen.requests - seen.errors) / seen.requests),
            _ => seen
                .p99_ms
                .ok_or_else(|| MetricError::NoValues("no values found".into())),
        }
    }
}

/// Where a mesh service named as Kubernetes DNS names it (`name`,
/// `name.namespace`, `name.namespace.svc[.cluster.local]`) answers on
/// `port`: one of its endpoints, at the port the service sends it to.
pub fn service_endpoint(
    registry: &weft_compile::registry::Registry,
    namespace: &str,
    host: &str,
    port: u32,
) -> Option<std::net::SocketAddr> {
    let host = host
        .trim_end_matches(".cluster.local")
        .trim_end_matches(".svc");
    let (name, ns) = host.split_once('.').unwrap_or((host, namespace));
    if ns.contains('.') {
        return None;
    }
    let svc = registry
        .services
        .values()
        .find(|s| s.name == name && s.namespace == ns)?;
    let sp = svc
        .port(port)
        .or_else(|| (svc.ports.len() == 1).then(|| &svc.ports[0]))?;
    registry.instances_of(svc).find_map(|i| {
        let ip: std::net::IpAddr = i.ip.as_deref()?.parse().ok()?;
        let target = match &sp.target {
            weft_compile::registry::TargetPort::Number(n) => *n,
            weft_compile::registry::TargetPort::Name(n) => {
                i.ports.iter().find(|(pn, _)| pn == n)?.1
            }
        };
        Some(std::net::SocketAddr::new(ip, u16::try_from(target).ok()?))
    })
}

type Resolve<'a> = &'a dyn Fn(&str, u32) -> Option<std::net::SocketAddr>;

/// POSTs `body` to an `http://` URL; a status above 202 is a refusal,
/// as Flagger's.
fn post(url: &str, body: &str, timeout: Duration, resolve: Resolve<'_>) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// webhooks are supported yet"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| format!("{url}: {e}"))?),
        None => (authority, 80),
    };
    let addr = match resolve(host, u32::from(port)) {
        Some(a) => a,
        None => {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("Post \"{url}\": dial tcp: lookup {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("Post \"{url}\": no address for {host}"))?
        }
    };
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("Post \"{url}\": {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("Post \"{url}\": {e}"))?;
    let mut answer = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut answer)
        .map_err(|e| format!("Post \"{url}\": {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Post \"{url}\": no HTTP answer"))?;
    if status > 202 {
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
        return Err(if body.is_empty() {
            format!("{status}")
        } else {
            body.to_owned()
        });
    }
    Ok(())
}
