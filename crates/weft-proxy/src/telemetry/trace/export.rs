//! Sending finished spans to the collector: the request path hands a span
//! to a bounded queue (never waiting; a full queue drops and counts), and
//! one task batches them and exports over OTLP, HTTP/protobuf with
//! opentelemetry-otlp or gRPC (the `TraceService/Export` call, with the
//! OpenTelemetry protobuf types). Either way the client is this proxy's
//! own cluster for the collector, so the collector is reached like any
//! other service: its endpoints, load balancing and mTLS when it is in
//! the mesh.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use opentelemetry::KeyValue;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, watch};
use weft_model::{OtlpTransport, TracingExport};

use crate::shared::Shared;

/// Spans wait here for export; past this the newest are dropped.
const QUEUE: usize = 8192;
const BATCH: usize = 512;
/// How long a span may wait for its batch to fill.
const DELAY: Duration = Duration::from_millis(500);
const MAX_COLLECTOR_REPLY: usize = 1 << 20;

/// The request path's end of the span queue.
#[derive(Clone)]
pub struct Sink {
    tx: mpsc::Sender<Box<SpanData>>,
    dropped: Arc<AtomicU64>,
}

pub type Spans = mpsc::Receiver<Box<SpanData>>;

impl Sink {
    pub fn new() -> (Sink, Spans) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Sink {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Ends `span` now, with the response's size, and queues it.
    pub fn send(&self, mut span: Box<SpanData>, response_bytes: u64) {
        span.end_time = SystemTime::now();
        span.attributes
            .push(KeyValue::new("response_size", response_bytes as i64));
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Exports queued spans until the proxy shuts down, then flushes what is
/// left (bounded by the collector timeout).
pub async fn exporter(mut spans: Spans, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut current: Option<(TracingExport, Exporter)> = None;
    let mut last_warning: Option<Instant> = None;
    let mut reported_drops = 0;
    loop {
        let first = tokio::select! {
            s = spans.recv() => s,
            _ = shutdown.changed() => None,
        };
        let stopping = first.is_none();
        let mut batch: Vec<SpanData> = first.into_iter().map(|b| *b).collect();
        if stopping {
            while let Ok(s) = spans.try_recv() {
                batch.push(*s);
            }
        } else {
            let deadline = tokio::time::sleep(DELAY);
            tokio::pin!(deadline);
            while batch.len() < BATCH {
                tokio::select! {
                    s = spans.recv() => match s {
                        Some(s) => batch.push(*s),
                        None => break,
                    },
                    _ = &mut deadline => break,
                    _ = shutdown.changed() => break,
                }
            }
        }
        let dropped = shared.spans.dropped();
        if dropped > reported_drops {
            tracing::warn!(
                dropped = dropped - reported_drops,
                "spans dropped: the export queue was full (the collector is slower than the traffic)"
            );
            reported_drops = dropped;
        }
        if !batch.is_empty() {
            let config = shared.snapshot.load().model.telemetry.tracing.clone();
            if let Some(config) = config {
                export(&mut current, &shared, config, batch, &mut last_warning).await;
            }
        }
        if stopping || *shutdown.borrow() {
            while let Ok(s) = spans.try_recv() {
                drop(s);
            }
            return;
        }
    }
}

async fn export(
    current: &mut Option<(TracingExport, Exporter)>,
    shared: &Arc<Shared>,
    config: TracingExport,
    batch: Vec<SpanData>,
    last_warning: &mut Option<Instant>,
) {
    if current.as_ref().is_none_or(|(c, _)| *c != config) {
        match build(shared, &config) {
            Ok(e) => *current = Some((config.clone(), e)),
            Err(why) => {
                warn_now_and_then(last_warning, &config, &why);
                return;
            }
        }
    }
    let Some((_, exporter)) = current.as_ref() else {
        return;
    };
    let n = batch.len();
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    match tokio::time::timeout(timeout, exporter.export(batch)).await {
        Ok(Ok(())) => tracing::debug!(spans = n, provider = %config.provider, "spans exported"),
        Ok(Err(e)) => warn_now_and_then(last_warning, &config, &e),
        Err(_) => warn_now_and_then(
            last_warning,
            &config,
            &format!("no answer within {} ms", config.timeout_ms),
        ),
    }
}

/// A collector that is down must not flood the proxy's log.
fn warn_now_and_then(last: &mut Option<Instant>, config: &TracingExport, why: &str) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
        *last = Some(Instant::now());
        tracing::warn!(provider = %config.provider, collector = %config.authority, %why, "spans not exported (repeats are silenced for 30 s)");
    }
}

/// One collector's exporter, over the transport its provider names.
enum Exporter {
    Http(opentelemetry_otlp::SpanExporter),
    Grpc(GrpcExporter),
}

impl Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> Result<(), String> {
        match self {
            Exporter::Http(e) => e.export(batch).await.map_err(|e| e.to_string()),
            Exporter::Grpc(e) => e.export(batch).await,
        }
    }
}

