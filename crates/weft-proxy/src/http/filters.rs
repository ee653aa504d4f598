//! The filter stage, in Envoy's order: CORS, then fault injection, then
//! the route's action (a direct response, a redirect, or the forward
//! request: rewrite, header operations, the hash the load balancer keys
//! on); and on the way back, the response's header operations.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode};
use weft_model::{AbortStatus, HashKey, HeaderOps, Redirect, StrMatch};

use super::context::Ctx;
use super::error::{Error, ErrorKind};
use super::local_reply::{empty, full};
use crate::body::Body;
use crate::snapshot::RouteRt;
use crate::telemetry::flags::ResponseFlag;
use crate::upstream::ClusterRt;

/// What CORS decided for a request.
pub enum Cors {
    /// A preflight from an allowed origin, answered here.
    Preflight(Response<Body>),
    /// An allowed origin: its response gets the CORS headers.
    Allowed(HeaderValue),
    /// No CORS policy, or an origin it does not allow.
    None,
}

/// The route's CORS policy, before faults and routing, as Envoy's filter
/// chain runs it.
pub fn cors<B>(route: &RouteRt, req: &Request<B>) -> Cors {
    let Some(policy) = &route.route.cors else {
        return Cors::None;
    };
    let Some(origin) = req.headers().get(http::header::ORIGIN).filter(|o| {
        o.to_str()
            .is_ok_and(|o| route.cors_origins.iter().any(|m| m.matches(o, false)))
    }) else {
        return Cors::None;
    };
    let preflight = req.method() == http::Method::OPTIONS
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut resp = Response::new(empty());
        cors_headers(resp.headers_mut(), policy, origin, true);
        return Cors::Preflight(resp);
    }
    Cors::Allowed(origin.clone())
}

/// Adds the CORS headers an allowed origin's response carries.
pub fn cors_response(route: &RouteRt, origin: &HeaderValue, resp: &mut Response<Body>) {
    if let Some(policy) = &route.route.cors {
        cors_headers(resp.headers_mut(), policy, origin, false);
    }
}

