//! Validation of VirtualServices, after Istio's `pkg/config/validation`
//! rules (`ValidateVirtualService` and what it calls). What Istio's
//! webhook accepts is accepted here, and what it refuses is refused, with
//! weft's own words; where Istio only warns, so does weft.

use std::collections::BTreeMap;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, header_value, Ctx};

/// Retry conditions Envoy and Istio understand in `retryOn`.
pub const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names accepted by `fault.abort.grpcStatus`.
pub use weft_model::names::GRPC_STATUS;

/// The redirect codes Envoy sends; other 3xx codes are accepted, as
/// Istio's webhook does, and sent as written.
const REDIRECT_CODES: &[u32] = &[301, 302, 303, 307, 308];

/// The methods a CORS policy may allow (Istio's `supportedCORSMethods`).
const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE", "*",
];

/// The pseudo-headers a match may name.
const PSEUDO_HEADERS: &[&str] = &[":method", ":scheme", ":authority", ":path", ":status"];

/// The HTTP status codes a `retryOn` entry may name: those with a
/// registered reason phrase (what Go's `http.StatusText` knows, which is
/// what Istio checks against).
const KNOWN_STATUS: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 510, 511,
];

/// A direct response's body above this is worth a warning; above 1 MiB
/// it is refused.
const LARGE_BODY: usize = 100 * 1024;
const MAX_BODY: usize = 1024 * 1024;

/// Whether a VirtualService applies to gateways only (Istio's
/// `isGateway`): it names gateways, and `mesh` is not one of them.
fn binds_gateways_only(vs: &VirtualService) -> bool {
    !vs.gateways.is_empty() && !vs.gateways.iter().any(|g| g == "mesh")
}

pub fn virtual_service(ctx: &mut Ctx<'_>, vs: &VirtualService, spec: &FieldPath) {
    let gateway_only = binds_gateways_only(vs);
    // A VirtualService without hosts is a delegate: its HTTP routes are
    // merged into the root routes that name it.
    let is_delegate = vs.hosts.is_empty();
    if is_delegate {
        for (field, set) in [
            ("gateways", !vs.gateways.is_empty()),
            ("tls", !vs.tls.is_empty()),
            ("tcp", !vs.tcp.is_empty()),
        ] {
            if set {
                let what = if field == "gateways" {
                    "gateways specified".to_owned()
                } else {
                    format!("{field} route specified")
                };
                ctx.error(
                    &spec.key(field),
                    format!("delegate virtual service must have no {what}"),
                    "a VirtualService without hosts is a delegate: give it hosts, or keep only http routes and bind the root instead",
                );
            }
        }
    }
    hosts(ctx, vs, spec, gateway_only);
    for (i, g) in vs.gateways.iter().enumerate() {
        checks::gateway_name(ctx, &spec.key("gateways").index(i), g);
    }
    let namespace = ctx.resource.namespace();
    checks::export_to(
        ctx,
        &spec.key("exportTo"),
        namespace,
        &vs.export_to,
        checks::ExportOf::Other,
    );
    // Claims exist where a gateway validated the token before routing;
    // Istio refuses claim routes on a VirtualService that also (or only)
    // applies to the mesh.
    if !gateway_only {
        claim_routes_refused(ctx, vs, spec);
    }
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        ctx.error(
            spec,
            "http, tcp or tls routes must be provided",
            "add an http: section with at least one route",
        );
    }
    let mut names = BTreeMap::new();
    for (i, r) in vs.http.iter().enumerate() {
        let p = spec.key("http").index(i);
        if !r.name.is_empty() {
            if let Some(first) = names.insert(r.name.clone(), i) {
                ctx.warn(
                    &p.key("name"),
                    format!("route name {:?} is also used by http[{first}]", r.name),
                    "give each route a unique name so metrics and logs can tell them apart",
                );
            }
        }
        http_route(ctx, r, &p, is_delegate);
    }
    for (i, r) in vs.tls.iter().enumerate() {
        let p = spec.key("tls").index(i);
        if r.matches.is_empty() {
            ctx.error(
                &p.key("match"),
                "a TLS route needs at least one match",
                "match on sniHosts, e.g. match: [{sniHosts: [example.com]}]",
            );
        }
        for (j, m) in r.matches.iter().enumerate() {
            let mp = p.key("match").index(j);
            if m.sni_hosts.is_empty() {
                ctx.error(
                    &mp.key("sniHosts"),
                    "a TLS match needs at least one SNI host",
                    "list the SNI names this route serves",
                );
            }
            for (k, h) in m.sni_hosts.iter().enumerate() {
                sni_host(ctx, vs, &mp.key("sniHosts").index(k), h, gateway_only);
            }
            for (k, s) in m.destination_subnets.iter().enumerate() {
                checks::ip_or_cidr_check(ctx, &mp.key("destinationSubnets").index(k), s);
            }
            l4_match_common(ctx, &mp, m.port, &m.source_labels, &m.gateways);
        }
        l4_destinations(ctx, &r.route, &p.key("route"));
    }
    for (i, r) in vs.tcp.iter().enumerate() {
        let p = spec.key("tcp").index(i);
        for (j, m) in r.matches.iter().enumerate() {
            let mp = p.key("match").index(j);
            for (k, s) in m.destination_subnets.iter().enumerate() {
                checks::ip_or_cidr_check(ctx, &mp.key("destinationSubnets").index(k), s);
            }
            // Istio's webhook does not read it; a value that is no subnet
            // matches no connection here.
            if let Some(s) = &m.source_subnet {
                if !checks::ip_or_cidr(s) {
                    ctx.warn(
                        &mp.key("sourceSubnet"),
                        format!("{s:?} is not an IP address or CIDR block; this match matches no connection"),
                        "write e.g. 127.0.0.0/8",
                    );
                }
            }
            l4_match_common(ctx, &mp, m.port, &m.source_labels, &m.gateways);
        }
        l4_destinations(ctx, &r.route, &p.key("route"));
    }
}

