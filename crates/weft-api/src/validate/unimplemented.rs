//! Valid Istio fields that weft accepts but does not act on yet.
//!
//! Silently ignoring a field a user relies on is the worst outcome, so each
//! such field found in a resource produces a warning that names it. The
//! table shrinks as the data plane grows; the compiler's golden tests show
//! that every field *not* listed here reaches the model.

use crate::diag::{codes, Diagnostic, Severity};
use crate::path::FieldPath;
use crate::resource::{Resource, ResourceKind};
use crate::yaml::{Kind, NodeId, Tree};

/// `(kind, path pattern, why)`. A pattern is the field path with list
/// indices removed; a leading `**.` matches any prefix.
const UNIMPLEMENTED: &[(ResourceKind, &str, &str)] = &[
    (
        ResourceKind::VirtualService,
        "spec.http.match.statPrefix",
        "per-route stat prefixes are not emitted",
    ),
    (
        ResourceKind::VirtualService,
        "spec.tcp.match.destinationSubnets",
        "TCP routes do not match on the destination address",
    ),
    (
        ResourceKind::VirtualService,
        "spec.tcp.match.sourceSubnet",
        "TCP routes do not match on the source address",
    ),
    (
        ResourceKind::VirtualService,
        "spec.tls.match.destinationSubnets",
        "TLS routes do not match on the destination address",
    ),
    (
        ResourceKind::DestinationRule,
        "**.tunnel",
        "tunnelling to an upstream proxy is not supported",
    ),
    (
        ResourceKind::DestinationRule,
        "**.proxyProtocol",
        "PROXY protocol to upstreams is not sent",
    ),
    (
        ResourceKind::DestinationRule,
        "**.loadBalancer.zoneAwareLbSetting",
        "zone-aware routing is not applied; use localityLbSetting",
    ),
    (
        ResourceKind::DestinationRule,
        "**.connectionPool.http.http2KeepAlive",
        "HTTP/2 PINGs are not sent to upstreams",
    ),
    (
        ResourceKind::DestinationRule,
        "**.retryBudget",
        "retries are bounded by connectionPool.http.maxRetries, not by a budget",
    ),
    (
        ResourceKind::DestinationRule,
        "**.consistentHash.ringHash",
        "weft uses its own hash ring; its size is not configurable",
    ),
    (
        ResourceKind::DestinationRule,
        "**.consistentHash.maglev",
        "weft uses its own hash ring; Maglev is not available",
    ),
    (
        ResourceKind::DestinationRule,
        "**.consistentHash.minimumRingSize",
        "weft uses its own hash ring; its size is not configurable",
    ),
    (
        ResourceKind::DestinationRule,
        "**.consistentHash.httpCookie.attributes",
        "cookie attributes are not added to generated cookies",
    ),
    (
        ResourceKind::DestinationRule,
        "**.outlierDetection.outlierDetectionHttpErrorCodes",
        "5xx responses count as errors, and no other status does",
    ),
    (
        ResourceKind::DestinationRule,
        "**.tls.insecureSkipVerify",
        "upstream certificates are always verified",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.credentialNames",
        "one certificate per server: the first of credentialName is used, credentialNames is not read",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.serverCertificate",
        "certificates come from credentialName's secret, not from files",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.privateKey",
        "certificates come from credentialName's secret, not from files",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.caCertificates",
        "certificates come from credentialName's secret, not from files",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.caCertCredentialName",
        "the CA bundle is taken from credentialName's secret, not a separate one",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.insecureSkipVerify",
        "client certificates are always verified in MUTUAL mode",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.tls.tlsCertificates",
        "one certificate per server: use credentialName or serverCertificate",
    ),
    (
        ResourceKind::Gateway,
        "spec.servers.defaultEndpoint",
        "gateways forward only to mesh services",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.port",
        "inbound listeners come from the workload's ports, not from Sidecar ingress",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.bind",
        "inbound listeners come from the workload's ports, not from Sidecar ingress",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.defaultEndpoint",
        "inbound listeners come from the workload's ports, not from Sidecar ingress",
    ),
    (
        ResourceKind::Sidecar,
        "spec.outboundTrafficPolicy.egressProxy",
        "traffic to hosts outside the registry goes where it was going, not to an egress proxy",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.captureMode",
        "local mode has no capture; host mode always redirects with nftables",
    ),
    (
        ResourceKind::Sidecar,
        "spec.egress.captureMode",
        "local mode has no capture; host mode always redirects with nftables",
    ),
    (
        ResourceKind::Sidecar,
        "spec.egress.bind",
        "egress listeners bind where weft chooses",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.tls",
        "inbound TLS is the mesh's mTLS",
    ),
    (
        ResourceKind::Sidecar,
        "spec.inboundConnectionPool",
        "inbound connection limits are not applied",
    ),
    (
        ResourceKind::Sidecar,
        "spec.ingress.connectionPool",
        "inbound connection limits are not applied",
    ),
    (
        ResourceKind::Sidecar,
        "spec.outboundTrafficPolicy.egressProxy",
        "ALLOW_ANY traffic is not sent through an egress proxy",
    ),
    (
        ResourceKind::WorkloadEntry,
        "spec.network",
        "multi-network meshes are not supported",
    ),
    (
        ResourceKind::WorkloadGroup,
        "spec.probe",
        "health probes of WorkloadGroups are not run",
    ),
    (
        ResourceKind::WorkloadGroup,
        "spec.template.network",
        "multi-network meshes are not supported",
    ),
    (
        ResourceKind::ServiceEntry,
        "spec.endpoints.network",
        "multi-network meshes are not supported",
    ),
    (
        ResourceKind::Telemetry,
        "**.environment",
        "custom span tags from the proxy's environment are not added; use literal or header",
    ),
    (
        ResourceKind::Telemetry,
        "spec.tracing.disableContextPropagation",
        "trace context is always propagated",
    ),
    (
        ResourceKind::Telemetry,
        "spec.tracing.enableIstioTags",
        "spans carry weft's own tags",
    ),
    (
        ResourceKind::Telemetry,
        "**.formatter",
        "formatted span tags are not added; use literal, header or environment",
    ),
    (
        ResourceKind::Telemetry,
        "spec.tracing.useRequestIdForTraceSampling",
        "sampling is decided per trace, not from x-request-id",
    ),
    (
        ResourceKind::Telemetry,
        "spec.metrics.overrides.match.customMetric",
        "only Istio's standard metrics can be overridden",
    ),
    (
        ResourceKind::Telemetry,
        "spec.targetRef",
        "attach Telemetry with selector",
    ),
    (
        ResourceKind::Telemetry,
        "spec.targetRefs",
        "attach Telemetry with selector",
    ),
    (
        ResourceKind::RequestAuthentication,
        "spec.targetRef",
        "attach RequestAuthentication with selector",
    ),
    (
        ResourceKind::RequestAuthentication,
        "spec.targetRefs",
        "attach RequestAuthentication with selector",
    ),
    (
        ResourceKind::AuthorizationPolicy,
        "spec.targetRef",
        "attach AuthorizationPolicy with selector",
    ),
    (
        ResourceKind::AuthorizationPolicy,
        "spec.targetRefs",
        "attach AuthorizationPolicy with selector",
    ),
    (
        ResourceKind::Canary,
        "spec.autoscalerRef",
        "weft does not scale workloads",
    ),
    (
        ResourceKind::Canary,
        "spec.ingressRef",
        "only the Istio-style provider is supported",
    ),
    (
        ResourceKind::Canary,
        "spec.routeRef",
        "only the Istio-style provider is supported",
    ),
    (
        ResourceKind::Canary,
        "spec.upstreamRef",
        "only the Istio-style provider is supported",
    ),
    (
        ResourceKind::Canary,
        "spec.service.apex",
        "apex/primary/canary metadata is not applied",
    ),
    (
        ResourceKind::Canary,
        "spec.service.primary",
        "apex/primary/canary metadata is not applied",
    ),
    (
        ResourceKind::Canary,
        "spec.service.canary",
        "apex/primary/canary metadata is not applied",
    ),
    (
        ResourceKind::Canary,
        "spec.service.backends",
        "only the Istio-style provider is supported",
    ),
    (
        ResourceKind::Canary,
        "spec.service.gatewayRefs",
        "Gateway API routes are not generated yet",
    ),
    (
        ResourceKind::Canary,
        "spec.service.mirror",
        "Gateway API mirrors are not generated yet",
    ),
    (
        ResourceKind::Canary,
        "spec.service.headless",
        "the generated Services are not headless",
    ),
    (
        ResourceKind::Canary,
        "spec.service.trafficDistribution",
        "Service trafficDistribution is not applied",
    ),
    (
        ResourceKind::Canary,
        "spec.service.backendTimeout",
        "only the Istio-style provider is supported",
    ),
    (
        ResourceKind::Canary,
        "spec.service.unmanagedMetadata",
        "apex/primary/canary metadata is not applied",
    ),
    (
        ResourceKind::Canary,
        "spec.analysis.webhooks.disableTLS",
        "an https:// webhook's certificate is always verified (SSL_CERT_FILE names other roots)",
    ),
    (
        ResourceKind::MetricTemplate,
        "spec.provider.insecureSkipVerify",
        "an https:// provider's certificate is always verified (SSL_CERT_FILE names other roots)",
    ),
];

