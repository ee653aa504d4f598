//! weft's data plane: a proxy that executes one compiled [`ProxyModel`].
//!
//! It never reads Istio resources. A new model is compiled into a
//! [`snapshot::Snapshot`] and swapped in atomically; requests in flight
//! keep the snapshot they started with, so a configuration change drops
//! nothing. A model that does not compile is refused (the old one keeps
//! serving) and the error is returned to the caller, who NACKs it.

pub mod access_log;
pub mod authz;
mod conn;
pub mod control;
pub mod credentials;
pub mod downstream;
mod ext_authz;
pub mod flags;
mod gateway_tls;
mod handler;
mod inbound;
pub mod jwt;
mod local_reply;
mod matcher;
pub mod mesh;
pub mod metric_tags;
pub mod metrics;
mod origination;
pub mod path;
pub mod pool;
mod request_body;
mod response_body;
mod retry;
pub mod snapshot;
pub mod sni;
mod sockets;
mod streams;
mod tcp;
mod trace;
mod tunnel;
pub mod upstream;
pub mod workers;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weft_model::{
    Cluster, ConnectionPool, Direction, Endpoint, LbPolicy, ListenerTarget, Protocol, ProxyModel,
    UpstreamTls,
};

use crate::access_log::AccessLog;
use crate::handler::Entrypoint;
use crate::snapshot::Snapshot;
use crate::upstream::ClusterRt;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid model: {0}")]
    InvalidModel(String),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        addr: SocketAddr,
        what: String,
        source: std::io::Error,
    },
}

/// Where this proxy's listeners bind and where its application listens:
/// the parts of a proxy's setup that belong to the host, not the mesh.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// The sidecar's outbound HTTP proxy (what `HTTP_PROXY` points at).
    pub outbound: Option<SocketAddr>,
    /// Inbound listeners bind `inbound_ip:<workload port>`.
    pub inbound_ip: Option<IpAddr>,
    /// Workload port → where the application really listens.
    pub apps: HashMap<u32, SocketAddr>,
    /// Gateway listener port → bind address.
    pub gateway_binds: HashMap<u32, SocketAddr>,
    /// Any listener by its model name (e.g. a TCP service's
    /// `outbound|9000||echo.default.svc.cluster.local`) → bind address.
    pub binds: HashMap<String, SocketAddr>,
    /// `/ready`, `/config_dump`, `/metrics`.
    pub admin: Option<SocketAddr>,
    /// The mTLS tunnel port other proxies reach this workload through
    /// (15008 on the inbound address).
    pub tunnel: Option<SocketAddr>,
    /// Add `x-weft-reason` to the replies the proxy makes itself.
    pub explain: bool,
    /// How long in-flight requests may take to finish at shutdown.
    pub drain: Duration,
    /// The worker threads connections are served on; none: the runtime
    /// that accepted them.
    pub workers: Arc<workers::Workers>,
    /// What a client may hold open or send.
    pub limits: downstream::Limits,
    /// The address connections to mesh workloads leave from; by default
    /// the inbound address (a sidecar's own).
    pub source: Option<IpAddr>,
}

impl RuntimeConfig {
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source.or(self.inbound_ip)
    }
}

/// State shared by every connection of one proxy.
pub struct Shared {
    /// A handle on this very state, for tasks that outlive a request (a
    /// CONNECT tunnel serving more requests).
    me: std::sync::Weak<Shared>,
    pub snapshot: ArcSwap<Snapshot>,
    pub config: RuntimeConfig,
    pub access_log: AccessLog,
    pub metrics: metrics::Metrics,
    /// Inbound port → the application's cluster and fixed route.
    pub(crate) apps: HashMap<u32, (Arc<ClusterRt>, weft_model::Route)>,
    /// This proxy's identity and tunnels; `None` with `--no-mtls`.
    pub mesh: Option<Arc<mesh::Mesh>>,
    /// `credentialName` credentials for gateway TLS and TLS origination.
    pub credentials: Arc<credentials::Credentials>,
    /// Finished spans on their way to the collector.
    pub spans: trace::Sink,
}

impl Shared {
    pub(crate) fn self_ref(&self) -> Option<Arc<Shared>> {
        self.me.upgrade()
    }