/// `hosts`: DNS names (a wildcard only as the first label), IP addresses,
/// `*` only on gateways, the auto-generated `outbound_…` SNI names on a
/// gateway's TLS routes, and no two that overlap.
fn hosts(ctx: &mut Ctx<'_>, vs: &VirtualService, spec: &FieldPath, gateway_only: bool) {
    let sni_routes = vs
        .tls
        .iter()
        .any(|t| t.matches.iter().any(|m| !m.sni_hosts.is_empty()));
    let mut all_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = spec.key("hosts").index(i);
        let why = if gateway_only && sni_routes && h.starts_with("outbound_") {
            auto_sni_error(h)
        } else {
            checks::wildcard_domain_error(h)
        };
        match why {
            Some(_) if checks::is_ip(h) => {}
            Some(why) => {
                all_valid = false;
                ctx.error(
                    &p,
                    why,
                    "write a DNS name such as reviews, reviews.default.svc.cluster.local or *.example.com",
                );
            }
            None if h == "*" && !gateway_only => {
                all_valid = false;
                ctx.error(
                    &p,
                    "wildcard host * is not allowed for a VirtualService bound to the mesh",
                    "bind it to a gateway with `gateways:` or name the hosts",
                );
            }
            None => {}
        }
    }
    if !all_valid {
        return;
    }
    for i in 0..vs.hosts.len() {
        for j in i + 1..vs.hosts.len() {
            let (a, b) = (&vs.hosts[i], &vs.hosts[j]);
            if hosts_overlap(a, b) {
                ctx.error(
                    &spec.key("hosts").index(j),
                    format!("duplicate hosts: {a} and {b} overlap"),
                    "list each host once; a wildcard already covers the names under it",
                );
            }
        }
    }
}

