//! Validation of `security.istio.io` resources.

use crate::path::FieldPath;
use crate::types::common::{PolicyTargetReference, WorkloadSelector};
use crate::types::security::*;

use super::{checks, Ctx};

/// Condition keys Istio's AuthorizationPolicy accepts in `when`.
pub const CONDITION_KEYS: &[&str] = &[
    "request.headers",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

fn selector_and_target(
    ctx: &mut Ctx<'_>,
    spec: &FieldPath,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if selector.is_some() && (target_ref.is_some() || !target_refs.is_empty()) {
        ctx.error(
            &spec.key("selector"),
            "selector and targetRef(s) are mutually exclusive",
            "keep one way of choosing the workloads",
        );
    }
    if target_ref.is_some() && !target_refs.is_empty() {
        ctx.error(
            &spec.key("targetRefs"),
            "targetRef and targetRefs are mutually exclusive",
            "move targetRef into targetRefs",
        );
    }
    if let Some(s) = selector {
        checks::labels(
            ctx,
            &spec.key("selector").key("matchLabels"),
            &s.match_labels,
        );
    }
    let refs = target_ref.into_iter().map(|r| (spec.key("targetRef"), r));
    let many = target_refs
        .iter()
        .enumerate()
        .map(|(i, r)| (spec.key("targetRefs").index(i), r));
    for (p, r) in refs.chain(many) {
        if r.name.is_empty() {
            ctx.error(
                &p.key("name"),
                "targetRef name is required",
                "name the Service or Gateway",
            );
        }
        if !matches!(
            r.kind.as_str(),
            "Service" | "Gateway" | "ServiceEntry" | "GatewayClass"
        ) {
            ctx.error(
                &p.key("kind"),
                format!("targetRef kind {:?} is not supported", r.kind),
                "use Service, ServiceEntry or Gateway",
            );
        }
    }
}

pub fn peer_authentication(ctx: &mut Ctx<'_>, pa: &PeerAuthentication, spec: &FieldPath) {
    if let Some(s) = &pa.selector {
        checks::labels(
            ctx,
            &spec.key("selector").key("matchLabels"),
            &s.match_labels,
        );
    }
    if !pa.port_level_mtls.is_empty() {
        let selects = pa
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if !selects {
            ctx.error(&spec.key("portLevelMtls"), "portLevelMtls needs a workload selector", "add selector: {matchLabels: {app: my-app}}; ports belong to workloads, not namespaces");
        }
        for port in pa.port_level_mtls.keys() {
            checks::port(
                ctx,
                &spec.key("portLevelMtls").key(&port.to_string()),
                *port,
            );
        }
    }
}

pub fn request_authentication(ctx: &mut Ctx<'_>, ra: &RequestAuthentication, spec: &FieldPath) {
    selector_and_target(
        ctx,
        spec,
        ra.selector.as_ref(),
        ra.target_ref.as_ref(),
        &ra.target_refs,
    );
    for (i, r) in ra.jwt_rules.iter().enumerate() {
        let p = spec.key("jwtRules").index(i);
        if r.issuer.is_empty() {
            ctx.error(
                &p.key("issuer"),
                "issuer is required",
                "set the `iss` your tokens carry, e.g. issuer: https://accounts.example.com",
            );
        }
        if r.jwks.is_some() && r.jwks_uri.is_some() {
            ctx.error(
                &p,
                "jwks and jwksUri are mutually exclusive",
                "keep one source of keys",
            );
        }
        if let Some(u) = &r.jwks_uri {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                ctx.error(
                    &p.key("jwksUri"),
                    format!("jwksUri {u:?} is not an http(s) URL"),
                    "e.g. https://example.com/.well-known/jwks.json",
                );
            }
        }
        if let Some(j) = &r.jwks {
            if serde_json::from_str::<serde_json::Value>(j)
                .map_or(true, |v| v.get("keys").is_none())
            {
                ctx.error(
                    &p.key("jwks"),
                    "jwks is not a JSON Web Key Set",
                    "paste a JSON object with a \"keys\" array",
                );
            }
        }
        for (j, h) in r.from_headers.iter().enumerate() {
            checks::header_name(
                ctx,
                &p.key("fromHeaders").index(j).key("name"),
                &h.name,
                false,
            );
        }
        for (j, c) in r.output_claim_to_headers.iter().enumerate() {
            let cp = p.key("outputClaimToHeaders").index(j);
            checks::header_name(ctx, &cp.key("header"), &c.header, false);
            if c.claim.is_empty() {
                ctx.error(
                    &cp.key("claim"),
                    "claim is required",
                    "name the claim to copy, e.g. claim: sub",
                );
            }
        }
        if let Some(h) = &r.output_payload_to_header {
            checks::header_name(ctx, &p.key("outputPayloadToHeader"), h, false);
        }
        checks::duration(ctx, &p.key("timeout"), r.timeout.as_ref());
    }
}

