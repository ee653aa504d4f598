//! Distributed tracing: one span per request per proxy, the trace context
//! handed on in W3C and B3 headers, and sampled spans exported over OTLP.
//!
//! With no tracing provider in the model nothing here runs and trace
//! headers pass through untouched. With one, every request gets ids and
//! headers (so a trace stays whole across hops even when it is not
//! sampled), but only a sampled request gathers span data and allocates
//! for it.

mod context;
mod export;

use std::borrow::Cow;
use std::sync::LazyLock;
use std::time::SystemTime;

use http::HeaderMap;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use weft_model::{CustomTag, TracingExport};

use context::{extract, inject};

use crate::facts::RequestFacts;
pub use export::{exporter, Sink};

static SCOPE: LazyLock<InstrumentationScope> = LazyLock::new(|| {
    InstrumentationScope::builder("weft-proxy")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
});

/// This proxy's part of one request's trace.
pub struct Hop {
    trace_id: TraceId,
    span_id: SpanId,
    /// The caller's span, `INVALID` when this hop starts the trace.
    parent: SpanId,
    sampled: bool,
    b3_single: bool,
    /// Filled only for sampled requests.
    detail: Option<Box<Detail>>,
}

struct Detail {
    start: SystemTime,
    kind: SpanKind,
    name: String,
    attributes: Vec<KeyValue>,
}

/// How it ended.
pub struct Outcome<'a> {
    pub status: u16,
    pub flags: &'a crate::telemetry::flags::Flags,
    pub upstream_cluster: &'a str,
    pub request_id: &'a str,
    /// `("source.principal", id)` on inbound spans, the destination's on
    /// outbound ones; empty when the peer had no verified identity.
    pub principal: (&'static str, &'a str),
    pub request_size: u64,
    pub me: &'a crate::telemetry::metrics::Peer,
}

fn random_span_id() -> SpanId {
    SpanId::from_bytes(fastrand::u64(1..).to_be_bytes())
}

impl Hop {
    /// Joins the caller's trace or starts one, deciding sampling when the
    /// caller did not: `percent` of new traces are sampled.
    pub fn begin(
        facts: &RequestFacts<'_>,
        kind: SpanKind,
        config: &TracingExport,
        percent: f64,
    ) -> Hop {
        let ext = extract(facts.headers);
        let sampled = ext
            .sampled
            .unwrap_or_else(|| fastrand::f64() * 100.0 < percent);
        let (trace_id, parent) = ext.ids.unwrap_or_else(|| {
            (
                TraceId::from_bytes(fastrand::u128(1..).to_be_bytes()),
                SpanId::INVALID,
            )
        });
        let detail = sampled.then(|| Box::new(Detail::of(facts, kind, config)));
        Hop {
            trace_id,
            span_id: random_span_id(),
            parent,
            sampled,
            b3_single: ext.b3_single,
            detail,
        }
    }

    /// Hands this hop's context to the next one, in the request's headers.
    pub fn inject(&self, headers: &mut HeaderMap) {
        inject(
            headers,
            self.trace_id,
            self.span_id,
            self.parent,
            self.sampled,
            self.b3_single,
        );
    }

