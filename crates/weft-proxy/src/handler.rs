//! The HTTP request path: virtual host → first matching route → fault →
//! redirect, direct response or forward (with retries, timeouts and pool
//! limits) → header operations → access log.
//!
//! The only shared state touched per request is one atomic load of the
//! snapshot and a few atomic counters; matchers, domain tables and clusters
//! were built when the configuration arrived.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use weft_model::{AbortStatus, HashKey, HeaderOps, RouteAction, StrMatch};

use crate::access_log::{protocol_name, Entry};
use crate::flags::ResponseFlag;
use crate::local_reply::{full, reply};
use crate::request_body::{BodyTally, DownstreamFault, RequestBody};
use crate::response_body::{ResponseBody, Tally};
use crate::retry::RetryOn;
use crate::snapshot::{RequestView, RouteRt, Snapshot};
use crate::upstream::{Body, ClusterRt, SendError};
use crate::Shared;

/// Which listener a request arrived on.
#[derive(Debug, Clone)]
pub enum Entrypoint {
    /// The sidecar's outbound HTTP proxy: route table chosen by the port the
    /// client asked for.
    Outbound,
    /// A gateway listener with its route table.
    Gateway { table: Arc<str>, port: u32 },
    /// A sidecar's inbound listener, delivering to the local application.
    Inbound {
        port: u32,
        protocol: weft_model::Protocol,
        /// The calling workload, when the request came through the mTLS
        /// tunnel (its principal verified, the rest from its baggage).
        peer: Option<Arc<crate::metrics::Peer>>,
    },
}

/// Retries buffer the request body so it can be sent again; larger bodies
/// are refused rather than silently not retried.
const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;

struct Ctx {
    start: Instant,
    /// Request body bytes sent upstream (counted as they stream).
    request_bytes: RequestSize,
    /// The endpoint and service the request went to, for metrics.
    dest: Option<(crate::metrics::Peer, crate::metrics::ServiceNames)>,
    /// The access log entry; its response flags are the request's.
    entry: Entry,
    /// The downstream peer's address (for source-IP hashing).
    remote: SocketAddr,
    explain: bool,
    grpc: bool,
    /// This proxy's part of the request's trace, when a tracer is set.
    hop: Option<crate::trace::Hop>,
    /// What metric tag overrides read from the request, when any does.
    request_tags: Option<Arc<[crate::metrics::Text]>>,
}

impl Ctx {
    fn local(
        &mut self,
        status: StatusCode,
        flag: Option<ResponseFlag>,
        reason: String,
    ) -> Response<Body> {
        if let Some(f) = flag {
            self.entry.response_flags.add(f);
        }
        let resp = reply(status, flag, &reason, self.explain, self.grpc);
        self.entry.reason = reason;
        resp
    }
}

/// Serves one request. `busy` marks its connection as not idle until the
/// response is ready.
pub async fn handle(
    shared: Arc<Shared>,
    entry: Entrypoint,
    remote: SocketAddr,
    mut req: Request<Incoming>,
    busy: Option<crate::downstream::InFlight>,
) -> Result<Response<ResponseBody>, Infallible> {
    let _busy = busy;
    let snapshot = shared.snapshot.load_full();
    // Before anything reads the path: routing, policy, telemetry and the
    // application all see the normalized one.
    let refused = match malformed_head(&req) {
        Some(why) => Some(why.to_owned()),
        None => normalize_path(&mut req, snapshot.model.http.path_normalization)
            .err()
            .map(|e| e.to_string()),
    };
    let hop = begin_trace(&snapshot, &entry, remote, &mut req);
    let request_tags = snapshot.tags.reads_requests().then(|| {
        snapshot.tags.evaluate(&crate::metric_tags::RequestFacts {
            host: req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .unwrap_or_else(|| header_str(&req, "host")),
            method: req.method().as_str(),
            path: req.uri().path(),
            scheme: req.uri().scheme_str().unwrap_or("http"),
            headers: req.headers(),
        })
    });
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    let ctx = Ctx {
        request_bytes: RequestSize::Known(0),
        dest: None,
        start: Instant::now(),
        // With the access log off, only what metrics and replies read is
        // filled in.
        entry: if shared.logs_access(&snapshot) {
            Entry {
                method: Some(req.method().clone()),
                path: req.uri().path_and_query().cloned(),
                protocol: protocol_name(req.version()),
                user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
                ..Entry::starting_now(remote)
            }
        } else {
            Entry::default()
        },
        remote,
        explain: shared.config.explain,
        grpc,
        hop,
        request_tags: request_tags.flatten(),
    };
    let mut flight = InFlight {
        shared,
        snapshot,
        entry: entry.clone(),
        ctx,
        done: false,
    };
    let resp = match refused {
        Some(why) => {
            let mut resp = flight.ctx.local(
                StatusCode::BAD_REQUEST,
                Some(ResponseFlag::DownstreamProtocolError),
                why,
            );
            // What follows on the connection cannot be trusted to be
            // framed as the client meant.
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            resp
        }
        None => {
            dispatch(
                &flight.shared,
                &flight.snapshot,
                entry,
                remote,
                req,
                &mut flight.ctx,
            )
            .await
        }
    };
    Ok(flight.finish(resp))
}

/// What HTTP/1.1 forbids in a request head and hyper lets through: RFC
/// 9112 wants exactly one valid Host, and two Transfer-Encoding headers
/// frame a body two ways (the stuff of request smuggling).
fn malformed_head<B: hyper::body::Body>(req: &Request<B>) -> Option<&'static str> {
    if !matches!(
        req.version(),
        http::Version::HTTP_11 | http::Version::HTTP_10
    ) {
        return None;
    }
    let mut hosts = req.headers().get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == http::Version::HTTP_11 => {
            return Some("an HTTP/1.1 request must carry a Host header")
        }
        (Some(_), Some(_)) => return Some("the request carries more than one Host header"),
        (Some(h), None) if !host_like(h.as_bytes()) => {
            return Some("the Host header is not a valid host[:port]")
        }
        _ => {}
    }
    // (With a Content-Length too, hyper has already dropped the length,
    // read the body as chunked and will close the connection after the
    // response, as RFC 9112 asks.)
    // Without a body there is nothing to frame (and no lookup to pay).
    if !req.body().is_end_stream()
        && req
            .headers()
            .get_all(http::header::TRANSFER_ENCODING)
            .iter()
            .nth(1)
            .is_some()
    {
        return Some("the request carries more than one Transfer-Encoding header");
    }
    None
}

