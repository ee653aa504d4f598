//! A proxy's life: a model compiled into a snapshot, its listeners bound
//! and served, new models swapped in, and a drained shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use weft_model::{Cluster, ConnectionPool, Endpoint, LbPolicy, Protocol, ProxyModel, UpstreamTls};

use crate::error::{BindError, ProxyError};
use crate::identity::{credentials, mesh};
use crate::listen::bind;
use crate::listen::drain::Drain;
use crate::listen::set::ListenerSet;
use crate::shared::{RuntimeConfig, Shared};
use crate::snapshot::Snapshot;
use crate::telemetry::access_log::AccessLog;
use crate::telemetry::{metrics, trace};
use crate::upstream;

/// A running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    /// Stops what outlives the connections (the admin port, the span
    /// exporter), once they have drained.
    stop_background: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    /// Where the admin port bound.
    admin: Option<SocketAddr>,
}

/// How long a request waits for the local application while it refuses
/// connections: long enough for a restart in place (a promotion, a new
/// spec) to go unnoticed by callers, short enough that an application
/// that is gone fails requests quickly (503, flag UF).
pub(crate) const APP_RESTART_PATIENCE_MS: u64 = 3_000;

pub(crate) fn app_cluster(port: u32, addr: SocketAddr, protocol: Protocol) -> Cluster {
    Cluster {
        name: format!("inbound|{port}||"),
        service: String::new(),
        port,
        subset: String::new(),
        protocol,
        lb: LbPolicy::RoundRobin,
        warmup: None,
        locality: None,
        pool: ConnectionPool {
            connect_timeout_ms: 10_000,
            refused_patience_ms: Some(APP_RESTART_PATIENCE_MS),
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
        let client = Arc::new(
            upstream::ClientSide::new(
                &model.proxy,
                mesh.clone(),
                credentials.clone(),
                config.source_ip(),
            )
            .with_egress(crate::policy::Egress::compile(
                model.security.network_egress.as_ref(),
            )),
        );
        let snapshot = Snapshot::build(model, version, None, client)?;
        let plain = Arc::new(
            upstream::ClientSide::plain("", &Default::default()).leaving_from(config.app_source),
        );
        let apps: HashMap<u32, crate::shared::App> = config
            .apps
            .iter()
            .map(|(port, addr)| (*port, crate::shared::App::new(*port, *addr, &plain)))
            .collect();
        let (spans, queued) = trace::Sink::new();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            snapshot: ArcSwap::from_pointee(snapshot),
            config,
            access_log,
            metrics: metrics::Metrics::new(),
            apps,
            passthrough_client: Arc::new(upstream::ClientSide::plain("", &Default::default())),
            mesh,
            credentials,
            spans,
            drain: Drain::new(),
            listeners: ListenerSet::default(),
        });
        let (stop_background, background_rx) = watch::channel(false);
        let mut proxy = Proxy {
            shared,
            stop_background,
            background: Vec::new(),
            admin: None,
        };
        // At start every listener must open: a proxy that cannot serve
        // what it is for says so and exits.
        let planned = crate::roles::plan(&proxy.shared.snapshot.load().model, &proxy.shared);
        let drain = proxy.shared.config.drain.max(Duration::from_millis(1));
        if let Err(mut errors) = proxy
            .shared
            .listeners
            .reconcile(planned, &proxy.shared.config.workers, drain)
            .await
        {
            proxy.shared.listeners.close(drain).await;
            if let Some(e) = errors.pop() {
                return Err(e.into());
            }
        }
        proxy.background.push(tokio::spawn(trace::exporter(
            queued,
            proxy.shared.clone(),
            background_rx.clone(),
        )));
        if let Some((addr, upstream)) = proxy.shared.config.dns {
            let err = |source| BindError {
                addr,
                what: "DNS".into(),
                source,
            };
            let udp = tokio::net::UdpSocket::bind(addr).await.map_err(err)?;
            let (tcp, _) = bind(addr, "DNS").await?;
            proxy.background.push(tokio::spawn(crate::dns::serve(
                proxy.shared.clone(),
                udp,
                tcp,
                upstream,
                background_rx.clone(),
            )));
        }
        if let Some(addr) = proxy.shared.config.admin {
            let (listener, local) = bind(addr, "admin").await?;
            proxy.admin = Some(local);
            proxy.background.push(tokio::spawn(crate::admin::serve(
                listener,
                proxy.shared.clone(),
                background_rx.clone(),
            )));
        }
        Ok(proxy)
    }

    /// Swaps in a new model and follows it with the listeners. On error
    /// the current one keeps serving.
    pub async fn update(&self, model: ProxyModel, version: String) -> Result<(), ProxyError> {
        crate::reconfigure::apply(&self.shared, model, version).await
    }

    /// Follows the control plane's model stream until the proxy stops.
    pub fn follow(&self, cfg: crate::control::ClientConfig) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::control::follow(cfg, self.shared.clone()))
    }

    pub fn version(&self) -> String {
        self.shared.snapshot.load().version.clone()
    }

    /// Where each listener bound (ports chosen by the OS when 0), the
    /// admin port included.
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        let mut bound = self.shared.listeners.bound();
        if let Some(a) = self.admin {
            bound.push(("admin".into(), a));
        }
        bound
    }

    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    /// Stops accepting, lets requests in flight finish (up to the drain
    /// time), then returns.
    pub async fn shutdown(self) {
        let drain = self.shared.config.drain.max(Duration::from_millis(1));
        let deadline = tokio::time::Instant::now() + drain;
        self.shared.drain.begin();
        let listeners = self.shared.listeners.close(drain).await;
        let opened = self.shared.drain.finished_by(deadline).await;
        if !(listeners && opened) {
            tracing::warn!("drain time over; closing connections with requests still in flight");
        }
        let _ = self.stop_background.send(true);
        for t in self.background {
            let _ = t.await;
        }
    }
}
