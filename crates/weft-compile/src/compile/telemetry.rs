//! Telemetry settings: the most specific Telemetry resource wins per
//! setting (workload over namespace over mesh), as in Istio.

use std::collections::BTreeMap;
use weft_api::types::telemetry as tel;

use weft_model::{CustomTag, OtlpTransport, TagOverride, TelemetryConfig, TracingExport};

use super::index::policy_scope;
use super::{Compiler, Me};

pub fn build(c: &Compiler<'_>, me: &Me) -> TelemetryConfig {
    let mut applicable: Vec<_> = c
        .index
        .telemetries
        .iter()
        .filter_map(|(r, t)| {
            policy_scope(
                r.namespace(),
                t.selector.as_ref(),
                &c.mesh.root_namespace,
                &me.namespace,
                &me.labels,
            )
            .map(|s| (s, *r, *t))
        })
        .collect();
    applicable.sort_by_key(|(s, _, _)| *s);
    let mut out = TelemetryConfig::default();
    let mut reporting = true;
    let mut custom_tags = BTreeMap::new();
    for (_, r, t) in applicable {
        out.origin
            .push(format!("Telemetry {}/{}", r.namespace(), r.name()));
        if !t.access_logging.is_empty() {
            // The most specific Telemetry that says anything about access
            // logging decides the filter too (none: every request).
            out.access_log_filter = t
                .access_logging
                .iter()
                .find_map(|a| a.filter.as_ref())
                .map(|f| f.expression.clone())
                .filter(|e| !e.trim().is_empty());
        }
        for a in &t.access_logging {
            if let Some(d) = a.disabled {
                out.access_logging = !d;
            }
        }
        for tr in &t.tracing {
            if let Some(p) = tr.random_sampling_percentage {
                out.trace_sampling = p;
            }
            if !tr.providers.is_empty() {
                out.tracing_providers = tr.providers.iter().map(|p| p.name.clone()).collect();
            }
            if let Some(d) = tr.disable_span_reporting {
                reporting = !d;
            }
            for (tag, how) in &tr.custom_tags {
                if let Some(l) = &how.literal {
                    custom_tags.insert(tag.clone(), CustomTag::Literal(l.value.clone()));
                } else if let Some(h) = &how.header {
                    custom_tags.insert(
                        tag.clone(),
                        CustomTag::Header {
                            name: h.name.to_ascii_lowercase(),
                            default: h.default_value.clone(),
                        },
                    );
                }
            }
        }
        for m in &t.metrics {
            for o in &m.overrides {
                let metric = o
                    .selector
                    .as_ref()
                    .and_then(|s| s.metric)
                    .map_or("ALL_METRICS".to_owned(), metric_name);
                if o.disabled == Some(true) {
                    if !out.disabled_metrics.contains(&metric) {
                        out.disabled_metrics.push(metric.clone());
                    }
                } else if o.disabled == Some(false) {
                    out.disabled_metrics.retain(|x| x != &metric);
                }
                for (tag, ov) in &o.tag_overrides {
                    let value = match ov.operation.unwrap_or(tel::TagOperation::Upsert) {
                        tel::TagOperation::Upsert => ov.value.clone(),
                        tel::TagOperation::Remove => None,
                    };
                    out.tag_overrides
                        .retain(|o| !(o.metric == metric && &o.tag == tag));
                    out.tag_overrides.push(TagOverride {
                        metric: metric.clone(),
                        tag: tag.clone(),
                        value,
                    });
                }
            }
        }
    }
    out.disabled_metrics.sort();
    out.tag_overrides.sort();
    if out.tracing_providers.is_empty() {
        out.tracing_providers = c.index.mesh_config.default_providers.tracing.clone();
    }
    let tracing_on = c.index.mesh_config.enable_tracing != Some(false);
    if reporting && tracing_on {
        out.tracing = tracing_export(c, me, &out.tracing_providers, custom_tags);
    }
    out
}

/// The collector this proxy reports to: the first provider named that is
/// an `opentelemetry` one (Envoy runs one tracer per listener too).
fn tracing_export(
    c: &Compiler<'_>,
    me: &Me,
    providers: &[String],
    custom_tags: BTreeMap<String, CustomTag>,
) -> Option<TracingExport> {
    let (name, otel) = providers.iter().find_map(|n| {
        c.index
            .mesh_config
            .extension_providers
            .iter()
            .find(|p| &p.name == n)
            .and_then(|p| p.opentelemetry.as_ref().map(|o| (n, o)))
    })?;
    let host = crate::host::resolve(&otel.service, &c.mesh.root_namespace, &c.mesh.domain_suffix);
    // With an `http` block spans go over OTLP HTTP/protobuf; without
    // one, over gRPC, Istio's default.
    let (transport, timeout, headers, path) = match (&otel.http, &otel.grpc) {
        (Some(http), _) => (
            OtlpTransport::HttpProtobuf,
            http.timeout.clone(),
            http.headers.clone(),
            http.path
                .clone()
                .filter(|p| !p.is_empty())
                .map_or("/v1/traces".to_owned(), |p| {
                    if p.starts_with('/') {
                        p
                    } else {
                        format!("/{p}")
                    }
                }),
        ),
        (None, grpc) => (
            OtlpTransport::Grpc,
            grpc.as_ref().and_then(|g| g.timeout.clone()),
            grpc.as_ref()
                .map(|g| g.initial_metadata.clone())
                .unwrap_or_default(),
            weft_model::OTLP_GRPC_EXPORT.to_owned(),
        ),
    };
    let timeout_ms = timeout
        .as_deref()
        .and_then(|t| weft_api::types::common::parse_duration(t).ok())
        .map_or(10_000, |d| d.as_millis() as u64);
    let canonical = me
        .labels
        .get("service.istio.io/canonical-name")
        .or_else(|| me.labels.get("app"))
        .cloned()
        .unwrap_or_else(|| me.workload.clone());
    Some(TracingExport {
        provider: name.clone(),
        cluster: format!("outbound|{}||{host}", otel.port),
        authority: format!("{host}:{}", otel.port),
        transport,
        path,
        timeout_ms,
        headers: headers
            .into_iter()
            .filter(|h| !h.name.is_empty())
            .map(|h| (h.name.to_ascii_lowercase(), h.value))
            .collect(),
        service_name: format!("{canonical}.{}", me.namespace),
        custom_tags,
    })
}

fn metric_name(m: tel::IstioMetric) -> String {
    let s = match m {
        tel::IstioMetric::AllMetrics => "ALL_METRICS",
        tel::IstioMetric::RequestCount => "REQUEST_COUNT",
        tel::IstioMetric::RequestDuration => "REQUEST_DURATION",
        tel::IstioMetric::RequestSize => "REQUEST_SIZE",
        tel::IstioMetric::ResponseSize => "RESPONSE_SIZE",
        tel::IstioMetric::TcpOpenedConnections => "TCP_OPENED_CONNECTIONS",
        tel::IstioMetric::TcpClosedConnections => "TCP_CLOSED_CONNECTIONS",
        tel::IstioMetric::TcpSentBytes => "TCP_SENT_BYTES",
        tel::IstioMetric::TcpReceivedBytes => "TCP_RECEIVED_BYTES",
        tel::IstioMetric::GrpcRequestMessages => "GRPC_REQUEST_MESSAGES",
        tel::IstioMetric::GrpcResponseMessages => "GRPC_RESPONSE_MESSAGES",
    };
    s.to_owned()
}
