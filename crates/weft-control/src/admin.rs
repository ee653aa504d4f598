//! The control plane's admin API on 15014: `/api/status` (components,
//! ports, each proxy's config version and sync state) and
//! `/api/validations` (what `weft analyze` would say of the live config).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;

/// What the API asks the control loop to do.
#[derive(Debug)]
pub enum Command {
    /// Rotate the mesh's root certificate, with an overlap.
    RotateRoot,
}

/// The documents the API serves, refreshed by the control loop.
#[derive(Default)]
pub struct Docs {
    /// The traffic the dashboard shows.
    pub traffic: Option<Arc<crate::telemetry::Traffic>>,
    /// Where commands go; `None` when nothing listens.
    pub commands: Option<tokio::sync::mpsc::UnboundedSender<Command>>,
    pub status: Option<Status>,
    pub validations: Value,
    /// The Guardrails' results as Kyverno's PolicyReports.
    pub policy_reports: Value,
    /// What the control plane admitted last (the canary controller's
    /// view), for judging what `weft apply` brings against it.
    pub admitted: Option<tokio::sync::watch::Receiver<Arc<crate::canary::Seen>>>,
    /// The mesh's root namespace.
    pub root_namespace: String,
    /// Every resource: kind, namespace, name, where it was written, and the
    /// object itself.
    pub resources: Vec<Value>,
    /// Where `weft apply` and `weft delete` write through.
    pub source: Option<Arc<dyn crate::source::ConfigSource>>,
    /// What a supervisor (`weft up`) last reported running
    /// (`PUT /api/processes`): shown beside what the proxies say of
    /// themselves.
    pub processes: Option<Value>,
    /// What hosts and VMs joining by auto-registration are given.
    pub enrolment: Option<Enrolment>,
    /// Each canary's events (`Canary/namespace/name`), as the controller
    /// recorded them.
    /// Each canary's events and decisions, and Flagger's metrics, as the
    /// canary controller last published them.
    pub canaries: Option<crate::canary::Shared>,
    /// Where `weft canary promote|abort|…` go.
    pub canary_commands: Option<crate::canary::Commands>,
}

/// What `weft workload configure` is given for a WorkloadGroup's VMs.
#[derive(Clone)]
pub struct Enrolment {
    pub grants: Arc<crate::registration::Grants>,
    /// Where a VM's proxy reaches the control plane: the CA's TLS port,
    /// which carries the model stream too.
    pub ca: std::net::SocketAddr,
    pub trust_domain: String,
    /// The mesh's roots (PEM).
    pub roots: std::path::PathBuf,
}

/// What `/api/status` is built from when it is asked. The proxies' stream
/// states change with every ACK: at thousands of proxies, rebuilding the
/// document on each burst of ACKs took the control plane's cores from
/// pushing the change they acknowledge.
#[derive(Clone)]
pub struct Status {
    /// The control plane's own part, refreshed by the control loop.
    pub control_plane: Value,
    /// Every proxy the configuration runs, and whether it is a gateway.
    pub proxies: Arc<Vec<(String, bool)>>,
    pub hub: Arc<crate::push::Hub>,
}

impl Status {
    fn build(&self) -> Value {
        let sync = self.hub.sync();
        let proxies: Vec<Value> = self
            .proxies
            .iter()
            .map(|(name, gateway)| {
                let stream = sync.get(name).cloned().unwrap_or_default();
                let version = self.hub.served_version(name).unwrap_or_default();
                let state = if !stream.connected {
                    "DISCONNECTED"
                } else if stream.acked_version == version {
                    "SYNCED"
                } else if stream.nack.is_some() {
                    "NACKED"
                } else {
                    "STALE"
                };
                // Why it is behind, when it is.
                let reason = match state {
                    "NACKED" => stream.nack.clone(),
                    "SYNCED" => None,
                    _ => stream.error.clone(),
                };
                serde_json::json!({
                    "name": name,
                    "kind": if *gateway { "gateway" } else { "sidecar" },
                    // As the proxy said in its Hello.
                    "admin": stream.admin.map(|a| a.to_string()),
                    "pushedVersion": version,
                    "changedIn": self.hub.changed_in(name),
                    "sync": state,
                    "reason": reason,
                    "stream": stream,
                })
            })
            .collect();
        serde_json::json!({
            "controlPlane": self.control_plane,
            "proxies": proxies,
            "workloads": [],
        })
    }
}

