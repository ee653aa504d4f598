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
    let preflight = req.method() == http::Method::OPTIONS
        && req
            .headers()
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
    let Some(origin) = req.headers().get(http::header::ORIGIN) else {
        return Cors::None;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| route.cors_origins.iter().any(|m| m.matches(o, false)));
    if !allowed {
        // Envoy forwards it unless told not to; then it answers 200 with
        // no CORS headers, which the browser reads as a refusal.
        return if preflight && policy.answer_unmatched_preflights {
            Cors::Preflight(Response::new(empty()))
        } else {
            Cors::None
        };
    }
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
pub fn direct_response(route: &RouteRt, status: u32) -> Response<Body> {
    let mut resp = Response::new(full(route.direct_body.clone()));
    *resp.status_mut() = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK);
    apply_headers(resp.headers_mut(), &route.route.response_headers);
    resp
}

/// `redirect`: the location built from the request and what the route
/// replaces in it.
pub fn redirect<B>(
    rd: &Redirect,
    route: &RouteRt,
    req: &Request<B>,
    authority: &str,
) -> Response<Body> {
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
    let path_q = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let path = if !rd.uri.is_empty() {
        rd.uri.clone()
    } else if !rd.prefix_rewrite.is_empty() {
        // As a rewrite's uri does: the matched prefix is replaced, the
        // rest of the path and the query kept.
        let path = path_q.split('?').next().unwrap_or("/");
        let matched = route.route.matches.iter().find_map(|m| match &m.uri {
            Some(StrMatch::Prefix(p)) if path.starts_with(p.as_str()) => Some(p.len()),
            _ => None,
        });
        // A route without a URI match matches the prefix "/".
        let matched = matched.unwrap_or(usize::from(path.starts_with('/')));
        format!("{}{}", rd.prefix_rewrite, &path_q[matched..])
    } else {
        path_q.to_owned()
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

/// A header operation's name; `:authority` is the Host header (Istio
/// allows request `set` and `add` of it).
fn op_name(name: &str) -> Option<HeaderName> {
    if name.eq_ignore_ascii_case(":authority") {
        return Some(HOST);
    }
    HeaderName::from_bytes(name.as_bytes()).ok()
}

pub fn apply_headers(h: &mut http::HeaderMap, ops: &HeaderOps) {
    for name in &ops.remove {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            h.remove(n);
        }
    }
    for hv in &ops.set {
        if let (Some(n), Ok(v)) = (op_name(&hv.name), HeaderValue::from_str(&hv.value)) {
            h.insert(n, v);
        }
    }
    for hv in &ops.add {
        if let (Some(n), Ok(v)) = (op_name(&hv.name), HeaderValue::from_str(&hv.value)) {
            // A request has one authority: adding one sets it.
            if n == HOST {
                h.insert(n, v);
            } else {
                h.append(n, v);
            }
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

#[cfg(test)]
mod tests {
    use super::{
        apply_headers, cors, direct_response, hash_input, outgoing, redirect, rewrite_path, Cors,
    };
    use crate::body::Body;
    use crate::snapshot::{RouteRt, TableRt};
    use crate::upstream::{ClientSide, ClusterRt};
    use http::header::HOST;
    use http::{HeaderValue, Response};
    use std::sync::Arc;
    use weft_model::{
        Cluster, HashKey, HeaderOps, LbPolicy, Redirect, RegexRewrite, Rewrite, Route, RouteMatch,
        RouteTable, StrMatch, VirtualHost,
    };

    /// The compiled form of `route`, as a snapshot holds it.
    fn compiled(route: Route) -> RouteRt {
        let table = RouteTable {
            name: "80".into(),
            virtual_hosts: vec![std::sync::Arc::new(VirtualHost {
                name: "web".into(),
                domains: vec!["*".into()],
                routes: vec![route],
            })],
        };
        let mut t = TableRt::compile(&table).expect("compiles");
        t.vhosts.remove(0).routes.remove(0)
    }

    fn route() -> Route {
        crate::roles::sidecar::inbound_route(80)
    }

    fn get(uri: &str) -> http::Request<()> {
        http::Request::get(uri).body(()).expect("request")
    }

    #[test]
    fn rewrites_replace_the_matched_prefix_the_whole_path_or_a_regex() {
        let prefix = compiled(Route {
            matches: vec![RouteMatch {
                uri: Some(StrMatch::Prefix("/api/".into())),
                ..Default::default()
            }],
            ..route()
        });
        let rw = |uri: &str| Rewrite {
            uri: uri.into(),
            authority: String::new(),
            uri_regex: None,
        };
        assert_eq!(
            rewrite_path(&prefix, &rw("/v2/"), "/api/users?x=1"),
            "/v2/users?x=1"
        );
        let exact = compiled(route());
        assert_eq!(rewrite_path(&exact, &rw("/other"), "/api/users"), "/other");
        let regex = compiled(Route {
            rewrite: Some(Rewrite {
                uri_regex: Some(RegexRewrite {
                    pattern: "^/service/([^/]+)(/.*)$".into(),
                    substitution: "\\2/instance/\\1".into(),
                }),
                ..rw("")
            }),
            ..route()
        });
        let r = regex.route.rewrite.clone().expect("rewrite");
        assert_eq!(
            rewrite_path(&regex, &r, "/service/foo/v1/api"),
            "/v1/api/instance/foo"
        );
    }

    #[test]
    fn cors_answers_preflights_and_marks_allowed_origins_only() {
        let r = compiled(Route {
            cors: Some(weft_model::Cors {
                allow_origins: vec![StrMatch::Exact("https://a.example".into())],
                allow_methods: vec!["GET".into(), "POST".into()],
                allow_headers: vec![],
                expose_headers: vec!["x-total".into()],
                max_age_secs: Some(60),
                allow_credentials: Some(true),
                answer_unmatched_preflights: false,
            }),
            ..route()
        });
        let preflight = http::Request::options("/")
            .header("origin", "https://a.example")
            .header("access-control-request-method", "POST")
            .body(())
            .expect("request");
        let Cors::Preflight(resp) = cors(&r, &preflight) else {
            panic!("a preflight from an allowed origin is answered");
        };
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.example");
        assert_eq!(h["access-control-allow-methods"], "GET,POST");
        assert_eq!(h["access-control-max-age"], "60");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let simple = http::Request::get("/")
            .header("origin", "https://a.example")
            .body(())
            .expect("request");
        assert!(matches!(cors(&r, &simple), Cors::Allowed(o) if o == "https://a.example"));
        let other = http::Request::get("/")
            .header("origin", "https://b.example")
            .body(())
            .expect("request");
        assert!(matches!(cors(&r, &other), Cors::None));
        assert!(matches!(cors(&compiled(route()), &simple), Cors::None));
    }

    #[test]
    fn redirects_keep_what_the_route_does_not_replace() {
        let rd = Redirect {
            uri: String::new(),
            authority: "new.example".into(),
            scheme: "https".into(),
            port: None,
            port_from_request: true,
            prefix_rewrite: String::new(),
            code: 308,
        };
        let any = compiled(route());
        let resp = redirect(&rd, &any, &get("/a/b?c=d"), "old.example:8080");
        assert_eq!(resp.status(), 308);
        assert_eq!(
            resp.headers()["location"],
            "https://new.example:8080/a/b?c=d"
        );
        let rd = Redirect {
            uri: "/moved".into(),
            authority: String::new(),
            scheme: String::new(),
            port: None,
            port_from_request: false,
            prefix_rewrite: String::new(),
            code: 301,
        };
        let resp = redirect(&rd, &any, &get("/a"), "old.example:8080");
        assert_eq!(resp.headers()["location"], "http://old.example/moved");
        // prefixRewrite: the matched prefix is replaced, the rest kept.
        let rd = Redirect {
            uri: String::new(),
            prefix_rewrite: "/v2/".into(),
            ..rd
        };
        let api = compiled(Route {
            matches: vec![RouteMatch {
                uri: Some(StrMatch::Prefix("/api/".into())),
                ..Default::default()
            }],
            ..route()
        });
        let resp = redirect(&rd, &api, &get("/api/users?x=1"), "h");
        assert_eq!(resp.headers()["location"], "http://h/v2/users?x=1");
        // A route with no URI match matches the prefix "/".
        let resp = redirect(&rd, &any, &get("/users"), "h");
        assert_eq!(resp.headers()["location"], "http://h/v2/users");
    }

    #[test]
    fn a_request_authority_can_be_set_as_a_header() {
        let mut h = http::HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("old"));
        let ops = |name: &str| HeaderOps {
            set: vec![weft_model::HeaderValue {
                name: name.into(),
                value: "new".into(),
            }],
            ..Default::default()
        };
        apply_headers(&mut h, &ops(":authority"));
        assert_eq!(h[HOST], "new");
        let add = HeaderOps {
            add: vec![weft_model::HeaderValue {
                name: "host".into(),
                value: "newer".into(),
            }],
            ..Default::default()
        };
        apply_headers(&mut h, &add);
        assert_eq!(h.get_all(HOST).iter().count(), 1);
        assert_eq!(h[HOST], "newer");
    }

    #[test]
    fn a_bytes_body_is_sent_decoded() {
        let r = compiled(Route {
            action: weft_model::RouteAction::DirectResponse {
                status: 200,
                body: "AAEC/w==".into(),
                body_base64: true,
            },
            ..route()
        });
        let resp = direct_response(&r, 200);
        let body = futures_body(resp);
        assert_eq!(body, vec![0u8, 1, 2, 255]);
    }

    fn futures_body(resp: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(resp.into_body().collect())
            .expect("body")
            .to_bytes()
            .to_vec()
    }

    fn hashing(key: HashKey) -> ClusterRt {
        let cluster = Cluster {
            lb: LbPolicy::ConsistentHash(key),
            ..crate::proxy::app_cluster(
                80,
                "127.0.0.1:1".parse().expect("address"),
                weft_model::Protocol::Http,
            )
        };
        ClusterRt::new(
            cluster,
            Arc::new(ClientSide::plain("", &Default::default())),
        )
    }

    #[test]
    fn the_hash_key_is_read_from_header_cookie_query_or_source() {
        let remote = "127.1.2.3:4000".parse().expect("address");
        let req = http::Request::get("/p?user=ann&x=1")
            .header("x-user", "bob")
            .header("cookie", "a=1; session=s42")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let key = |k| hash_input(&hashing(k), &parts, remote);
        assert_eq!(key(HashKey::Header("x-user".into())), Some(b"bob".to_vec()));
        let cookie = HashKey::Cookie {
            name: "session".into(),
            path: String::new(),
            ttl_ms: None,
        };
        assert_eq!(key(cookie), Some(b"s42".to_vec()));
        assert_eq!(
            key(HashKey::QueryParameter("user".into())),
            Some(b"ann".to_vec())
        );
        assert_eq!(key(HashKey::SourceIp), Some(b"127.1.2.3".to_vec()));
        assert_eq!(key(HashKey::Header("x-missing".into())), None);
    }

    #[test]
    fn the_outgoing_head_carries_the_rewritten_host_headers_and_a_new_affinity_cookie() {
        let r = compiled(Route {
            rewrite: Some(Rewrite {
                uri: "/v1".into(),
                authority: "reviews.internal".into(),
                uri_regex: None,
            }),
            request_headers: HeaderOps {
                set: vec![weft_model::HeaderValue {
                    name: "x-route".into(),
                    value: "on".into(),
                }],
                add: vec![],
                remove: vec!["x-drop".into()],
            },
            ..route()
        });
        let cluster = hashing(HashKey::Cookie {
            name: "affinity".into(),
            path: String::new(),
            ttl_ms: Some(60_000),
        });
        let req = http::Request::get("/anything?q=1")
            .header("host", "reviews:9080")
            .header("x-drop", "1")
            .body(())
            .expect("request");
        let (parts, ()) = req.into_parts();
        let remote = "127.0.0.1:1".parse().expect("address");
        let out = outgoing(
            &r,
            &HeaderOps::default(),
            &cluster,
            parts,
            "reviews:9080",
            remote,
        )
        .expect("made");
        assert_eq!(out.path_q.as_str(), "/v1?q=1");
        assert_eq!(out.parts.headers["host"], "reviews.internal");
        assert_eq!(out.parts.headers["x-route"], "on");
        assert!(!out.parts.headers.contains_key("x-drop"));
        let cookie = out.new_cookie.expect("a cookie is made when there is none");
        let cookie = cookie.to_str().expect("text");
        assert!(
            cookie.starts_with("affinity=") && cookie.contains("Max-Age=60; Path=/; HttpOnly"),
            "{cookie}"
        );
        let value = cookie
            .trim_start_matches("affinity=")
            .split(';')
            .next()
            .expect("value");
        assert_eq!(
            out.hash.as_deref(),
            Some(value.as_bytes()),
            "the request hashes on the new cookie"
        );
    }
}
