//! The answers a canary's tick asks for, from the running mesh: the
//! built-in metrics from the proxies' own telemetry (what Flagger asks
//! Prometheus for with its Istio queries), and webhooks over HTTP with
//! Flagger's payload.

use std::io::{Read, Write};
use std::sync::Arc;
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
    /// The configuration, for the MetricTemplates metrics name.
    pub resources: &'a [weft_api::resource::Resource],
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
        let s = self.settings;
        for m in &s.metrics {
            match judge::kind(m) {
                MetricKind::SuccessRate | MetricKind::Duration | MetricKind::Query => {
                    if let Some(server) = &s.metrics_server {
                        online(server, &[]).map_err(|e| format!("prometheus not avaiable: {e}"))?;
                    } else if judge::kind(m) == MetricKind::Query {
                        return Err(format!(
                            "metric {}: an inline query needs spec.metricsServer (a Prometheus)",
                            m.name
                        ));
                    }
                }
                MetricKind::Template => {
                    let (t, ns, name) = self.template(m).map_err(|e| match e {
                        MetricError::Refused(t)
                        | MetricError::Template(t)
                        | MetricError::Failed(t)
                        | MetricError::NoValues(t) => t,
                    })?;
                    let provider = t.provider.clone().unwrap_or_default();
                    online(&provider.address, &headers(&provider)).map_err(|e| {
                        format!(
                            "{} in metric template {name}.{ns} not avaiable: {e}",
                            provider.provider_type
                        )
                    })?;
                }
                MetricKind::Unusable => {}
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
        // Flagger: a timeout shorter than two characters is its default.
        let timeout = hook
            .timeout
            .as_deref()
            .filter(|t| t.len() >= 2)
            .and_then(|t| weft_api::types::common::parse_duration(t).ok())
            .filter(|t| !t.is_zero())
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT);
        let retries = hook.retries.unwrap_or(0).clamp(0, 10) as u32;
        let registry = self.registry;
        let namespace = self.settings.namespace.clone();
        post(
            &hook.url,
            &payload.to_string(),
            timeout,
            retries,
            &|host, port| service_endpoint(registry, &namespace, host, port),
        )
    }

    fn primary_metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError> {
        // The same query, of `<target>-primary`: the mesh's telemetry of
        // that workload, or the template rendered with it as `target`.
        let mut primary = self.settings.clone();
        primary.target = self.settings.primary();
        Live {
            settings: &primary,
            traffic: self.traffic,
            registry: self.registry,
            manual: self.manual,
            resources: self.resources,
            checksum: self.checksum.clone(),
            time_scale: self.time_scale,
        }
        .metric(metric)
    }

    fn metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError> {
        let s = self.settings;
        let kind = judge::kind(metric);
        let interval = self.interval_text(metric);
        let model = s.template_model(&interval, &metric.template_variables);
        let render =
            |q: &str| weft_canary::template::render(q, &model).map_err(MetricError::Refused);
        match kind {
            MetricKind::Template => {
                let (t, ns, name) = self.template(metric)?;
                let provider = t.provider.clone().unwrap_or_default();
                let query = weft_canary::template::render(&t.query, &model).map_err(|e| {
                    MetricError::Template(format!(
                        "Metric template {name}.{ns} query render error: {e}"
                    ))
                })?;
                return prometheus_query(&provider.address, &headers(&provider), &query);
            }
            MetricKind::Query => {
                let Some(server) = &s.metrics_server else {
                    return Err(MetricError::Refused(
                        "no metrics server: set spec.metricsServer to the Prometheus the query is for".into(),
                    ));
                };
                let query = render(metric.query.as_deref().unwrap_or_default())?;
                return prometheus_query(server, &[], &query);
            }
            MetricKind::Unusable => {
                return Err(MetricError::Refused(
                    "no usable metrics template and query were configured".into(),
                ))
            }
            MetricKind::SuccessRate | MetricKind::Duration => {}
        }
        if let Some(server) = &s.metrics_server {
            let query =
                render(weft_canary::template::istio_query(&metric.name).unwrap_or_default())?;
            return prometheus_query(server, &[], &query);
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

impl Live<'_> {
    /// The metric's interval as the query says it: scaled with the
    /// controller's clock (tests only), in Go's duration syntax.
    fn interval_text(&self, metric: &CanaryMetric) -> String {
        if self.time_scale <= 1.0 {
            return metric
                .interval
                .clone()
                .unwrap_or_else(|| DEFAULT_METRIC_INTERVAL.into());
        }
        let ms = self.window(metric).as_millis().max(1000) / 1000;
        format!("{ms}s")
    }

    /// The MetricTemplate `metric` names, its namespace and name.
    fn template(
        &self,
        metric: &CanaryMetric,
    ) -> Result<(weft_api::types::flagger::MetricTemplate, String, String), MetricError> {
        let r = metric.template_ref.clone().unwrap_or_default();
        let ns = if r.namespace.is_empty() {
            self.settings.namespace.clone()
        } else {
            r.namespace.clone()
        };
        let found = self.resources.iter().find_map(|res| match &res.spec {
            weft_api::resource::Spec::MetricTemplate(t)
                if res.namespace() == ns && res.name() == r.name =>
            {
                Some(t.clone())
            }
            _ => None,
        });
        let Some(t) = found else {
            return Err(MetricError::Template(format!(
                "Metric template {}.{ns} error: metrictemplate.flagger.app \"{}\" not found",
                r.name, r.name
            )));
        };
        let provider = t.provider.clone().unwrap_or_default();
        if provider.provider_type != "prometheus" {
            return Err(MetricError::Template(format!(
                "Metric template {}.{ns} provider {} error: weft queries Prometheus providers only",
                r.name, provider.provider_type
            )));
        }
        Ok((t, ns, r.name))
    }
}

/// A provider's `headers` (`{Name: [values]}`), as pairs.
fn headers(p: &weft_api::types::flagger::MetricProvider) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(serde_json::Value::Object(h)) = &p.headers {
        for (k, v) in h {
            match v {
                serde_json::Value::Array(vs) => out.extend(
                    vs.iter()
                        .filter_map(|v| v.as_str())
                        .map(|v| (k.clone(), v.to_owned())),
                ),
                serde_json::Value::String(v) => out.push((k.clone(), v.clone())),
                _ => {}
            }
        }
    }
    out
}