/// `/api/status` now, with what the supervisor reports about the processes.
fn status_now(docs: &Shared) -> Value {
    // Built outside the lock: the control loop publishes through it.
    let Ok((status, processes)) = docs.lock().map(|d| (d.status.clone(), d.processes.clone()))
    else {
        return Value::Null;
    };
    let status = status.map_or(Value::Null, |s| s.build());
    match processes {
        Some(p) => with_processes(status, &p),
        None => status,
    }
}

/// `status` with what the supervisor reports about the processes.
fn with_processes(mut status: Value, processes: &Value) -> Value {
    status["controlPlane"]["ingress"] = processes["ingress"].clone();
    status["controlPlane"]["process"] = processes["controlPlane"].clone();
    status["workloads"] = processes["workloads"].clone();
    // What the supervisor's guards counted, on the policy that counts it.
    if let Some(policies) = status["controlPlane"]["policies"].as_array_mut() {
        for counter in processes["guardCounters"].as_array().into_iter().flatten() {
            if let Some(p) = policies.iter_mut().find(|p| p["name"] == counter["policy"]) {
                let key = if counter["drops"] == true {
                    "dropped"
                } else {
                    "audited"
                };
                let before = p[key].as_u64().unwrap_or(0);
                p[key] = Value::from(before + counter["packets"].as_u64().unwrap_or(0));
            }
        }
    }
    if let Some(proxies) = status["proxies"].as_array_mut() {
        for p in proxies {
            let name = p["name"].as_str().unwrap_or("").to_owned();
            let pr = &processes["proxies"][&name];
            for key in ["outbound", "listens", "process"] {
                p[key] = pr[key].clone();
            }
            // What the proxy says of itself comes first; the supervisor's
            // plan fills in a proxy that has not connected.
            if p["admin"].is_null() {
                p["admin"] = pr["admin"].clone();
            }
            if pr["process"]["running"] == false {
                p["sync"] = Value::String("NOT RUNNING".into());
            }
        }
    }
    status
}

pub type Shared = Arc<Mutex<Docs>>;

pub async fn serve(listener: TcpListener, docs: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let docs = docs.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let docs = docs.clone();
                async move {
                    if req.method() == http::Method::GET {
                        if let Some((ctype, body)) = crate::dashboard::asset(req.uri().path()) {
                            let mut resp =
                                http::Response::new(Full::new(Bytes::from_static(body.as_bytes())));
                            resp.headers_mut()
                                .insert("content-type", http::HeaderValue::from_static(ctype));
                            return Ok::<_, std::convert::Infallible>(resp);
                        }
                    }
                    let (status, body) = match refused_from_a_browser(&req) {
                        Some(why) => (403, error(why)),
                        None => route(&docs, req).await,
                    };
                    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() =
                        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                    resp.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Why a request that changes something is refused when a web page made
/// it, or `None`. A page on another site may POST to an address on this
/// machine (no preflight for a plain form or `text/plain` body) and the
/// admin API has no login: a change is taken only from clients that send
/// no `Origin` (the CLI, curl) or from the dashboard itself, at the
/// address it was opened on. A hostname is refused even when it matches,
/// since a name can be rebound to this machine's address by whoever owns
/// it (DNS rebinding).
fn refused_from_a_browser<B>(req: &http::Request<B>) -> Option<&'static str> {
    if matches!(
        *req.method(),
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        return None;
    }
    let origin = req.headers().get(http::header::ORIGIN)?;
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin_authority = origin
        .to_str()
        .ok()
        .and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        })
        .unwrap_or_default();
    if origin_authority.is_empty() || !origin_authority.eq_ignore_ascii_case(host) {
        return Some("refused: a change from another site's page (its Origin is not this address); use the weft CLI or the dashboard");
    }
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, _)| name)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if name.parse::<std::net::IpAddr>().is_err() && !name.eq_ignore_ascii_case("localhost") {
        return Some("refused: a change from a page opened by a host name; open the dashboard by the admin API's address");
    }
    None
}

