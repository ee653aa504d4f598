//! Telemetry `tagOverrides`: labels removed from or added to Istio's
//! standard metrics, per metric or for all of them.
//!
//! Series are always recorded with the full label set; removals and fixed
//! values are applied when `/metrics` is rendered (series that become
//! identical are summed), so they cost the request path nothing. Only a
//! value read from the request (`request.headers['x']`, `request.host`…)
//! is evaluated per request, once for all metrics, and only when some
//! override asks for one.
//!
//! Values are Istio's CEL expressions; weft evaluates the common forms:
//! string literals, `request.host`, `request.method`, `request.url_path`,
//! `request.scheme`, `request.headers['name']`, and `x | 'default'`.
//! Anything else becomes `unknown` and is reported once per push.

use std::collections::HashMap;
use std::sync::Arc;

use weft_model::TagOverride;

use crate::facts::RequestFacts;
use crate::telemetry::Text;

/// The metrics an override may name, with their Prometheus names.
pub const METRICS: [(&str, &str); 8] = [
    ("REQUEST_COUNT", "istio_requests_total"),
    ("REQUEST_DURATION", "istio_request_duration_milliseconds"),
    ("REQUEST_SIZE", "istio_request_bytes"),
    ("RESPONSE_SIZE", "istio_response_bytes"),
    (
        "TCP_OPENED_CONNECTIONS",
        "istio_tcp_connections_opened_total",
    ),
    (
        "TCP_CLOSED_CONNECTIONS",
        "istio_tcp_connections_closed_total",
    ),
    ("TCP_SENT_BYTES", "istio_tcp_sent_bytes_total"),
    ("TCP_RECEIVED_BYTES", "istio_tcp_received_bytes_total"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Host,
    Method,
    Path,
    Scheme,
    Header(http::HeaderName),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RequestValue {
    source: Source,
    default: String,
}

#[derive(Debug, Clone)]
enum Value {
    Fixed(String),
    /// Index into the request's evaluated values.
    FromRequest(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Remove(String),
    Set(String, Value),
}

/// The overrides of one configuration, decided once per push.
#[derive(Debug, Default)]
pub struct TagPlan {
    from_request: Vec<RequestValue>,
    /// Prometheus metric name → operations, `ALL_METRICS` ones first.
    ops: HashMap<&'static str, Vec<Op>>,
}

impl TagPlan {
    pub fn compile(overrides: &[TagOverride]) -> TagPlan {
        let mut plan = TagPlan::default();
        let mut unsupported = Vec::new();
        for pass_all in [true, false] {
            for o in overrides
                .iter()
                .filter(|o| (o.metric == "ALL_METRICS") == pass_all)
            {
                let op = match &o.value {
                    None => Op::Remove(o.tag.clone()),
                    Some(expr) => match parse(expr) {
                        Some(Parsed::Fixed(v)) => Op::Set(o.tag.clone(), Value::Fixed(v)),
                        Some(Parsed::Request(r)) => {
                            let i = match plan.from_request.iter().position(|x| *x == r) {
                                Some(i) => i,
                                None => {
                                    plan.from_request.push(r);
                                    plan.from_request.len() - 1
                                }
                            };
                            Op::Set(o.tag.clone(), Value::FromRequest(i))
                        }
                        None => {
                            unsupported.push(format!("{}: {expr}", o.tag));
                            Op::Set(o.tag.clone(), Value::Fixed("unknown".into()))
                        }
                    },
                };
                for (name, prom) in METRICS {
                    if pass_all || o.metric == name {
                        plan.ops.entry(prom).or_default().push(op.clone());
                    }
                }
            }
        }
        if !unsupported.is_empty() {
            tracing::warn!(
                expressions = ?unsupported,
                "tag override expressions weft cannot evaluate; those tags read \"unknown\""
            );
        }
        plan
    }

    /// Whether any override reads the request.
    pub fn reads_requests(&self) -> bool {
        !self.from_request.is_empty()
    }

    /// The request-dependent values, in plan order; `None` when no
    /// override needs one (the common case, which allocates nothing).
    pub fn evaluate(&self, r: &RequestFacts<'_>) -> Option<Arc<[Text]>> {
        if self.from_request.is_empty() {
            return None;
        }
        Some(
            self.from_request
                .iter()
                .map(|v| {
                    let got = match &v.source {
                        Source::Host => Some(r.authority),
                        Source::Method => Some(r.method),
                        Source::Path => Some(r.path),
                        Source::Scheme => Some(r.scheme),
                        Source::Header(h) => r.headers.get(h).and_then(|x| x.to_str().ok()),
                    }
                    .filter(|s| !s.is_empty())
                    .unwrap_or(v.default.as_str());
                    Arc::new(if got.is_empty() {
                        "unknown".to_owned()
                    } else {
                        got.to_owned()
                    })
                })
                .collect(),
        )
    }

    /// `labels` of one series of `metric`, after the overrides.
    pub fn apply<'a>(
        &'a self,
        metric: &str,
        labels: &mut Vec<(&'a str, &'a str)>,
        request: Option<&'a [Text]>,
    ) {
        let Some(ops) = self.ops.get(metric) else {
            return;
        };
        for op in ops {
            match op {
                Op::Remove(tag) => labels.retain(|(k, _)| k != tag),
                Op::Set(tag, value) => {
                    let v: &str = match value {
                        Value::Fixed(s) => s,
                        Value::FromRequest(i) => request
                            .and_then(|r| r.get(*i))
                            .map_or("unknown", |t| t.as_str()),
                    };
                    match labels.iter_mut().find(|(k, _)| k == tag) {
                        Some(slot) => slot.1 = v,
                        None => labels.push((tag, v)),
                    }
                }
            }
        }
    }
}

enum Parsed {
    Fixed(String),
    Request(RequestValue),
}

/// The CEL forms weft understands.
fn parse(expr: &str) -> Option<Parsed> {
    let expr = expr.trim();
    if let Some((left, right)) = expr.split_once('|') {
        let default = match parse(right)? {
            Parsed::Fixed(d) => d,
            Parsed::Request(_) => return None,
        };
        return match parse(left)? {
            Parsed::Request(mut r) => {
                r.default = default;
                Some(Parsed::Request(r))
            }
            fixed => Some(fixed),
        };
    }
    if let Some(s) = quoted(expr) {
        return Some(Parsed::Fixed(s.to_owned()));
    }
    let source = match expr {
        "request.host" => Source::Host,
        "request.method" => Source::Method,
        "request.url_path" | "request.path" => Source::Path,
        "request.scheme" => Source::Scheme,
        _ => {
            let name = expr
                .strip_prefix("request.headers[")?
                .strip_suffix(']')
                .and_then(quoted)?;
            Source::Header(http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?)
        }
    };
    Some(Parsed::Request(RequestValue {
        source,
        default: String::new(),
    }))
}

fn quoted(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(metric: &str, tag: &str, value: Option<&str>) -> TagOverride {
        TagOverride {
            metric: metric.into(),
            tag: tag.into(),
            value: value.map(str::to_owned),
        }
    }

    #[test]
    fn removals_and_fixed_values_per_metric() {
        let plan = TagPlan::compile(&[
            ov("ALL_METRICS", "request_protocol", None),
            ov("REQUEST_COUNT", "team", Some("'payments'")),
            ov("REQUEST_COUNT", "source_app", Some("\"edge\"")),
        ]);
        assert!(!plan.reads_requests());
        let mut l = vec![("source_app", "productpage"), ("request_protocol", "http")];
        plan.apply("istio_requests_total", &mut l, None);
        assert_eq!(l, vec![("source_app", "edge"), ("team", "payments")]);
        let mut d = vec![("source_app", "productpage"), ("request_protocol", "http")];
        plan.apply("istio_request_duration_milliseconds", &mut d, None);
        assert_eq!(d, vec![("source_app", "productpage")]);
    }

    #[test]
    fn request_values_are_evaluated_once() {
        let plan = TagPlan::compile(&[
            ov(
                "REQUEST_COUNT",
                "user",
                Some("request.headers['x-user'] | 'anon'"),
            ),
            ov(
                "REQUEST_DURATION",
                "user",
                Some("request.headers['x-user'] | 'anon'"),
            ),
            ov("REQUEST_COUNT", "host", Some("request.host")),
            ov("REQUEST_COUNT", "weird", Some("has(request.auth)")),
        ]);
        assert!(plan.reads_requests());
        let mut h = http::HeaderMap::new();
        h.insert("x-user", "jason".parse().expect("header"));
        let facts = |headers| RequestFacts {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            host: "reviews",
            path: "/",
            query: None,
            path_and_query: "/",
            protocol: "HTTP/1.1",
            headers,
            remote: "127.0.0.1:5000".parse().expect("addr"),
            jwt: None,
        };
        let v = plan.evaluate(&facts(&h)).expect("values");
        assert_eq!(v.len(), 2, "one value per distinct expression");
        let mut l = Vec::new();
        plan.apply("istio_requests_total", &mut l, Some(&v));
        assert_eq!(
            l,
            vec![
                ("user", "jason"),
                ("host", "reviews:9080"),
                ("weird", "unknown")
            ]
        );
        let none = http::HeaderMap::new();
        let v = plan.evaluate(&facts(&none)).expect("values");
        let mut l = Vec::new();
        plan.apply("istio_request_duration_milliseconds", &mut l, Some(&v));
        assert_eq!(l, vec![("user", "anon")]);
    }
}