/// Flagger's `IsOnline`: `vector(1)` answers 1.
fn online(server: &str, headers: &[(String, String)]) -> Result<(), String> {
    match prometheus_query(server, headers, "vector(1)") {
        Ok(v) if (v - 1.0).abs() < f64::EPSILON => Ok(()),
        Ok(_) => Err("value is not 1 for query: vector(1)".into()),
        Err(
            MetricError::NoValues(e)
            | MetricError::Failed(e)
            | MetricError::Refused(e)
            | MetricError::Template(e),
        ) => Err(format!("running query failed: {e}")),
    }
}

/// Runs an instant query against Prometheus's HTTP API, as Flagger's
/// provider does: whitespace collapsed, one value expected, none (or
/// NaN) being "no values found".
pub fn prometheus_query(
    server: &str,
    headers: &[(String, String)],
    query: &str,
) -> Result<f64, MetricError> {
    let collapsed = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let base = server.trim_end_matches('/');
    let url = format!("{base}/api/v1/query?query={}", percent_encode(&collapsed));
    let (status, body) = http("GET", &url, headers, "", Duration::from_secs(5), &by_dns)
        .map_err(|e| MetricError::Failed(format!("request failed: {e}")))?;
    if status >= 400 {
        // Prometheus answers a query it cannot run with a 4xx (bad_data);
        // only its own failures (5xx) may pass.
        let says = format!("error response: Status {status}: {body}");
        return Err(if status < 500 {
            MetricError::Refused(says)
        } else {
            MetricError::Failed(says)
        });
    }
    let v: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| MetricError::Failed(format!("error unmarshaling result: {e}, '{body}'")))?;
    let mut value = None;
    for r in v["data"]["result"].as_array().into_iter().flatten() {
        if !r["values"].is_null() {
            return Err(MetricError::Refused("multiple values returned".into()));
        }
        if let Some(f) = r["value"][1].as_str().and_then(|s| s.parse::<f64>().ok()) {
            value = Some(f);
        }
    }
    // A scalar result (`vector(1)` is a vector; `1` alone a scalar).
    if v["data"]["resultType"] == "scalar" {
        value = v["data"]["result"][1].as_str().and_then(|s| s.parse().ok());
    }
    match value {
        Some(f) if !f.is_nan() => Ok(f),
        _ => Err(MetricError::NoValues("no values found".into())),
    }
}

