//! Telemetry `accessLogging.filter`: a CEL expression over Envoy's
//! attributes decides which requests and connections are logged
//! (`response.code >= 400`, `response.flags != 0`,
//! `request.url_path.startsWith('/api')`, `xds.cluster_name == '…'`).
//!
//! The expression is compiled once per configuration. Validation refuses
//! one that does not compile, as istiod does; a model that carries one
//! anyway logs everything (and says so once): losing every log line to a
//! typo is worse than logging too much. One that fails on a
//! request (an attribute weft does not have for it) does not log that
//! request, as Envoy's filter does.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Env, Program, Value};

use crate::telemetry::access_log::Entry;

pub struct LogFilter {
    expression: String,
    program: Program,
    /// CEL's standard functions, registered once: a context built with
    /// `Context::default` registers them all again for every entry.
    env: Arc<Env>,
    /// The attribute maps the expression reads; only those are built.
    reads: Reads,
}

/// Which of Envoy's attribute maps an expression names.
#[derive(Clone, Copy)]
struct Reads {
    request: bool,
    response: bool,
    source: bool,
    upstream: bool,
    xds: bool,
}

impl Reads {
    fn of(program: &Program) -> Reads {
        let references = program.references();
        let variables = references.variables();
        // `a.b` may be one qualified name; its first part is the map.
        let names = |name: &str| {
            variables
                .iter()
                .any(|v| v.trim_start_matches('.').split('.').next() == Some(name))
        };
        Reads {
            request: names("request"),
            response: names("response"),
            source: names("source"),
            upstream: names("upstream"),
            xds: names("xds"),
        }
    }
}

impl std::fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFilter")
            .field("expression", &self.expression)
            .finish_non_exhaustive()
    }
}

impl LogFilter {
    /// The filter for `expression`; `None` (log everything) when it does
    /// not compile, with a warning.
    pub fn compile(expression: &str) -> Option<LogFilter> {
        match Program::compile(expression) {
            Ok(program) => Some(LogFilter {
                expression: expression.to_owned(),
                reads: Reads::of(&program),
                program,
                env: Arc::new(Env::stdlib()),
            }),
            Err(e) => {
                tracing::warn!(
                    filter = expression,
                    error = %e,
                    "the accessLogging filter is not a CEL expression weft can compile; every request is logged"
                );
                None
            }
        }
    }

    /// Whether `entry` is logged: the expression is `true` for it.
    pub fn admits(&self, entry: &Entry) -> bool {
        let ctx = attributes(entry, self.reads, self.env.clone());
        matches!(self.program.execute(&ctx), Ok(Value::Bool(true)))
    }
}

fn text(s: &str) -> Value {
    Value::String(Arc::new(s.to_owned()))
}

/// Envoy's attribute maps the expression `reads`, for what the entry
/// knows; an attribute it does not know is left out, so an expression
/// that reads it fails.
fn attributes(e: &Entry, reads: Reads, env: Arc<Env>) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env);
    if reads.request {
        ctx.add_variable_from_value("request", request(e));
    }
    if reads.response {
        let mut response: HashMap<String, Value> = HashMap::new();
        response.insert("code".into(), Value::Int(i64::from(e.response_code)));
        response.insert("flags".into(), Value::UInt(e.response_flags.envoy_bits()));
        ctx.add_variable_from_value("response", response);
    }
    if reads.source {
        // Envoy's `source.address` is `ip:port`.
        ctx.add_variable_from_value("source", address(e.downstream_remote_address));
    }
    if reads.upstream {
        ctx.add_variable_from_value("upstream", address(e.upstream_host));
    }
    if reads.xds {
        let mut xds: HashMap<String, Value> = HashMap::new();
        if e.upstream_cluster.is_some() {
            xds.insert("cluster_name".into(), text(e.upstream_cluster_str()));
        }
        if let Some(r) = &e.route_name {
            xds.insert("route_name".into(), text(r));
        }
        ctx.add_variable_from_value("xds", xds);
    }
    ctx
}

/// `source` or `upstream`: the peer's `ip:port` and port.
fn address(a: Option<std::net::SocketAddr>) -> HashMap<String, Value> {
    let mut peer: HashMap<String, Value> = HashMap::new();
    if let Some(a) = a {
        peer.insert("address".into(), text(&a.to_string()));
        peer.insert("port".into(), Value::Int(i64::from(a.port())));
    }
    peer
}

fn request(e: &Entry) -> HashMap<String, Value> {
    let mut request: HashMap<String, Value> = HashMap::new();
    if let Some(m) = &e.method {
        request.insert("method".into(), text(m.as_str()));
    }
    if let Some(p) = &e.path {
        request.insert("path".into(), text(p.as_str()));
        request.insert("url_path".into(), text(p.path()));
        request.insert("query".into(), text(p.query().unwrap_or("")));
    }
    if e.authority.is_some() {
        request.insert("host".into(), text(e.authority_str()));
    }
    if !e.protocol.is_empty() {
        request.insert("protocol".into(), text(e.protocol));
    }
    if e.request_id.is_some() {
        request.insert("id".into(), text(e.request_id_str()));
    }
    if let Some(ua) = e.user_agent.as_ref().and_then(|v| v.to_str().ok()) {
        request.insert("useragent".into(), text(ua));
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::flags::ResponseFlag;

    fn entry(code: u16, path: &str) -> Entry {
        Entry {
            method: Some(http::Method::GET),
            path: Some(path.parse().unwrap()),
            response_code: code,
            upstream_cluster: Some(Arc::from(
                "outbound|9080||reviews.default.svc.cluster.local",
            )),
            downstream_remote_address: Some("127.0.0.1:5000".parse().unwrap()),
            ..Entry::default()
        }
    }

    #[test]
    fn the_expressions_users_write() {
        let admits = |expr: &str, e: &Entry| LogFilter::compile(expr).unwrap().admits(e);
        let ok = entry(200, "/productpage?u=1");
        let failed = entry(503, "/api/v1");
        assert!(!admits("response.code >= 400", &ok));
        assert!(admits("response.code >= 400", &failed));
        assert!(admits("request.url_path.startsWith('/api')", &failed));
        assert!(!admits("request.url_path == '/productpage?u=1'", &ok));
        assert!(admits("request.path == '/productpage?u=1'", &ok));
        assert!(admits("xds.cluster_name.contains('reviews')", &ok));
        assert!(admits(
            "request.method == 'GET' && source.address == '127.0.0.1:5000' && source.port == 5000",
            &ok
        ));
        let mut flagged = entry(503, "/");
        flagged
            .response_flags
            .add(ResponseFlag::UpstreamConnectionFailure);
        flagged
            .response_flags
            .add(ResponseFlag::UpstreamRetryLimitExceeded);
        assert!(admits("response.flags != 0u", &flagged));
        assert!(!admits("response.flags != 0u", &ok));
        // CEL compares numbers across int and uint.
        assert!(admits("response.flags != 0", &flagged));
        assert!(admits("response.flags == 32 + 32768", &flagged));
        // An attribute the entry does not have: not logged, as in Envoy.
        assert!(!admits("request.headers['x-debug'] == '1'", &ok));
        // Not an expression: no filter (every request is logged).
        assert!(LogFilter::compile("response.code >=").is_none());
    }
}
