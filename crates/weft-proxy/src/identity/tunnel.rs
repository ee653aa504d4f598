//! The tunnel port (15008): mutual TLS 1.3 with a mesh certificate
//! required, then HTTP/2 whose CONNECT streams each carry one connection
//! to a workload port of this proxy (HBONE, as Istio's ambient mode), or
//! to a gateway's port (what a sidecar sends a gateway with ISTIO_MUTUAL).
//! The peer's SPIFFE ID comes from its verified certificate; its workload
//! name and labels from the `baggage` it sends, for metrics only.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weft_model::{Direction, ListenerTarget};

use crate::identity::mesh::Mesh;
use crate::listen::OnConnection;
use crate::shared::Shared;
use crate::telemetry::metrics::Peer;

/// Connections accepted on the tunnel port: mTLS with a mesh
/// certificate, then HTTP/2 whose CONNECT streams are served as inbound
/// connections from the verified peer.
pub fn on_connection(shared: Arc<Shared>, mesh: Arc<Mesh>) -> OnConnection {
    Arc::new(move |stream, remote, mut drain| {
        let (shared, mesh) = (shared.clone(), mesh.clone());
        Box::pin(async move {
            let config = match mesh.server_config() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "tunnel: no TLS configuration; refusing");
                    return;
                }
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "tunnel: mTLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let principal = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| weft_identity::verify::peer_identity(c).ok());
            // The verifier already required one; this cannot be missing,
            // but a connection without it is refused.
            let Some(principal) = principal else { return };
            let principal: Arc<str> = principal.into();
            let (streams, stream_drain) = (shared.clone(), drain.clone());
            let svc = service_fn(move |req| {
                let (shared, principal, drain) =
                    (streams.clone(), principal.clone(), stream_drain.clone());
                async move { Ok::<_, Infallible>(open_stream(shared, principal, remote, req, drain)) }
            });
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .max_concurrent_streams(crate::identity::mesh::TUNNEL_MAX_CONCURRENT_STREAMS)
                // Peers are verified proxies whose streams end by resets in
                // the normal course (a client that went away); h2's default
                // of 20 before it closes the whole connection failed every
                // other stream on it.
                .max_pending_accept_reset_streams(4096)
                .max_local_error_reset_streams(4096)
                .initial_stream_window_size(4 << 20)
                .initial_connection_window_size(16 << 20)
                .serve_connection(TokioIo::new(tls), svc);
            let mut conn = std::pin::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = drain.signaled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(%remote, error = %e, "tunnel connection ended");
            }
        })
    })
}

fn reply(status: http::StatusCode) -> http::Response<Empty<Bytes>> {
    let mut r = http::Response::new(Empty::new());
    *r.status_mut() = status;
    r
}

/// Accepts one CONNECT stream to a workload port of this proxy and serves
/// what arrives in it as inbound traffic from the verified peer.
fn open_stream(
    shared: Arc<Shared>,
    principal: Arc<str>,
    remote: SocketAddr,
    mut req: http::Request<hyper::body::Incoming>,
    drain: crate::listen::drain::Watch,
) -> http::Response<Empty<Bytes>> {
    if req.method() != http::Method::CONNECT {
        return reply(http::StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(target) = req
        .uri()
        .authority()
        .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
    else {
        return reply(http::StatusCode::BAD_REQUEST);
    };
    // Only this workload's own ports: the tunnel is not a relay.
    if shared.config.inbound_ip.is_some_and(|ip| ip != target.ip()) {
        return reply(http::StatusCode::FORBIDDEN);
    }
    let port = u32::from(target.port());
    let snap = shared.snapshot.load();
    let peer = Arc::new(peer_from(&principal, req.headers().get("baggage")));
    let Some(listener) = snap.model.listeners.iter().find(|l| {
        l.direction == Direction::Inbound
            && l.port == port
            && matches!(l.target, ListenerTarget::Local { .. })
    }) else {
        return match crate::roles::gateway::tunneled(&shared, &snap, target, peer) {
            Some(what) => opened(&mut req, move |io| {
                crate::roles::gateway::serve_tunneled(shared, what, io, remote, drain)
            }),
            None => reply(http::StatusCode::NOT_FOUND),
        };
    };
    let protocol = listener.protocol;
    opened(&mut req, move |io| {
        crate::roles::sidecar::serve(shared, io, port, protocol, remote, Some(peer), drain)
    })
}

/// Answers a CONNECT 200 and serves its stream with `serve` once the
/// client's side is upgraded.
fn opened<F, Fut>(
    req: &mut http::Request<hyper::body::Incoming>,
    serve: F,
) -> http::Response<Empty<Bytes>>
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!(error = %e, "tunnel stream did not open"),
        }
    });
    reply(http::StatusCode::OK)
}

/// The calling workload for metrics: its verified principal, and what its
/// baggage says about the rest.
fn peer_from(principal: &str, baggage: Option<&http::HeaderValue>) -> Peer {
    let mut peer = Peer::unknown();
    peer.principal = Arc::new(principal.to_owned());
    let text = baggage.and_then(|b| b.to_str().ok()).unwrap_or("");
    for pair in text.split(',') {
        let Some((k, v)) = pair.trim().split_once('=') else {
            continue;
        };
        if v.trim().is_empty() {
            continue;
        }
        let v = Arc::new(v.trim().to_owned());
        match k.trim() {
            "k8s.namespace.name" => peer.namespace = v,
            "k8s.deployment.name" => peer.workload = v,
            "service.name" => peer.app = v,
            "service.version" => peer.version = v,
            _ => {}
        }
    }
    // The namespace is part of the verified identity: prefer it.
    if let Some(ns) = principal
        .split("/ns/")
        .nth(1)
        .and_then(|r| r.split('/').next())
    {
        peer.namespace = Arc::new(ns.to_owned());
    }
    peer
}