/// What a query string may carry as it is: RFC 3986's unreserved bytes.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
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

/// One HTTP/1.0 exchange with an `http://` or `https://` URL (webhooks,
/// Prometheus, alert hooks: small, rare requests, so no pooled client):
/// the status and body. `resolve` may name where a host is before DNS is asked.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
    resolve: Resolve<'_>,
) -> Result<(u16, String), String> {
    exchange(
        method,
        url,
        headers,
        body,
        timeout,
        resolve,
        &weft_identity::outside_client,
    )
}

/// As [`http`], with `tls` for an `https://` URL.
fn exchange(
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: &str,
    timeout: Duration,
    resolve: Resolve<'_>,
    tls: &dyn Fn() -> Result<Arc<rustls::ClientConfig>, String>,
) -> Result<(u16, String), String> {
    let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => {
            return Err(format!(
                "{url}: only http:// and https:// URLs are supported"
            ))
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|e| format!("{url}: {e}"))?),
        None => (authority, if https { 443 } else { 80 }),
    };
    let addr = match resolve(host, u32::from(port)) {
        Some(a) => a,
        None => {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("dial tcp: no address for {host}"))?
        }
    };
    let tcp = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut s: Box<dyn ReadWrite> = if https {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("{url}: {e}"))?;
        let conn = rustls::ClientConnection::new(tls()?, name).map_err(|e| e.to_string())?;
        Box::new(rustls::StreamOwned::new(conn, tcp))
    } else {
        Box::new(tcp)
    };
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {authority}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    // A server that closes without TLS's close_notify has still said
    // what it said (HTTP/1.0 ends at the close).
    match s.take(16 << 20).read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e.to_string()),
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no HTTP answer")?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Ok((status, body))
}

/// A plain or TLS connection.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// Where no host is known in advance: DNS decides.
pub fn by_dns(_: &str, _: u32) -> Option<std::net::SocketAddr> {
    None
}

type Resolve<'a> = &'a dyn Fn(&str, u32) -> Option<std::net::SocketAddr>;

/// POSTs JSON to an alert hook, with a bearer token when one is given;
/// a status of 400 or more is a failure.
pub fn post_json(url: &str, body: &str, token: &str, timeout: Duration) -> Result<(), String> {
    let auth: Vec<(String, String)> = if token.is_empty() {
        Vec::new()
    } else {
        vec![("Authorization".into(), format!("Bearer {token}"))]
    };
    match http("POST", url, &auth, body, timeout, &by_dns)
        .map_err(|e| format!("sending notification failed to send: {e}"))?
    {
        (status, _) if (200..300).contains(&status) => Ok(()),
        (status, body) => Err(format!(
            "sending notification bad response {status}: {body}"
        )),
    }
}

/// POSTs a webhook payload to `url`, a mesh service's endpoint when it
/// names one, within Flagger's default timeout.
pub fn post_webhook(
    url: &str,
    body: &str,
    registry: &weft_compile::registry::Registry,
    namespace: &str,
) -> Result<(), String> {
    post(url, body, DEFAULT_WEBHOOK_TIMEOUT, 0, &|host, port| {
        service_endpoint(registry, namespace, host, port)
    })
}

