//! Checks shared by many resources: hosts, ports, durations, matches.

use std::time::Duration as StdDuration;

use crate::path::FieldPath;
use crate::types::common::{Duration, Labels, Percent, StringMatch};

use super::Ctx;

/// A DNS name whose first label may be a wildcard (Istio's
/// `ValidateWildcardDomain`): `*` alone, `*.example.com`, or a partial
/// wildcard such as `*x` or `*-api.example.com` (which some kinds then
/// refuse or warn about: [`is_partial_wildcard`]).
pub fn wildcard_domain_error(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("host is empty".into());
    }
    if host == "*" {
        return None;
    }
    if host.len() > 255 {
        return Some("host is longer than 255 characters".into());
    }
    // One trailing dot is allowed (`istio.io.`, a name with no search
    // suffix); a top-level label may not be all digits (Istio's
    // `ValidateDNS1123Labels`).
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    if let Some(top) = trimmed.rsplit('.').next() {
        if !top.is_empty() && top.bytes().all(|b| b.is_ascii_digit()) && trimmed.contains('.') {
            return Some(format!(
                "host {host:?} is not a valid DNS name: its top-level label {top:?} is all digits"
            ));
        }
    }
    // The first label may start with `*` or `*-`; what follows it must
    // be a label as any other.
    let mut labels = trimmed.split('.');
    let first = labels.next().unwrap_or_default();
    let first = match first.strip_prefix('*') {
        Some("") => None,
        Some(tail) => Some(tail.strip_prefix('-').unwrap_or(tail)),
        None => Some(first),
    };
    for label in first.into_iter().chain(labels) {
        if label.is_empty() {
            return Some(format!("host {host:?} has an empty label"));
        }
        if label.len() > 63 {
            return Some(format!("label {label:?} is longer than 63 characters"));
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Some(format!(
                "host {host:?} is not a valid DNS name (a wildcard may only begin the first label, as in *.example.com)"
            ));
        }
    }
    None
}

/// A wildcard that is not a whole first label (`*x`, `*-api.example.com`):
/// Gateways and Sidecars refuse it, a ServiceEntry warns.
pub fn is_partial_wildcard(host: &str) -> bool {
    host.contains('*') && host.len() != 1 && !host.starts_with("*.")
}

pub fn host(ctx: &mut Ctx<'_>, path: &FieldPath, host: &str) {
    if let Some(why) = wildcard_domain_error(host) {
        ctx.error(
            path,
            why,
            "write a DNS name such as reviews, reviews.default.svc.cluster.local or *.example.com",
        );
    }
}

/// A DNS-1123 label: names of subsets, ports and namespaces.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 label as Istio checks the names it reads in its own fields
/// (subsets, gateway references, exportTo namespaces): upper case is
/// allowed there, unlike in Kubernetes object names.
pub fn is_istio_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn port(ctx: &mut Ctx<'_>, path: &FieldPath, port: u32) {
    if !(1..=65535).contains(&port) {
        ctx.error(
            path,
            format!("port {port} is out of range"),
            "use a port number from 1 to 65535",
        );
    }
}

/// Durations in Istio must be at least 1 ms, in whole milliseconds
/// (Istio's `ValidateDuration`).
pub fn duration(ctx: &mut Ctx<'_>, path: &FieldPath, d: Option<&Duration>) {
    if let Some(d) = d {
        if d.as_std() < StdDuration::from_millis(1) {
            ctx.error(
                path,
                format!("duration {d} is shorter than 1ms"),
                "use a duration of at least 1ms, e.g. 100ms",
            );
        } else if d.as_std().subsec_nanos() % 1_000_000 != 0 {
            ctx.error(
                path,
                format!("duration {d} is not a whole number of milliseconds"),
                "durations are counted in milliseconds, e.g. 1.5s or 1500ms",
            );
        }
    }
}

pub fn percent(ctx: &mut Ctx<'_>, path: &FieldPath, p: Option<&Percent>) {
    if let Some(p) = p {
        percent_value(ctx, &path.key("value"), p.value);
    }
}

pub fn percent_value(ctx: &mut Ctx<'_>, path: &FieldPath, v: f64) {
    if !(0.0..=100.0).contains(&v) {
        ctx.error(
            path,
            format!("percentage {v} is outside 0..100"),
            "use a value from 0 to 100",
        );
    }
}

/// A fault's percentage: 0, or from 0.0001 to 100 (Istio's
/// `validatePercentage`; Envoy's resolution is a millionth).
pub fn fault_percent(ctx: &mut Ctx<'_>, path: &FieldPath, p: Option<&Percent>) {
    if let Some(p) = p {
        let v = p.value;
        if !(0.0..=100.0).contains(&v) || (v > 0.0 && v < 0.0001) {
            ctx.error(
                &path.key("value"),
                format!("percentage {v} is neither 0 nor from 0.0001 to 100"),
                "use 0, or a value from 0.0001 to 100",
            );
        }
    }
}

