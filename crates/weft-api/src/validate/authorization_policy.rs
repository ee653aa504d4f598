//! Validation of `security.istio.io` AuthorizationPolicy: its action,
//! sources, operations and conditions, as Istio's webhook and CRD read
//! them.

use crate::path::FieldPath;
use crate::types::security::*;

use super::security::{selector_and_target, CONDITION_KEYS};
use super::security_checks::{self as sc, MAX_SERVICE_ACCOUNTS};
use super::{checks, written, Ctx};

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
    if ap.rules.is_none() && matches!(action, AuthzAction::Custom | AuthzAction::Deny) {
        ctx.error(
            spec,
            format!("{} without rules never applies", action.name()),
            "add rules: [{}] to apply it to every request, or list the requests it is for",
        );
    }
    for (i, rule) in ap.rules.iter().flatten().enumerate() {
        let rp = spec.key("rules").index(i);
        if written::is_null(ctx, &rp) {
            ctx.error(
                &rp,
                "rule is null",
                "write {} for a rule that matches every request, or remove the item",
            );
            continue;
        }
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
            let cp = rp.key("when").index(j);
            condition(ctx, c, &cp);
            if action == AuthzAction::Custom {
                custom_condition(ctx, c, &cp);
            }
        }
        if action == AuthzAction::Deny {
            http_only_deny(ctx, rule, &rp);
        }
    }
}

/// A DENY rule that only HTTP attributes can match cannot be judged on a
/// TCP connection, so Istio (and weft) deny the whole connection: every
/// TCP port the policy covers is closed. Istio warns; so does weft.
fn http_only_deny(ctx: &mut Ctx<'_>, rule: &Rule, p: &FieldPath) {
    let sources: Vec<&Source> = rule.from.iter().filter_map(|f| f.source.as_ref()).collect();
    let ops: Vec<&Operation> = rule
        .to
        .iter()
        .filter_map(|t| t.operation.as_ref())
        .collect();
    let tcp_from = sources.iter().any(|s| {
        [
            &s.principals,
            &s.not_principals,
            &s.namespaces,
            &s.not_namespaces,
            &s.ip_blocks,
            &s.not_ip_blocks,
            &s.remote_ip_blocks,
            &s.not_remote_ip_blocks,
            &s.service_accounts,
            &s.not_service_accounts,
        ]
        .iter()
        .any(|v| !v.is_empty())
    });
    let tcp_to = ops
        .iter()
        .any(|o| !o.ports.is_empty() || !o.not_ports.is_empty());
    if (!sources.is_empty() && ops.is_empty() && !tcp_from) || (!ops.is_empty() && !tcp_to) {
        ctx.warn(
            p,
            "this DENY rule matches on HTTP attributes only, so it denies all traffic to TCP ports under the policy's scope",
            "name the ports the rule is for (to: [{operation: {ports: [\"8080\"], ...}}]) so other TCP traffic is not denied",
        );
    }
}

