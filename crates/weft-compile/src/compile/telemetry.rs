//! Telemetry settings: the most specific Telemetry resource wins per
//! setting (workload over namespace over mesh), as in Istio.

use weft_api::types::telemetry as tel;
use weft_model::{TagOverride, TelemetryConfig};

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
    for (_, r, t) in applicable {
        out.origin
            .push(format!("Telemetry {}/{}", r.namespace(), r.name()));
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
    out
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