pub fn authorization_policy(ctx: &mut Ctx<'_>, ap: &AuthorizationPolicy, spec: &FieldPath) {
    selector_and_target(
        ctx,
        spec,
        ap.selector.as_ref(),
        ap.target_ref.as_ref(),
        &ap.target_refs,
    );
    let action = ap.action.unwrap_or_default();
    match (action, &ap.provider) {
        (AuthzAction::Custom, None) => ctx.error(
            &spec.key("provider"),
            "action CUSTOM needs a provider",
            "add provider: {name: my-ext-authz}",
        ),
        (AuthzAction::Custom, Some(p)) if p.name.is_empty() => ctx.error(
            &spec.key("provider").key("name"),
            "provider name is required",
            "name the ext_authz provider",
        ),
        (a, Some(_)) if a != AuthzAction::Custom => ctx.error(
            &spec.key("provider"),
            "provider is only allowed with action CUSTOM",
            "remove provider or set action: CUSTOM",
        ),
        _ => {}
    }
    for (i, rule) in ap.rules.iter().flatten().enumerate() {
        let rp = spec.key("rules").index(i);
        for (j, f) in rule.from.iter().enumerate() {
            let fp = rp.key("from").index(j).key("source");
            match &f.source {
                None => ctx.error(
                    &fp,
                    "from entry needs a source",
                    "add source: {principals: [...]}",
                ),
                Some(s) => {
                    source(ctx, s, &fp);
                    if action == AuthzAction::Custom {
                        custom_source(ctx, s, &fp);
                    }
                }
            }
        }
        for (j, t) in rule.to.iter().enumerate() {
            let tp = rp.key("to").index(j).key("operation");
            match &t.operation {
                None => ctx.error(
                    &tp,
                    "to entry needs an operation",
                    "add operation: {methods: [GET]}",
                ),
                Some(o) => operation(ctx, o, &tp),
            }
        }
        for (j, c) in rule.when.iter().enumerate() {
            condition(ctx, c, &rp.key("when").index(j));
        }
    }
}

fn wildcard_values(ctx: &mut Ctx<'_>, p: &FieldPath, values: &[String], what: &str) {
    for (i, v) in values.iter().enumerate() {
        wildcard_value(ctx, &p.index(i), v, what);
    }
}

/// A value matched exactly, by prefix (`x*`), by suffix (`*x`) or as
/// anything (`*`).
fn wildcard_value(ctx: &mut Ctx<'_>, p: &FieldPath, v: &str, what: &str) {
    if v.is_empty() {
        ctx.error(
            p,
            format!("empty {what}"),
            format!("remove it or give a {what}"),
        );
        return;
    }
    let inner = v.trim_start_matches('*').trim_end_matches('*');
    if inner.contains('*') || (v.starts_with('*') && v.ends_with('*') && v.len() > 1) {
        ctx.error(
            p,
            format!("{what} {v:?} has a wildcard in the middle"),
            "Istio allows * only as a prefix, a suffix or alone",
        );
    }
}

/// A CUSTOM policy is evaluated before the peer's identity is known to
/// its authorizer: Istio refuses identity-based sources there.
fn custom_source(ctx: &mut Ctx<'_>, s: &Source, p: &FieldPath) {
    for (field, v) in [
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
    ] {
        if !v.is_empty() {
            ctx.error(
                &p.key(field),
                format!("{field} is not supported with action CUSTOM"),
                "match on ipBlocks, remoteIpBlocks or the operation, or use an ALLOW or DENY policy for identities",
            );
        }
    }
}

