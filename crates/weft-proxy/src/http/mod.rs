//! The HTTP request path, as named stages over one per-request context
//! ([`context::Ctx`]), read top to bottom in [`handle`] and [`serve`]:
//!
//! accept (the head checked, the path normalized) → edge (request id,
//! `httpsRedirect`, the client's address) → policy → route → filters
//! (CORS, fault, redirect, direct response, rewrite, header operations)
//! → forward (retries, timeouts, mirrors, upgrades) → response (header
//! operations, CORS) → telemetry.
//!
//! What a listener does is said by its [`listener::HttpListener`], which a
//! role assembles; no stage asks which role it serves. The only shared
//! state touched per request is one atomic load of the snapshot and a few
//! atomic counters; matchers, domain tables and clusters were built when
//! the configuration arrived.

pub mod connect;
pub mod context;
pub mod edge;
pub mod error;
pub mod filters;
pub mod forward;
pub mod listener;
pub mod local_reply;
pub mod matcher;
pub mod path;
pub mod policy;
pub mod request_body;
pub mod response_body;
pub mod retry;
pub mod route;
pub mod telemetry;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use weft_model::RouteAction;

use crate::body::Body;
use crate::facts::RequestFacts;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use context::Ctx;
use error::{Error, ErrorKind};
use filters::Cors;
use listener::{HttpListener, Routing};
use response_body::ResponseBody;
use telemetry::InFlight;

/// Serves one request that arrived on `listener`.
pub async fn handle(
    shared: Arc<Shared>,
    listener: Arc<HttpListener>,
    remote: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    let snapshot = shared.snapshot.load_full();
    // Accept: before anything reads the path, so that routing, policy,
    // telemetry and the application all see the normalized one.
    let refused = edge::admit_head(&mut req, snapshot.model.http.path_normalization).err();
    let mut flight = InFlight::begin(shared, snapshot, listener, remote, &mut req);
    let resp = match refused {
        Some(e) => flight.ctx.fail_and_close(e),
        None => {
            let mut resp = serve(
                &flight.shared,
                &flight.snapshot,
                &flight.listener,
                remote,
                req,
                &mut flight.ctx,
            )
            .await;
            for (k, v) in std::mem::take(&mut flight.ctx.response_headers) {
                resp.headers_mut().append(k, v);
            }
            resp
        }
    };
    Ok(flight.finish(resp))
}

