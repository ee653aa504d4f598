//! A sidecar: the outbound HTTP proxy its workload calls through, and the
//! inbound side that receives connections on workload ports (in plain
//! text, or as streams inside the mTLS tunnel), sniffed when the port's
//! protocol is not declared, then served as HTTP or spliced to the
//! application.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use weft_model::{HeaderOps, MtlsMode, Protocol, RouteAction};

use crate::http::listener::{Edge, HttpListener, PolicyPoint, Reporter, Routing, Tunnel};
use crate::l4::sniff::{sniff, Prefixed};
use crate::listen::drain::Watch;
use crate::listen::OnConnection;
use crate::policy::authz::Attributes;
use crate::policy::Denial;
use crate::shared::Shared;
use crate::telemetry::access_log::Entry;
use crate::telemetry::flags::ResponseFlag;
use crate::telemetry::metrics::Peer;

/// The outbound HTTP proxy (what `HTTP_PROXY` points at): routed by the
/// port the client asks for; policy is the destination's to judge.
pub fn outbound() -> Arc<HttpListener> {
    Arc::new(HttpListener {
        name: "outbound".into(),
        routing: Routing::RequestedPort,
        edge: Edge::Outbound,
        policy: None,
        reporter: Reporter::Source { server_span: false },
        peer: None,
        tunnels: Some(Arc::new(serve_tunnel)),
        app: None,
        passthrough: None,
        registry_only: false,
    })
}

/// What a CONNECT on the outbound proxy carries: a TCP service's bytes,
/// spliced through its TCP routes, or HTTP, served as plain requests are.
/// The proxy's drain waits for both.
fn serve_tunnel(
    shared: Arc<Shared>,
    upgraded: hyper::upgrade::Upgraded,
    remote: SocketAddr,
    tunnel: Tunnel,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let drain = shared.drain.watch();
        match tunnel {
            Tunnel::Tcp(name) => {
                crate::l4::tcp::handle(shared, name, io, remote, None, drain).await
            }
            Tunnel::Http(http) => {
                crate::listen::downstream::serve(
                    &shared,
                    io,
                    remote,
                    "outbound CONNECT",
                    http,
                    drain,
                )
                .await
            }
        }
    })
}

/// Workload port `port`'s inbound HTTP: judged by the workload's
/// policies, then delivered to the application.
pub(crate) fn inbound(
    shared: &Shared,
    port: u32,
    peer: Option<Arc<Peer>>,
    app: Option<Arc<crate::shared::App>>,
) -> Arc<HttpListener> {
    Arc::new(HttpListener {
        name: format!("inbound|{port}").into(),
        routing: Routing::LocalApp { port },
        edge: Edge::Inbound,
        policy: Some(PolicyPoint {
            port,
            destination_ip: shared.config.inbound_ip,
            vouched_sources: true,
        }),
        reporter: Reporter::Destination { port },
        peer,
        tunnels: None,
        app,
        passthrough: None,
        registry_only: false,
    })
}

/// Plain-text connections on workload port `port`.
pub fn on_plaintext(shared: Arc<Shared>, port: u32, protocol: Protocol) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let shared = shared.clone();
        Box::pin(async move {
            // PeerAuthentication STRICT: plain text is refused (a proxy
            // without identity, `--no-mtls`, cannot enforce it).
            if shared.mesh.is_some() && mtls_mode(&shared, port) == MtlsMode::Strict {
                refuse_plaintext(&shared, port, remote);
                return;
            }
            serve(shared, stream, port, protocol, remote, None, drain).await;
        })
    })
}

/// Logs a plain-text connection refused under STRICT mTLS.
pub(crate) fn refuse_plaintext(shared: &Shared, port: u32, remote: SocketAddr) {
    let snap = shared.snapshot.load();
    let origin = snap.model.security.inbound_mtls.origin.join(", ");
    shared.log_access(Entry {
        route_name: Some(format!("inbound|{port}").into()),
        reason: format!("plain text refused: mTLS is STRICT on port {port} ({origin})"),
        ..Entry::starting_now(remote)
    });
}

