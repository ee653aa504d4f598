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
    // The first label may start with `*` or `*-`; what follows it must
    // be a label as any other.
    let mut labels = host.split('.');
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

pub fn port(ctx: &mut Ctx<'_>, path: &FieldPath, port: u32) {
    if !(1..=65535).contains(&port) {
        ctx.error(
            path,
            format!("port {port} is out of range"),
            "use a port number from 1 to 65535",
        );
    }
}

/// Durations in Istio must be at least 1 ms.
pub fn duration(ctx: &mut Ctx<'_>, path: &FieldPath, d: Option<&Duration>) {
    if let Some(d) = d {
        if d.as_std() < StdDuration::from_millis(1) {
            ctx.error(
                path,
                format!("duration {d} is shorter than 1ms"),
                "use a duration of at least 1ms, e.g. 100ms",
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

pub fn regex(ctx: &mut Ctx<'_>, path: &FieldPath, pattern: &str) {
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

/// Exactly one of `exact`, `prefix`, `regex`; a regex must compile.
pub fn string_match(ctx: &mut Ctx<'_>, path: &FieldPath, m: &StringMatch, allow_empty: bool) {
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
    } else if set.is_empty() && !allow_empty {
        ctx.error(
            path,
            "one of exact, prefix or regex is required",
            "e.g. prefix: /",
        );
    }
    if let Some(r) = &m.regex {
        regex(ctx, &path.key("regex"), r);
    }
}

pub fn labels(ctx: &mut Ctx<'_>, path: &FieldPath, labels: &Labels) {
    for (k, v) in labels {
        let name = k.rsplit('/').next().unwrap_or(k);
        let key_ok = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !key_ok {
            ctx.error(
                &path.key(k),
                format!("label key {k:?} is not valid"),
                "label keys are [prefix/]name with name of at most 63 characters [A-Za-z0-9-_.]",
            );
        }
        let val_ok = v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !val_ok {
            ctx.error(
                &path.key(k),
                format!("label value {v:?} is not valid"),
                "label values have at most 63 characters [A-Za-z0-9-_.]",
            );
        }
    }
}

/// An HTTP header name as it may appear in a match or header operation.
pub fn header_name(ctx: &mut Ctx<'_>, path: &FieldPath, name: &str, must_be_lowercase: bool) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let body = name.strip_prefix(':').unwrap_or(name);
    if body.is_empty() || !body.bytes().all(token) {
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

pub fn ip_or_cidr(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok() || s.parse::<ipnet::IpNet>().is_ok()
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

/// `exportTo` entries: `.`, `*`, `~` or a namespace name.
pub fn export_to(ctx: &mut Ctx<'_>, path: &FieldPath, items: &[String]) {
    for (i, e) in items.iter().enumerate() {
        if !(e == "." || e == "*" || e == "~" || is_dns_label(e)) {
            ctx.error(
                &path.index(i),
                format!("exportTo entry {e:?} is invalid"),
                "use \".\" (this namespace), \"*\" (all), \"~\" (none) or a namespace name",
            );
        }
    }
    if items.len() > 1 && items.iter().any(|e| e == "~") {
        ctx.error(
            path,
            "\"~\" (export to none) cannot be combined with other entries",
            "use \"~\" alone",
        );
    }
}

/// `[namespace/]name` or `mesh`, as in a VirtualService's `gateways`.
pub fn gateway_name(ctx: &mut Ctx<'_>, path: &FieldPath, g: &str) {
    if g == "mesh" {
        return;
    }
    let (ns, name) = g.split_once('/').unwrap_or(("", g));
    let name_ok = !name.is_empty() && name.split('.').all(is_dns_label);
    let ns_ok = ns.is_empty() || is_dns_label(ns);
    if !name_ok || !ns_ok {
        // Istio names the Gateway it generates for a Kubernetes Gateway
        // `<name>-istio-autogenerated-k8s-gateway~...`; its webhook refuses
        // a reference to it, and istioctl calls it IST0165.
        let fix = if name.contains("~istio-autogenerated-k8s-gateway~") {
            "this is the Gateway Istio generates for a Kubernetes Gateway: route through it with an HTTPRoute whose parentRefs name the Kubernetes Gateway"
        } else {
            "write `mesh`, `name` or `namespace/name`"
        };
        ctx.error(path, format!("gateway reference {g:?} is invalid"), fix);
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