/// Istio's `host.Name.Matches`: equal names, or a wildcard covering the
/// other (or the other's wildcard).
fn hosts_overlap(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => sa.ends_with(sb) || sb.ends_with(sa),
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Istio's `host.Name.SubsetOf`: every name `sni` covers, `host` covers.
fn host_covers(host: &str, sni: &str) -> bool {
    let (host, sni) = (host.to_ascii_lowercase(), sni.to_ascii_lowercase());
    if host == sni {
        return true;
    }
    match (host.strip_prefix('*'), sni.strip_prefix('*')) {
        (Some(h), Some(s)) => s.ends_with(h),
        (Some(h), None) => sni.ends_with(h),
        (None, _) => false,
    }
}

/// The SNI names Istio generates for auto-passthrough gateways,
/// `outbound_.<port>_._.<host>`.
fn auto_sni_error(h: &str) -> Option<String> {
    let parts: Vec<&str> = h.split('_').collect();
    let ok = parts.len() >= 4
        && parts[0] == "outbound"
        && parts[1]
            .trim_matches('.')
            .bytes()
            .any(|b| b.is_ascii_digit())
        && parts[3]
            .trim_matches('.')
            .bytes()
            .any(|b| b.is_ascii_alphabetic());
    (!ok).then(|| {
        format!(
            "host {h:?} is not an auto-generated SNI name of the form outbound_.<port>_._.<host>"
        )
    })
}

fn sni_host(ctx: &mut Ctx<'_>, vs: &VirtualService, p: &FieldPath, h: &str, gateway_only: bool) {
    let why = if gateway_only && h.starts_with("outbound_") {
        auto_sni_error(h)
    } else {
        checks::wildcard_domain_error(h)
    };
    if let Some(why) = why {
        if checks::is_ip(h) {
            ctx.warn(
                p,
                format!("SNI host {h} is an IP address, which SNI does not carry and most clients never send"),
                "match the name clients ask for, or route by destinationSubnets",
            );
        } else {
            ctx.error(
                p,
                why,
                "write a DNS name such as example.com or *.example.com",
            );
        }
        return;
    }
    if !vs.hosts.iter().any(|vh| host_covers(vh, h)) {
        ctx.error(
            p,
            format!(
                "SNI host {h:?} is not within the VirtualService's hosts [{}]",
                vs.hosts.join(", ")
            ),
            "add the name to hosts, or match an SNI name the hosts cover",
        );
    }
}

fn claim_routes_refused(ctx: &mut Ctx<'_>, vs: &VirtualService, spec: &FieldPath) {
    for (i, hr) in vs.http.iter().enumerate() {
        for (j, m) in hr.matches.iter().enumerate() {
            for (field, map) in [
                ("headers", &m.headers),
                ("withoutHeaders", &m.without_headers),
            ] {
                for key in map
                    .keys()
                    .filter(|k| crate::types::networking::routing_claim(k).is_some())
                {
                    ctx.error(
                        &spec.key("http").index(i).key("match").index(j).key(field).key(key),
                        format!("JWT claim based routing (key: {key}) is only supported for gateway, found no gateways: [{}]", vs.gateways.join(" ")),
                        "bind the VirtualService to the gateway whose RequestAuthentication validates the token, and not to mesh",
                    );
                }
            }
        }
    }
}

/// What TCP and TLS matches share with HTTP ones.
fn l4_match_common(
    ctx: &mut Ctx<'_>,
    mp: &FieldPath,
    port: Option<u32>,
    source_labels: &crate::types::common::Labels,
    gateways: &[String],
) {
    // Port 0 is protobuf's "unset".
    if let Some(port) = port.filter(|p| *p != 0) {
        checks::port(ctx, &mp.key("port"), port);
    }
    checks::labels(ctx, &mp.key("sourceLabels"), source_labels);
    for (k, g) in gateways.iter().enumerate() {
        checks::gateway_name(ctx, &mp.key("gateways").index(k), g);
    }
}

fn http_route(ctx: &mut Ctx<'_>, r: &HttpRoute, p: &FieldPath, in_delegate: bool) {
    actions(ctx, r, p, in_delegate);
    for (i, m) in r.matches.iter().enumerate() {
        http_match(ctx, m, &p.key("match").index(i));
    }
    http_destinations(ctx, &r.route, &p.key("route"));
    if let Some(rd) = &r.redirect {
        redirect(ctx, rd, &r.matches, &p.key("redirect"));
    }
    if let Some(dr) = &r.direct_response {
        direct_response(ctx, dr, &p.key("directResponse"));
    }
    if let Some(rw) = &r.rewrite {
        rewrite(ctx, rw, &p.key("rewrite"));
    }
    if let Some(h) = &r.headers {
        let rewritten = r.rewrite.as_ref().map_or("", |rw| rw.authority.as_str());
        authority_set_once(ctx, rewritten, h, p);
    }
    checks::duration(ctx, &p.key("timeout"), r.timeout.as_ref());
    if let Some(rt) = &r.retries {
        retries(ctx, rt, &p.key("retries"));
    }
    if let Some(f) = &r.fault {
        fault(ctx, f, &p.key("fault"));
    }
    mirrors(ctx, r, p);
    if let Some(c) = &r.cors_policy {
        cors(ctx, c, &p.key("corsPolicy"));
    }
    if let Some(h) = &r.headers {
        headers(ctx, h, &p.key("headers"));
    }
}

/// Which of route, redirect, directResponse and delegate a route takes,
/// and what may go with them (Istio's `validateHTTPRouteConflict`).
fn actions(ctx: &mut Ctx<'_>, r: &HttpRoute, p: &FieldPath, in_delegate: bool) {
    if let Some(d) = &r.delegate {
        if in_delegate {
            ctx.error(
                &p.key("delegate"),
                "delegate HTTP route cannot contain delegate: only one level of delegation is supported",
                "move these routes into this VirtualService",
            );
        }
        // A root route's actions are its delegate's routes; what else it
        // sets (directResponse, mirrors, …) its delegate's routes inherit.
        for (field, set) in [
            ("route", !r.route.is_empty()),
            ("redirect", r.redirect.is_some()),
        ] {
            if set {
                ctx.error(
                    &p.key(field),
                    format!("a route that delegates cannot have {field} too"),
                    "its delegate's routes act; move this into the delegate",
                );
            }
        }
        if d.name.is_empty() {
            ctx.warn(
                &p.key("delegate").key("name"),
                "the delegate names no VirtualService; this route takes no traffic",
                "name the delegate: delegate: {name: reviews-routes, namespace: team}",
            );
        }
        return;
    }
    // A redirect or a direct response answers the client itself.
    let answer = if r.redirect.is_some() {
        Some(("redirect", "a redirect"))
    } else if r.direct_response.is_some() {
        Some(("directResponse", "a direct response"))
    } else {
        None
    };
    let conflict = |ctx: &mut Ctx<'_>, field: &str, action: &str| {
        ctx.error(
            &p.key(field),
            format!("{field} and {action} are mutually exclusive in one HTTP route"),
            "keep one action per route; split the rest into another route",
        );
    };
    if let Some((action, what)) = answer {
        if !r.route.is_empty() {
            conflict(ctx, "route", action);
        }
        if r.fault.is_some() {
            conflict(ctx, "fault", action);
        }
        if r.rewrite.is_some() {
            ctx.error(
                &p.key("rewrite"),
                format!("rewrite cannot be combined with {action}"),
                format!("{what} answers the client itself; remove rewrite"),
            );
        }
        if action == "redirect" && r.direct_response.is_some() {
            conflict(ctx, "directResponse", action);
        }
    } else if r.route.is_empty() {
        ctx.error(
            p,
            "an HTTP route needs one of route, redirect, directResponse or delegate",
            "add route: [{destination: {host: my-service}}]",
        );
    }
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        ctx.error(
            &p.key("mirrors"),
            "mirror and mirrors are mutually exclusive",
            "move the mirror into mirrors",
        );
    }
}