/// POSTs a webhook payload as Flagger's retrying client does: a failed
/// connection, a 429 or a 5xx other than 501 is tried again `retries`
/// times (waiting 1 s, 2 s, 4 s…, at most 30 s) and then given up with
/// its words; any other status above 202 is a refusal whose body says
/// why.
fn post(
    url: &str,
    body: &str,
    timeout: Duration,
    retries: u32,
    resolve: Resolve<'_>,
) -> Result<(), String> {
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let result = http("POST", url, &[], body, timeout, resolve);
        let retriable = match &result {
            Err(_) => true,
            Ok((status, _)) => *status == 429 || (*status >= 500 && *status != 501),
        };
        if !retriable {
            let (status, answer) = result.unwrap_or_default();
            if status > 202 {
                return Err(answer.trim().to_owned());
            }
            return Ok(());
        }
        if attempts > retries {
            return Err(match result {
                Err(e) => {
                    format!("POST {url} giving up after {attempts} attempt(s): Post \"{url}\": {e}")
                }
                Ok(_) => format!("POST {url} giving up after {attempts} attempt(s)"),
            });
        }
        let wait = Duration::from_secs(1u64 << (attempts - 1).min(5)).min(Duration::from_secs(30));
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server answering each connection with the next of `statuses`.
    fn answers(statuses: &'static [(u16, &'static str)]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for ((status, body), stream) in statuses.iter().zip(l.incoming()) {
                let Ok(mut s) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
                let _ = s.write_all(
                    format!(
                        "HTTP/1.0 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            }
        });
        format!("http://{addr}/hook")
    }

    #[test]
    fn webhooks_are_retried_and_refused_as_flaggers_client_does() {
        let t = Duration::from_secs(2);
        let url = answers(&[(503, ""), (200, "")]);
        assert_eq!(post(&url, "{}", t, 1, &by_dns), Ok(()));
        let url = answers(&[(500, "boom")]);
        assert_eq!(
            post(&url, "{}", t, 0, &by_dns),
            Err(format!("POST {url} giving up after 1 attempt(s)"))
        );
        let url = answers(&[(403, "Forbidden")]);
        assert_eq!(post(&url, "{}", t, 3, &by_dns), Err("Forbidden".into()));
        let url = answers(&[(202, "")]);
        assert_eq!(post(&url, "{}", t, 0, &by_dns), Ok(()));
    }

    /// What Prometheus says decides whether a failure is the provider's
    /// (it may answer next time) or the query's (it never will).
    #[test]
    fn provider_failures_are_told_from_refused_queries() {
        let base = |url: String| url.trim_end_matches("/hook").to_owned();
        let url = base(answers(&[(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"99.5"]}]}}"#,
        )]));
        assert_eq!(prometheus_query(&url, &[], "up"), Ok(99.5));
        let url = base(answers(&[(
            400,
            r#"{"status":"error","errorType":"bad_data"}"#,
        )]));
        assert!(matches!(
            prometheus_query(&url, &[], "sum("),
            Err(MetricError::Refused(_))
        ));
        let url = base(answers(&[(503, "unavailable")]));
        assert!(matches!(
            prometheus_query(&url, &[], "up"),
            Err(MetricError::Failed(_))
        ));
        let url = base(answers(&[(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1,"1"],[2,"2"]]}]}}"#,
        )]));
        assert!(matches!(
            prometheus_query(&url, &[], "up"),
            Err(MetricError::Refused(_))
        ));
        // Nobody listening.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let gone = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        assert!(matches!(
            prometheus_query(&gone, &[], "up"),
            Err(MetricError::Failed(_))
        ));
        let url = base(answers(&[(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )]));
        assert!(matches!(
            prometheus_query(&url, &[], "up"),
            Err(MetricError::NoValues(_))
        ));
    }

    /// An `https://` hook or Prometheus is verified against the roots
    /// trusted: a server whose issuer is not among them is refused.
    #[test]
    fn https_servers_are_verified() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(weft_identity::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
        let server = Arc::new(server);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in l.incoming().take(2) {
                let Ok(tcp) = stream else { continue };
                let conn = rustls::ServerConnection::new(server.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = [0u8; 4096];
                if tls.read(&mut buf).is_ok() {
                    let _ = tls.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        });
        let url = format!("https://localhost:{port}/hook");
        let t = Duration::from_secs(2);
        let trusted = || {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca_cert.der().clone()).unwrap();
            weft_identity::client_trusting(roots).map_err(|e| e.to_string())
        };
        assert_eq!(
            exchange("POST", &url, &[], "{}", t, &by_dns, &trusted),
            Ok((200, "secure".into()))
        );
        let untrusted = || {
            weft_identity::client_trusting(rustls::RootCertStore::empty())
                .map_err(|e| e.to_string())
        };
        let refused = exchange("POST", &url, &[], "{}", t, &by_dns, &untrusted).unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
        assert!(http("GET", "ftp://x/", &[], "", t, &by_dns)
            .unwrap_err()
            .contains("only http:// and https://"));
    }
}