/// Istio's rules for path templates: `{**}` comes after every other
/// operator, no other braces, and literal segments of URI path characters.
fn path_template_error(path: &str) -> Result<(), String> {
    let mut any_seen = false;
    for segment in path.trim_matches('/').split('/') {
        match segment {
            "{*}" | "{**}" if any_seen => {
                return Err("{**} is not the last operator".into());
            }
            "{*}" => continue,
            "{**}" => {
                any_seen = true;
                continue;
            }
            _ => {}
        }
        if segment.contains(['{', '}']) {
            return Err("it has '{' or '}' beyond {*} and {**}".into());
        }
        let literal = segment.chars().all(|ch| {
            ch.is_ascii_alphanumeric() || weft_model::names::PATH_TEMPLATE_PUNCTUATION.contains(ch)
        });
        if !literal {
            return Err(format!("segment {segment:?} is not a literal"));
        }
    }
    Ok(())
}

fn source(ctx: &mut Ctx<'_>, s: &Source, p: &FieldPath) {
    let all = [
        &s.principals,
        &s.not_principals,
        &s.request_principals,
        &s.not_request_principals,
        &s.namespaces,
        &s.not_namespaces,
        &s.ip_blocks,
        &s.not_ip_blocks,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        &s.service_accounts,
        &s.not_service_accounts,
        &s.trust_domains,
        &s.not_trust_domains,
    ];
    if all.iter().all(|v| v.is_empty()) {
        ctx.error(p, "source is empty", "set principals, namespaces, ipBlocks or another field; an empty source would be ignored");
    }
    for (field, v) in [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
    ] {
        wildcard_values(ctx, &p.key(field), v, "principal");
    }
    for (field, v) in [
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
    ] {
        wildcard_values(ctx, &p.key(field), v, "request principal");
    }
    for (field, v) in [
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
    ] {
        wildcard_values(ctx, &p.key(field), v, "namespace");
    }
    for (field, v) in [
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ] {
        wildcard_values(ctx, &p.key(field), v, "trust domain");
    }
    for (field, v) in [
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
    ] {
        for (i, ip) in v.iter().enumerate() {
            checks::ip_or_cidr_check(ctx, &p.key(field).index(i), ip);
        }
    }
    if (!s.service_accounts.is_empty() || !s.not_service_accounts.is_empty())
        && (!s.principals.is_empty() || !s.not_principals.is_empty())
    {
        ctx.error(
            &p.key("serviceAccounts"),
            "serviceAccounts cannot be combined with principals",
            "use one of them",
        );
    }
}

fn operation(ctx: &mut Ctx<'_>, o: &Operation, p: &FieldPath) {
    let all = [
        &o.hosts,
        &o.not_hosts,
        &o.ports,
        &o.not_ports,
        &o.methods,
        &o.not_methods,
        &o.paths,
        &o.not_paths,
    ];
    if all.iter().all(|v| v.is_empty()) {
        ctx.error(
            p,
            "operation is empty",
            "set hosts, ports, methods or paths",
        );
    }
    for (field, v) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
        for (i, port) in v.iter().enumerate() {
            if port.parse::<u16>().map_or(true, |n| n == 0) {
                ctx.error(
                    &p.key(field).index(i),
                    format!("port {port:?} is not a port number"),
                    "ports are numbers from 1 to 65535, written as strings",
                );
            }
        }
    }
    for (field, v) in [("methods", &o.methods), ("notMethods", &o.not_methods)] {
        for (i, m) in v.iter().enumerate() {
            if m != "*" && m.bytes().any(|b| b.is_ascii_lowercase()) {
                ctx.warn(
                    &p.key(field).index(i),
                    format!("method {m:?} is not uppercase and will never match"),
                    format!("write {:?}", m.to_ascii_uppercase()),
                );
            }
        }
    }
    for (field, v) in [("paths", &o.paths), ("notPaths", &o.not_paths)] {
        for (i, path) in v.iter().enumerate() {
            let at = p.key(field).index(i);
            if !weft_model::names::is_path_template(path) {
                wildcard_value(ctx, &at, path, "path");
            } else if let Err(why) = path_template_error(path) {
                ctx.error(
                    &at,
                    format!("path template {path:?} is invalid: {why}"),
                    "a template is /-separated literals with {*} for one segment and {**} for any number, {**} after every other operator",
                );
            }
        }
        for (i, path) in v.iter().enumerate() {
            if !(path.starts_with('/') || path.starts_with('*')) {
                ctx.error(
                    &p.key(field).index(i),
                    format!("path {path:?} does not start with / or *"),
                    "paths match the request path, e.g. /api/* or */healthz",
                );
            }
        }
    }
    for (field, v) in [("hosts", &o.hosts), ("notHosts", &o.not_hosts)] {
        wildcard_values(ctx, &p.key(field), v, "host");
    }
}