    /// Whether requests under `snap` are logged: the proxy has an access
    /// log and the Telemetry resources leave it on.
    pub(crate) fn logs_access(&self, snap: &Snapshot) -> bool {
        self.access_log.enabled() && snap.model.telemetry.access_logging
    }

    /// Logs `entry` when the access log is on for the current config.
    pub(crate) fn log_access(&self, entry: access_log::Entry) {
        if self.logs_access(&self.snapshot.load()) {
            self.access_log.log(&entry);
        }
    }
}

/// Compiles and swaps in a model, keeping the runtime state of clusters
/// that did not change.
pub(crate) fn apply(shared: &Shared, model: ProxyModel, version: String) -> Result<(), ProxyError> {
    if let Some(mesh) = &shared.mesh {
        mesh.adopt_bundle(&model.security.trust_bundle);
    }
    let current = shared.snapshot.load();
    let client = Arc::new(upstream::ClientSide::new(
        &model.proxy,
        shared.mesh.clone(),
        shared.credentials.clone(),
        shared.config.source_ip(),
    ));
    let next = Snapshot::build(model, version, Some(&current), client)?;
    shared.snapshot.store(Arc::new(next));
    Ok(())
}

/// A running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where each listener actually bound (ports chosen by the OS when 0).
    pub bound: Vec<(String, SocketAddr)>,
}

fn app_cluster(port: u32, addr: SocketAddr) -> Cluster {
    Cluster {
        name: format!("inbound|{port}||"),
        service: String::new(),
        port,
        subset: String::new(),
        protocol: Protocol::Http,
        lb: LbPolicy::RoundRobin,
        locality: None,
        pool: ConnectionPool {
            connect_timeout_ms: 10_000,
            ..Default::default()
        },
        outlier: None,
        tls: UpstreamTls::Disable,
        policy_origin: Vec::new(),
        endpoints: vec![Endpoint {
            address: addr.to_string(),
            weight: 1,
            ..Endpoint::default()
        }],
    }
}