fn redirect(ctx: &mut Ctx<'_>, rd: &HttpRedirect, matches: &[HttpMatchRequest], rp: &FieldPath) {
    let prefix_rewrite = rd.prefix_rewrite.as_deref().filter(|s| !s.is_empty());
    if !rd.uri.is_empty() && prefix_rewrite.is_some() {
        ctx.error(
            &rp.key("prefixRewrite"),
            "uri and prefixRewrite are mutually exclusive",
            "keep one of them",
        );
    }
    if prefix_rewrite.is_some() {
        let not_prefix = matches
            .iter()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()));
        if not_prefix {
            ctx.error(
                &rp.key("prefixRewrite"),
                "prefixRewrite needs every URI match of the route to be a prefix match",
                "match the URI by prefix, or redirect to a whole uri",
            );
        }
    }
    if let Some(code) = rd.redirect_code {
        if !(300..=399).contains(&code) {
            ctx.error(
                &rp.key("redirectCode"),
                format!("redirect code {code} is not a redirect"),
                "use 301, 302, 303, 307 or 308",
            );
        } else if !REDIRECT_CODES.contains(&code) {
            ctx.warn(
                &rp.key("redirectCode"),
                format!("redirect code {code} is not one Envoy sends; weft sends it as written"),
                "use 301, 302, 303, 307 or 308",
            );
        }
    }
    if let Some(port) = rd.port {
        checks::port(ctx, &rp.key("port"), port);
        if rd.derive_port.is_some() {
            ctx.error(
                &rp.key("derivePort"),
                "port and derivePort are mutually exclusive",
                "keep one of them",
            );
        }
    }
    if !rd.scheme.is_empty() && !matches!(rd.scheme.as_str(), "http" | "https") {
        ctx.error(
            &rp.key("scheme"),
            format!("redirect scheme {:?} is neither http nor https", rd.scheme),
            "use http or https",
        );
    }
    if rd.uri.is_empty()
        && prefix_rewrite.is_none()
        && rd.authority.is_empty()
        && rd.scheme.is_empty()
        && rd.port.is_none()
        && rd.derive_port.is_none()
    {
        ctx.error(
            rp,
            "redirect changes nothing",
            "set uri, prefixRewrite, authority, scheme or port",
        );
    }
}