/// One warning per unimplemented field present in `resource`.
pub fn check(resource: &Resource) -> Vec<Diagnostic> {
    let kind = resource.kind();
    let patterns: Vec<_> = UNIMPLEMENTED
        .iter()
        .filter(|(k, _, _)| *k == kind)
        .collect();
    if patterns.is_empty() {
        return Vec::new();
    }
    let tree = &resource.source.tree;
    let mut out = Vec::new();
    let mut stack = vec![(resource.source.node, FieldPath::root(), String::new())];
    while let Some((id, path, plain)) = stack.pop() {
        for (_, pattern, why) in &patterns {
            if !plain.is_empty() && matches(pattern, &plain) {
                out.push(
                    Diagnostic::new(
                        Severity::Warning,
                        codes::UNIMPLEMENTED,
                        resource.source.locate(&path, true),
                        format!(
                            "{} is accepted but not implemented by weft: {why}",
                            last_key(&plain)
                        ),
                    )
                    .with_field(&path)
                    .with_resource(resource.display_name())
                    .with_fix("remove the field, or expect weft to behave as if it were absent"),
                );
            }
        }
        children(tree, id, &path, &plain, &mut stack);
    }
    out.reverse();
    out
}

fn last_key(plain: &str) -> &str {
    plain.rsplit('.').next().unwrap_or(plain)
}

fn matches(pattern: &str, plain: &str) -> bool {
    match pattern.strip_prefix("**.") {
        Some(suffix) => plain == suffix || plain.ends_with(&format!(".{suffix}")),
        None => plain == pattern,
    }
}

fn children(
    tree: &Tree,
    id: NodeId,
    path: &FieldPath,
    plain: &str,
    stack: &mut Vec<(NodeId, FieldPath, String)>,
) {
    match &tree.node(id).kind {
        Kind::Map(entries) => {
            for (k, v) in entries.iter().rev() {
                let key = tree.scalar(*k).unwrap_or("");
                if tree.node(*v).is_null() {
                    continue;
                }
                let p = if plain.is_empty() {
                    key.to_owned()
                } else {
                    format!("{plain}.{key}")
                };
                stack.push((*v, path.key(key), p));
            }
        }
        Kind::Seq(items) => {
            for (i, v) in items.iter().enumerate().rev() {
                stack.push((*v, path.index(i), plain.to_owned()));
            }
        }
        Kind::Scalar { .. } => {}
    }
}
