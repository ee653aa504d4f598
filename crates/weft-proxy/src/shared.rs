//! State shared by every connection of one proxy, and the host-side
//! settings it started with.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::identity::{credentials, mesh};
use crate::listen::drain::Drain;
use crate::listen::limits::Limits;
use crate::listen::set::ListenerSet;
use crate::listen::workers;
use crate::snapshot::Snapshot;
use crate::telemetry::access_log::{self, AccessLog};
use crate::telemetry::{metrics, trace};
use crate::upstream::ClusterRt;

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
    /// Gateway ports not in `gateway_binds` bind this address with their
    /// own number, so a Gateway server added later is served without a
    /// restart.
    pub gateway_ip: Option<IpAddr>,
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
    pub limits: Limits,
    /// The address connections to mesh workloads leave from; by default
    /// the inbound address (a sidecar's own).
    pub source: Option<IpAddr>,
    /// Transparent capture: the workload's outbound connections,
    /// redirected here (15001), are routed by where they were going.
    pub captured_outbound: Option<SocketAddr>,
    /// Transparent capture: connections to the workload, redirected here
    /// (15006), are served by the port they were going to.
    pub captured_inbound: Option<SocketAddr>,
    /// Where connections to the application leave from (127.0.0.6 under
    /// capture, which the rules let through).
    pub app_source: Option<IpAddr>,
    /// Transparent capture: DNS answered here (15053, UDP and TCP), and
    /// where names that are not the mesh's are asked.
    pub dns: Option<(SocketAddr, crate::dns::Upstream)>,
    /// TPROXY capture: inbound connections arrive with the client's own
    /// address, and the application is reached from it.
    pub tproxy: bool,
}

impl RuntimeConfig {
    pub fn source_ip(&self) -> Option<IpAddr> {
        self.source.or(self.inbound_ip)
    }

    /// Where the gateway listener for `port` binds, if anywhere.
    pub fn gateway_bind(&self, port: u32) -> Option<SocketAddr> {
        self.gateway_binds.get(&port).copied().or_else(|| {
            let port = u16::try_from(port).ok()?;
            Some(SocketAddr::new(self.gateway_ip?, port))
        })
    }
}

/// State shared by every connection of one proxy.
pub struct Shared {
    /// A handle on this very state, for tasks that outlive a request (a
    /// CONNECT tunnel serving more requests).
    pub(crate) me: std::sync::Weak<Shared>,
    pub snapshot: ArcSwap<Snapshot>,
    pub config: RuntimeConfig,
    pub access_log: AccessLog,
    pub metrics: metrics::Metrics,
    /// Inbound port → the application's clusters and fixed route.
    pub(crate) apps: HashMap<u32, App>,
    /// Opens plain connections to where captured requests the mesh does
    /// not know were going.
    pub(crate) passthrough_client: Arc<crate::upstream::ClientSide>,
    /// This proxy's identity and tunnels; `None` with `--no-mtls`.
    pub mesh: Option<Arc<mesh::Mesh>>,
    /// `credentialName` credentials for gateway TLS and TLS origination.
    pub credentials: Arc<credentials::Credentials>,
    /// Finished spans on their way to the collector.
    pub spans: trace::Sink,
    /// The connections requests open (HTTP inside CONNECT, TCP through
    /// it) watch this; accepted ones watch their listener's.
    pub drain: Drain,
    /// The listeners running, kept equal to what the model asks for.
    pub listeners: ListenerSet,
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
        self.log_under(&self.snapshot.load(), &entry);
    }

    /// Logs `entry` when the access log is on under `snap` and its
    /// accessLogging filter admits the entry.
    pub(crate) fn log_under(&self, snap: &Snapshot, entry: &access_log::Entry) {
        if self.logs_access(snap) && snap.log_filter.as_ref().is_none_or(|f| f.admits(entry)) {
            self.access_log.log(entry);
        }
    }
}

/// The local application behind one inbound port, spoken to as Istio's
/// inbound clusters speak: HTTP/2 on a port declared HTTP/2 or gRPC,
/// HTTP/1.1 on one declared HTTP, and the protocol the request came in
/// on a port whose protocol is sniffed (Envoy's
/// `USE_DOWNSTREAM_PROTOCOL`). gRPC needs HTTP/2 end to end for its
/// trailers.
pub(crate) struct App {
    pub http1: Arc<ClusterRt>,
    pub http2: Arc<ClusterRt>,
    pub route: weft_model::Route,
    /// How connections to it are opened (where they leave from).
    pub client: Arc<crate::upstream::ClientSide>,
}

impl App {
    /// The application at `addr` behind inbound `port`, reached by
    /// `client`.
    pub fn new(port: u32, addr: SocketAddr, client: &Arc<crate::upstream::ClientSide>) -> App {
        let cluster = |p| {
            Arc::new(ClusterRt::new(
                crate::proxy::app_cluster(port, addr, p),
                client.clone(),
            ))
        };
        App {
            http1: cluster(weft_model::Protocol::Http),
            http2: cluster(weft_model::Protocol::Http2),
            route: crate::roles::sidecar::inbound_route(port),
            client: client.clone(),
        }
    }

    /// Where a captured outbound request for a host the mesh does not
    /// know goes: on to `destination`, in the client's protocol, as
    /// Istio's `allow_any` route to `PassthroughCluster`.
    pub fn passthrough(destination: SocketAddr, client: &Arc<crate::upstream::ClientSide>) -> App {
        let cluster = |p| {
            let mut c = crate::proxy::app_cluster(u32::from(destination.port()), destination, p);
            c.name = crate::l4::passthrough::OUTBOUND.into();
            Arc::new(ClusterRt::new(c, client.clone()))
        };
        let mut route = crate::roles::sidecar::inbound_route(u32::from(destination.port()));
        route.name = "allow_any".into();
        route.origin = "allow_any".into();
        App {
            http1: cluster(weft_model::Protocol::Http),
            http2: cluster(weft_model::Protocol::Http2),
            route,
            client: client.clone(),
        }
    }

    /// This application reached from `client_ip` itself (TPROXY): a client
    /// of its own for one client connection.
    pub fn as_seen_by(&self, port: u32, client_ip: std::net::IpAddr) -> Option<App> {
        let addr = self.http1.endpoint_addr(0)?;
        let client = Arc::new(
            crate::upstream::ClientSide::plain("", &Default::default()).leaving_as(client_ip),
        );
        Some(App::new(port, addr, &client))
    }

    pub fn cluster(
        &self,
        declared: Option<weft_model::Protocol>,
        version: http::Version,
    ) -> &Arc<ClusterRt> {
        use weft_model::Protocol;
        let h2 = match declared {
            Some(Protocol::Http2 | Protocol::Grpc) => true,
            Some(Protocol::Unknown) | None => version == http::Version::HTTP_2,
            Some(_) => false,
        };
        if h2 {
            &self.http2
        } else {
            &self.http1
        }
    }
}