fn direct_response(ctx: &mut Ctx<'_>, dr: &HttpDirectResponse, dp: &FieldPath) {
    // Istio's check is `200 <= status <= 600`.
    if !(200..=600).contains(&dr.status) {
        ctx.error(
            &dp.key("status"),
            format!("status {} is not an HTTP status", dr.status),
            "use a status from 200 to 599",
        );
    }
    let Some(b) = &dr.body else { return };
    if b.string.is_some() && b.bytes.is_some() {
        ctx.error(
            &dp.key("body"),
            "string and bytes are mutually exclusive",
            "keep one of them",
        );
    }
    let len = match (&b.string, &b.bytes) {
        (Some(s), _) => s.len(),
        (None, Some(encoded)) => match b.decoded_bytes() {
            Some(Ok(bytes)) => bytes.len(),
            Some(Err(e)) => {
                ctx.error(
                    &dp.key("body").key("bytes"),
                    format!("bytes is not base64: {e}"),
                    "write the body base64-encoded, or use string",
                );
                encoded.len()
            }
            None => 0,
        },
        (None, None) => 0,
    };
    if len > MAX_BODY {
        ctx.error(
            &dp.key("body"),
            format!("body is {len} bytes; at most 1 MiB is allowed"),
            "serve large bodies from a real service",
        );
    } else if len > LARGE_BODY {
        ctx.warn(
            &dp.key("body"),
            format!("body is {len} bytes; a large direct response is sent to every proxy the route reaches"),
            "serve large bodies from a real service",
        );
    }
}

fn rewrite(ctx: &mut Ctx<'_>, rw: &HttpRewrite, wp: &FieldPath) {
    if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
        ctx.error(
            wp,
            "uri and uriRegexRewrite are mutually exclusive",
            "keep one of them",
        );
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        let rp = wp.key("uriRegexRewrite");
        if rr.pattern.is_empty() || rr.rewrite.is_empty() {
            ctx.error(
                &rp,
                "uriRegexRewrite needs both match and rewrite",
                "e.g. uriRegexRewrite: {match: ^/service/([^/]+)(/.*)$, rewrite: \\2/instance/\\1}",
            );
        }
        if !rr.pattern.is_empty() {
            checks::regex(ctx, &rp.key("match"), &rr.pattern);
        }
    }
    if rw.uri.is_empty() && rw.authority.is_empty() && rw.uri_regex_rewrite.is_none() {
        ctx.error(
            wp,
            "rewrite changes nothing",
            "set uri, authority or uriRegexRewrite",
        );
    }
}

fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// The authority may be set once: by `rewrite.authority` (`rewritten`,
/// empty when not set) or by one request `set` or `add` of `:authority`
/// or `host` (Istio's `validateAuthorityRewrite`).
fn authority_set_once(ctx: &mut Ctx<'_>, rewritten: &str, h: &Headers, p: &FieldPath) {
    let Some(req) = &h.request else { return };
    let mut current = (!rewritten.is_empty()).then(|| rewritten.to_owned());
    for (op, map) in [("set", &req.set), ("add", &req.add)] {
        for (name, value) in map.iter().filter(|(n, _)| is_authority(n)) {
            if let Some(before) = &current {
                ctx.error(
                    &p.key("headers").key("request").key(op).key(name),
                    format!(
                        "the authority is set more than once: to {before:?}, then to {value:?}"
                    ),
                    "set it once, with rewrite.authority or one header operation",
                );
            }
            current = Some(value.clone());
        }
    }
}

fn retries(ctx: &mut Ctx<'_>, rt: &HttpRetry, rp: &FieldPath) {
    if rt.attempts < 0 {
        ctx.error(
            &rp.key("attempts"),
            "attempts cannot be negative",
            "use 0 to disable retries",
        );
    }
    if rt.attempts == 0
        && (rt.per_try_timeout.is_some()
            || !rt.retry_on.is_empty()
            || rt.retry_remote_localities.is_some())
    {
        ctx.error(
            &rp.key("attempts"),
            "retries are disabled (attempts: 0) but the policy sets perTryTimeout, retryOn or retryRemoteLocalities",
            "set attempts to how many times to retry, or remove the rest of the policy",
        );
    }
    checks::duration(ctx, &rp.key("perTryTimeout"), rt.per_try_timeout.as_ref());
    checks::duration(ctx, &rp.key("backoff"), rt.backoff.as_ref());
    if rt.retry_on.is_empty() {
        return;
    }
    // Istio splits on commas and takes each item as written: spaces and
    // empty items are mistakes.
    for cond in rt.retry_on.split(',') {
        let known_status = cond.parse::<u16>().is_ok_and(|c| KNOWN_STATUS.contains(&c));
        if RETRY_ON.contains(&cond) || known_status {
            continue;
        }
        let trimmed = cond.trim();
        let fix = if trimmed != cond && !trimmed.is_empty() {
            format!("write {trimmed:?} without spaces: retryOn is a comma-separated list")
        } else if cond.is_empty() {
            "remove the empty item between commas".to_owned()
        } else {
            match crate::diag::did_you_mean(cond, RETRY_ON) {
                Some(s) => format!(
                    "did you mean {s}? valid: {} or an HTTP status code",
                    RETRY_ON.join(", ")
                ),
                None => format!("valid: {} or an HTTP status code", RETRY_ON.join(", ")),
            }
        };
        ctx.error(
            &rp.key("retryOn"),
            format!("unknown retry condition {cond:?}"),
            fix,
        );
    }
}