/// The stages between an accepted request and its response.
async fn serve<B: forward::ClientBody>(
    shared: &Shared,
    snap: &Snapshot,
    listener: &Arc<HttpListener>,
    remote: SocketAddr,
    mut req: Request<B>,
    ctx: &mut Ctx,
) -> Response<Body> {
    // Edge.
    let authority = edge::authority(&req);
    ctx.entry.authority = Some(authority.clone());
    let authority = authority.to_str().unwrap_or("");
    ctx.entry.request_id = Some(edge::request_id(&mut req));
    if let listener::Edge::Ingress { port } = listener.edge {
        if let Some(resp) = edge::https_redirect(snap, port, authority, &req, ctx) {
            return resp;
        }
    }
    if let (Some(tunnels), true) = (&listener.tunnels, req.method() == http::Method::CONNECT) {
        return connect::open(shared, snap, listener, tunnels, remote, req, authority, ctx);
    }
    edge::client_address(listener.edge, remote, req.headers_mut());

    // Policy; the token it validated is kept for routes on its claims.
    let mut jwt = None;
    if let Some(point) = &listener.policy {
        match policy::check(
            snap,
            &shared.metrics,
            listener,
            point,
            remote,
            &mut req,
            ctx,
        )
        .await
        {
            Ok(validated) => jwt = validated,
            Err(refused) => return refused,
        }
    }

    // Route.
    let mut port_digits = [0u8; 10];
    let (table, port) = match &listener.routing {
        Routing::LocalApp { port } => {
            let app = listener.app.as_deref();
            return to_local_app(shared, snap, *port, app, req, ctx).await;
        }
        Routing::Table { table, port } => (&**table, *port),
        Routing::RequestedPort => {
            let port = route::requested_port(authority);
            (edge::decimal(port, &mut port_digits), port)
        }
    };
    let facts = RequestFacts::with_authority(&req, remote, authority).with_jwt(jwt.as_ref());
    let route = match route::select(&snap.tables, table, port, &facts) {
        Ok(route) => route,
        Err(_)
            if listener.passthrough.is_some()
                && !route::knows_host(&snap.tables, table, &facts) =>
        {
            let Some(to) = listener.passthrough.as_deref() else {
                return ctx.fail(Error::new(ErrorKind::NoRoute, "no passthrough".to_owned()));
            };
            return to_app(to, None, req, ctx).await;
        }
        Err(_) if listener.registry_only && !route::knows_host(&snap.tables, table, &facts) => {
            ctx.entry.route_name = Some("block_all".into());
            ctx.entry.upstream_cluster = Some(crate::l4::passthrough::BLACK_HOLE.into());
            return ctx.fail(Error::new(
                ErrorKind::NotInRegistry,
                format!(
                    "outboundTrafficPolicy REGISTRY_ONLY: {authority} is not in the mesh's registry; a ServiceEntry for it lets it through"
                ),
            ));
        }
        Err(e) => return ctx.fail(e),
    };
    ctx.entry.route_name = route.name.clone();

    // Filters.
    let cors = match filters::cors(route, &req) {
        Cors::Preflight(resp) => return resp,
        Cors::Allowed(origin) => Some(origin),
        Cors::None => None,
    };
    if let Some(aborted) = filters::fault(route, ctx).await {
        return aborted;
    }
    let mut resp = match &route.route.action {
        RouteAction::DirectResponse { status, .. } => filters::direct_response(route, *status),
        RouteAction::Redirect(rd) => filters::redirect(rd, route, &req, authority),
        RouteAction::Forward(dests) => {
            // Forward, then the response's header operations.
            let Some(dest) = crate::upstream::pick_weighted(dests) else {
                return ctx.fail(Error::new(
                    ErrorKind::NoCluster,
                    format!("{} has no destination", route.route.origin),
                ));
            };
            let Some(cluster) = snap.cluster(&dest.cluster) else {
                ctx.entry.upstream_cluster = Some(Arc::from(dest.cluster.as_str()));
                return ctx.fail(Error::new(
                    ErrorKind::NoCluster,
                    format!(
                        "cluster {} is not in this proxy's configuration",
                        dest.cluster
                    ),
                ));
            };
            ctx.entry.upstream_cluster = Some(cluster.name.clone());
            let cluster = cluster.clone();
            let (parts, body) = req.into_parts();
            let out = match filters::outgoing(
                route,
                &dest.request_headers,
                &cluster,
                parts,
                authority,
                ctx.remote,
            ) {
                Ok(out) => out,
                Err(e) => return ctx.fail(e),
            };
            let mirrors = filters::mirrors(route, |name| snap.cluster(name).cloned());
            let mut resp = forward::forward(
                cluster,
                out.parts,
                body,
                out.path_q,
                out.hash,
                &route.route,
                route.retry_on,
                &mirrors,
                ctx,
            )
            .await;
            if let Some(c) = out.new_cookie {
                resp.headers_mut().append(http::header::SET_COOKIE, c);
            }
            filters::apply_headers(resp.headers_mut(), &dest.response_headers);
            filters::apply_headers(resp.headers_mut(), &route.route.response_headers);
            resp
        }
    };

    // Response.
    if let Some(origin) = cors {
        filters::cors_response(route, &origin, &mut resp);
    }
    resp
}

/// A sidecar's inbound side: delivered to the local application on
/// `port` unchanged, through its fixed route.
async fn to_local_app<B: forward::ClientBody>(
    shared: &Shared,
    snap: &Snapshot,
    port: u32,
    app: Option<&crate::shared::App>,
    req: Request<B>,
    ctx: &mut Ctx,
) -> Response<Body> {
    let Some(local) = app.or_else(|| shared.apps.get(&port)) else {
        return ctx.fail(Error::new(
            ErrorKind::NoHealthyUpstream,
            format!("no application address configured for port {port}"),
        ));
    };
    to_app(local, snap.inbound_protocols.get(&port).copied(), req, ctx).await
}

/// Sends `req` to `local` through its fixed route, in the protocol
/// `declared` names, else the request's own.
async fn to_app<B: forward::ClientBody>(
    local: &crate::shared::App,
    declared: Option<weft_model::Protocol>,
    req: Request<B>,
    ctx: &mut Ctx,
) -> Response<Body> {
    let app = local.cluster(declared, req.version());
    let route = &local.route;
    ctx.entry.upstream_cluster = Some(app.name.clone());
    let (parts, body) = req.into_parts();
    let path_q = forward::origin_form(&parts.uri);
    forward::forward(
        app.clone(),
        parts,
        body,
        path_q,
        None,
        route,
        retry::RetryOn::default(),
        &[],
        ctx,
    )
    .await
}