/// Istio's keys for Envoy filters' dynamic metadata:
/// `experimental.envoy.filters.<filter>[<key>]`.
const EXPERIMENTAL: &str = "experimental.envoy.filters.";

fn condition(ctx: &mut Ctx<'_>, c: &Condition, p: &FieldPath) {
    let base = c.key.split('[').next().unwrap_or("");
    let replaced = match base {
        "destination.namespace" => Some("metadata.namespace"),
        "destination.labels" => Some("the workload selector"),
        "destination.name" | "destination.user" => Some("nothing: it was only in v1alpha1"),
        _ => None,
    };
    if let Some(by) = replaced {
        ctx.error(
            &p.key("key"),
            format!("attribute {} is replaced by {by}", c.key),
            "scope the policy with its namespace or selector instead",
        );
    } else if base.starts_with(EXPERIMENTAL) && base.len() > EXPERIMENTAL.len() {
        if !(c.key.len() > base.len() + 2 && c.key.ends_with(']')) {
            ctx.error(
                &p.key("key"),
                format!("{base} needs a name in brackets"),
                format!("write e.g. {base}[key]"),
            );
        } else {
            ctx.unimplemented(
                &p.key("key"),
                format!("{} is accepted but not implemented by weft: Envoy filters' metadata does not exist in weft's proxy, so the condition cannot be evaluated (an ALLOW rule with it never matches; a DENY rule with it always applies)", c.key),
                "match on request attributes weft knows, such as request.headers",
            );
        }
    } else if !CONDITION_KEYS.contains(&base) {
        let fix = match crate::diag::did_you_mean(base, CONDITION_KEYS) {
            Some(s) => format!(
                "did you mean {s}? valid keys: {}",
                CONDITION_KEYS.join(", ")
            ),
            None => format!("valid keys: {}", CONDITION_KEYS.join(", ")),
        };
        ctx.error(
            &p.key("key"),
            format!("unknown condition key {:?}", c.key),
            fix,
        );
    } else if matches!(base, "request.headers" | "request.auth.claims") {
        let ok = c.key.len() > base.len() + 2
            && c.key[base.len()..].starts_with('[')
            && c.key.ends_with(']');
        if !ok {
            ctx.error(
                &p.key("key"),
                format!("{base} needs a name in brackets"),
                format!("write e.g. {base}[x-user]"),
            );
        }
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        ctx.error(
            p,
            "a condition needs values or notValues",
            "list the values to compare with",
        );
    }
    if matches!(base, "source.ip" | "remote.ip" | "destination.ip") {
        for (field, v) in [("values", &c.values), ("notValues", &c.not_values)] {
            for (i, ip) in v.iter().enumerate() {
                checks::ip_or_cidr_check(ctx, &p.key(field).index(i), ip);
            }
        }
    }
    if base == "destination.port" {
        for (field, v) in [("values", &c.values), ("notValues", &c.not_values)] {
            for (i, port) in v.iter().enumerate() {
                if port.parse::<u16>().map_or(true, |n| n == 0) {
                    ctx.error(
                        &p.key(field).index(i),
                        format!("{port:?} is not a port number"),
                        "use a number from 1 to 65535",
                    );
                }
            }
        }
    }
}