/// The mTLS mode PeerAuthentication sets for an inbound port.
pub fn mtls_mode(shared: &Shared, port: u32) -> MtlsMode {
    let snap = shared.snapshot.load();
    let policy = &snap.model.security.inbound_mtls;
    policy.ports.get(&port).copied().unwrap_or(policy.mode)
}

/// Serves one inbound connection for workload `port`.
pub async fn serve<T>(
    shared: Arc<Shared>,
    io: T,
    port: u32,
    protocol: Protocol,
    remote: SocketAddr,
    peer: Option<Arc<Peer>>,
    drain: Watch,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Under TPROXY the application sees the client's own address: this
    // connection reaches it from there, on connections of its own.
    let app = shared
        .config
        .tproxy
        .then(|| shared.apps.get(&port)?.as_seen_by(port, remote.ip()))
        .flatten()
        .map(Arc::new);
    let (io, opaque) = match protocol {
        Protocol::Tcp | Protocol::Tls | Protocol::Https => (Prefixed::new(Vec::new(), io), true),
        Protocol::Unknown => {
            let (io, is_http) = sniff(io).await;
            (io, !is_http)
        }
        _ => (Prefixed::new(Vec::new(), io), false),
    };
    if opaque {
        if let Err(why) = connection_allowed(&shared, port, remote, peer.as_deref()) {
            log_denied(&shared, port, remote, why);
            return;
        }
        let _drain = drain;
        splice_to_app(&shared, port, io, app.as_deref()).await;
        return;
    }
    let listener = inbound(&shared, port, peer, app);
    let name = listener.name.clone();
    crate::listen::downstream::serve(&shared, io, remote, &name, listener, drain).await;
}

/// Logs a connection AuthorizationPolicy refused: closing is the only
/// answer TCP has.
pub(crate) fn log_denied(shared: &Shared, port: u32, remote: SocketAddr, why: String) {
    let mut entry = Entry::starting_now(remote);
    entry.route_name = Some(format!("inbound|{port}").into());
    entry.response_flags.add(ResponseFlag::RbacDenied);
    entry.reason = why;
    shared.log_access(entry);
}

/// AuthorizationPolicy on a connection not read as HTTP.
pub(crate) fn connection_allowed(
    shared: &Shared,
    port: u32,
    remote: SocketAddr,
    peer: Option<&Peer>,
) -> Result<(), String> {
    let snap = shared.snapshot.load();
    let principal = peer.map(|p| p.principal.as_str());
    let source_ip = snap.policy.believed_source(remote.ip(), principal);
    let caller = Attributes {
        principal,
        source_ip,
        remote_ip: source_ip,
        destination_ip: shared.config.inbound_ip,
        destination_port: port as u16,
        ..Attributes::default()
    };
    snap.policy.check_connection(&caller).map_err(|d| match d {
        Denial::Forbidden {
            policy: Some(policy),
            why,
        } => format!("connection denied by {policy} ({why})"),
        Denial::Forbidden { policy: None, why }
        | Denial::Unauthenticated { why }
        | Denial::External { why, .. } => why,
    })
}

/// The fixed route of an inbound listener: no matching, no policy.
pub fn inbound_route(port: u32) -> weft_model::Route {
    weft_model::Route {
        name: format!("inbound|{port}"),
        origin: format!("inbound|{port}"),
        matches: Vec::new(),
        action: RouteAction::Forward(Vec::new()),
        rewrite: None,
        timeout_ms: None,
        retry: None,
        fault: None,
        mirrors: Vec::new(),
        cors: None,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// Splices an opaque inbound connection to the application.
pub(crate) async fn splice_to_app<T: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    port: u32,
    mut client: T,
    app: Option<&crate::shared::App>,
) {
    let Some(app) = app.or_else(|| shared.apps.get(&port)) else {
        return;
    };
    let Some(addr) = app.http1.endpoint_addr(0) else {
        return;
    };
    let from = &app.client;
    let patience = std::time::Duration::from_millis(crate::proxy::APP_RESTART_PATIENCE_MS);
    match crate::sockets::connect_patiently(addr, from.unmeshed_source, from.transparent, patience)
        .await
    {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the application refused an inbound connection")
        }
    }
}