fn build(shared: &Arc<Shared>, config: &TracingExport) -> Result<Exporter, String> {
    let resource = Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .build();
    let collector = Collector {
        shared: Arc::downgrade(shared),
        cluster: config.cluster.clone(),
        authority: config.authority.clone(),
    };
    if config.transport == OtlpTransport::Grpc {
        return Ok(Exporter::Grpc(GrpcExporter {
            collector,
            metadata: config
                .headers
                .iter()
                .map(|(k, v)| {
                    Ok((
                        http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                        http::HeaderValue::from_str(v).map_err(|e| e.to_string())?,
                    ))
                })
                .collect::<Result<_, String>>()?,
            resource: (&resource).into(),
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
        }));
    }
    let client = ThroughCluster(collector);
    let headers: HashMap<String, String> = config
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{}{}", config.authority, config.path))
        .with_timeout(Duration::from_millis(config.timeout_ms.max(1)))
        .with_headers(headers)
        .build()
        .map_err(|e| e.to_string())?;
    exporter.set_resource(&resource);
    Ok(Exporter::Http(exporter))
}

/// The collector, as this proxy's cluster for it.
#[derive(Debug)]
struct Collector {
    shared: Weak<Shared>,
    cluster: String,
    authority: String,
}

impl Collector {
    /// The collector's cluster in the current configuration.
    fn cluster(&self) -> Result<Arc<crate::upstream::ClusterRt>, String> {
        let shared = self.shared.upgrade().ok_or("the proxy has stopped")?;
        let snapshot = shared.snapshot.load();
        snapshot.cluster(&self.cluster).cloned().ok_or_else(|| {
            format!(
                "no cluster {} in this proxy's configuration: declare the collector as a Service or ServiceEntry",
                self.cluster
            )
        })
    }
}

/// OTLP over gRPC: one `TraceService/Export` call per batch.
struct GrpcExporter {
    collector: Collector,
    metadata: Vec<(http::HeaderName, http::HeaderValue)>,
    resource: opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema,
    timeout: Duration,
}

impl GrpcExporter {
    async fn export(&self, batch: Vec<SpanData>) -> Result<(), String> {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
        };
        use prost::Message;
        let cluster = self.collector.cluster()?;
        let request = ExportTraceServiceRequest {
            resource_spans:
                opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope(
                    batch,
                    &self.resource,
                ),
        };
        let answer = crate::upstream::grpc_call::unary(
            &cluster,
            &self.collector.authority,
            weft_model::OTLP_GRPC_EXPORT,
            request.encode_to_vec(),
            &self.metadata,
            self.timeout,
        )
        .await?;
        let answer = ExportTraceServiceResponse::decode(answer).map_err(|e| {
            format!("the collector's answer is not an ExportTraceServiceResponse: {e}")
        })?;
        match answer.partial_success {
            Some(p) if p.rejected_spans > 0 => Err(format!(
                "the collector rejected {} spans: {}",
                p.rejected_spans, p.error_message
            )),
            _ => Ok(()),
        }
    }
}

/// opentelemetry-otlp's HTTP client, sending through the proxy's cluster.
#[derive(Debug)]
struct ThroughCluster(Collector);

#[async_trait::async_trait]
impl HttpClient for ThroughCluster {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, HttpError> {
        let cluster = self.0.cluster()?;
        let endpoint = cluster
            .pick(None, None)
            .ok_or_else(|| format!("no healthy endpoint in {}", self.0.cluster))?;
        let mut request = request.map(crate::http::local_reply::full);
        if !request.headers().contains_key(http::header::HOST) {
            request.headers_mut().insert(
                http::header::HOST,
                http::HeaderValue::from_str(&self.0.authority)?,
            );
        }
        let response = cluster
            .send(endpoint, request)
            .await
            .map_err(|(e, _)| match e {
                crate::upstream::error::SendError::Connect(e)
                | crate::upstream::error::SendError::Reset(e) => e,
            })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_COLLECTOR_REPLY)
            .collect()
            .await?
            .to_bytes();
        Ok(http::Response::from_parts(parts, body))
    }
}
