//! One description of an HTTP request's facts, read from its head where a
//! stage needs them: route matching, authorization, metric tag overrides,
//! traces and the access log all look at the same fields under the same
//! names.

use std::net::SocketAddr;

use http::header::HOST;
use http::{HeaderMap, Request};

/// What a request is, borrowed from its head.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// `http` unless the client named another in an absolute-form URI.
    pub scheme: &'a str,
    /// As the client named it: the absolute-form URI's authority, else the
    /// Host header; with the port when it carries one.
    pub authority: &'a str,
    /// The authority without its port.
    pub host: &'a str,
    /// Without the query string, as Istio matches paths.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub path_and_query: &'a str,
    pub protocol: &'static str,
    pub headers: &'a HeaderMap,
    /// The downstream peer's address.
    pub remote: SocketAddr,
    /// The JWT the policy stage validated, for routes on its claims.
    pub jwt: Option<&'a crate::policy::authz::Jwt>,
}

impl<'a> RequestFacts<'a> {
    pub fn of<B>(req: &'a Request<B>, remote: SocketAddr) -> RequestFacts<'a> {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .unwrap_or_else(|| {
                req.headers()
                    .get(HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
            });
        RequestFacts::with_authority(req, remote, authority)
    }

    /// As [`RequestFacts::of`], with the authority a stage has already
    /// read from the request.
    pub fn with_authority<B>(
        req: &'a Request<B>,
        remote: SocketAddr,
        authority: &'a str,
    ) -> RequestFacts<'a> {
        let uri = req.uri();
        RequestFacts {
            method: req.method().as_str(),
            scheme: uri.scheme_str().unwrap_or("http"),
            authority,
            host: without_port(authority),
            path: uri.path(),
            query: uri.query(),
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
            protocol: protocol_name(req.version()),
            headers: req.headers(),
            remote,
            jwt: None,
        }
    }

    /// These facts with the JWT the policy stage validated.
    pub fn with_jwt(mut self, jwt: Option<&'a crate::policy::authz::Jwt>) -> Self {
        self.jwt = jwt;
        self
    }
}

/// `host:port` → `host`; a name without a port is left as it is.
pub fn without_port(authority: &str) -> &str {
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The protocol as spans write it.
pub fn protocol_name(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_10 => "HTTP/1.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::RequestFacts;

    #[test]
    fn facts_come_from_the_uri_before_the_host_header() {
        let remote = "127.0.0.1:1".parse().expect("addr");
        let req = http::Request::get("http://reviews:9080/r/1?x=2")
            .header("host", "other")
            .body(())
            .expect("request");
        let f = RequestFacts::of(&req, remote);
        assert_eq!(
            (f.authority, f.host, f.path, f.query, f.path_and_query),
            ("reviews:9080", "reviews", "/r/1", Some("x=2"), "/r/1?x=2")
        );
        let req = http::Request::get("/")
            .header("host", "ratings")
            .body(())
            .expect("request");
        let f = RequestFacts::of(&req, remote);
        assert_eq!(
            (f.authority, f.host, f.scheme),
            ("ratings", "ratings", "http")
        );
    }
}