/// Whether `h` can be a Host: RFC 3986's reg-name, IPv4 or bracketed
/// IPv6 characters, and a port. (A byte test rather than a parse: it runs
/// for every request.)
fn host_like(h: &[u8]) -> bool {
    h.iter().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// Rewrites the request's path as MeshConfig `pathNormalization` says
/// (the query is left as sent); CONNECT has no path.
fn normalize_path<B>(
    req: &mut Request<B>,
    mode: weft_model::PathNormalization,
) -> Result<(), crate::path::PathError> {
    if req.method() == http::Method::CONNECT {
        return Ok(());
    }
    let Some(pq) = req.uri().path_and_query() else {
        return Ok(());
    };
    let std::borrow::Cow::Owned(path) = crate::path::normalize(pq.path(), mode)? else {
        return Ok(());
    };
    let path = match pq.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path).map_err(|_| crate::path::PathError::Unparsable)?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| crate::path::PathError::Unparsable)?;
    Ok(())
}

/// The request body's size: known when it was buffered or empty, counted
/// as it streams upstream otherwise.
enum RequestSize {
    Known(u64),
    Streaming(Arc<BodyTally>),
}

impl RequestSize {
    fn get(&self) -> u64 {
        match self {
            RequestSize::Known(n) => *n,
            RequestSize::Streaming(t) => t.bytes(),
        }
    }

    /// How the client failed its streaming body, if it did.
    fn fault(&self) -> Option<DownstreamFault> {
        match self {
            RequestSize::Known(_) => None,
            RequestSize::Streaming(t) => t.fault(),
        }
    }
}

/// A request being served. hyper drops the handler's future when the client
/// goes away before the response is ready; then `Drop` logs and counts the
/// request as Envoy does: response code 0, flag DC.
struct InFlight {
    shared: Arc<Shared>,
    snapshot: Arc<Snapshot>,
    entry: Entrypoint,
    ctx: Ctx,
    done: bool,
}

impl InFlight {
    fn finish(mut self, resp: Response<Body>) -> Response<ResponseBody> {
        self.done = true;
        self.ctx.entry.response_code = resp.status().as_u16();
        let (series, span) = self.close();
        if series.is_none() && span.is_none() {
            return resp.map(ResponseBody::plain);
        }
        // The response body streams after this returns: count it as it
        // goes, and record its size and end the span when it ends (or the
        // client goes away).
        let span = span.map(|s| (s, self.shared.spans.clone()));
        resp.map(|body| ResponseBody::counted(body, Tally { series, span }))
    }

    /// Records metrics and the access log entry. Returns the series whose
    /// response sizes are still to be counted (when that metric is on) and
    /// the sampled span still to be ended.
    fn close(
        &mut self,
    ) -> (
        Option<Arc<crate::metrics::HttpSeries>>,
        Option<Box<opentelemetry_sdk::trace::SpanData>>,
    ) {
        let ctx = &mut self.ctx;
        ctx.entry.duration = ctx.start.elapsed().as_millis() as u64;
        let series = record(&self.shared, &self.snapshot, &self.entry, ctx);
        let span = ctx.hop.take().and_then(|hop| {
            let principal = match &self.entry {
                Entrypoint::Inbound { peer, .. } => (
                    "source.principal",
                    peer.as_ref().map_or("", |p| &*p.principal),
                ),
                _ => (
                    "destination.principal",
                    ctx.dest.as_ref().map_or("", |(p, _)| &*p.principal),
                ),
            };
            hop.finish(&crate::trace::Outcome {
                status: ctx.entry.response_code,
                flags: &ctx.entry.response_flags,
                upstream_cluster: ctx.entry.upstream_cluster_str(),
                request_id: ctx.entry.request_id_str(),
                principal,
                request_size: ctx.request_bytes.get(),
                me: &self.snapshot.me,
            })
        });
        if self.shared.logs_access(&self.snapshot) {
            self.shared.access_log.log(&ctx.entry);
        }
        (self.snapshot.record.response_size.then_some(series), span)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.ctx
                .entry
                .response_flags
                .add(ResponseFlag::DownstreamConnectionTermination);
            self.ctx.entry.response_code = 0;
            if self.ctx.entry.reason.is_empty() {
                self.ctx.entry.reason =
                    "the client closed the connection before the response".to_owned();
            }
            if let (_, Some(span)) = self.close() {
                self.shared.spans.send(span, 0);
            }
        }
    }
}

/// Joins or starts the request's trace when this proxy has a tracer, and
/// hands the context on in the request's headers. CONNECT tunnels get no
/// span: the requests inside them do.
fn begin_trace(
    snap: &Snapshot,
    entry: &Entrypoint,
    remote: SocketAddr,
    req: &mut Request<Incoming>,
) -> Option<crate::trace::Hop> {
    let config = snap.model.telemetry.tracing.as_ref()?;
    if req.method() == http::Method::CONNECT {
        return None;
    }
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .unwrap_or_else(|| header_str(req, "host"));
    let facts = crate::trace::RequestFacts {
        kind: match entry {
            Entrypoint::Outbound => opentelemetry::trace::SpanKind::Client,
            Entrypoint::Inbound { .. } | Entrypoint::Gateway { .. } => {
                opentelemetry::trace::SpanKind::Server
            }
        },
        method: req.method().as_str(),
        scheme: req.uri().scheme_str().unwrap_or("http"),
        authority,
        path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
        protocol: match req.version() {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        },
        headers: req.headers(),
        peer_address: remote,
    };
    let hop = crate::trace::Hop::begin(&facts, config, snap.model.telemetry.trace_sampling);
    hop.inject(req.headers_mut());
    Some(hop)
}