/// Values matched as strings: exactly, by prefix (`x*`), by suffix (`*x`)
/// or as anything (`*`). Istio refuses an empty one; a `*` anywhere else
/// is taken literally, which is almost never meant, so weft warns.
fn matched_values(ctx: &mut Ctx<'_>, p: &FieldPath, values: &[String], what: &str) {
    for (i, v) in values.iter().enumerate() {
        if v.is_empty() {
            ctx.error(
                &p.index(i),
                format!("empty {what}"),
                format!("remove it or give a {what}"),
            );
        } else if let Some(why) = sc::wildcard_error(v) {
            ctx.warn(
                &p.index(i),
                format!("{what} {v:?} has {why}: only a leading or trailing * is a wildcard, so the rest is matched literally"),
                "write * only as a prefix, a suffix or alone, e.g. \"*-prod\" or \"team-*\"",
            );
        }
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

/// The condition keys on identities, refused with CUSTOM as the source
/// fields are.
fn custom_condition(ctx: &mut Ctx<'_>, c: &Condition, p: &FieldPath) {
    let identity = matches!(
        c.key.as_str(),
        "source.namespace" | "source.serviceAccount" | "source.trustDomain" | "source.principal"
    ) || c.key.starts_with("request.auth.");
    if identity {
        ctx.error(
            &p.key("key"),
            format!("{} is not supported with action CUSTOM", c.key),
            "match on source.ip, remote.ip, request headers or the operation, or use an ALLOW or DENY policy for identities",
        );
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
        let literal = !segment.is_empty()
            && segment.chars().all(|ch| {
                ch.is_ascii_alphanumeric()
                    || weft_model::names::PATH_TEMPLATE_PUNCTUATION.contains(ch)
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
    for (field, what, v) in [
        ("principals", "principal", &s.principals),
        ("notPrincipals", "principal", &s.not_principals),
        (
            "requestPrincipals",
            "request principal",
            &s.request_principals,
        ),
        (
            "notRequestPrincipals",
            "request principal",
            &s.not_request_principals,
        ),
        ("namespaces", "namespace", &s.namespaces),
        ("notNamespaces", "namespace", &s.not_namespaces),
    ] {
        matched_values(ctx, &p.key(field), v, what);
    }
    for (field, v) in [
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ] {
        for (i, td) in v.iter().enumerate() {
            trust_domain(ctx, &p.key(field).index(i), td);
        }
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
    for (field, v) in [
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
    ] {
        service_accounts(ctx, &p.key(field), v);
        let identities = [
            &s.principals,
            &s.not_principals,
            &s.namespaces,
            &s.not_namespaces,
        ];
        if !v.is_empty() && identities.iter().any(|x| !x.is_empty()) {
            ctx.error(
                &p.key(field),
                format!("{field} cannot be combined with namespaces or principals"),
                "a service account already names its namespace (namespace/serviceAccount): keep serviceAccounts, or keep namespaces and principals",
            );
        }
    }
}

/// `serviceAccounts` in a source, or the values of a
/// `source.serviceAccount` condition.
fn service_accounts(ctx: &mut Ctx<'_>, p: &FieldPath, values: &[String]) {
    if values.len() > MAX_SERVICE_ACCOUNTS {
        ctx.error(
            p,
            format!(
                "{} service accounts are listed; at most {MAX_SERVICE_ACCOUNTS} service accounts are allowed",
                values.len()
            ),
            "split the rule, or match the namespace with a namespaces source in another rule",
        );
    }
    for (i, v) in values.iter().enumerate() {
        if let Some(why) = sc::service_account_error(v) {
            ctx.error(
                &p.index(i),
                why,
                "write serviceAccount or namespace/serviceAccount, e.g. bookinfo/reviews; wildcards are not allowed",
            );
        }
    }
}

fn trust_domain(ctx: &mut Ctx<'_>, p: &FieldPath, td: &str) {
    if td.is_empty() {
        ctx.error(p, "empty trust domain", "remove it or give a trust domain");
    } else if let Some(why) = sc::wildcard_error(td) {
        ctx.error(
            p,
            format!("trust domain {td:?} has {why}"),
            "Istio allows * only as a prefix, a suffix or alone",
        );
    } else if td.contains('/') {
        ctx.error(
            p,
            format!("trust domain {td:?} contains '/'"),
            "a trust domain is a DNS-like name such as cluster.local; write principals for the rest",
        );
    }
}

/// A port of an operation or a `destination.port` condition.
fn port_value(ctx: &mut Ctx<'_>, p: &FieldPath, v: &str, negated: bool) {
    match sc::port(v) {
        None => ctx.error(
            p,
            format!("port {v:?} is not a port number"),
            "ports are decimal numbers up to 65535, written as strings, e.g. \"8080\"",
        ),
        Some(0) if negated => ctx.warn(
            p,
            "port 0 excludes nothing: no connection has port 0",
            "remove it, or write the port you meant",
        ),
        Some(0) => ctx.warn(
            p,
            "port 0 never matches: no connection has port 0",
            "write the port you meant, e.g. \"8080\"",
        ),
        Some(_) => {}
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
            port_value(ctx, &p.key(field).index(i), port, field == "notPorts");
        }
    }
    for (field, v) in [("methods", &o.methods), ("notMethods", &o.not_methods)] {
        for (i, m) in v.iter().enumerate() {
            if m.is_empty() {
                ctx.error(
                    &p.key(field).index(i),
                    "empty method",
                    "remove it or give a method such as GET",
                );
            } else if m != "*" && m.bytes().any(|b| b.is_ascii_lowercase()) {
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
            operation_path(ctx, &p.key(field).index(i), path);
        }
    }
    for (field, v) in [("hosts", &o.hosts), ("notHosts", &o.not_hosts)] {
        matched_values(ctx, &p.key(field), v, "host");
    }
}

fn operation_path(ctx: &mut Ctx<'_>, at: &FieldPath, path: &str) {
    if path.is_empty() {
        ctx.error(at, "empty path", "remove it or give a path such as /api/*");
        return;
    }
    if weft_model::names::is_path_template(path) {
        if let Err(why) = path_template_error(path) {
            ctx.error(
                at,
                format!("path template {path:?} is invalid: {why}"),
                "a template is /-separated literals with {*} for one segment and {**} for any number, {**} after every other operator",
            );
            return;
        }
    } else if path.contains(['{', '}']) {
        ctx.error(
            at,
            format!("path {path:?} has '{{' or '}}' beyond {{*}} and {{**}}"),
            "braces are only allowed as the template operators {*} and {**}; percent-encode a literal brace (%7B, %7D)",
        );
        return;
    } else {
        if let Some(why) = sc::wildcard_error(path) {
            ctx.warn(
                at,
                format!("path {path:?} has {why}: only a leading or trailing * is a wildcard, so the rest is matched literally"),
                "write * only as a prefix, a suffix or alone, e.g. /api/* or */healthz",
            );
        }
    }
    if !(path.starts_with('/') || path.starts_with('*')) {
        ctx.warn(
            at,
            format!("path {path:?} does not start with / or *, so it never matches a request"),
            "paths match the request path, which starts with /, e.g. /api/* or */healthz",
        );
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
    for (field, v) in [("values", &c.values), ("notValues", &c.not_values)] {
        for (i, value) in v.iter().enumerate() {
            let at = p.key(field).index(i);
            if value.is_empty() {
                ctx.error(
                    &at,
                    format!("condition {} has an empty value", c.key),
                    "remove it or give a value",
                );
                continue;
            }
            match base {
                "source.ip" | "remote.ip" | "destination.ip" => {
                    checks::ip_or_cidr_check(ctx, &at, value);
                }
                "destination.port" => port_value(ctx, &at, value, field == "notValues"),
                "source.trustDomain" => {
                    if let Some(why) = sc::wildcard_error(value) {
                        ctx.error(
                            &at,
                            format!("trust domain {value:?} has {why}"),
                            "Istio allows * only as a prefix, a suffix or alone",
                        );
                    }
                }
                _ => {}
            }
        }
        if base == "source.serviceAccount" && v.iter().all(|s| !s.is_empty()) {
            service_accounts(ctx, &p.key(field), v);
        }
    }
}