fn cors_headers(
    h: &mut http::HeaderMap,
    cors: &weft_model::Cors,
    origin: &HeaderValue,
    preflight: bool,
) {
    use http::header::*;
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if cors.allow_credentials == Some(true) {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    let join = |v: &[String]| HeaderValue::from_str(&v.join(",")).ok();
    if preflight {
        if let Some(v) = join(&cors.allow_methods).filter(|_| !cors.allow_methods.is_empty()) {
            h.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        if let Some(v) = join(&cors.allow_headers).filter(|_| !cors.allow_headers.is_empty()) {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = cors.max_age_secs {
            h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
    } else if let Some(v) = join(&cors.expose_headers).filter(|_| !cors.expose_headers.is_empty()) {
        h.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// The route's fault injection: a delay, then maybe an abort, which is
/// the reply.
pub async fn fault(route: &RouteRt, ctx: &mut Ctx) -> Option<Response<Body>> {
    let r = &route.route;
    let fault = r.fault.as_ref()?;
    if let Some(d) = &fault.delay {
        if fastrand::f64() * 100.0 < d.percentage {
            ctx.entry.response_flags.add(ResponseFlag::DelayInjected);
            tokio::time::sleep(Duration::from_millis(d.delay_ms)).await;
        }
    }
    let a = fault.abort.as_ref()?;
    if fastrand::f64() * 100.0 >= a.percentage {
        return None;
    }
    Some(match &a.status {
        AbortStatus::Http(code) => {
            let status =
                StatusCode::from_u16(*code as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let grpc = std::mem::replace(&mut ctx.grpc, false);
            let resp = ctx.local(
                status,
                Some(ResponseFlag::FaultInjected),
                format!("fault filter abort ({})", r.origin),
            );
            ctx.grpc = grpc;
            resp
        }
        AbortStatus::Grpc(name) => {
            ctx.grpc = true;
            let mut resp = ctx.local(
                StatusCode::OK,
                Some(ResponseFlag::FaultInjected),
                format!("fault filter abort ({})", r.origin),
            );
            resp.headers_mut().insert(
                "grpc-status",
                HeaderValue::from(u16::from(weft_model::names::grpc_code(name))),
            );
            resp
        }
    })
}

/// `directResponse`: the route's status and body, with its response
/// header operations.
pub fn direct_response(route: &RouteRt, status: u32, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    apply_headers(resp.headers_mut(), &route.route.response_headers);
    resp
}

/// `redirect`: the location built from the request and what the route
/// replaces in it.
pub fn redirect<B>(rd: &Redirect, req: &Request<B>, authority: &str) -> Response<Body> {
    let scheme = if rd.scheme.is_empty() {
        req.uri().scheme_str().unwrap_or("http")
    } else {
        rd.scheme.as_str()
    };
    let (req_host, req_port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    let host = if rd.authority.is_empty() {
        req_host
    } else {
        rd.authority.as_str()
    };
    let port = match (rd.port, rd.port_from_request) {
        (Some(p), _) => Some(p.to_string()),
        (None, true) => req_port.map(str::to_owned),
        (None, false) => None,
    };
    let path = if rd.uri.is_empty() {
        req.uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned()
    } else {
        rd.uri.clone()
    };
    let location = match port {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut resp = Response::new(empty());
    *resp.status_mut() =
        StatusCode::from_u16(rd.code as u16).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// A request made ready for its destination: its path rewritten, its
/// Host the (rewritten) authority, header operations applied, and the
/// hash the load balancer keys on.
pub struct Outgoing {
    pub parts: http::request::Parts,
    pub path_q: PathAndQuery,
    pub hash: Option<Vec<u8>>,
    /// The affinity cookie to hand the client, when one was made.
    pub new_cookie: Option<HeaderValue>,
}

/// Rewrites and decorates the request head for `cluster`, as the route
/// and its destination say.
pub fn outgoing(
    route: &RouteRt,
    dest_headers: &HeaderOps,
    cluster: &ClusterRt,
    mut parts: http::request::Parts,
    authority: &str,
    remote: SocketAddr,
) -> Result<Outgoing, Error> {
    let r = &route.route;
    // Upstream request: origin-form path (rewritten), the (rewritten)
    // authority as Host, header operations.
    let mut path_q = super::forward::origin_form(&parts.uri);
    let mut host = authority;
    if let Some(rw) = &r.rewrite {
        path_q = PathAndQuery::try_from(rewrite_path(route, rw, path_q.as_str())).map_err(|e| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("invalid request path: {e}"),
            )
        })?;
        if !rw.authority.is_empty() {
            host = rw.authority.as_str();
        }
    }
    // The Host header usually says this already.
    if parts.headers.get(HOST).map(HeaderValue::as_bytes) != Some(host.as_bytes()) {
        if let Ok(v) = HeaderValue::from_str(host) {
            parts.headers.insert(HOST, v);
        }
    }
    apply_headers(&mut parts.headers, &r.request_headers);
    apply_headers(&mut parts.headers, dest_headers);
    let mut hash = hash_input(cluster, &parts, remote);
    // Envoy's cookie affinity: with a TTL and no cookie yet, make one,
    // hash on it, and hand it to the client.
    let mut new_cookie = None;
    if let (
        None,
        Some(HashKey::Cookie {
            name,
            path,
            ttl_ms: Some(ttl),
        }),
    ) = (&hash, cluster.hash_key())
    {
        let value = format!("{:016x}", fastrand::u64(..));
        hash = Some(value.clone().into_bytes());
        let path = if path.is_empty() { "/" } else { path.as_str() };
        new_cookie = HeaderValue::from_str(&format!(
            "{name}={value}; Max-Age={}; Path={path}; HttpOnly",
            ttl / 1000
        ))
        .ok();
    }
    Ok(Outgoing {
        parts,
        path_q,
        hash,
        new_cookie,
    })
}

/// The route's mirrors this request is copied to, each by its percentage.
pub fn mirrors(
    route: &RouteRt,
    cluster: impl Fn(&str) -> Option<Arc<ClusterRt>>,
) -> Vec<Arc<ClusterRt>> {
    route
        .route
        .mirrors
        .iter()
        .filter(|m| fastrand::f64() * 100.0 < m.percentage)
        .filter_map(|m| cluster(&m.cluster))
        .collect()
}

/// Istio's `rewrite.uri` replaces the part a prefix match matched, or the
/// whole path for other matches; `uriRegexRewrite` substitutes.
fn rewrite_path(route: &RouteRt, rw: &weft_model::Rewrite, path_q: &str) -> String {
    let (path, query) = match path_q.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_q, None),
    };
    let mut new_path = path.to_owned();
    if let Some((re, sub)) = &route.regex_rewrite {
        new_path = re.replace_all(path, sub.as_str()).into_owned();
    } else if !rw.uri.is_empty() {
        let prefix = route.route.matches.iter().find_map(|m| match &m.uri {
            Some(StrMatch::Prefix(p)) if path.starts_with(p.as_str()) => Some(p.len()),
            _ => None,
        });
        new_path = match prefix {
            Some(n) => format!("{}{}", rw.uri, &path[n..]),
            None => rw.uri.clone(),
        };
    }
    match query {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    }
}

pub fn apply_headers(h: &mut http::HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            h.remove(n);
        }
    }
    for hv in &ops.set {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(hv.name.as_bytes()),
            HeaderValue::from_str(&hv.value),
        ) {
            h.insert(n, v);
        }
    }
    for hv in &ops.add {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(hv.name.as_bytes()),
            HeaderValue::from_str(&hv.value),
        ) {
            h.append(n, v);
        }
    }
}

/// The consistent-hash input for this request, if the cluster hashes.
fn hash_input(
    cluster: &ClusterRt,
    parts: &http::request::Parts,
    remote: SocketAddr,
) -> Option<Vec<u8>> {
    match cluster.hash_key()? {
        HashKey::Header(name) => parts
            .headers
            .get(name.as_str())
            .map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie { name, .. } => parts
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                (k == name).then(|| v.as_bytes().to_vec())
            }),
        HashKey::QueryParameter(name) => {
            parts.uri.query().unwrap_or("").split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == name).then(|| v.as_bytes().to_vec())
            })
        }
        HashKey::SourceIp => Some(remote.ip().to_string().into_bytes()),
    }
}
