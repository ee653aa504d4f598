//! A gateway (ingress or egress): Gateway servers on its ports, TLS
//! terminated where they say, requests routed by each port's table and
//! judged by the gateway's own policies, at the mesh's edge.

use std::net::SocketAddr;
use std::sync::Arc;

use weft_model::{Direction, ListenerTarget, ServerTls};

use crate::http::listener::{Edge, HttpListener, PolicyPoint, Reporter, Routing};
use crate::identity::gateway_tls;
use crate::listen::OnConnection;
use crate::shared::Shared;
use crate::telemetry::access_log::Entry;
use crate::telemetry::metrics::Peer;

/// Gateway port `port`'s HTTP, routed by `table`.
pub fn listener(table: &str, port: u32) -> Arc<HttpListener> {
    listener_for(table, port, None)
}

/// As [`listener`], for connections from `peer` (through the tunnel).
fn listener_for(table: &str, port: u32, peer: Option<Arc<Peer>>) -> Arc<HttpListener> {
    Arc::new(HttpListener {
        name: format!("gateway|{port}").into(),
        routing: Routing::Table {
            table: table.into(),
            port,
        },
        edge: Edge::Ingress { port },
        policy: Some(PolicyPoint {
            port,
            destination_ip: None,
            vouched_sources: false,
        }),
        reporter: Reporter::Source { server_span: true },
        peer,
        tunnels: None,
        app: None,
        passthrough: None,
        registry_only: false,
    })
}

/// Connections on gateway port `port`: TLS terminated first when a
/// server there terminates it.
pub fn on_connection(shared: Arc<Shared>, listener: Arc<HttpListener>, port: u32) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let (shared, listener) = (shared.clone(), listener.clone());
        Box::pin(async move {
            // Held for the handshake only: the servers are read in place.
            let snap = shared.snapshot.load_full();
            let servers = tls_servers(&snap, port);
            let name = listener.name.clone();
            // ISTIO_MUTUAL is the mesh's mTLS: only the tunnel carries it,
            // and a plain connection must not get around it.
            if istio_mutual(&snap, port) {
                refuse_tls(&shared, port, remote, plain_refused(port));
                return;
            }
            if servers.iter().any(gateway_tls::terminates) {
                let tls = match gateway_tls::accept(stream, servers, &shared.credentials).await {
                    Ok(tls) => tls,
                    Err(why) => {
                        refuse_tls(&shared, port, remote, why);
                        return;
                    }
                };
                crate::listen::downstream::serve(&shared, tls, remote, &name, listener, drain)
                    .await;
                return;
            }
            crate::listen::downstream::serve(&shared, stream, remote, &name, listener, drain).await;
        })
    })
}

/// The TLS settings of the gateway servers on `port` in `snap`.
fn tls_servers(snap: &crate::snapshot::Snapshot, port: u32) -> &[ServerTls] {
    snap.model
        .listeners
        .iter()
        .find(|l| l.direction == Direction::Gateway && l.port == port)
        .map_or(&[], |l| l.tls.as_slice())
}

/// Logs a TLS connection the gateway could not accept.
fn refuse_tls(shared: &Shared, port: u32, remote: SocketAddr, why: String) {
    shared.log_access(Entry {
        route_name: Some(format!("gateway|{port}").into()),
        reason: why,
        ..Entry::starting_now(remote)
    });
}

/// What a stream the tunnel carries to one of this gateway's addresses
/// is served as.
pub enum Tunneled {
    /// HTTP on a gateway port, from the tunnel's verified peer.
    Http(Arc<HttpListener>),
    /// A passthrough port (TLS by SNI, or TCP): the listener's name and
    /// port, and the tunnel's verified peer.
    Tcp(String, u32, Arc<Peer>),
}

/// The gateway port bound at `target`, for a stream from `peer` that
/// came through the mTLS tunnel (a sidecar's ISTIO_MUTUAL); `None` when
/// no port is bound there, or its servers terminate TLS of their own
/// (SIMPLE, MUTUAL), which a tunneled stream does not carry.
pub fn tunneled(
    shared: &Shared,
    snap: &crate::snapshot::Snapshot,
    target: SocketAddr,
    peer: Arc<Peer>,
) -> Option<Tunneled> {
    let l = snap.model.listeners.iter().find(|l| {
        l.direction == Direction::Gateway && shared.config.gateway_bind(l.port) == Some(target)
    })?;
    match &l.target {
        ListenerTarget::Tcp(_) => Some(Tunneled::Tcp(l.name.clone(), l.port, peer)),
        ListenerTarget::Routes(table) if !l.tls.iter().any(gateway_tls::terminates) => {
            Some(Tunneled::Http(listener_for(table, l.port, Some(peer))))
        }
        _ => None,
    }
}

/// Connections on a gateway's passthrough port (TLS by SNI, or TCP)
/// `name`, bound for gateway port `port`.
pub fn on_passthrough(shared: Arc<Shared>, name: String, port: u32) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        Box::pin(serve_passthrough(
            shared.clone(),
            name.clone(),
            port,
            stream,
            remote,
            None,
            drain,
        ))
    })
}

/// One connection on a passthrough port, from `peer` when it came through
/// the tunnel: a port whose servers say ISTIO_MUTUAL takes only those,
/// and the gateway's AuthorizationPolicies judge it as a connection.
async fn serve_passthrough<T>(
    shared: Arc<Shared>,
    name: String,
    port: u32,
    io: T,
    remote: SocketAddr,
    peer: Option<Arc<Peer>>,
    drain: crate::listen::drain::Watch,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    if peer.is_none() && istio_mutual(&shared.snapshot.load(), port) {
        refuse_tls(&shared, port, remote, plain_refused(port));
        return;
    }
    if let Err(why) =
        crate::roles::sidecar::connection_allowed(&shared, port, remote, peer.as_deref())
    {
        let mut entry = Entry::starting_now(remote);
        entry.route_name = Some(format!("gateway|{port}").into());
        entry
            .response_flags
            .add(crate::telemetry::flags::ResponseFlag::RbacDenied);
        entry.reason = why;
        shared.log_access(entry);
        return;
    }
    crate::l4::tcp::handle(shared, name, io, remote, None, drain).await
}

/// Whether a server on gateway port `port` says ISTIO_MUTUAL: the mesh's
/// mTLS, which only the tunnel carries.
fn istio_mutual(snap: &crate::snapshot::Snapshot, port: u32) -> bool {
    tls_servers(snap, port)
        .iter()
        .any(|t| t.mode == "ISTIO_MUTUAL")
}

fn plain_refused(port: u32) -> String {
    format!("gateway port {port} takes ISTIO_MUTUAL: only mesh mTLS (the tunnel, 15008) reaches it")
}

/// Serves a tunneled stream as [`tunneled`] found it.
pub async fn serve_tunneled<T>(
    shared: Arc<Shared>,
    what: Tunneled,
    io: T,
    remote: SocketAddr,
    drain: crate::listen::drain::Watch,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match what {
        Tunneled::Http(listener) => {
            let name = listener.name.clone();
            crate::listen::downstream::serve(&shared, io, remote, &name, listener, drain).await
        }
        Tunneled::Tcp(name, port, peer) => {
            serve_passthrough(shared, name, port, io, remote, Some(peer), drain).await
        }
    }
}
