//! Istio's mesh ConfigMap (`istio` in `istio-system`): its `mesh` text
//! must parse, the trust domain and its aliases must be trust domains, and each
//! extension provider weft can use should be complete. Other ConfigMaps
//! are not the mesh's business.
//!
//! Istio refuses a mesh config only for what `ApplyMeshConfig` and
//! `ValidateMeshConfig` refuse; a faulty extension provider is merely
//! logged ("can be ignored if the given extension provider is not
//! used"), so weft warns about it.

use crate::diag::{codes, Diagnostic, Origin, Severity};
use crate::path::FieldPath;
use crate::types::mesh::{self, MeshConfig};

use super::{checks, Ctx};

pub fn config_map(ctx: &mut Ctx<'_>) {
    let r = ctx.resource;
    if !mesh::is_mesh_config(r, "istio-system") {
        return;
    }
    let mesh = match mesh::parse_as_written(r) {
        Ok(m) => m,
        Err(e) => {
            let mut d = Diagnostic::new(
                Severity::Error,
                codes::SCHEMA,
                Origin::new(&r.source.file, e.mark.unwrap_or_default()),
                e.message,
            )
            .with_resource(r.display_name());
            if let Some(p) = &e.path {
                d = d.with_field(p);
            }
            d.fix = e.fix;
            ctx.out.push(d);
            return;
        }
    };
    let base = FieldPath::root().key("data").key("mesh");
    trust_domains(ctx, &base, &mesh);
    if mesh
        .default_config
        .proxy_metadata
        .contains_key("ISTIO_META_DNS_AUTO_ALLOCATE")
    {
        ctx.warn(
            &base
                .key("defaultConfig")
                .key("proxyMetadata")
                .key("ISTIO_META_DNS_AUTO_ALLOCATE"),
            "ISTIO_META_DNS_AUTO_ALLOCATE is deprecated by Istio (weft still reads it)",
            "Istio's replacement is DNS auto-allocation v2: set PILOT_ENABLE_IP_AUTOALLOCATE: \"true\" instead (weft reads it in proxyMetadata too) and keep ISTIO_META_DNS_CAPTURE",
        );
    }
    extension_providers(ctx, &base.key("extensionProviders"), &mesh);
}

/// A trust domain: dot-separated DNS labels, with an optional trailing
/// dot.
fn is_trust_domain(td: &str) -> bool {
    let labels = td.strip_suffix('.').unwrap_or(td);
    !td.is_empty() && labels.split('.').all(checks::is_dns_label)
}

/// `trustDomain` and each of `trustDomainAliases` is a trust domain.
fn trust_domains(ctx: &mut Ctx<'_>, base: &FieldPath, mesh: &MeshConfig) {
    if let Some(td) = mesh
        .trust_domain
        .as_deref()
        .filter(|td| !is_trust_domain(td))
    {
        ctx.error(
            &base.key("trustDomain"),
            format!("trust domain {td:?} is not a valid trust domain"),
            "write lowercase DNS labels separated by dots, e.g. cluster.local",
        );
    }
    for (i, alias) in mesh.trust_domain_aliases.iter().enumerate() {
        if !is_trust_domain(alias) {
            ctx.error(
                &base.key("trustDomainAliases").index(i),
                format!("trust domain alias {alias:?} is not a valid trust domain"),
                "write lowercase DNS labels separated by dots, e.g. old-cluster.local",
            );
        }
    }
}

fn extension_providers(ctx: &mut Ctx<'_>, base: &FieldPath, mesh: &MeshConfig) {
    let mut names = std::collections::BTreeSet::new();
    for (i, p) in mesh.extension_providers.iter().enumerate() {
        let path = base.index(i);
        if p.name.is_empty() {
            ctx.warn(
                &path.key("name"),
                "an extension provider needs a name; without one no policy or Telemetry can use it",
                "name it, e.g. name: my-ext-authz",
            );
        } else if !names.insert(p.name.clone()) {
            ctx.warn(
                &path.key("name"),
                format!(
                    "extension provider {:?} is defined twice; the last one is used, in the first one's place",
                    p.name
                ),
                "give each provider its own name, or remove the earlier definition",
            );
        }
        let authorizer = match (&p.envoy_ext_authz_http, &p.envoy_ext_authz_grpc) {
            (Some(h), _) => Some((
                "envoyExtAuthzHttp",
                &h.service,
                h.port,
                h.include_request_body_in_check.is_some(),
            )),
            (None, Some(g)) => Some((
                "envoyExtAuthzGrpc",
                &g.service,
                g.port,
                g.include_request_body_in_check.is_some(),
            )),
            (None, None) => None,
        };
        if let Some((kind, service, port, with_body)) = authorizer {
            let at = path.key(kind);
            if service.is_empty() {
                ctx.warn(
                    &at.key("service"),
                    "the authorizer's service is missing: a CUSTOM policy naming this provider denies what it matches",
                    "set service to the authorizer's host, e.g. ext-authz.foo.svc.cluster.local",
                );
            }
            if port == 0 || port > 65535 {
                ctx.warn(
                    &at.key("port"),
                    format!("port {port} is not a valid port: the authorizer cannot be reached"),
                    "set the authorizer's port, 1..65535",
                );
            }
            if with_body {
                ctx.unimplemented(
                    &at.key("includeRequestBodyInCheck"),
                    "weft does not send the request body to the authorizer; it is asked with the headers only",
                    "remove includeRequestBodyInCheck, or decide on headers",
                );
            }
        }
        if let Some(o) = &p.opentelemetry {
            let at = path.key("opentelemetry");
            if o.service.is_empty() {
                ctx.warn(
                    &at.key("service"),
                    "the collector's service is missing: no spans can be sent",
                    "set service to the collector's host, e.g. opentelemetry-collector.observability.svc.cluster.local",
                );
            }
            if o.port == 0 || o.port > 65535 {
                ctx.warn(
                    &at.key("port"),
                    format!("port {} is not a valid port: no spans can be sent", o.port),
                    "set the collector's OTLP port: usually 4317 for gRPC, 4318 with an http block",
                );
            }
            let timeouts = [
                ("http", o.http.as_ref().and_then(|h| h.timeout.as_deref())),
                ("grpc", o.grpc.as_ref().and_then(|g| g.timeout.as_deref())),
            ];
            for (block, t) in timeouts {
                if let Some(t) = t {
                    if crate::types::common::parse_duration(t).is_err() {
                        ctx.error(
                            &at.key(block).key("timeout"),
                            format!("{t:?} is not a duration"),
                            "write a duration such as 5s or 500ms",
                        );
                    }
                }
            }
        } else if p.zipkin.is_some()
            || p.datadog.is_some()
            || p.skywalking.is_some()
            || p.lightstep.is_some()
            || p.stackdriver.is_some()
            || p.opencensus.is_some()
        {
            ctx.warn(&path, "weft reports spans over OpenTelemetry (OTLP) only; Telemetry naming this provider traces nothing", "run an OpenTelemetry collector and define an opentelemetry provider");
        }
    }
}