/// The longest regex Istio accepts in a match or a rewrite.
pub const MAX_REGEX: usize = 1024;

pub fn regex(ctx: &mut Ctx<'_>, path: &FieldPath, pattern: &str) {
    if pattern.is_empty() {
        ctx.error(
            path,
            "the regex is empty",
            "write a pattern, or drop the match",
        );
        return;
    }
    if pattern.len() > MAX_REGEX {
        ctx.error(
            path,
            format!(
                "the regex is {} characters; at most {MAX_REGEX} are allowed",
                pattern.len()
            ),
            "shorten the pattern, or split the match",
        );
        return;
    }
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build();
    if let Err(e) = compiled {
        let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
        ctx.error(
            path,
            format!("regex {pattern:?} does not compile: {first}"),
            "Istio uses RE2 syntax: no look-around or back-references",
        );
    }
}

/// At most one of `exact`, `prefix`, `regex` (none means any value); a
/// regex must compile. An empty prefix is refused where `empty_prefix` is
/// false (everywhere but the URI, as Istio's `validateStringMatch`).
pub fn string_match(ctx: &mut Ctx<'_>, path: &FieldPath, m: &StringMatch, empty_prefix: bool) {
    let set: Vec<&str> = [
        ("exact", m.exact.is_some()),
        ("prefix", m.prefix.is_some()),
        ("regex", m.regex.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| n)
    .collect();
    if set.len() > 1 {
        ctx.error(
            path,
            format!("{} are mutually exclusive", set.join(" and ")),
            "keep exactly one of exact, prefix or regex",
        );
    }
    if !empty_prefix && m.prefix.as_deref() == Some("") {
        ctx.error(
            &path.key("prefix"),
            "the prefix is empty",
            "drop the match to match any value, or write a prefix",
        );
    }
    if let Some(r) = &m.regex {
        regex(ctx, &path.key("regex"), r);
    }
}

/// Kubernetes label keys (`[prefix/]name`) and values, as Istio checks
/// them in selectors and matches.
pub fn labels(ctx: &mut Ctx<'_>, path: &FieldPath, labels: &Labels) {
    for (k, v) in labels {
        if !label_key_ok(k) {
            ctx.error(
                &path.key(k),
                format!("label key {k:?} is not valid"),
                "label keys are [prefix/]name: a DNS-name prefix, and a name of at most 63 characters [A-Za-z0-9-_.] that starts and ends with a letter or digit",
            );
        }
        // Istio's label-value pattern has no length limit (Kubernetes'
        // own has 63; Istio's webhook is what users meet first).
        if !(v.is_empty() || label_value_chars(v)) {
            ctx.error(
                &path.key(k),
                format!("label value {v:?} is not valid"),
                "label values are empty, or [A-Za-z0-9-_.] starting and ending with a letter or digit",
            );
        }
    }
}

/// A label name: `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63
/// characters.
fn qualified_name(s: &str) -> bool {
    s.len() <= 63 && label_value_chars(s)
}

fn label_value_chars(s: &str) -> bool {
    let edge = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    edge(s.as_bytes().first())
        && edge(s.as_bytes().last())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub fn label_key_ok(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253
                && !prefix.is_empty()
                && prefix.split('.').all(is_istio_label)
                && qualified_name(name)
        }
        None => qualified_name(k),
    }
}

