//! Validation of `telemetry.istio.io` Telemetry.

use crate::path::FieldPath;
use crate::types::telemetry::{CustomTag, ProviderRef, TagOperation, Telemetry};

use super::security::selector_and_target;
use super::{checks, written, Ctx};

pub fn telemetry(ctx: &mut Ctx<'_>, t: &Telemetry, spec: &FieldPath) {
    selector_and_target(
        ctx,
        spec,
        t.selector.as_ref(),
        t.target_ref.as_ref(),
        &t.target_refs,
    );
    for (i, a) in t.access_logging.iter().enumerate() {
        if let Some(f) = &a.filter {
            // Istio's control plane parses the expression (cel-go).
            if let Err(e) = cel::Program::compile(&f.expression) {
                ctx.error(
                    &spec
                        .key("accessLogging")
                        .index(i)
                        .key("filter")
                        .key("expression"),
                    format!("must be a valid CEL expression: {e}"),
                    "write a CEL expression over Envoy's attributes, e.g. response.code >= 400",
                );
            }
        }
    }
    if t.tracing.len() > 1 {
        ctx.warn(
            &spec.key("tracing"),
            format!(
                "{} tracing entries: Istio supports one tracing entry per Telemetry",
                t.tracing.len()
            ),
            "merge them into one entry",
        );
    }
    for (i, tr) in t.tracing.iter().enumerate() {
        let tp = spec.key("tracing").index(i);
        providers(ctx, &tp.key("providers"), &tr.providers);
        if tr.providers.len() > 1 {
            ctx.warn(
                &tp.key("providers"),
                format!(
                    "{} tracing providers: Istio supports one tracing provider per entry",
                    tr.providers.len()
                ),
                "keep one provider; spans go to one collector",
            );
        }
        if let Some(p) = tr.random_sampling_percentage {
            checks::percent_value(ctx, &tp.key("randomSamplingPercentage"), p);
        }
        for (tag, how) in &tr.custom_tags {
            custom_tag(ctx, &tp.key("customTags").key(tag), tag, how);
        }
    }
    for (i, m) in t.metrics.iter().enumerate() {
        let mp = spec.key("metrics").index(i);
        providers(ctx, &mp.key("providers"), &m.providers);
        checks::duration(
            ctx,
            &mp.key("reportingInterval"),
            m.reporting_interval.as_ref(),
        );
        for (j, o) in m.overrides.iter().enumerate() {
            let op = mp.key("overrides").index(j);
            if written::is_null(ctx, &op) {
                ctx.error(
                    &op,
                    "metrics override is null",
                    "remove the item, or write the override, e.g. {match: {metric: REQUEST_COUNT}, disabled: true}",
                );
                continue;
            }
            if let Some(sel) = &o.selector {
                if sel.metric.is_some() && sel.custom_metric.is_some() {
                    ctx.error(
                        &op.key("match"),
                        "metric and customMetric are mutually exclusive",
                        "keep one of them",
                    );
                }
                if sel.custom_metric.as_deref() == Some("") {
                    ctx.error(
                        &op.key("match").key("customMetric"),
                        "customMetric is empty",
                        "name the custom metric, or use metric: for one of Istio's",
                    );
                }
            }
            for (tag, ov) in &o.tag_overrides {
                let tp = op.key("tagOverrides").key(tag);
                if tag.is_empty() {
                    ctx.warn(
                        &tp,
                        "the tag name is empty",
                        "name the metric label to set or remove, e.g. request_host",
                    );
                }
                let value = ov.value.as_deref().unwrap_or("");
                match ov.operation.unwrap_or(TagOperation::Upsert) {
                    TagOperation::Upsert if value.is_empty() => ctx.error(
                        &tp,
                        "UPSERT needs a value",
                        "give value: an expression such as request.host",
                    ),
                    TagOperation::Remove if !value.is_empty() => {
                        ctx.error(&tp.key("value"), "REMOVE takes no value", "remove value")
                    }
                    _ => {}
                }
            }
        }
    }
    for (i, a) in t.access_logging.iter().enumerate() {
        let ap = spec.key("accessLogging").index(i);
        providers(ctx, &ap.key("providers"), &a.providers);
    }
}

/// Each provider is named; Istio refuses a reference with no name.
fn providers(ctx: &mut Ctx<'_>, p: &FieldPath, list: &[ProviderRef]) {
    for (i, r) in list.iter().enumerate() {
        if r.name.is_empty() {
            ctx.error(
                &p.index(i).key("name"),
                "provider name is required",
                "name one of the mesh's extensionProviders, e.g. name: otel",
            );
        }
    }
}

/// A span tag takes its value from at most one place; what it names
/// must not be empty.
fn custom_tag(ctx: &mut Ctx<'_>, p: &FieldPath, tag: &str, how: &CustomTag) {
    if tag.is_empty() {
        ctx.error(
            p,
            "custom tag name is empty",
            "name the span tag, e.g. environment",
        );
    }
    if written::is_null(ctx, p) {
        ctx.error(
            p,
            format!("custom tag {tag:?} is null"),
            "write where its value comes from, e.g. literal: {value: prod}, or remove the tag",
        );
        return;
    }
    // Each place: its name, what it names (if set), the field holding
    // that, and what to say when it is empty.
    let sources = [
        (
            "literal",
            how.literal.as_ref().map(|l| l.value.as_str()),
            "value",
            "literal tag value is empty",
            "give the value, e.g. literal: {value: prod}",
        ),
        (
            "header",
            how.header.as_ref().map(|h| h.name.as_str()),
            "name",
            "the header's name is missing",
            "name the request header to read, e.g. name: x-tenant",
        ),
        (
            "environment",
            how.environment.as_ref().map(|e| e.name.as_str()),
            "name",
            "the environment variable name is missing",
            "name the variable to read, e.g. name: POD_NAMESPACE",
        ),
        (
            "formatter",
            how.formatter.as_ref().map(|f| f.value.as_str()),
            "value",
            "the formatter's value is empty",
            "give an access-log format, e.g. value: \"%REQ(:PATH)%\"",
        ),
    ];
    let set: Vec<&str> = sources
        .iter()
        .filter(|(_, v, ..)| v.is_some())
        .map(|(n, ..)| *n)
        .collect();
    match set.len() {
        0 => ctx.warn(
            p,
            format!("custom tag {tag:?} has no value: it names no literal, header, environment or formatter, so it is not added"),
            "write e.g. literal: {value: prod} or header: {name: x-tenant}, or remove the tag",
        ),
        1 => {}
        _ => ctx.error(
            p,
            format!(
                "custom tag {tag:?} takes its value from one place, but names {}",
                set.join(" and ")
            ),
            "keep one of literal, header, environment or formatter",
        ),
    }
    for (kind, value, field, what, fix) in sources {
        if value == Some("") {
            ctx.error(&p.key(kind).key(field), what, fix);
        }
    }
}