fn fault(ctx: &mut Ctx<'_>, f: &HttpFaultInjection, fp: &FieldPath) {
    if f.delay.is_none() && f.abort.is_none() {
        ctx.error(
            fp,
            "fault needs a delay or an abort",
            "add delay: {fixedDelay: 5s, percentage: {value: 100}}",
        );
    }
    if let Some(d) = &f.delay {
        let dp = fp.key("delay");
        if d.fixed_delay.is_some() && d.exponential_delay.is_some() {
            ctx.error(
                &dp,
                "fixedDelay and exponentialDelay are mutually exclusive",
                "keep fixedDelay",
            );
        }
        if d.exponential_delay.is_some() {
            ctx.error(
                &dp.key("exponentialDelay"),
                "exponentialDelay is not supported (Istio refuses it too)",
                "use fixedDelay",
            );
        }
        checks::duration(ctx, &dp.key("fixedDelay"), d.fixed_delay.as_ref());
        checks::fault_percent(ctx, &dp.key("percentage"), d.percentage.as_ref());
    }
    if let Some(a) = &f.abort {
        let ap = fp.key("abort");
        let kinds = [
            a.http_status.is_some(),
            a.grpc_status.is_some(),
            a.http2_error.is_some(),
        ];
        match kinds.iter().filter(|k| **k).count() {
            0 => ctx.warn(
                &ap,
                "abort sets no error: no request is aborted",
                "set httpStatus (e.g. 500) or grpcStatus (e.g. UNAVAILABLE)",
            ),
            1 => {}
            _ => ctx.error(
                &ap,
                "httpStatus, grpcStatus and http2Error are mutually exclusive",
                "keep one of them",
            ),
        }
        if a.http2_error.is_some() {
            ctx.error(
                &ap.key("http2Error"),
                "HTTP/2 error aborts are not supported (Istio refuses them too)",
                "abort with httpStatus or grpcStatus",
            );
        }
        if let Some(s) = a.http_status {
            if !(200..=600).contains(&s) {
                ctx.error(
                    &ap.key("httpStatus"),
                    format!("httpStatus {s} is not an HTTP status"),
                    "use a status from 200 to 599",
                );
            }
        }
        if let Some(g) = &a.grpc_status {
            if !GRPC_STATUS.contains(&g.as_str()) {
                ctx.error(
                    &ap.key("grpcStatus"),
                    format!("unknown gRPC status {g:?}"),
                    format!("use one of: {}", GRPC_STATUS.join(", ")),
                );
            }
        }
        checks::fault_percent(ctx, &ap.key("percentage"), a.percentage.as_ref());
    }
}

fn mirrors(ctx: &mut Ctx<'_>, r: &HttpRoute, p: &FieldPath) {
    if let Some(m) = &r.mirror {
        destination(ctx, m, &p.key("mirror"));
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        let mp = p.key("mirrors").index(i);
        match &m.destination {
            Some(d) => destination(ctx, d, &mp.key("destination")),
            None => ctx.error(
                &mp.key("destination"),
                "a mirror needs a destination",
                "add destination: {host: my-service}",
            ),
        }
        checks::percent(ctx, &mp.key("percentage"), m.percentage.as_ref());
    }
    checks::percent(
        ctx,
        &p.key("mirrorPercentage"),
        r.mirror_percentage.as_ref(),
    );
    if let Some(pc) = r.mirror_percent {
        let at = p.key("mirrorPercent");
        checks::percent_value(ctx, &at, f64::from(pc));
        ctx.warn(
            &at,
            "mirrorPercent is deprecated",
            format!("write mirrorPercentage: {{value: {pc}}}"),
        );
    }
}

