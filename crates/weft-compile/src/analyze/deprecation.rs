//! Fields Istio has deprecated or ignores (IST0002, as istioctl's
//! `deprecation.DeprecationAnalyzer`), and Telemetry access logging that
//! names no provider where the mesh has no default (IST0157, as its
//! `telemetry.ProviderAnalyzer`).

use weft_api::diag::Severity;
use weft_api::path::FieldPath;

use super::{Findings, Input};

pub fn deprecated_fields(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        for (i, h) in vs.http.iter().enumerate() {
            let Some(delay) = h.fault.as_ref().and_then(|f| f.delay.as_ref()) else {
                continue;
            };
            if delay.percent.is_some_and(|p| p > 0) {
                out.add(
                    Severity::Warning,
                    "IST0002",
                    r,
                    &FieldPath::root().key("spec").key("http").index(i).key("fault").key("delay").key("percent"),
                    "Deprecated: HTTPRoute.fault.delay.percent is deprecated; use HTTPRoute.fault.delay.percentage".into(),
                    "write percentage: {value: N} instead",
                );
            }
        }
    }
    for (r, sc) in &input.index.sidecars {
        if sc
            .outbound_traffic_policy
            .as_ref()
            .is_some_and(|o| o.egress_proxy.is_some())
        {
            out.add(
                Severity::Warning,
                "IST0002",
                r,
                &FieldPath::root()
                    .key("spec")
                    .key("outboundTrafficPolicy")
                    .key("egressProxy"),
                "Deprecated: OutboundTrafficPolicy.EgressProxy ignored".into(),
                "remove it; send external traffic through an egress gateway instead",
            );
        }
    }
}

pub fn empty_access_log_providers(input: &Input<'_>, out: &mut Findings) {
    if !input
        .index
        .mesh_config
        .default_providers
        .access_logging
        .is_empty()
    {
        return;
    }
    for (r, t) in &input.index.telemetries {
        for (i, a) in t.access_logging.iter().enumerate() {
            if a.disabled == Some(true) || !a.providers.is_empty() {
                continue;
            }
            out.add(
                Severity::Warning,
                "IST0157",
                r,
                &FieldPath::root().key("spec").key("accessLogging").index(i),
                format!("The Telemetry {} in namespace {:?} with empty providers will be ignored.", r.name(), r.namespace()),
                "name a provider (envoy, or one of meshConfig.extensionProviders), or set defaultProviders.accessLogging in the mesh config",
            );
        }
    }
}

/// IST0002 for a Telemetry tracing through a Lightstep provider of the
/// mesh config, which Istio deprecates in favour of OpenTelemetry.
pub fn lightstep_providers(input: &Input<'_>, out: &mut Findings) {
    let lightstep: Vec<&str> = input
        .index
        .mesh_config
        .extension_providers
        .iter()
        .filter(|p| p.lightstep.is_some())
        .map(|p| p.name.as_str())
        .collect();
    if lightstep.is_empty() {
        return;
    }
    for (r, t) in &input.index.telemetries {
        for (i, tr) in t.tracing.iter().enumerate() {
            for p in tr
                .providers
                .iter()
                .filter(|p| lightstep.contains(&p.name.as_str()))
            {
                out.add(
                    Severity::Warning,
                    "IST0002",
                    r,
                    &FieldPath::root().key("spec").key("tracing").index(i).key("providers"),
                    format!("Deprecated: The Lightstep provider {} is deprecated, please migrate to OpenTelemetry provider.", p.name),
                    "trace through an opentelemetry extension provider instead",
                );
            }
        }
    }
}