    /// The span of a sampled request, still open: it ends when the
    /// response body has gone out (`Sink::send`).
    pub fn finish(self, o: &Outcome<'_>) -> Option<Box<SpanData>> {
        let d = self.detail?;
        let Detail {
            start,
            kind,
            name,
            mut attributes,
        } = *d;
        let me = o.me;
        attributes.extend([
            KeyValue::new("http.status_code", i64::from(o.status)),
            KeyValue::new("response_flags", o.flags.to_string()),
            KeyValue::new("upstream_cluster", o.upstream_cluster.to_owned()),
            KeyValue::new("upstream_cluster.name", o.upstream_cluster.to_owned()),
            KeyValue::new("guid:x-request-id", o.request_id.to_owned()),
            KeyValue::new("request_size", o.request_size as i64),
            KeyValue::new("node_id", format!("{}.{}", &*me.workload, &*me.namespace)),
            KeyValue::new("istio.canonical_service", canonical(me)),
            KeyValue::new(
                "istio.canonical_revision",
                if me.version.is_empty() {
                    "latest".to_owned()
                } else {
                    me.version.to_string()
                },
            ),
            KeyValue::new("istio.namespace", me.namespace.to_string()),
        ]);
        if let Some(td) = me
            .principal
            .strip_prefix("spiffe://")
            .and_then(|r| r.split('/').next())
        {
            attributes.push(KeyValue::new("istio.mesh_id", td.to_owned()));
        }
        if !o.principal.1.is_empty() {
            attributes.push(KeyValue::new(o.principal.0, o.principal.1.to_owned()));
        }
        let error = o.status == 0 || o.status >= 500;
        if error {
            attributes.push(KeyValue::new("error", true));
        }
        Some(Box::new(SpanData {
            span_context: SpanContext::new(
                self.trace_id,
                self.span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: self.parent,
            parent_span_is_remote: self.parent != SpanId::INVALID,
            span_kind: kind,
            name: Cow::Owned(name),
            start_time: start,
            end_time: start,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if error {
                Status::error(format!("{} {}", o.status, o.flags))
            } else {
                Status::Unset
            },
            instrumentation_scope: SCOPE.clone(),
        }))
    }
}

fn canonical(me: &crate::telemetry::metrics::Peer) -> String {
    if me.app.is_empty() {
        me.workload.to_string()
    } else {
        me.app.to_string()
    }
}

impl Detail {
    fn of(f: &RequestFacts<'_>, kind: SpanKind, config: &TracingExport) -> Detail {
        let path = f
            .path_and_query
            .split_once('?')
            .map_or(f.path_and_query, |(p, _)| p);
        let header = |name: &str| {
            f.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let mut attributes = vec![
            KeyValue::new("component", "proxy"),
            KeyValue::new("http.method", f.method.to_owned()),
            KeyValue::new(
                "http.url",
                format!("{}://{}{}", f.scheme, f.authority, f.path_and_query),
            ),
            KeyValue::new("http.protocol", f.protocol),
            KeyValue::new("peer.address", f.remote.ip().to_string()),
            KeyValue::new("user_agent", header("user-agent").unwrap_or_default()),
        ];
        if let Some(xff) = header("x-forwarded-for") {
            attributes.push(KeyValue::new("downstream_cluster", xff));
        }
        for (tag, how) in &config.custom_tags {
            let value = match how {
                CustomTag::Literal(v) => v.clone(),
                CustomTag::Header { name, default } => {
                    header(name).unwrap_or_else(|| default.clone())
                }
            };
            attributes.push(KeyValue::new(tag.clone(), value));
        }
        Detail {
            start: SystemTime::now(),
            kind,
            name: format!("{}{path}", f.authority),
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn config() -> TracingExport {
        TracingExport {
            provider: "otel".into(),
            cluster: "outbound|4318||otel".into(),
            authority: "otel:4318".into(),
            transport: Default::default(),
            path: "/v1/traces".into(),
            timeout_ms: 1000,
            headers: Default::default(),
            service_name: "reviews.default".into(),
            custom_tags: [
                ("env".to_owned(), CustomTag::Literal("prod".into())),
                (
                    "tenant".to_owned(),
                    CustomTag::Header {
                        name: "x-tenant".into(),
                        default: "none".into(),
                    },
                ),
            ]
            .into_iter()
            .collect(),
        }
    }

    fn facts(headers: &HeaderMap) -> RequestFacts<'_> {
        RequestFacts {
            method: "GET",
            scheme: "http",
            authority: "reviews:9080",
            host: "reviews",
            path: "/reviews/0",
            query: Some("x=1"),
            path_and_query: "/reviews/0?x=1",
            protocol: "HTTP/1.1",
            headers,
            remote: "127.0.0.1:5000".parse().expect("addr"),
            jwt: None,
        }
    }

    #[test]
    fn a_sampled_caller_is_joined_and_the_span_is_its_child() {
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let hop = Hop::begin(&facts(&h), SpanKind::Server, &config(), 0.0);
        let mut out = HeaderMap::new();
        hop.inject(&mut out);
        let next = extract(&out);
        let (trace, span) = next.ids.expect("ids");
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(next.sampled, Some(true));
        let me = crate::telemetry::metrics::Peer::unknown();
        let mut flags = crate::telemetry::flags::Flags::default();
        flags.add(crate::telemetry::flags::ResponseFlag::NoHealthyUpstream);
        let data = hop
            .finish(&Outcome {
                status: 503,
                flags: &flags,
                upstream_cluster: "inbound|9080||",
                request_id: "r1",
                principal: ("source.principal", "spiffe://cluster.local/ns/default/sa/x"),
                request_size: 0,
                me: &me,
            })
            .expect("sampled");
        assert_eq!(data.span_context.span_id(), span);
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(data.name, "reviews:9080/reviews/0");
        let attr = |k: &str| {
            data.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attr("response_flags").as_deref(), Some("UH"));
        assert_eq!(attr("env").as_deref(), Some("prod"));
        assert_eq!(attr("tenant").as_deref(), Some("none"));
        assert_eq!(
            attr("source.principal").as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/x")
        );
        assert_eq!(attr("error").as_deref(), Some("true"));
    }

    #[test]
    fn sampling_follows_the_caller_then_the_percentage() {
        let mut h = HeaderMap::new();
        h.insert("x-b3-sampled", HeaderValue::from_static("0"));
        assert!(Hop::begin(&facts(&h), SpanKind::Server, &config(), 100.0)
            .detail
            .is_none());
        let none = HeaderMap::new();
        assert!(
            Hop::begin(&facts(&none), SpanKind::Server, &config(), 100.0)
                .detail
                .is_some()
        );
        assert!(Hop::begin(&facts(&none), SpanKind::Server, &config(), 0.0)
            .detail
            .is_none());
        let hits = (0..2000)
            .filter(|_| Hop::begin(&facts(&none), SpanKind::Server, &config(), 10.0).sampled)
            .count();
        assert!((100..300).contains(&hits), "10% of 2000 sampled {hits}");
    }
}