fn cors(ctx: &mut Ctx<'_>, c: &CorsPolicy, cp: &FieldPath) {
    for (i, o) in c.allow_origins.iter().enumerate() {
        let op = cp.key("allowOrigins").index(i);
        let value = o.exact.as_ref().or(o.prefix.as_ref()).or(o.regex.as_ref());
        if value.is_none_or(String::is_empty) {
            ctx.error(
                &op,
                "an allowed origin needs a non-empty exact, prefix or regex",
                "e.g. exact: https://example.com",
            );
        }
        checks::string_match(ctx, &op, o, true);
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&m.as_str()) {
            ctx.error(
                &cp.key("allowMethods").index(i),
                format!("method {m:?} is not one a CORS policy can allow"),
                format!("use one of {}", CORS_METHODS.join(", ")),
            );
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if h != "*" {
                checks::header_name(ctx, &cp.key(field).index(i), h, false);
            }
        }
    }
    if let Some(age) = &c.max_age {
        if age.as_std().subsec_nanos() != 0 || age.as_std().as_secs() == 0 {
            ctx.error(
                &cp.key("maxAge"),
                format!("maxAge {age} must be a whole number of seconds"),
                "e.g. maxAge: 24h",
            );
        }
    }
}

fn http_match(ctx: &mut Ctx<'_>, m: &HttpMatchRequest, p: &FieldPath) {
    // An empty URI prefix is "any path"; elsewhere an empty prefix is a
    // mistake, as Istio's `validateStringMatch` says.
    if let Some(sm) = &m.uri {
        checks::string_match(ctx, &p.key("uri"), sm, true);
    }
    for (field, sm) in [
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            checks::string_match(ctx, &p.key(field), sm, false);
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let hp = p.key(field).key(name);
            if crate::types::networking::routing_claim(name).is_none() {
                match_header_name(ctx, &hp, name);
            }
            // `regex: "*"` is Istio's "header present", not a regex.
            if field == "withoutHeaders" && sm.regex.as_deref() == Some("*") {
                continue;
            }
            checks::string_match(ctx, &hp, sm, false);
        }
    }
    for (name, sm) in &m.query_params {
        checks::string_match(ctx, &p.key("queryParams").key(name), sm, false);
    }
    // Port 0 is protobuf's "unset".
    if let Some(port) = m.port.filter(|p| *p != 0) {
        checks::port(ctx, &p.key("port"), port);
    }
    for (i, g) in m.gateways.iter().enumerate() {
        checks::gateway_name(ctx, &p.key("gateways").index(i), g);
    }
    checks::labels(ctx, &p.key("sourceLabels"), &m.source_labels);
    if let Some(ns) = m.source_namespace.as_deref().filter(|ns| !ns.is_empty()) {
        if !checks::is_istio_label(ns) {
            ctx.error(
                &p.key("sourceNamespace"),
                format!("sourceNamespace {ns:?} is not a valid namespace"),
                "namespaces are DNS labels such as default or team-a",
            );
        }
    }
}

/// A header a match may name: a token in any case (HTTP names are
/// case-insensitive), or one of the pseudo-headers.
fn match_header_name(ctx: &mut Ctx<'_>, p: &FieldPath, name: &str) {
    if name.starts_with(':') {
        if !PSEUDO_HEADERS.contains(&name) {
            ctx.error(
                p,
                format!("{name:?} is not a pseudo-header a match can name"),
                format!("match one of {}", PSEUDO_HEADERS.join(", ")),
            );
        }
        return;
    }
    checks::header_name(ctx, p, name, false);
}

/// Header operations: request `set` and `add` may name `:authority` or
/// `host` (the authority sent upstream); no other pseudo-header, and no
/// `host` in removals or on responses. Values follow Envoy's header value
/// syntax (Istio's `ValidateHTTPHeaderValue`).
fn headers(ctx: &mut Ctx<'_>, h: &Headers, p: &FieldPath) {
    for (side, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let sp = p.key(side);
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for (name, value) in map {
                let at = sp.key(op).key(name);
                let authority_ok = side == "request" && is_authority(name);
                if !authority_ok {
                    header_op_name(ctx, &at, name);
                }
                if let Err(why) = header_value::check(value) {
                    ctx.error(
                        &at,
                        format!("header value {value:?} is not valid: {why}"),
                        "write %% for a literal %, and %VARIABLE% for one of Envoy's variables",
                    );
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            header_op_name(ctx, &sp.key("remove").index(i), name);
        }
    }
}

fn header_op_name(ctx: &mut Ctx<'_>, at: &FieldPath, name: &str) {
    if name.is_empty() {
        ctx.error(at, "the header name is empty", "name the header");
    } else if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
        ctx.error(
            at,
            format!("header {name:?} cannot be changed with a header operation"),
            "only request set and add may name :authority or host; use rewrite.authority to change the host",
        );
    } else if !checks::is_header_token(name) {
        // Istio's webhook lets it through and Envoy refuses it; weft's
        // proxy skips it.
        ctx.warn(
            at,
            format!("header name {name:?} is not a valid HTTP header name; the proxy skips this operation"),
            "header names are tokens such as x-user or end-user",
        );
    }
}

