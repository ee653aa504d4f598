//! The edge stage: what is checked and recorded about a request before
//! anything routes or judges it. The head must be well-formed and its path
//! normalized (so routing, policy, telemetry and the application agree on
//! it); the request gets an id; the mesh's edge records who the client is
//! and redirects to https where a Gateway asks.

use std::net::SocketAddr;

use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};

use super::context::Ctx;
use super::error::{Error, ErrorKind};
use super::listener::Edge;
use crate::body::Body;
use crate::snapshot::Snapshot;

/// Refuses a head HTTP forbids and normalizes the path, as MeshConfig
/// `pathNormalization` says.
pub fn admit_head<B: hyper::body::Body>(
    req: &mut Request<B>,
    mode: weft_model::PathNormalization,
) -> Result<(), Error> {
    if let Some(why) = malformed_head(req) {
        return Err(Error::new(ErrorKind::MalformedRequest, why));
    }
    normalize_path(req, mode).map_err(|e| Error::new(ErrorKind::MalformedRequest, e.to_string()))
}

/// The authority the client asked for: absolute-form URI (a client using
/// the proxy as HTTP_PROXY) or the Host header. Held as the header's own
/// (shared) bytes: the log and metrics read it without a copy.
pub fn authority<B>(req: &Request<B>) -> HeaderValue {
    match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => req.headers().get(HOST).cloned(),
    }
    .filter(|a| a.to_str().is_ok())
    .unwrap_or_else(|| HeaderValue::from_static(""))
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's `x-request-id`, given one when it has none.
pub fn request_id<B>(req: &mut Request<B>) -> HeaderValue {
    match req.headers().get(X_REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            req.headers_mut().insert(X_REQUEST_ID, id.clone());
            id
        }
    }
}

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

const X_ENVOY_EXTERNAL_ADDRESS: HeaderName = HeaderName::from_static("x-envoy-external-address");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Records the client's address at the mesh's edge, for the hops behind;
/// elsewhere only the edge may say who an external client was.
pub fn client_address(edge: Edge, remote: SocketAddr, headers: &mut http::HeaderMap) {
    match edge {
        Edge::Ingress { .. } => {
            let Ok(ip) = HeaderValue::from_str(&remote.ip().to_string()) else {
                return;
            };
            let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
                Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", remote.ip())).ok(),
                None => Some(ip.clone()),
            };
            if let Some(xff) = xff {
                headers.insert(X_FORWARDED_FOR, xff);
            }
            headers.insert(X_ENVOY_EXTERNAL_ADDRESS, ip);
        }
        Edge::Outbound => {
            headers.remove(X_ENVOY_EXTERNAL_ADDRESS);
        }
        Edge::Inbound => {}
    }
}

/// The client's address as the gateway saw it, trusted only from a mesh
/// peer.
pub fn external_address(headers: &http::HeaderMap) -> Option<std::net::IpAddr> {
    headers
        .get(&X_ENVOY_EXTERNAL_ADDRESS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
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
) -> Result<(), super::path::PathError> {
    if req.method() == http::Method::CONNECT {
        return Ok(());
    }
    let Some(pq) = req.uri().path_and_query() else {
        return Ok(());
    };
    let std::borrow::Cow::Owned(path) = super::path::normalize(pq.path(), mode)? else {
        return Ok(());
    };
    let path = match pq.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(path).map_err(|_| super::path::PathError::Unparsable)?);
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| super::path::PathError::Unparsable)?;
    Ok(())
}

/// `n` in decimal, written into `buf` (route tables are named by port).
pub fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
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

/// Gateway `tls.httpsRedirect` on a plain-HTTP server: 301 to the same
/// host and path over https.
pub fn https_redirect<B>(
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
        .find(|t| t.https_redirect && crate::identity::gateway_tls::admits(&t.hosts, host))?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = HeaderValue::from_str(&format!("https://{host}{path}")).ok()?;
    let mut resp = Response::new(super::local_reply::empty());
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    resp.headers_mut().insert(http::header::LOCATION, location);
    ctx.entry.reason = "Gateway tls.httpsRedirect".into();
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::{admit_head, client_address, Edge};
    use weft_model::PathNormalization;

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

    fn get(path: &str, hosts: &[&str]) -> http::Request<http_body_util::Empty<bytes::Bytes>> {
        let mut req = http::Request::get(path);
        for h in hosts {
            req = req.header("host", *h);
        }
        req.body(http_body_util::Empty::new()).expect("request")
    }

    #[test]
    fn heads_http_forbids_are_refused_and_paths_normalized() {
        let mut req = get("/public/%2e%2e/secret", &["web"]);
        admit_head(&mut req, PathNormalization::Base).expect("admitted");
        assert_eq!(req.uri().path(), "/secret");
        for hosts in [&[][..], &["a", "b"], &["bad host"]] {
            let mut req = get("/", hosts);
            let e = admit_head(&mut req, PathNormalization::Base).expect_err("refused");
            assert_eq!(e.status(), 400, "{hosts:?}");
        }
        let mut req = get("/a%00b", &["web"]);
        assert!(admit_head(&mut req, PathNormalization::Base).is_err());
    }

    #[test]
    fn only_the_edge_records_the_client() {
        let remote = "127.0.0.9:5000".parse().expect("addr");
        let mut h = http::HeaderMap::new();
        h.insert("x-forwarded-for", "127.1.2.3".parse().expect("value"));
        client_address(Edge::Ingress { port: 80 }, remote, &mut h);
        assert_eq!(h["x-forwarded-for"], "127.1.2.3, 127.0.0.9");
        assert_eq!(h["x-envoy-external-address"], "127.0.0.9");
        client_address(Edge::Inbound, remote, &mut h);
        assert!(h.contains_key("x-envoy-external-address"));
        client_address(Edge::Outbound, remote, &mut h);
        assert!(!h.contains_key("x-envoy-external-address"));
    }
}
