//! What the request stages do on one HTTP listener. A role assembles it
//! (see `crate::roles`); the stages read its parts and never ask which
//! role they serve.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use crate::shared::Shared;
use crate::telemetry::metrics::Peer;

pub struct HttpListener {
    /// How the listener is named in the access log when it refuses a
    /// connection (`outbound`, `gateway|8080`, `inbound|9080`).
    pub name: Arc<str>,
    pub routing: Routing,
    pub edge: Edge,
    /// Where policies are judged; `None`: this listener judges none (the
    /// destination's proxy does).
    pub policy: Option<PolicyPoint>,
    pub reporter: Reporter,
    /// The calling workload, when the connection came through the mTLS
    /// tunnel (its principal verified, the rest from its baggage).
    pub peer: Option<Arc<Peer>>,
    /// Whether CONNECT opens tunnels here, and what serves them.
    pub tunnels: Option<TunnelServer>,
    /// The local application as this connection alone reaches it (from
    /// the client's address, under TPROXY); `None`: the proxy's own.
    pub(crate) app: Option<Arc<crate::shared::App>>,
    /// Under capture, where an outbound connection was going: a request
    /// whose host is no virtual host of its port's table goes there
    /// (Istio's `allow_any` virtual host, to `PassthroughCluster`).
    pub(crate) passthrough: Option<Arc<crate::shared::App>>,
    /// Under capture with `outboundTrafficPolicy: REGISTRY_ONLY`: a
    /// request whose host no virtual host knows is answered 502
    /// (`block_all`) instead of going on.
    pub(crate) registry_only: bool,
}

/// What a CONNECT tunnel carries, as the CONNECT stage found it.
pub enum Tunnel {
    /// Opaque bytes for the TCP listener of this name.
    Tcp(String),
    /// HTTP, served with the same stages as plain requests.
    Http(Arc<HttpListener>),
}

/// Serves a tunnel once the client's side of the CONNECT is upgraded; a
/// role says how.
pub type TunnelServer = Arc<
    dyn Fn(
            Arc<Shared>,
            hyper::upgrade::Upgraded,
            SocketAddr,
            Tunnel,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// How a request finds its route.
#[derive(Debug, Clone)]
pub enum Routing {
    /// The route table named by the port the client asked for, as a
    /// sidecar's outbound proxy routes.
    RequestedPort,
    /// One route table, as a gateway port has.
    Table { table: Arc<str>, port: u32 },
    /// The local application on a workload port, unrouted.
    LocalApp { port: u32 },
}

/// What the edge stage records about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The mesh's edge: the client's address goes into
    /// `x-forwarded-for` and `x-envoy-external-address`, and a server
    /// with `httpsRedirect` on `port` redirects.
    Ingress { port: u32 },
    /// A workload's own calls: only the edge may say who an external
    /// client was, so `x-envoy-external-address` is dropped.
    Outbound,
    /// Requests from a peer proxy: headers as it sent them.
    Inbound,
}

/// Where the policy stage runs and what it knows of the destination.
#[derive(Debug, Clone, Copy)]
pub struct PolicyPoint {
    pub port: u32,
    pub destination_ip: Option<IpAddr>,
    /// Whether a source address that belongs to a workload is believed
    /// only from that workload's certificate (a sidecar's inbound side);
    /// a gateway takes its clients' addresses as they come.
    pub vouched_sources: bool,
}

/// Which side of a call this proxy reports, in Istio's `reporter` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporter {
    /// The caller's proxy or a gateway: the destination is the endpoint
    /// chosen. `server_span`: the span is the server's (a gateway's).
    Source { server_span: bool },
    /// The destination's proxy on workload `port`: the source is the
    /// peer.
    Destination { port: u32 },
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("name", &self.name)
            .field("routing", &self.routing)
            .field("edge", &self.edge)
            .field("policy", &self.policy)
            .field("reporter", &self.reporter)
            .field("tunnels", &self.tunnels.is_some())
            .finish_non_exhaustive()
    }
}