/// Whether every character of `name` is one an HTTP token (a header
/// name) may hold; an empty name passes.
pub fn is_header_token(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header name as it may appear in a match or header operation.
pub fn header_name(ctx: &mut Ctx<'_>, path: &FieldPath, name: &str, must_be_lowercase: bool) {
    let body = name.strip_prefix(':').unwrap_or(name);
    if body.is_empty() || !is_header_token(body) {
        ctx.error(
            path,
            format!("header name {name:?} is not a valid HTTP header name"),
            "header names are tokens such as x-user or end-user",
        );
    } else if must_be_lowercase && name.bytes().any(|b| b.is_ascii_uppercase()) {
        ctx.error(
            path,
            format!("header name {name:?} must be lowercase"),
            format!(
                "write it as {:?}; HTTP/2 sends header names in lowercase and Istio requires it",
                name.to_ascii_lowercase()
            ),
        );
    }
}

/// Why `name` is not a fully qualified DNS name as Istio's `ValidateFQDN`
/// reads one (no wildcard; labels may be upper case; one trailing dot; a
/// top-level label may not be all digits, even when it is the only one).
pub fn fqdn_error(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > 255 {
        return Some(format!("{name:?} is longer than 255 characters"));
    }
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    let top = trimmed.rsplit('.').next().unwrap_or_default();
    if !top.is_empty() && top.bytes().all(|b| b.is_ascii_digit()) {
        return Some(format!(
            "{name:?} is not a DNS name: its top-level label {top:?} is all digits"
        ));
    }
    trimmed
        .split('.')
        .find(|l| !is_istio_label(l))
        .map(|label| format!("{name:?} is not a DNS name: label {label:?} is not a DNS label"))
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
}

/// Why the path of a `unix://` address is not one Istio takes: an
/// absolute path to a file, or an abstract socket (`@name`).
pub fn unix_path_error(path: &str) -> Option<String> {
    if path.is_empty() {
        Some("the unix socket path is empty".into())
    } else if path.starts_with('@') {
        None
    } else if !path.starts_with('/') || path.ends_with('/') {
        Some(format!("{path:?} is not an absolute path to a file"))
    } else {
        None
    }
}

pub fn unix_address(ctx: &mut Ctx<'_>, path: &FieldPath, address: &str) {
    if let Some(why) = address.strip_prefix("unix://").and_then(unix_path_error) {
        ctx.error(
            path,
            format!("unix address {address:?}: {why}"),
            "write unix:///absolute/path.sock, or unix://@name for an abstract socket",
        );
    }
}

/// A subset's name where one is written (a DestinationRule's subsets, a
/// route's destination): a DNS label, upper case allowed.
pub fn subset_name(ctx: &mut Ctx<'_>, path: &FieldPath, name: &str) {
    if !is_istio_label(name) {
        ctx.error(
            path,
            format!("subset name {name:?} is invalid"),
            "subset names are DNS labels such as v1",
        );
    }
}

/// A port name as Istio's `ValidatePortName` takes it: a DNS label
/// (upper case allowed).
pub fn port_name(ctx: &mut Ctx<'_>, path: &FieldPath, name: &str) {
    if !is_istio_label(name) {
        ctx.error(
            path,
            format!("port name {name:?} is invalid"),
            "port names are DNS labels: letters, digits and '-', e.g. http-api",
        );
    }
}

/// Istio's `protocol.Parse(p).IsHTTP()`.
pub fn is_http_protocol(p: &str) -> bool {
    ["HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-WEB"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(p))
}

/// Istio's `protocol.Parse(p).IsTLS()`.
pub fn is_tls_protocol(p: &str) -> bool {
    p.eq_ignore_ascii_case("HTTPS") || p.eq_ignore_ascii_case("TLS")
}

/// A workload selector with no labels selects every workload of the
/// namespace; Istio warns (`what` names the kind, as Istio's message does).
pub fn empty_selector(ctx: &mut Ctx<'_>, path: &FieldPath, labels: &Labels, what: &str) {
    if labels.is_empty() {
        ctx.warn(
            path,
            format!("{what}workload selector specified without labels: it selects every workload in the namespace"),
            "add labels to select the workloads meant, or drop workloadSelector",
        );
    }
}

/// Istio's `ValidateAlphaWorkloadSelector` on ServiceEntry and Sidecar
/// selectors: no empty key, no `*` in a key or a value.
pub fn selector_wildcards(ctx: &mut Ctx<'_>, path: &FieldPath, labels: &Labels) {
    for (k, v) in labels {
        if k.is_empty() {
            ctx.error(
                path,
                "a selector label key is empty",
                "give the label's key, e.g. app: reviews",
            );
        }
        if k.contains('*') || v.contains('*') {
            ctx.error(
                &path.key(k),
                format!("wildcard is not supported in selector: {k}={v}"),
                "selectors match labels exactly; name the value",
            );
        }
    }
}

pub fn ip_or_cidr(s: &str) -> bool {
    is_ip(s) || s.parse::<ipnet::IpNet>().is_ok()
}

pub fn ip_or_cidr_check(ctx: &mut Ctx<'_>, path: &FieldPath, s: &str) {
    if !ip_or_cidr(s) {
        ctx.error(
            path,
            format!("{s:?} is not an IP address or CIDR block"),
            "write e.g. 192.0.2.7 or 192.0.2.0/24",
        );
    }
}

/// What kind of resource an `exportTo` list is on: only a ServiceEntry
/// may export to none (`~`), and a DestinationRule with a workload
/// selector only to its own namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExportOf {
    ServiceEntry,
    DestinationRuleWithSelector,
    Other,
}

