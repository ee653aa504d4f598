//! The telemetry stage: a request's trace is joined when it arrives, and
//! when it ends (answered, or abandoned by its client) its metrics, span
//! and access log entry are written once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use opentelemetry::trace::SpanKind;

use super::context::{Ctx, RequestSize};
use super::listener::{HttpListener, Reporter};
use super::response_body::{ResponseBody, Tally};
use crate::body::Body;
use crate::facts::RequestFacts;
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::telemetry::access_log::{protocol_name, Entry};
use crate::telemetry::flags::ResponseFlag;
use crate::telemetry::metrics::{HttpSeries, Outcome, RequestLabels, ServiceNames};
use crate::telemetry::trace;

/// A request being served. hyper drops the handler's future when the client
/// goes away before the response is ready; then `Drop` logs and counts the
/// request as Envoy does: response code 0, flag DC.
pub struct InFlight {
    pub shared: Arc<Shared>,
    pub snapshot: Arc<Snapshot>,
    pub listener: Arc<HttpListener>,
    pub ctx: Ctx,
    done: bool,
}

impl InFlight {
    /// Starts the request's telemetry: its trace joined (and handed on in
    /// its headers), the tag overrides that read it evaluated, its access
    /// log entry begun.
    pub fn begin<B>(
        shared: Arc<Shared>,
        snapshot: Arc<Snapshot>,
        listener: Arc<HttpListener>,
        remote: SocketAddr,
        req: &mut Request<B>,
    ) -> InFlight {
        let hop = begin_trace(&snapshot, &listener, remote, req);
        let request_tags = snapshot
            .tags
            .reads_requests()
            .then(|| snapshot.tags.evaluate(&RequestFacts::of(req, remote)))
            .flatten();
        let grpc = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        // With the access log off, only what metrics and replies read is
        // filled in.
        let entry = if shared.logs_access(&snapshot) {
            Entry {
                method: Some(req.method().clone()),
                path: req.uri().path_and_query().cloned(),
                protocol: protocol_name(req.version()),
                user_agent: req.headers().get(http::header::USER_AGENT).cloned(),
                ..Entry::starting_now(remote)
            }
        } else {
            Entry::default()
        };
        let ctx = Ctx {
            request_bytes: RequestSize::Known(0),
            dest: None,
            start: Instant::now(),
            entry,
            remote,
            explain: shared.config.explain,
            grpc,
            hop,
            request_tags,
            response_headers: Vec::new(),
        };
        InFlight {
            shared,
            snapshot,
            listener,
            ctx,
            done: false,
        }
    }

    pub fn finish(mut self, resp: Response<Body>) -> Response<ResponseBody> {
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
        Option<Arc<HttpSeries>>,
        Option<Box<opentelemetry_sdk::trace::SpanData>>,
    ) {
        let ctx = &mut self.ctx;
        ctx.entry.duration = ctx.start.elapsed().as_millis() as u64;
        let series = record(&self.shared, &self.snapshot, &self.listener, ctx);
        let span = ctx.hop.take().and_then(|hop| {
            let principal = match self.listener.reporter {
                Reporter::Destination { .. } => (
                    "source.principal",
                    self.listener.peer.as_ref().map_or("", |p| &*p.principal),
                ),
                Reporter::Source { .. } => (
                    "destination.principal",
                    ctx.dest.as_ref().map_or("", |(p, _)| &*p.principal),
                ),
            };
            hop.finish(&trace::Outcome {
                status: ctx.entry.response_code,
                flags: &ctx.entry.response_flags,
                upstream_cluster: ctx.entry.upstream_cluster_str(),
                request_id: ctx.entry.request_id_str(),
                principal,
                request_size: ctx.request_bytes.get(),
                me: &self.snapshot.me,
            })
        });
        self.shared.log_under(&self.snapshot, &ctx.entry);
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
fn begin_trace<B>(
    snap: &Snapshot,
    listener: &HttpListener,
    remote: SocketAddr,
    req: &mut Request<B>,
) -> Option<trace::Hop> {
    let config = snap.model.telemetry.tracing.as_ref()?;
    if req.method() == http::Method::CONNECT {
        return None;
    }
    let kind = match listener.reporter {
        Reporter::Source { server_span: false } => SpanKind::Client,
        Reporter::Source { server_span: true } | Reporter::Destination { .. } => SpanKind::Server,
    };
    let hop = trace::Hop::begin(
        &RequestFacts::of(req, remote),
        kind,
        config,
        snap.model.telemetry.trace_sampling,
    );
    hop.inject(req.headers_mut());
    Some(hop)
}

/// Istio's request metrics for one finished request; the series is
/// returned so the response body's size can be added as it streams.
fn record(
    shared: &Arc<Shared>,
    snap: &Snapshot,
    listener: &HttpListener,
    ctx: &Ctx,
) -> Arc<HttpSeries> {
    let m = &shared.metrics;
    let flags = if ctx.entry.response_flags.is_empty() {
        m.no_flags.clone()
    } else {
        Arc::new(ctx.entry.response_flags.to_string())
    };
    let protocol = if ctx.grpc { "grpc" } else { "http" };
    let unknown = &m.unknown;
    let host = crate::facts::without_port(ctx.entry.authority_str());
    let outcome = |security| Outcome {
        protocol,
        code: ctx.entry.response_code,
        flags,
        security,
    };
    let mut labels = match listener.reporter {
        Reporter::Destination { port } => {
            let peer = listener.peer.as_deref();
            RequestLabels::new(
                "destination",
                peer.unwrap_or(unknown),
                &snap.me,
                &snap
                    .inbound_services
                    .get(&port)
                    .cloned()
                    .unwrap_or_else(|| ServiceNames::of(host)),
                outcome(if peer.is_some() { "mutual_tls" } else { "none" }),
            )
        }
        Reporter::Source { .. } => {
            let (dest, svc) = match &ctx.dest {
                Some((p, s)) => (p.clone(), s.clone()),
                None => (unknown.clone(), ServiceNames::of(host)),
            };
            RequestLabels::new("source", &snap.me, &dest, &svc, outcome("unknown"))
        }
    };
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
