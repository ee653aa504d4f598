//! CONNECT on a sidecar's outbound proxy, as clients send it for gRPC or
//! TLS through `HTTP_PROXY`: a TCP (or TLS) service port is spliced
//! through its TCP routes; an HTTP port is served as HTTP inside the
//! tunnel, with the same stages as plain requests.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};

use super::context::Ctx;
use super::error::{Error, ErrorKind};
use super::listener::{HttpListener, Tunnel, TunnelServer};
use crate::body::Body;
use crate::shared::Shared;
use crate::snapshot::Snapshot;

/// `CONNECT host:port` on the outbound proxy, as clients send for gRPC or
/// TLS through `HTTP_PROXY`. A TCP (or TLS) service port is spliced through
/// its TCP routes; an HTTP port is served as HTTP inside the tunnel, so it
/// gets the same routing as plain requests.
#[allow(clippy::too_many_arguments)]
pub fn open<B: Send + 'static>(
    shared: &Shared,
    snap: &Snapshot,
    listener: &Arc<HttpListener>,
    tunnels: &TunnelServer,
    remote: SocketAddr,
    req: Request<B>,
    authority: &str,
    ctx: &mut Ctx,
) -> Response<Body> {
    let Some((host, port)) = authority
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u32>().ok().map(|p| (h.to_ascii_lowercase(), p)))
    else {
        return ctx.fail(Error::new(
            ErrorKind::InvalidRequest,
            format!("CONNECT needs host:port, got {authority:?}"),
        ));
    };
    let tcp_listener = snap.model.listeners.iter().find(|l| {
        l.port == port
            && matches!(l.target, weft_model::ListenerTarget::Tcp(_))
            && (l.service == host || l.service.starts_with(&format!("{host}.")))
    });
    let tunnel = match tcp_listener {
        Some(l) => Tunnel::Tcp(l.name.clone()),
        None if snap
            .tables
            .get(&port.to_string())
            .is_some_and(|t| t.find(&host).is_some() || t.find(authority).is_some()) =>
        {
            Tunnel::Http(listener.clone())
        }
        None => {
            return ctx.fail(Error::new(
                ErrorKind::NoRoute,
                format!("CONNECT {authority}: no service in the mesh answers there"),
            ));
        }
    };
    let Some(shared) = shared.self_ref() else {
        return ctx.fail(Error::new(
            ErrorKind::ShuttingDown,
            "proxy is shutting down",
        ));
    };
    let upgrade = hyper::upgrade::on(req);
    let serve = tunnels.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        serve(shared, upgraded, remote, tunnel).await;
    });
    ctx.entry.reason = "CONNECT tunnel established".into();
    Response::new(super::local_reply::empty())
}