fn error(msg: impl std::fmt::Display) -> String {
    serde_json::json!({ "error": msg.to_string() }).to_string()
}

async fn route(docs: &Shared, req: http::Request<hyper::body::Incoming>) -> (u16, String) {
    use http_body_util::BodyExt;
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/api/status") => (200, status_now(docs).to_string()),
        ("GET", "/api/graph") => match docs.lock() {
            Ok(d) => match &d.traffic {
                Some(t) => (
                    200,
                    crate::dashboard::graph(t, &d.resources, &query).to_string(),
                ),
                None => (
                    503,
                    error("no traffic data: the control plane is not collecting metrics"),
                ),
            },
            Err(_) => (500, error("state poisoned")),
        },
        ("GET", "/api/node") => match (status_now(docs), docs.lock()) {
            (status, Ok(d)) => match &d.traffic {
                Some(t) => {
                    (
                        200,
                        crate::dashboard::node(t, &d.resources, &status, &query).to_string(),
                    )
                }
                None => (
                    503,
                    error("no traffic data: the control plane is not collecting metrics"),
                ),
            },
            (_, Err(_)) => (500, error("state poisoned")),
        },
        // Resource-style names for one node: /api/services/HOST and
        // /api/workloads/NAMESPACE/NAME (and /apps/NAMESPACE/APP).
        ("GET", p)
            if p.starts_with("/api/services/")
                || p.starts_with("/api/workloads/")
                || p.starts_with("/api/apps/") =>
        {
            let Some(id) = crate::dashboard::node_id_of_path(p) else {
                return (
                    400,
                    error("use /api/services/HOST, /api/workloads/NAMESPACE/NAME or /api/apps/NAMESPACE/APP"),
                );
            };
            match (status_now(docs), docs.lock()) {
                (status, Ok(d)) => match &d.traffic {
                    Some(t) => {
                        let q = format!("id={id}&{query}");
                        (
                            200,
                            crate::dashboard::node(t, &d.resources, &status, &q).to_string(),
                        )
                    }
                    None => (
                        503,
                        error("no traffic data: the control plane is not collecting metrics"),
                    ),
                },
                (_, Err(_)) => (500, error("state poisoned")),
            }
        }
        ("GET", "/api/policyreports") => (
            200,
            docs.lock()
                .map(|d| d.policy_reports.to_string())
                .unwrap_or_default(),
        ),
        ("GET", "/api/validations") => (
            200,
            docs.lock()
                .map(|d| d.validations.to_string())
                .unwrap_or_default(),
        ),
        ("GET", "/ready") => (200, "ready".to_owned()),
        ("GET", "/api/canaries") => (200, canaries(docs).to_string()),
        ("GET", "/metrics") => (
            200,
            docs.lock()
                .ok()
                .map(|d| {
                    let canaries = d
                        .canaries
                        .clone()
                        .and_then(|m| m.lock().ok().map(|m| m.metrics.clone()))
                        .unwrap_or_default();
                    // What the supervisor's guards counted (the mesh's
                    // egress guard, under capture).
                    let guards = d
                        .processes
                        .as_ref()
                        .and_then(|p| p["guardMetrics"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    canaries + &guards
                })
                .unwrap_or_default(),
        ),
        ("POST", p) if p.starts_with("/api/canaries/") => canary_command(docs, p),
        ("GET", "/api/resources") => {
            let param = |k: &str| {
                query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
                    .map(str::to_owned)
            };
            let (kind, name, ns) = (param("kind"), param("name"), param("namespace"));
            let items: Vec<Value> = docs
                .lock()
                .map(|d| {
                    d.resources
                        .iter()
                        .filter(|r| {
                            kind.as_deref().is_none_or(|k| {
                                r["kind"]
                                    .as_str()
                                    .is_some_and(|x| x.eq_ignore_ascii_case(k))
                            })
                        })
                        .filter(|r| name.as_deref().is_none_or(|n| r["name"] == n))
                        .filter(|r| ns.as_deref().is_none_or(|n| r["namespace"] == n))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            (200, Value::Array(items).to_string())
        }
        ("POST", p) if p.starts_with("/api/workloadgroups/") && p.ends_with("/token") => {
            let parts: Vec<&str> = p
                .trim_start_matches("/api/workloadgroups/")
                .trim_end_matches("/token")
                .split('/')
                .collect();
            let [ns, name] = parts.as_slice() else {
                return (404, error("POST /api/workloadgroups/NAMESPACE/NAME/token"));
            };
            let seconds = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("duration="))
                .map_or(Ok(3600), str::parse::<u64>);
            let Ok(seconds) = seconds else {
                return (400, error("duration is a number of seconds"));
            };
            let (group, enrolment) = match docs.lock() {
                Ok(d) => (
                    d.resources
                        .iter()
                        .find(|r| r["kind"] == "WorkloadGroup" && r["namespace"] == *ns && r["name"] == *name)
                        .cloned(),
                    d.enrolment.clone(),
                ),
                Err(_) => return (500, error("poisoned")),
            };
            let Some(group) = group else {
                return (404, error(format!("no WorkloadGroup {ns}/{name}: apply one first (weft apply -f workloadgroup.yaml)")));
            };
            let Some(e) = enrolment else {
                return (503, error("this control plane does not enrol VMs"));
            };
            let roots = match std::fs::read_to_string(&e.roots) {
                Ok(r) => r,
                Err(err) => return (500, error(format!("cannot read the mesh's roots: {err}"))),
            };
            match e.grants.issue(ns, name, std::time::Duration::from_secs(seconds)) {
                Ok(token) => (
                    200,
                    serde_json::json!({
                        "token": token,
                        "expiresInSeconds": seconds,
                        "controlPlane": e.ca.to_string(),
                        "trustDomain": e.trust_domain,
                        "rootCert": roots,
                        "workloadGroup": group["object"],
                    })
                    .to_string(),
                ),
                Err(err) => (500, error(format!("cannot keep the token: {err}"))),
            }
        }
        ("POST", "/api/ca/rotate") => {
            let sent = docs
                .lock()
                .ok()
                .and_then(|d| d.commands.clone())
                .is_some_and(|c| c.send(Command::RotateRoot).is_ok());
            if sent {
                (202, serde_json::json!({"rotation": "started"}).to_string())
            } else {
                (503, error("the control loop is not running"))
            }
        }
        ("PUT", "/api/processes") => {
            let body = match http_body_util::Limited::new(req.into_body(), 16 * 1024 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return (413, error(format!("cannot read the request: {e}"))),
            };
            let report: Value = match serde_json::from_slice(&body) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => return (400, error("a process report is a JSON object")),
                Err(e) => return (400, error(format!("not JSON: {e}"))),
            };
            if let Ok(mut d) = docs.lock() {
                d.processes = Some(report);
            }
            (200, "{}".to_owned())
        }
        ("POST", "/api/apply") => {
            let body = match http_body_util::Limited::new(req.into_body(), 4 * 1024 * 1024)
                .collect()
                .await
            {
                Ok(b) => b.to_bytes(),
                Err(e) => return (413, error(format!("cannot read the request: {e}"))),
            };
            let loaded = weft_api::load::load_bytes("<apply>", &body);
            if loaded.has_errors() {
                return (400, serde_json::json!({ "error": "the resources have errors", "diagnostics": loaded.diagnostics }).to_string());
            }
            let Some(source) = docs.lock().ok().and_then(|d| d.source.clone()) else {
                return (500, error("this control plane has no configuration source"));
            };
            // The platform's Guardrails judge what is applied, beside
            // what is there, as an admission webhook would.
            let refused = guardrail_refusals(docs, &loaded.resources);
            if !refused.is_empty() {
                return (
                    400,
                    serde_json::json!({ "error": "the resources break the platform's Guardrails", "diagnostics": refused }).to_string(),
                );
            }
            match source.apply(&loaded.resources) {
                Ok(applied) => (
                    200,
                    serde_json::json!({ "applied": applied, "warnings": loaded.diagnostics })
                        .to_string(),
                ),
                Err(e) => (500, error(e)),
            }
        }
        ("DELETE", p) if p.starts_with("/api/resources/") => {
            let parts: Vec<&str> = p.trim_start_matches("/api/resources/").split('/').collect();
            let [kind, ns, name] = parts.as_slice() else {
                return (400, error("use /api/resources/KIND/NAMESPACE/NAME"));
            };
            let Some(k) = weft_api::resource::ResourceKind::from_cli_name(kind) else {
                return (400, error(format!("unknown kind {kind}")));
            };
            let Some(source) = docs.lock().ok().and_then(|d| d.source.clone()) else {
                return (500, error("this control plane has no configuration source"));
            };
            let key = weft_api::resource::ResourceKey {
                kind: k,
                namespace: (*ns).to_owned(),
                name: (*name).to_owned(),
            };
            match source.delete(&key) {
                Ok(()) => (
                    200,
                    serde_json::json!({ "deleted": format!("{} {ns}/{name}", k.name()) })
                        .to_string(),
                ),
                Err(e @ crate::source::SourceError::NotOwned { .. }) => (409, error(e)),
                Err(e @ crate::source::SourceError::NotFound(_)) => (404, error(e)),
                Err(e) => (500, error(e)),
            }
        }
        _ => (
            404,
            error("not found: try /api/status, /api/graph, /api/services/HOST, /api/validations, /api/resources"),
        ),
    }
}

/// Every Canary with its recorded status and events.
fn canaries(docs: &Shared) -> Value {
    let Ok(d) = docs.lock() else {
        return Value::Array(Vec::new());
    };
    let (events, decisions, manual) = d
        .canaries
        .as_ref()
        .and_then(|e| {
            e.lock()
                .ok()
                .map(|e| (e.events.clone(), e.decisions.clone(), e.manual.clone()))
        })
        .unwrap_or_default();
    let items: Vec<Value> = d
        .resources
        .iter()
        .filter(|r| r["kind"] == "Canary")
        .map(|r| {
            let (ns, name) = (
                r["namespace"].as_str().unwrap_or_default(),
                r["name"].as_str().unwrap_or_default(),
            );
            let key = weft_api::resource::ResourceKey {
                kind: weft_api::resource::ResourceKind::Canary,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            };
            let status = d
                .source
                .as_ref()
                .and_then(|s| s.read_status(&key))
                .unwrap_or(Value::Null);
            serde_json::json!({
                "namespace": ns,
                "name": name,
                "spec": r["object"]["spec"],
                "status": status,
                "events": events.get(&format!("Canary/{ns}/{name}")).cloned().unwrap_or_default(),
                "decisions": decisions.get(&format!("Canary/{ns}/{name}")).cloned().unwrap_or_default(),
                "manual": manual.get(&format!("Canary/{ns}/{name}")).cloned().unwrap_or_default(),
            })
        })
        .collect();
    Value::Array(items)
}

/// What the Guardrails (those applied among them) refuse of `applied`,
/// judged with what the control plane admitted last.
fn guardrail_refusals(
    docs: &Shared,
    applied: &[weft_api::resource::Resource],
) -> Vec<weft_api::diag::Diagnostic> {
    let Some((admitted, root)) = docs.lock().ok().and_then(|d| {
        Some((
            d.admitted.as_ref()?.borrow().clone(),
            d.root_namespace.clone(),
        ))
    }) else {
        return Vec::new();
    };
    let keys: std::collections::BTreeSet<_> = applied.iter().map(|r| r.key()).collect();
    let mut all: Vec<weft_api::resource::Resource> = admitted
        .resources
        .iter()
        .filter(|r| !keys.contains(&r.key()))
        .cloned()
        .collect();
    all.extend(applied.iter().cloned());
    // Judged as the control plane will judge them: mutated first.
    weft_compile::kyverno::mutate(&mut all);
    let names: std::collections::BTreeSet<String> =
        applied.iter().map(|r| r.display_name()).collect();
    weft_compile::guardrails::check(&all, &root)
        .into_iter()
        .filter(|d| d.severity == weft_api::diag::Severity::Error)
        .filter(|d| d.resource.as_ref().is_some_and(|r| names.contains(r)))
        .collect()
}

/// `POST /api/canaries/NAMESPACE/NAME/ACTION`: `weft canary ACTION`.
fn canary_command(docs: &Shared, path: &str) -> (u16, String) {
    let parts: Vec<&str> = path
        .trim_start_matches("/api/canaries/")
        .split('/')
        .collect();
    let [ns, name, action] = parts.as_slice() else {
        return (404, error("POST /api/canaries/NAMESPACE/NAME/ACTION"));
    };
    let Some(action) = crate::canary::manual::Action::parse(action) else {
        return (
            400,
            error("the actions are promote, abort, retry, pause and resume"),
        );
    };
    let Ok(d) = docs.lock() else {
        return (500, error("state poisoned"));
    };
    if !d
        .resources
        .iter()
        .any(|r| r["kind"] == "Canary" && r["namespace"] == *ns && r["name"] == *name)
    {
        return (404, error(format!("no Canary {ns}/{name}")));
    }
    match &d.canary_commands {
        Some(c) if c.send(((*ns).to_owned(), (*name).to_owned(), action)).is_ok() => (
            202,
            serde_json::json!({"canary": format!("{name}.{ns}"), "action": format!("{action:?}").to_lowercase()})
                .to_string(),
        ),
        _ => (503, error("the canary controller is not running")),
    }
}

#[cfg(test)]
mod tests {
    use super::refused_from_a_browser;

    fn req(method: &str, host: &str, origin: Option<&str>) -> http::Request<()> {
        let mut b = http::Request::builder()
            .method(method)
            .uri("/api/ca/rotate")
            .header("host", host);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn changes_are_refused_from_other_sites_pages() {
        // The CLI and curl send no Origin.
        assert_eq!(
            refused_from_a_browser(&req("POST", "127.0.0.1:15000", None)),
            None
        );
        // The dashboard, opened at the admin address.
        for (host, origin) in [
            ("127.0.0.1:15000", "http://127.0.0.1:15000"),
            ("[::1]:15000", "http://[::1]:15000"),
            ("localhost:15000", "http://localhost:15000"),
        ] {
            assert_eq!(
                refused_from_a_browser(&req("POST", host, Some(origin))),
                None
            );
        }
        // Reading is never refused.
        assert_eq!(
            refused_from_a_browser(&req("GET", "127.0.0.1:15000", Some("http://evil.example"))),
            None
        );
        // Another site's page, a rebound name, an opaque origin.
        for (host, origin) in [
            ("127.0.0.1:15000", "http://evil.example"),
            ("127.0.0.1:15000", "http://127.0.0.1:15001"),
            ("evil.example:15000", "http://evil.example:15000"),
            ("127.0.0.1:15000", "null"),
        ] {
            assert!(
                refused_from_a_browser(&req("POST", host, Some(origin))).is_some(),
                "{host} {origin}"
            );
        }
    }
}