pub fn destination(ctx: &mut Ctx<'_>, d: &Destination, p: &FieldPath) {
    if d.host.is_empty() {
        ctx.error(
            &p.key("host"),
            "destination host is required",
            "name the service, e.g. host: reviews",
        );
    } else if d.host == "*" {
        ctx.error(
            &p.key("host"),
            "a destination host cannot be *",
            "name a service, or a wildcard ServiceEntry host such as *.example.com",
        );
    } else {
        checks::host(ctx, &p.key("host"), &d.host);
    }
    if !d.subset.is_empty() {
        checks::subset_name(ctx, &p.key("subset"), &d.subset);
    }
    if let Some(port) = &d.port {
        checks::port(ctx, &p.key("port").key("number"), port.number);
    }
}

/// Weights are relative (Istio's proxies take them as shares of their
/// sum): only a negative weight, or several destinations that all weigh
/// nothing, are mistakes.
fn weights(ctx: &mut Ctx<'_>, p: &FieldPath, weights: &[Option<i64>]) {
    for (i, w) in weights.iter().enumerate() {
        if let Some(w) = w.filter(|w| *w < 0) {
            ctx.error(
                &p.index(i).key("weight"),
                format!("weight {w} is negative"),
                "weights are shares of the route's traffic, 0 or more",
            );
        }
    }
    if weights.len() > 1 && weights.iter().map(|w| w.unwrap_or(0)).sum::<i64>() == 0 {
        ctx.error(
            p,
            "total destination weight is 0: no destination would take traffic",
            "give the destinations weights, e.g. 90 and 10",
        );
    }
}

fn http_destinations(ctx: &mut Ctx<'_>, route: &[HttpRouteDestination], p: &FieldPath) {
    for (i, d) in route.iter().enumerate() {
        let dp = p.index(i);
        match &d.destination {
            Some(dest) => destination(ctx, dest, &dp.key("destination")),
            None => ctx.error(
                &dp.key("destination"),
                "destination is required",
                "add destination: {host: my-service}",
            ),
        }
        if let Some(h) = &d.headers {
            headers(ctx, h, &dp.key("headers"));
        }
    }
    weights(ctx, p, &route.iter().map(|d| d.weight).collect::<Vec<_>>());
}

fn l4_destinations(ctx: &mut Ctx<'_>, route: &[RouteDestination], p: &FieldPath) {
    if route.is_empty() {
        ctx.error(
            p,
            "a route needs at least one destination",
            "add route: [{destination: {host: my-service}}]",
        );
    }
    for (i, d) in route.iter().enumerate() {
        match &d.destination {
            Some(dest) => destination(ctx, dest, &p.index(i).key("destination")),
            None => ctx.error(
                &p.index(i).key("destination"),
                "destination is required",
                "add destination: {host: my-service}",
            ),
        }
    }
    weights(ctx, p, &route.iter().map(|d| d.weight).collect::<Vec<_>>());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_hosts_are_istios_matches() {
        assert!(hosts_overlap("*.foo.bar", "*.bar"));
        assert!(hosts_overlap("*.bar", "a.bar"));
        assert!(hosts_overlap("a.bar", "A.BAR"));
        assert!(hosts_overlap("*", "a"));
        assert!(!hosts_overlap("a.bar", "b.bar"));
        assert!(!hosts_overlap("*.foo.bar", "bar"));
    }

    #[test]
    fn sni_hosts_within_hosts() {
        assert!(host_covers("*.example.com", "a.example.com"));
        assert!(host_covers("*.example.com", "*.a.example.com"));
        assert!(host_covers("*", "anything"));
        assert!(!host_covers("a.example.com", "*.example.com"));
        assert!(!host_covers("foo.bar", "other.com"));
    }

    #[test]
    fn auto_generated_sni_names() {
        assert!(
            auto_sni_error("outbound_.15010_._.istiod.istio-system.svc.cluster.local").is_none()
        );
        assert!(auto_sni_error("outbound_.x_._.istiod").is_some());
        assert!(auto_sni_error("inbound_.80_._.a").is_some());
        assert!(auto_sni_error("outbound_.80").is_some());
    }
}