/// `n` in decimal, written into `buf` (route tables are named by port).
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or("0")
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh `x-request-id`: 128 random bits in hex, formatted on the stack.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    let mut id = [0u8; 32];
    for (i, c) in id.iter_mut().enumerate() {
        *c = HEX[(bits >> (124 - 4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

fn header_str<'a, B>(req: &'a Request<B>, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn dispatch(
    shared: &Shared,
    snap: &Snapshot,
    entry: Entrypoint,
    remote: SocketAddr,
    mut req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Response<Body> {
    // The authority the client asked for: absolute-form URI (a client
    // using us as HTTP_PROXY) or the Host header.
    // Held as the header's own (shared) bytes: the log and metrics read
    // it without a copy.
    let authority = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req.headers().get(HOST).cloned(),
    }
    .filter(|a| a.to_str().is_ok())
    .unwrap_or_else(|| HeaderValue::from_static(""));
    ctx.entry.authority = Some(authority.clone());
    let authority = authority.to_str().unwrap_or("");
    let request_id = match req.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    };
    ctx.entry.request_id = Some(request_id);
    let mut port_digits = [0u8; 10];
    let (table, port) = match &entry {
        Entrypoint::Inbound { port, peer, .. } => {
            return inbound(shared, snap, *port, peer.as_deref(), remote, req, ctx).await
        }
        Entrypoint::Gateway { table, port } => {
            if let Some(resp) = https_redirect(snap, *port, authority, &req, ctx) {
                return resp;
            }
            // The edge: record who the client is for the hops behind.
            let ip = HeaderValue::from_str(&remote.ip().to_string()).ok();
            if let Some(ip) = ip {
                let xff = match req
                    .headers()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                {
                    Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", remote.ip())).ok(),
                    None => Some(ip.clone()),
                };
                if let Some(xff) = xff {
                    req.headers_mut().insert("x-forwarded-for", xff);
                }
                req.headers_mut().insert("x-envoy-external-address", ip);
            }
            let jwt = match authenticate(snap, &mut req, ctx) {
                Ok(jwt) => jwt,
                Err(rejected) => return *rejected,
            };
            let attrs = crate::authz::Attributes {
                principal: None,
                source_ip: Some(remote.ip()),
                remote_ip: Some(remote.ip()),
                destination_ip: None,
                destination_port: *port as u16,
                sni: None,
                http: Some(http_attributes(&req, authority)),
                jwt: jwt.as_ref(),
            };
            let custom = match authorize(snap, &attrs, ctx) {
                Ok(custom) => custom,
                Err(denied) => return *denied,
            };
            if let Some(custom) = custom {
                if let Some(denied) = custom_check(snap, custom, &mut req, ctx).await {
                    return denied;
                }
            }
            (&**table, *port)
        }
        Entrypoint::Outbound if req.method() == http::Method::CONNECT => {
            return connect(shared, snap, remote, req, authority, ctx);
        }
        Entrypoint::Outbound => {
            // Only the edge may say who the external client was.
            req.headers_mut().remove("x-envoy-external-address");
            let port = authority
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u32>().ok())
                .unwrap_or(80);
            (decimal(port, &mut port_digits), port)
        }
    };
    let Some(rt) = snap.tables.get(table) else {
        return ctx.local(
            StatusCode::NOT_FOUND,
            Some(ResponseFlag::NoRoute),
            format!("no route table for port {port}: no service in the mesh listens there"),
        );
    };
    let Some(vh) = rt
        .find(authority)
        .or_else(|| authority.rsplit_once(':').and_then(|(h, _)| rt.find(h)))
    else {
        return ctx.local(
            StatusCode::NOT_FOUND,
            Some(ResponseFlag::NoRoute),
            format!("no virtual host for {authority:?} on port {port}"),
        );
    };
    let host_only = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().as_str().to_owned();
    let view = RequestView {
        path: &path,
        query: query.as_deref(),
        scheme: req.uri().scheme_str().unwrap_or("http"),
        method: &method,
        authority: host_only,
        headers: req.headers(),
        port,
    };
    let Some(route) = vh.routes.iter().find(|r| r.matches(&view)) else {
        return ctx.local(
            StatusCode::NOT_FOUND,
            Some(ResponseFlag::NoRoute),
            format!("no route of {} matched {method} {path}", vh.name),
        );
    };
    ctx.entry.route_name = route.name.clone();
    route_request(snap, route, req, authority, ctx).await
}

async fn route_request(
    snap: &Snapshot,
    route: &RouteRt,
    req: Request<Incoming>,
    authority: &str,
    ctx: &mut Ctx,
) -> Response<Body> {
    let r = &route.route;
    // CORS runs before faults and routing, as Envoy's filter chain does.
    let mut cors_origin: Option<HeaderValue> = None;
    if let Some(cors) = &r.cors {
        let origin = req.headers().get(http::header::ORIGIN).cloned();
        if let Some(origin) = origin.filter(|o| {
            o.to_str()
                .is_ok_and(|o| route.cors_origins.iter().any(|m| m.matches(o, false)))
        }) {
            let preflight = req.method() == http::Method::OPTIONS
                && req
                    .headers()
                    .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
            if preflight {
                let mut resp = Response::new(crate::local_reply::empty());
                cors_headers(resp.headers_mut(), cors, &origin, true);
                return resp;
            }
            cors_origin = Some(origin);
        }
    }
    let resp = route_action(snap, route, req, authority, ctx).await;
    match (cors_origin, &r.cors) {
        (Some(origin), Some(cors)) => {
            let mut resp = resp;
            cors_headers(resp.headers_mut(), cors, &origin, false);
            resp
        }
        _ => resp,
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

async fn route_action(
    snap: &Snapshot,
    route: &RouteRt,
    req: Request<Incoming>,
    authority: &str,
    ctx: &mut Ctx,
) -> Response<Body> {
    let r = &route.route;
    if let Some(fault) = &r.fault {
        if let Some(d) = &fault.delay {
            if fastrand::f64() * 100.0 < d.percentage {
                ctx.entry.response_flags.add(ResponseFlag::DelayInjected);
                tokio::time::sleep(Duration::from_millis(d.delay_ms)).await;
            }
        }
        if let Some(a) = &fault.abort {
            if fastrand::f64() * 100.0 < a.percentage {
                return match &a.status {
                    AbortStatus::Http(code) => {
                        let status = StatusCode::from_u16(*code as u16)
                            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
                };
            }
        }
    }
    match &r.action {
        RouteAction::DirectResponse { status, body } => {
            let mut resp = Response::new(full(body.clone()));
            *resp.status_mut() = StatusCode::from_u16(*status as u16).unwrap_or(StatusCode::OK);
            apply_headers(resp.headers_mut(), &r.response_headers);
            resp
        }
        RouteAction::Redirect(rd) => {
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
            let mut resp = Response::new(crate::local_reply::empty());
            *resp.status_mut() =
                StatusCode::from_u16(rd.code as u16).unwrap_or(StatusCode::MOVED_PERMANENTLY);
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        RouteAction::Forward(dests) => {
            let Some(dest) = crate::upstream::pick_weighted(dests) else {
                return ctx.local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(ResponseFlag::NoRoute),
                    format!("{} has no destination", r.origin),
                );
            };
            let Some(cluster) = snap.cluster(&dest.cluster) else {
                ctx.entry.upstream_cluster = Some(Arc::from(dest.cluster.as_str()));
                return ctx.local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(ResponseFlag::NoRoute),
                    format!(
                        "cluster {} is not in this proxy's configuration",
                        dest.cluster
                    ),
                );
            };
            ctx.entry.upstream_cluster = Some(cluster.name.clone());
            let cluster = cluster.clone();
            let (mut parts, body) = req.into_parts();
            // Upstream request: origin-form path (rewritten), the
            // (rewritten) authority as Host, header operations.
            let mut path_q = origin_form(&parts.uri);
            let mut host = authority;
            if let Some(rw) = &r.rewrite {
                path_q = match PathAndQuery::try_from(rewrite_path(route, rw, path_q.as_str())) {
                    Ok(p) => p,
                    Err(e) => {
                        return ctx.local(
                            StatusCode::BAD_REQUEST,
                            None,
                            format!("invalid request path: {e}"),
                        )
                    }
                };
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
            apply_headers(&mut parts.headers, &dest.request_headers);
            let mut hash = hash_input(&cluster, &parts, ctx.remote);
            // Envoy's cookie affinity: with a TTL and no cookie yet, make
            // one, hash on it, and hand it to the client.
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
            let mirrors: Vec<Arc<ClusterRt>> = r
                .mirrors
                .iter()
                .filter(|m| fastrand::f64() * 100.0 < m.percentage)
                .filter_map(|m| snap.cluster(&m.cluster).cloned())
                .collect();
            let resp = forward(
                cluster,
                parts,
                body,
                path_q,
                hash,
                r,
                route.retry_on,
                &mirrors,
                ctx,
            )
            .await;
            let mut resp = resp;
            if let Some(c) = new_cookie {
                resp.headers_mut().append(http::header::SET_COOKIE, c);
            }
            apply_headers(resp.headers_mut(), &dest.response_headers);
            apply_headers(resp.headers_mut(), &r.response_headers);
            resp
        }
    }
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

fn apply_headers(h: &mut http::HeaderMap, ops: &HeaderOps) {
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

/// What one try produced.
enum Try {
    Response(Response<crate::pool::UpstreamBody>),
    /// `unsent`: the request never left (the connection closed first), as
    /// with an HTTP/2 refused stream: safe to send again.
    Failed {
        flag: ResponseFlag,
        reason: String,
        unsent: bool,
    },
}

/// Whether `policy` (its conditions compiled as `on`) retries what a try
/// produced.
fn retriable(policy: &weft_model::RetryPolicy, on: RetryOn, grpc: bool, t: &Try) -> bool {
    match t {
        Try::Response(r) => on.response(
            &policy.retriable_status_codes,
            r.status().as_u16(),
            r.headers(),
            grpc,
        ),
        Try::Failed {
            flag: ResponseFlag::UpstreamConnectionFailure,
            ..
        } => on.has(
            RetryOn::CONNECT_FAILURE | RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET,
        ),
        Try::Failed {
            flag: ResponseFlag::UpstreamConnectionTermination,
            unsent,
            ..
        } => {
            on.has(RetryOn::RESET | RetryOn::FIVE_XX)
                || (*unsent && on.has(RetryOn::REFUSED_STREAM))
        }
        Try::Failed {
            flag: ResponseFlag::UpstreamRequestTimeout,
            ..
        } => on.has(RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET),
        Try::Failed { .. } => false,
    }
}

/// Request bodies up to this size, with a declared length, are kept so a
/// retry can send them again (Envoy's default buffer limit, which Istio
/// keeps). Longer or unframed ones (gRPC streams, chunked uploads) stream,
/// and are sent again only when no try sent them.
const REPLAY_BUFFER: u64 = 1024 * 1024;

/// The request body across tries.
enum Replay {
    /// Whole, for every try (empty, buffered for retries or mirrors).
    Bytes(Bytes),
    /// Streaming from the client: a try takes it; it is back only when
    /// that try did not send it.
    Stream(Option<Body>),
}

impl Replay {
    fn available(&self) -> bool {
        !matches!(self, Replay::Stream(None))
    }
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    cluster: Arc<ClusterRt>,
    parts: http::request::Parts,
    body: Incoming,
    path_q: PathAndQuery,
    hash: Option<Vec<u8>>,
    route: &weft_model::Route,
    retry_on: RetryOn,
    mirrors: &[Arc<ClusterRt>],
    ctx: &mut Ctx,
) -> Response<Body> {
    let _in_flight = cluster.start_request();
    let retry = route.retry.as_ref().filter(|p| p.attempts > 0);
    // Mirrors need the body whole; retries keep a small one.
    let keep = !mirrors.is_empty()
        || (retry.is_some()
            && hyper::body::Body::size_hint(&body)
                .exact()
                .is_some_and(|n| n <= REPLAY_BUFFER));
    let mut replay = if hyper::body::Body::is_end_stream(&body) {
        // Nothing to count (a GET, say): no counter, no boxed stream.
        Replay::Bytes(Bytes::new())
    } else if keep {
        match Limited::new(body, MAX_BUFFERED_BODY).collect().await {
            Ok(b) => Replay::Bytes(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return ctx.local(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!(
                    "request body over {MAX_BUFFERED_BODY} bytes cannot be buffered for retries"
                ),
                )
            }
            Err(e) => {
                let fault = e
                    .downcast_ref::<hyper::Error>()
                    .map_or(DownstreamFault::Malformed, crate::request_body::classify);
                return downstream_failed(ctx, fault, &e.to_string());
            }
        }
    } else {
        let (body, tally) = RequestBody::new(body);
        ctx.request_bytes = RequestSize::Streaming(tally);
        Replay::Stream(Some(body.boxed()))
    };
    if let Replay::Bytes(bytes) = &replay {
        ctx.request_bytes = RequestSize::Known(bytes.len() as u64);
        for m in mirrors {
            mirror(m.clone(), &parts, &path_q, bytes.clone());
        }
    }
    let attempts = 1 + retry.map_or(0, |p| p.attempts);
    let per_try = retry
        .and_then(|p| p.per_try_timeout_ms)
        .map(Duration::from_millis);
    let deadline = route
        .timeout_ms
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_millis(t));
    let mut last_endpoint = None;
    let mut last: Option<Try> = None;
    // Parsed once for every try.
    let host_authority = host_authority(&parts.headers);
    // WebSocket and other HTTP/1.1 upgrades: keep the client's side of the
    // upgrade to splice onto the upstream's once it answers 101.
    let mut parts = parts;
    let downstream_upgrade = if parts.headers.contains_key(http::header::UPGRADE)
        && parts.version == http::Version::HTTP_11
    {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            let Some(policy) = retry else { break };
            if !last
                .as_ref()
                .is_some_and(|t| retriable(policy, retry_on, ctx.grpc, t))
                || !replay.available()
            {
                break;
            }
            let Some(_budget) = cluster.try_retry() else {
                ctx.entry.reason = "retry budget exhausted".into();
                break;
            };
            // Jittered exponential backoff: 25 ms base, 250 ms cap (Envoy's).
            let cap = (25u64 << attempt.min(4)).min(250);
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=cap))).await;
        }
        ctx.entry.attempts = attempt + 1;
        let Some(ep) = cluster.pick(hash.as_deref(), last_endpoint) else {
            return ctx.local(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(ResponseFlag::NoHealthyUpstream),
                format!("no healthy upstream in {}", cluster.config.name),
            );
        };
        last_endpoint = Some(ep);
        if let Some(peer) = cluster.peers.get(ep) {
            ctx.dest = Some((peer.clone(), cluster.service.clone()));
        }
        let Some(addr) = cluster.endpoint_addr(ep) else {
            continue;
        };
        ctx.entry.upstream_host = Some(addr);
        let Some(_permit) = cluster.admit().await else {
            return ctx.local(StatusCode::SERVICE_UNAVAILABLE, Some(ResponseFlag::UpstreamOverflow), format!("upstream overflow: {} is at its connection-pool limit (DestinationRule connectionPool)", cluster.config.name));
        };
        let body: Body = match &mut replay {
            Replay::Bytes(b) if b.is_empty() => crate::local_reply::empty(),
            Replay::Bytes(b) => full(b.clone()),
            Replay::Stream(s) => s.take().unwrap_or_else(crate::local_reply::empty),
        };
        // The last try takes the request's head; earlier ones copy it.
        let head = if attempt + 1 == attempts {
            upstream_head(
                std::mem::replace(&mut parts, Request::new(()).into_parts().0),
                downstream_upgrade.is_some(),
            )
        } else {
            clone_parts(&parts, downstream_upgrade.is_some())
        };
        let mut upstream = Request::from_parts(head, body);
        match Uri::builder()
            .scheme("http")
            .authority(
                host_authority
                    .clone()
                    .unwrap_or_else(|| addr_authority(addr)),
            )
            .path_and_query(path_q.clone())
            .build()
        {
            Ok(u) => *upstream.uri_mut() = u,
            Err(e) => {
                return ctx.local(
                    StatusCode::BAD_REQUEST,
                    None,
                    format!("invalid request path: {e}"),
                )
            }
        }
        *upstream.version_mut() = http::Version::HTTP_11;
        let sent = Instant::now();
        // Boxed: the send future is kilobytes, and every future that holds
        // it inline is copied whole when a task is spawned or moved.
        let send = Box::pin(cluster.send(ep, upstream));
        let limit = match (per_try, deadline) {
            (Some(p), Some(d)) => Some(p.min(d.saturating_duration_since(Instant::now()))),
            (Some(p), None) => Some(p),
            (None, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            (None, None) => None,
        };
        let outcome = match limit {
            Some(l) => tokio::time::timeout(l, send)
                .await
                .unwrap_or_else(|_| Err((SendError::Reset("timeout".into()), None))),
            None => send.await,
        };
        // A request that never left keeps its body for the next try.
        let outcome = outcome.map_err(|(e, unsent)| {
            let was_unsent = unsent.is_some();
            if let (Some(req), Replay::Stream(slot)) = (unsent, &mut replay) {
                *slot = Some(req.into_body());
            }
            (e, was_unsent)
        });
        // A timeout is told apart from a reset by the elapsed time.
        let timed_out = limit.is_some_and(|l| sent.elapsed() >= l);
        // The client failed its own body: the upstream did nothing wrong,
        // and another try would fail the same way.
        if let (Err((e, _)), Some(fault)) = (&outcome, ctx.request_bytes.fault()) {
            let detail = e.to_string();
            return downstream_failed(ctx, fault, &detail);
        }
        cluster.report(
            ep,
            match &outcome {
                Ok(r) => crate::upstream::TryOutcome::Status(r.status().as_u16()),
                Err(_) => crate::upstream::TryOutcome::LocalFailure,
            },
        );
        last = Some(match outcome {
            Ok(resp) => {
                ctx.entry.upstream_service_time = Some(sent.elapsed().as_millis() as u64);
                Try::Response(resp)
            }
            Err(_) if timed_out => {
                let configured = match (per_try, route.timeout_ms) {
                    (Some(p), Some(t)) if p.as_millis() < u128::from(t) => {
                        format!("per-try timeout {} ms", p.as_millis())
                    }
                    (Some(p), None) => format!("per-try timeout {} ms", p.as_millis()),
                    (_, Some(t)) => format!("timeout {t} ms"),
                    (None, None) => "timeout".to_owned(),
                };
                Try::Failed {
                    flag: ResponseFlag::UpstreamRequestTimeout,
                    reason: format!("upstream request {configured} exceeded ({})", route.origin),
                    unsent: false,
                }
            }
            Err((SendError::Connect(e), _)) => Try::Failed {
                flag: ResponseFlag::UpstreamConnectionFailure,
                reason: format!(
                    "upstream connect error to {addr} in {}: {e}",
                    cluster.config.name
                ),
                unsent: true,
            },
            Err((SendError::Reset(e), unsent)) => Try::Failed {
                flag: ResponseFlag::UpstreamConnectionTermination,
                reason: format!("upstream reset by {addr} before response headers: {e}"),
                unsent,
            },
        });
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let (Some(p), Some(t)) = (retry, &last) {
            if !retriable(p, retry_on, ctx.grpc, t) {
                break;
            }
        }
    }
    let retried_out = retry.is_some()
        && ctx.entry.attempts > 1
        && replay.available()
        && last
            .as_ref()
            .is_some_and(|t| retry.is_some_and(|p| retriable(p, retry_on, ctx.grpc, t)));
    if retried_out {
        ctx.entry
            .response_flags
            .add(ResponseFlag::UpstreamRetryLimitExceeded);
    }
    let route_timed_out = deadline.is_some_and(|d| Instant::now() >= d);
    match last {
        Some(Try::Response(mut resp))
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS && downstream_upgrade.is_some() =>
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            if let Some(down) = downstream_upgrade {
                tokio::spawn(splice(down, upstream_upgrade));
            }
            let (parts, _) = resp.into_parts();
            Response::from_parts(parts, crate::local_reply::empty())
        }
        Some(Try::Response(resp)) => resp.map(|b| {
            b.map_err(|e| Box::new(e) as crate::upstream::BoxError)
                .boxed()
        }),
        Some(Try::Failed {
            flag: ResponseFlag::UpstreamRequestTimeout,
            reason,
            ..
        }) if route_timed_out || per_try.is_some() => ctx.local(
            StatusCode::GATEWAY_TIMEOUT,
            Some(ResponseFlag::UpstreamRequestTimeout),
            reason,
        ),
        Some(Try::Failed { flag, reason, .. }) => {
            ctx.local(StatusCode::SERVICE_UNAVAILABLE, Some(flag), reason)
        }
        None => ctx.local(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ResponseFlag::NoHealthyUpstream),
            format!("no endpoint of {} has an address", cluster.config.name),
        ),
    }
}

/// The reply to a request whose client failed its body: 400 DPE for a
/// malformed one; for one cut short, DC (the client is gone, so nobody
/// reads the 400).
fn downstream_failed(ctx: &mut Ctx, fault: DownstreamFault, detail: &str) -> Response<Body> {
    match fault {
        DownstreamFault::Malformed => ctx.local(
            StatusCode::BAD_REQUEST,
            Some(ResponseFlag::DownstreamProtocolError),
            format!("the client's request body is malformed: {detail}"),
        ),
        DownstreamFault::Aborted => ctx.local(
            StatusCode::BAD_REQUEST,
            Some(ResponseFlag::DownstreamConnectionTermination),
            format!("the client ended its request body early: {detail}"),
        ),
    }
}

/// A copy of the request head for one try. Hop-by-hop headers are
/// dropped, except that an upgrade keeps `connection: upgrade`.
fn clone_parts(p: &http::request::Parts, upgrade: bool) -> http::request::Parts {
    // Field by field: a builder would check again what is valid already.
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    upstream_head(parts, upgrade)
}

/// The head sent upstream: hop-by-hop headers dropped, the downstream
/// connection's extensions left behind.
fn upstream_head(mut parts: http::request::Parts, upgrade: bool) -> http::request::Parts {
    parts.extensions.clear();
    parts.headers.remove(http::header::CONNECTION);
    if upgrade {
        parts.headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove("keep-alive");
    parts
}

/// Inbound: authorize, then deliver to the local application unchanged.
async fn inbound(
    shared: &Shared,
    snap: &Snapshot,
    port: u32,
    peer: Option<&crate::metrics::Peer>,
    remote: SocketAddr,
    mut req: Request<Incoming>,
    ctx: &mut Ctx,
) -> Response<Body> {
    let jwt = match authenticate(snap, &mut req, ctx) {
        Ok(jwt) => jwt,
        Err(rejected) => return *rejected,
    };
    let principal = peer.map(|p| p.principal.as_str());
    // The client's address as the gateway saw it, trusted only from a
    // mesh peer.
    let external = principal
        .and_then(|_| req.headers().get("x-envoy-external-address"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .unwrap_or_else(|| header_str(&req, "host"));
    let source_ip = snap.authz.source_ip(remote.ip(), principal);
    let attrs = crate::authz::Attributes {
        principal,
        source_ip,
        remote_ip: external.or(source_ip),
        destination_ip: shared.config.inbound_ip,
        destination_port: port as u16,
        sni: None,
        http: Some(http_attributes(&req, host)),
        jwt: jwt.as_ref(),
    };
    let custom = match authorize(snap, &attrs, ctx) {
        Ok(custom) => custom,
        Err(denied) => return *denied,
    };
    if let Some(custom) = custom {
        if let Some(denied) = custom_check(snap, custom, &mut req, ctx).await {
            return denied;
        }
    }
    let Some((app, route)) = shared.apps.get(&port) else {
        return ctx.local(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(ResponseFlag::NoHealthyUpstream),
            format!("no application address configured for port {port}"),
        );
    };
    ctx.entry.upstream_cluster = Some(app.name.clone());
    let (parts, body) = req.into_parts();
    let path_q = origin_form(&parts.uri);
    forward(
        app.clone(),
        parts,
        body,
        path_q,
        None,
        route,
        RetryOn::default(),
        &[],
        ctx,
    )
    .await
}

fn http_attributes<'a, B>(
    req: &'a Request<B>,
    authority: &'a str,
) -> crate::authz::HttpAttributes<'a> {
    crate::authz::HttpAttributes {
        method: req.method().as_str(),
        path: req.uri().path(),
        host: authority,
        headers: req.headers(),
    }
}

/// Gateway `tls.httpsRedirect` on a plain-HTTP server: 301 to the same
/// host and path over https.
fn https_redirect<B>(
    snap: &Snapshot,
    port: u32,
    authority: &str,
    req: &Request<B>,
    ctx: &mut Ctx,
) -> Option<Response<Body>> {
    let listener = snap
        .model
        .listeners
        .iter()
        .find(|l| l.direction == weft_model::Direction::Gateway && l.port == port)?;
    if listener.protocol == weft_model::Protocol::Https {
        return None;
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    listener
        .tls
        .iter()
        .find(|t| t.https_redirect && crate::gateway_tls::admits(&t.hosts, host))?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = HeaderValue::from_str(&format!("https://{host}{path}")).ok()?;
    let mut resp = Response::new(crate::local_reply::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    resp.headers_mut().insert(http::header::LOCATION, location);
    ctx.entry.reason = "Gateway tls.httpsRedirect".into();
    Some(resp)
}

/// RequestAuthentication: the request's JWT, validated (`Ok(None)` when it
/// carries none), or the 401 that rejects it.
fn authenticate<B>(
    snap: &Snapshot,
    req: &mut Request<B>,
    ctx: &mut Ctx,
) -> Result<Option<crate::authz::Jwt>, Box<Response<Body>>> {
    if snap.jwt.is_empty() {
        return Ok(None);
    }
    let query = req.uri().query().map(str::to_owned);
    snap.jwt
        .authenticate(req.headers_mut(), query.as_deref())
        .map_err(|why| {
            ctx.entry.response_flags.add(ResponseFlag::JwtRejected);
            let mut resp = reply(
                StatusCode::UNAUTHORIZED,
                Some(ResponseFlag::JwtRejected),
                "Jwt verification fails",
                false,
                ctx.grpc,
            );
            if ctx.explain {
                crate::local_reply::set_reason(&mut resp, &format!("JWT: {why}"));
            }
            ctx.entry.reason = why;
            Box::new(resp)
        })
}

/// Applies the workload's DENY and ALLOW AuthorizationPolicies: `Err(403)`
/// when they deny (the deciding policy in the access log, and in
/// `x-weft-reason` when explaining); `Ok(Some(policy, provider))` when a
/// CUSTOM policy wants its external authorizer asked.
fn authorize(
    snap: &Snapshot,
    attrs: &crate::authz::Attributes<'_>,
    ctx: &mut Ctx,
) -> Result<Option<(String, String)>, Box<Response<Body>>> {
    if snap.authz.is_empty() {
        return Ok(None);
    }
    let verdict = snap.authz.check(attrs);
    if let Some(audit) = verdict.audited_by {
        ctx.entry.audited_by = audit;
    }
    match verdict.decision {
        Some(crate::authz::Decision::Allow) => Ok(verdict.custom),
        // No verdict cannot happen; refuse rather than assume.
        None => Err(Box::new(rbac_denied(
            ctx,
            "authorization could not be evaluated".into(),
        ))),
        Some(crate::authz::Decision::Deny { policy, why }) => Err(Box::new(rbac_denied(
            ctx,
            format!("denied by {policy} ({why})"),
        ))),
    }
}

/// A CUSTOM policy's external authorizer: `Some(reply)` when it denies
/// (or cannot be asked); on allow, the headers it returns for the
/// upstream are added to the request.
async fn custom_check<B>(
    snap: &Snapshot,
    (policy, provider): (String, String),
    req: &mut Request<B>,
    ctx: &mut Ctx,
) -> Option<Response<Body>> {
    let Some(p) = snap
        .model
        .security
        .ext_authz
        .iter()
        .find(|p| p.name == provider)
    else {
        return Some(ext_denied(
            ctx,
            StatusCode::FORBIDDEN,
            bytes::Bytes::from_static(b"RBAC: access denied"),
            Vec::new(),
            format!("{policy} names extension provider {provider:?}, which meshConfig does not define as envoyExtAuthzHttp"),
        ));
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    // Boxed: the call to the authorizer is kilobytes of future, which every
    // request's future would otherwise carry, CUSTOM policy or not.
    match Box::pin(crate::ext_authz::check(
        snap,
        p,
        req.method(),
        &path,
        req.headers(),
    ))
    .await
    {
        crate::ext_authz::Outcome::Allow { upstream } => {
            for (k, v) in upstream {
                req.headers_mut().insert(k, v);
            }
            None
        }
        crate::ext_authz::Outcome::Deny {
            status,
            body,
            headers,
            why,
        } => Some(ext_denied(
            ctx,
            status,
            body,
            headers,
            format!("{why} ({policy})"),
        )),
    }
}

fn ext_denied(
    ctx: &mut Ctx,
    status: StatusCode,
    body: bytes::Bytes,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    detail: String,
) -> Response<Body> {
    ctx.entry
        .response_flags
        .add(ResponseFlag::UnauthorizedExternalService);
    let mut resp = Response::new(crate::local_reply::full(body));
    *resp.status_mut() = status;
    for (k, v) in headers {
        resp.headers_mut().append(k, v);
    }
    if ctx.explain {
        crate::local_reply::set_reason(&mut resp, &format!("UAEX: {detail}"));
    }
    ctx.entry.reason = detail;
    resp
}

fn rbac_denied(ctx: &mut Ctx, detail: String) -> Response<Body> {
    ctx.entry.response_flags.add(ResponseFlag::RbacDenied);
    let mut resp = reply(
        StatusCode::FORBIDDEN,
        Some(ResponseFlag::RbacDenied),
        "RBAC: access denied",
        false,
        ctx.grpc,
    );
    if ctx.explain {
        crate::local_reply::set_reason(&mut resp, &format!("RBAC: {detail}"));
    }
    ctx.entry.reason = detail;
    resp
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

/// Copies bytes both ways between an upgraded client and upstream
/// connection until either side closes.
async fn splice(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = (down.await, up.await) else {
        tracing::debug!("upgrade failed on one side");
        return;
    };
    let mut down = hyper_util::rt::TokioIo::new(down);
    let mut up = hyper_util::rt::TokioIo::new(up);
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

/// Sends a copy of the request to a mirror cluster and forgets it: the
/// answer is dropped and failures never reach the client. As Envoy does,
/// the copy's Host gets `-shadow` (`reviews:9080` → `reviews-shadow:9080`).
fn mirror(
    cluster: Arc<ClusterRt>,
    parts: &http::request::Parts,
    path_q: &PathAndQuery,
    body: Bytes,
) {
    let Some(ep) = cluster.pick(None, None) else {
        return;
    };
    let Some(addr) = cluster.endpoint_addr(ep) else {
        return;
    };
    let mut head = clone_parts(parts, false);
    if let Some(host) = head.headers.get(HOST).and_then(|h| h.to_str().ok()) {
        let shadow = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => format!("{h}-shadow:{p}"),
            _ => format!("{host}-shadow"),
        };
        if let Ok(v) = HeaderValue::from_str(&shadow) {
            head.headers.insert(HOST, v);
        }
    }
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(host_authority(&head.headers).unwrap_or_else(|| addr_authority(addr)))
        .path_and_query(path_q.clone())
        .build()
    else {
        return;
    };
    head.uri = uri;
    head.version = http::Version::HTTP_11;
    let req = Request::from_parts(head, full(body));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), cluster.send(ep, req)).await;
    });
}

/// Istio's request metrics for one finished request; the series is
/// returned so the response body's size can be added as it streams.
fn record(
    shared: &Arc<Shared>,
    snap: &Snapshot,
    entry: &Entrypoint,
    ctx: &Ctx,
) -> Arc<crate::metrics::HttpSeries> {
    use crate::metrics::{Outcome, RequestLabels, ServiceNames};
    let m = &shared.metrics;
    let flags = if ctx.entry.response_flags.is_empty() {
        m.no_flags.clone()
    } else {
        Arc::new(ctx.entry.response_flags.to_string())
    };
    let protocol = if ctx.grpc { "grpc" } else { "http" };
    let unknown = &m.unknown;
    let authority = ctx.entry.authority_str();
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let labels = match entry {
        Entrypoint::Inbound { peer, port, .. } => RequestLabels::new(
            "destination",
            peer.as_deref().unwrap_or(unknown),
            &snap.me,
            &snap
                .inbound_services
                .get(port)
                .cloned()
                .unwrap_or_else(|| ServiceNames::of(host)),
            Outcome {
                protocol,
                code: ctx.entry.response_code,
                flags,
                security: if peer.is_some() { "mutual_tls" } else { "none" },
            },
        ),
        _ => {
            let (dest, svc) = match &ctx.dest {
                Some((p, s)) => (p.clone(), s.clone()),
                None => (unknown.clone(), ServiceNames::of(host)),
            };
            RequestLabels::new(
                "source",
                &snap.me,
                &dest,
                &svc,
                Outcome {
                    protocol,
                    code: ctx.entry.response_code,
                    flags,
                    security: "unknown",
                },
            )
        }
    };
    let mut labels = labels;
    labels.request_tags = ctx.request_tags.clone();
    let on = snap.record;
    let series = m.http(&labels);
    if on.duration {
        series
            .duration
            .observe(ctx.start.elapsed().as_secs_f64() * 1000.0);
    }
    if on.count {
        series
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    if on.request_size {
        series.request_bytes.observe(ctx.request_bytes.get() as f64);
    }
    series
}

/// `CONNECT host:port` on the outbound proxy, as clients send for gRPC or
/// TLS through `HTTP_PROXY`. A TCP (or TLS) service port is spliced through
/// its TCP routes; an HTTP port is served as HTTP inside the tunnel, so it
/// gets the same routing as plain requests.
fn connect(
    shared: &Shared,
    snap: &Snapshot,
    remote: SocketAddr,
    req: Request<Incoming>,
    authority: &str,
    ctx: &mut Ctx,
) -> Response<Body> {
    let Some((host, port)) = authority
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u32>().ok().map(|p| (h.to_ascii_lowercase(), p)))
    else {
        return ctx.local(
            StatusCode::BAD_REQUEST,
            None,
            format!("CONNECT needs host:port, got {authority:?}"),
        );
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
            Tunnel::Http
        }
        None => {
            return ctx.local(
                StatusCode::NOT_FOUND,
                Some(ResponseFlag::NoRoute),
                format!("CONNECT {authority}: no service in the mesh answers there"),
            );
        }
    };
    let Some(shared) = shared.self_ref() else {
        return ctx.local(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "proxy is shutting down".into(),
        );
    };
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        match tunnel {
            Tunnel::Tcp(name) => {
                crate::tcp::handle(shared, name, hyper_util::rt::TokioIo::new(upgraded), remote)
                    .await
            }
            Tunnel::Http => {
                crate::downstream::serve(
                    &shared,
                    hyper_util::rt::TokioIo::new(upgraded),
                    remote,
                    "outbound CONNECT",
                    Entrypoint::Outbound,
                    None,
                )
                .await;
            }
        }
    });
    ctx.entry.reason = "CONNECT tunnel established".into();
    Response::new(crate::local_reply::empty())
}

enum Tunnel {
    Tcp(String),
    Http,
}

/// The authority an upstream request names: the (rewritten) Host the
/// client used, so HTTP/2 upstreams see it as `:authority`; the endpoint's
/// address (`addr_authority`) when there is no usable Host. The connection
/// itself always goes to the chosen endpoint.
fn host_authority(headers: &http::HeaderMap) -> Option<Authority> {
    headers
        .get(HOST)
        .filter(|h| !h.is_empty())
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
}

fn addr_authority(addr: SocketAddr) -> Authority {
    Authority::try_from(addr.to_string()).unwrap_or_else(|_| Authority::from_static("localhost"))
}

/// The request's path and query as an origin-form request names them
/// (shared bytes, not a copy).
fn origin_form(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_are_written_in_decimal() {
        for n in [0, 7, 80, 9080, 15001, u32::MAX] {
            assert_eq!(super::decimal(n, &mut [0; 10]), n.to_string());
        }
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let a = super::new_request_id();
        let b = super::new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }
}