impl Proxy {
    /// Compiles `model` and starts every listener it declares that the
    /// runtime configuration gives an address.
    pub async fn start(
        model: ProxyModel,
        version: String,
        config: RuntimeConfig,
        access_log: AccessLog,
        mesh: Option<Arc<mesh::Mesh>>,
        credentials: Arc<credentials::Credentials>,
    ) -> Result<Proxy, ProxyError> {
        if let Some(m) = &mesh {
            m.adopt_bundle(&model.security.trust_bundle);
        }
        credentials.ensure(&model.credential_names()).await;
        let client = Arc::new(upstream::ClientSide::new(
            &model.proxy,
            mesh.clone(),
            credentials.clone(),
            config.source_ip(),
        ));
        let snapshot = Snapshot::build(model, version, None, client)?;
        let apps = config
            .apps
            .iter()
            .map(|(port, addr)| {
                (
                    *port,
                    (
                        Arc::new(ClusterRt::new(
                            app_cluster(*port, *addr),
                            Arc::new(upstream::ClientSide::plain("", &Default::default())),
                        )),
                        handler::inbound_route(*port),
                    ),
                )
            })
            .collect();
        let listeners = plan_listeners(&snapshot.model, &config);
        let (spans, queued) = trace::Sink::new();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            snapshot: ArcSwap::from_pointee(snapshot),
            config,
            access_log,
            metrics: metrics::Metrics::new(),
            apps,
            mesh,
            credentials,
            spans,
        });
        let (shutdown, rx) = watch::channel(false);
        let mut proxy = Proxy {
            shared,
            shutdown,
            tasks: Vec::new(),
            bound: Vec::new(),
        };
        for (name, addr) in tcp_listeners(&proxy.shared.snapshot.load().model, &proxy.shared.config)
        {
            let (listener, local) = bind(addr, &name).await?;
            proxy.bound.push((name.clone(), local));
            proxy.tasks.push(tokio::spawn(tcp::serve(
                listener,
                proxy.shared.clone(),
                name,
                rx.clone(),
            )));
        }
        for (name, addr, entry) in listeners {
            let (listener, local) = bind(addr, &name).await?;
            proxy.bound.push((name, local));
            proxy.tasks.push(tokio::spawn(serve(
                listener,
                proxy.shared.clone(),
                entry,
                rx.clone(),
            )));
        }
        if let (Some(addr), Some(mesh)) = (proxy.shared.config.tunnel, proxy.shared.mesh.clone()) {
            let (listener, local) = bind(addr, "the mTLS tunnel").await?;
            proxy.bound.push(("tunnel".into(), local));
            proxy.tasks.push(tokio::spawn(tunnel::serve(
                listener,
                proxy.shared.clone(),
                mesh,
                rx.clone(),
            )));
        }
        proxy.tasks.push(tokio::spawn(trace::exporter(
            queued,
            proxy.shared.clone(),
            rx.clone(),
        )));
        if let Some(addr) = proxy.shared.config.admin {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ProxyError::Bind {
                    addr,
                    what: "admin".into(),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| ProxyError::Bind {
                addr,
                what: "admin".into(),
                source,
            })?;
            proxy.bound.push(("admin".into(), local));
            proxy.tasks.push(tokio::spawn(admin(
                listener,
                proxy.shared.clone(),
                rx.clone(),
            )));
        }
        Ok(proxy)
    }

    /// Swaps in a new model. On error the current one keeps serving.
    pub fn update(&self, model: ProxyModel, version: String) -> Result<(), ProxyError> {
        apply(&self.shared, model, version)
    }

    /// Follows the control plane's model stream until the proxy stops.
    pub fn follow(&self, cfg: control::ClientConfig) -> tokio::task::JoinHandle<()> {
        tokio::spawn(control::follow(cfg, self.shared.clone()))
    }

    pub fn version(&self) -> String {
        self.shared.snapshot.load().version.clone()
    }

    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Stops accepting, lets requests in flight finish (up to the drain
    /// time), then returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Binds a listener, naming it in the error.
async fn bind(addr: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), ProxyError> {
    let err = |source| ProxyError::Bind {
        addr,
        what: what.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

fn tcp_listeners(model: &ProxyModel, config: &RuntimeConfig) -> Vec<(String, SocketAddr)> {
    model
        .listeners
        .iter()
        .filter(|l| matches!(l.target, ListenerTarget::Tcp(_)))
        .filter_map(|l| config.binds.get(&l.name).map(|a| (l.name.clone(), *a)))
        .collect()
}

fn plan_listeners(
    model: &ProxyModel,
    config: &RuntimeConfig,
) -> Vec<(String, SocketAddr, Entrypoint)> {
    let mut out = Vec::new();
    if let Some(addr) = config.outbound {
        if model
            .listeners
            .iter()
            .any(|l| l.direction == Direction::Outbound)
        {
            out.push(("outbound".to_owned(), addr, Entrypoint::Outbound));
        }
    }
    for l in &model.listeners {
        match (&l.direction, &l.target) {
            (Direction::Inbound, ListenerTarget::Local { .. }) => {
                if let (Some(ip), true) = (config.inbound_ip, config.apps.contains_key(&l.port)) {
                    out.push((
                        l.name.clone(),
                        SocketAddr::new(ip, l.port as u16),
                        Entrypoint::Inbound {
                            port: l.port,
                            protocol: l.protocol,
                            peer: None,
                        },
                    ));
                }
            }
            (Direction::Gateway, ListenerTarget::Routes(table)) => {
                if let Some(addr) = config.gateway_binds.get(&l.port) {
                    out.push((
                        l.name.clone(),
                        *addr,
                        Entrypoint::Gateway {
                            table: table.as_str().into(),
                            port: l.port,
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    entry: Entrypoint,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let workers = shared.config.workers.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let entry = entry.clone();
                let watcher = graceful.watcher();
                workers.spawn_connection(stream, move |stream| async move {
                    if let Entrypoint::Inbound { port, protocol, .. } = entry {
                        // PeerAuthentication STRICT: plain text is refused
                        // (a proxy without identity, `--no-mtls`, cannot
                        // enforce it).
                        if shared.mesh.is_some() && inbound::mtls_mode(&shared, port) == weft_model::MtlsMode::Strict {
                            refuse_plaintext(&shared, port, remote);
                            return;
                        }
                        inbound::serve(shared.clone(), stream, port, protocol, remote, None, Some(watcher)).await;
                        return;
                    }
                    if let Entrypoint::Gateway { port, .. } = &entry {
                        let servers = gateway_tls_servers(&shared, *port);
                        if servers.iter().any(gateway_tls::terminates) {
                            let tls = match gateway_tls::accept(stream, &servers, &shared.credentials).await {
                                Ok(tls) => tls,
                                Err(why) => {
                                    refuse_tls(&shared, *port, remote, why);
                                    return;
                                }
                            };
                            let name = format!("gateway|{port}");
                            downstream::serve(&shared, tls, remote, &name, entry, Some(watcher)).await;
                            return;
                        }
                    }
                    let name = match &entry {
                        Entrypoint::Gateway { port, .. } => format!("gateway|{port}"),
                        _ => "outbound".to_owned(),
                    };
                    downstream::serve(&shared, stream, remote, &name, entry, Some(watcher)).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drain = shared.config.drain.max(Duration::from_millis(1));
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain time over; closing connections with requests still in flight");
    }
}

/// The TLS settings of the gateway servers on `port`, from the current
/// model.
fn gateway_tls_servers(shared: &Shared, port: u32) -> Vec<weft_model::ServerTls> {
    shared
        .snapshot
        .load()
        .model
        .listeners
        .iter()
        .find(|l| l.direction == Direction::Gateway && l.port == port)
        .map(|l| l.tls.clone())
        .unwrap_or_default()
}

/// Logs a TLS connection the gateway could not accept.
fn refuse_tls(shared: &Shared, port: u32, remote: SocketAddr, why: String) {
    shared.log_access(access_log::Entry {
        route_name: Some(format!("gateway|{port}").into()),
        reason: why,
        ..access_log::Entry::starting_now(remote)
    });
}

/// Logs a plain-text connection refused under STRICT mTLS.
fn refuse_plaintext(shared: &Shared, port: u32, remote: SocketAddr) {
    let snap = shared.snapshot.load();
    let origin = snap.model.security.inbound_mtls.origin.join(", ");
    shared.log_access(access_log::Entry {
        route_name: Some(format!("inbound|{port}").into()),
        reason: format!("plain text refused: mTLS is STRICT on port {port} ({origin})"),
        ..access_log::Entry::starting_now(remote)
    });
}

/// The proxy admin port: `/ready`, `/config_dump`, `/metrics` and `/certs`.
async fn admin(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let snap = shared.snapshot.load();
                        let (status, body) = match req.uri().path() {
                            "/ready" | "/healthz/ready" => match &shared.mesh {
                                Some(m) if !m.ready() => (503, "waiting for the workload certificate\n".to_owned()),
                                _ => (200, "ready\n".to_owned()),
                            },
                            "/config_dump" => (200, serde_json::to_string_pretty(&serde_json::json!({"version": snap.version, "model": &*snap.model})).unwrap_or_default()),
                            "/metrics" | "/stats/prometheus" => (200, format!(
                                "{}# HELP weft_access_log_dropped_total Access log entries dropped because the writer fell behind.\n# TYPE weft_access_log_dropped_total counter\nweft_access_log_dropped_total {}\n",
                                shared.metrics.render(&snap.tags),
                                shared.access_log.dropped()
                            )),
                            "/stats/json" => (200, shared.metrics.snapshot().to_string()),
                            "/certs" => match &shared.mesh {
                                Some(m) => (200, serde_json::to_string_pretty(&m.describe()).unwrap_or_default()),
                                None => (404, "this proxy runs without a workload identity (--no-mtls)\n".to_owned()),
                            },
                            _ => (404, "not found: try /ready, /config_dump, /metrics or /certs\n".to_owned()),
                        };
                        let metrics = matches!(req.uri().path(), "/metrics" | "/stats/prometheus");
                        let mut resp = http::Response::new(local_reply::full(body));
                        if metrics {
                            resp.headers_mut().insert("content-type", http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                        }
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(conn);
            }
            _ = shutdown.changed() => break,
        }
    }
}