/// `exportTo` entries, as Istio's `validateExportTo`: `.`, `*`, a
/// namespace, or `~` on a ServiceEntry; no entry twice (`.` is the
/// resource's namespace); `*` and `~` alone.
pub fn export_to(
    ctx: &mut Ctx<'_>,
    path: &FieldPath,
    namespace: &str,
    items: &[String],
    of: ExportOf,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in items.iter().enumerate() {
        let key = if e == "." { namespace } else { e.as_str() };
        if !seen.insert(key) {
            let what = if key != e {
                format!("exportTo names . and this namespace ({namespace}), which are the same")
            } else {
                format!("exportTo names {e:?} twice")
            };
            ctx.error(&path.index(i), what, "name each namespace once");
            continue;
        }
        if e == "~" {
            if of != ExportOf::ServiceEntry {
                ctx.error(
                    &path.index(i),
                    "exportTo ~ (none) is only allowed on a ServiceEntry",
                    "use \".\" to keep it in this namespace",
                );
            }
        } else if !(e == "." || e == "*" || is_istio_label(e)) {
            ctx.error(
                &path.index(i),
                format!("exportTo entry {e:?} is invalid"),
                "use \".\" (this namespace), \"*\" (all), \"~\" (none, ServiceEntry only) or a namespace name",
            );
        }
    }
    if of == ExportOf::DestinationRuleWithSelector && !seen.is_empty() {
        if !seen.contains(namespace) {
            ctx.error(
                path,
                "a DestinationRule with a workload selector cannot be exported beyond its namespace",
                "export it to \".\" only, or drop the selector",
            );
        } else if seen.len() > 1 {
            ctx.error(
                path,
                "a DestinationRule with a workload selector can be exported to its own namespace only",
                "export it to \".\" only, or drop the selector",
            );
        }
    }
    if items.len() > 1 {
        if seen.contains("*") {
            ctx.error(
                path,
                "\"*\" (all namespaces) cannot be combined with other entries",
                "use \"*\" alone",
            );
        }
        if seen.contains("~") {
            ctx.error(
                path,
                "\"~\" (export to none) cannot be combined with other entries",
                "use \"~\" alone",
            );
        }
    }
}

/// `namespace/name`, a legacy FQDN name, or `mesh`, as in a
/// VirtualService's `gateways` (Istio's `validateGatewayNames`).
pub fn gateway_name(ctx: &mut Ctx<'_>, path: &FieldPath, g: &str) {
    if g == "mesh" {
        return;
    }
    // Istio names the Gateway it generates for a Kubernetes Gateway
    // `<name>-istio-autogenerated-k8s-gateway~...`; its webhook refuses
    // a reference to it, and istioctl calls it IST0165.
    let fix = if g.contains("~istio-autogenerated-k8s-gateway~") {
        "this is the Gateway Istio generates for a Kubernetes Gateway: route through it with an HTTPRoute whose parentRefs name the Kubernetes Gateway"
    } else {
        "write `mesh`, `name` or `namespace/name`"
    };
    match g.split_once('/') {
        Some((ns, name)) => {
            if !is_istio_label(ns) || !is_istio_label(name) {
                ctx.error(path, format!("gateway reference {g:?} is invalid"), fix);
            }
        }
        None => {
            let fqdn_ok = !g.contains('*') && wildcard_domain_error(g).is_none();
            if !fqdn_ok {
                ctx.error(path, format!("gateway reference {g:?} is invalid"), fix);
            } else if let Some((name, rest)) = g.split_once('.') {
                let ns = rest.split('.').next().unwrap_or_default();
                ctx.warn(
                    path,
                    format!("gateway reference {g:?} is in the legacy name.namespace form"),
                    format!("write it as namespace/name: \"{ns}/{name}\""),
                );
            }
        }
    }
}

/// Application protocols Istio accepts on ports.
pub const PROTOCOLS: &[&str] = &[
    "HTTP",
    "HTTPS",
    "GRPC",
    "GRPC-WEB",
    "HTTP2",
    "HTTP_PROXY",
    "MONGO",
    "MYSQL",
    "REDIS",
    "TCP",
    "TLS",
    "UDP",
];

pub fn protocol(ctx: &mut Ctx<'_>, path: &FieldPath, p: &str) {
    if !PROTOCOLS.iter().any(|x| x.eq_ignore_ascii_case(p)) {
        let fix = match crate::diag::did_you_mean(p, PROTOCOLS) {
            Some(s) => format!(
                "did you mean {s}? valid protocols: {}",
                PROTOCOLS.join(", ")
            ),
            None => format!("valid protocols: {}", PROTOCOLS.join(", ")),
        };
        ctx.error(path, format!("unknown protocol {p:?}"), fix);
    }
}

pub fn non_negative(ctx: &mut Ctx<'_>, p: &FieldPath, field: &str, v: Option<i64>) {
    if let Some(v) = v {
        if v < 0 {
            ctx.error(
                &p.key(field),
                format!("{field} cannot be negative"),
                "use 0 or a positive number",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*.example.com",
            "*",
            "a-b.c",
        ] {
            assert!(wildcard_domain_error(ok).is_none(), "{ok}");
        }
        for bad in ["", "a..b", "-a", "foo.*.com", "bar*.com", "a_b", "exa mple"] {
            assert!(wildcard_domain_error(bad).is_some(), "{bad}");
        }
    }
}
