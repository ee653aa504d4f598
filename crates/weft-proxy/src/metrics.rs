//! Istio's standard metrics, with Istio's names and labels, on the proxy's
//! `/metrics`.
//!
//! Label values that do not change per request (this proxy's identity, each
//! endpoint's workload) are built once per configuration as shared strings,
//! so recording a request clones reference counts, not text.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use weft_model::{Endpoint, ProxyIdentity};

pub type Text = Arc<String>;

fn text(s: &str) -> Text {
    Arc::new(if s.is_empty() {
        "unknown".to_owned()
    } else {
        s.to_owned()
    })
}

/// One side of a request (source or destination), as Istio labels it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    pub workload: Text,
    pub namespace: Text,
    pub principal: Text,
    pub app: Text,
    pub version: Text,
}

impl Peer {
    pub fn unknown() -> Peer {
        let u = text("");
        Peer {
            workload: u.clone(),
            namespace: u.clone(),
            principal: u.clone(),
            app: u.clone(),
            version: u,
        }
    }

    pub fn of_proxy(p: &ProxyIdentity) -> Peer {
        Peer {
            workload: text(&p.workload),
            namespace: text(&p.namespace),
            principal: text(&p.spiffe_id),
            app: text(p.labels.get("app").map_or("", String::as_str)),
            version: text(p.labels.get("version").map_or("", String::as_str)),
        }
    }

    pub fn of_endpoint(e: &Endpoint) -> Peer {
        Peer {
            workload: text(&e.workload),
            namespace: text(&e.namespace),
            principal: text(&e.identity),
            app: text(e.labels.get("app").map_or("", String::as_str)),
            version: text(e.labels.get("version").map_or("", String::as_str)),
        }
    }
}

/// `destination_service`, `_name`, `_namespace` from a service host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceNames {
    pub service: Text,
    pub name: Text,
    pub namespace: Text,
}

impl ServiceNames {
    pub fn of(host: &str) -> ServiceNames {
        let mut parts = host.split('.');
        let name = parts.next().unwrap_or("");
        let ns = if host.contains(".svc.") {
            parts.next().unwrap_or("")
        } else {
            ""
        };
        ServiceNames {
            service: text(host),
            name: text(name),
            namespace: text(ns),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub reporter: &'static str,
    pub source_workload: Text,
    pub source_workload_namespace: Text,
    pub source_principal: Text,
    pub source_app: Text,
    pub source_version: Text,
    pub destination_workload: Text,
    pub destination_workload_namespace: Text,
    pub destination_principal: Text,
    pub destination_app: Text,
    pub destination_version: Text,
    pub destination_service: Text,
    pub destination_service_name: Text,
    pub destination_service_namespace: Text,
    pub request_protocol: &'static str,
    pub response_code: u16,
    pub response_flags: Text,
    pub connection_security_policy: &'static str,
}

impl RequestLabels {
    pub fn new(
        reporter: &'static str,
        source: &Peer,
        dest: &Peer,
        svc: &ServiceNames,
        outcome: Outcome,
    ) -> Self {
        RequestLabels {
            reporter,
            source_workload: source.workload.clone(),
            source_workload_namespace: source.namespace.clone(),
            source_principal: source.principal.clone(),
            source_app: source.app.clone(),
            source_version: source.version.clone(),
            destination_workload: dest.workload.clone(),
            destination_workload_namespace: dest.namespace.clone(),
            destination_principal: dest.principal.clone(),
            destination_app: dest.app.clone(),
            destination_version: dest.version.clone(),
            destination_service: svc.service.clone(),
            destination_service_name: svc.name.clone(),
            destination_service_namespace: svc.namespace.clone(),
            request_protocol: outcome.protocol,
            response_code: outcome.code,
            response_flags: outcome.flags,
            connection_security_policy: outcome.security,
        }
    }
}

/// What happened to one request or connection, as labels.
pub struct Outcome {
    pub protocol: &'static str,
    pub code: u16,
    pub flags: Text,
    pub security: &'static str,
}

/// Istio's buckets for request and response sizes, in bytes.
const SIZE_BUCKETS: [f64; 8] = [
    1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0, 1000000.0, 10000000.0,
];

/// Istio's buckets for request durations, in milliseconds.
const DURATION_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RequestLabels, Histogram>,
    pub request_bytes: Family<RequestLabels, Histogram>,
    pub response_bytes: Family<RequestLabels, Histogram>,
    pub tcp_opened: Family<RequestLabels, Counter>,
    pub tcp_closed: Family<RequestLabels, Counter>,
    pub tcp_sent: Family<RequestLabels, Counter>,
    pub tcp_received: Family<RequestLabels, Counter>,
    /// Shared `-` for requests without flags.
    pub no_flags: Text,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let request_bytes = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(SIZE_BUCKETS)
        });
        let response_bytes = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(SIZE_BUCKETS)
        });
        let tcp_opened = Family::<RequestLabels, Counter>::default();
        let tcp_closed = Family::<RequestLabels, Counter>::default();
        let tcp_sent = Family::<RequestLabels, Counter>::default();
        let tcp_received = Family::<RequestLabels, Counter>::default();
        registry.register(
            "istio_request_bytes",
            "Request body sizes",
            request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response body sizes",
            response_bytes.clone(),
        );
        registry.register(
            "istio_requests",
            "Requests handled by this proxy",
            requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration",
            duration.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            tcp_closed.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the client on TCP connections",
            tcp_sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the client on TCP connections",
            tcp_received.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            request_bytes,
            response_bytes,
            tcp_opened,
            tcp_closed,
            tcp_sent,
            tcp_received,
            no_flags: Arc::new("-".to_owned()),
        }
    }

    /// The Prometheus text exposition (OpenMetrics).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A response body that counts its bytes and reports the total once, when
/// it ends or is dropped.
pub struct CountingBody {
    inner: crate::upstream::Body,
    bytes: u64,
    done: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
}

impl CountingBody {
    pub fn new(inner: crate::upstream::Body, done: Box<dyn FnOnce(u64) + Send + Sync>) -> Self {
        CountingBody {
            inner,
            bytes: 0,
            done: Some(done),
        }
    }
}

impl hyper::body::Body for CountingBody {
    type Data = bytes::Bytes;
    type Error = crate::upstream::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                this.bytes += d.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountingBody {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(self.bytes);
        }
    }
}
