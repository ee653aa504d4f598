//! Validation of VirtualServices, after Istio's `pkg/config/validation`
//! rules (`ValidateVirtualService` and what it calls).

use std::collections::BTreeMap;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, Ctx};

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

const REDIRECT_CODES: &[u32] = &[301, 302, 303, 307, 308];

pub fn virtual_service(ctx: &mut Ctx<'_>, vs: &VirtualService, spec: &FieldPath) {
    let binds_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
    // A VirtualService without hosts is a delegate: its HTTP routes are
    // merged into the root routes that name it.
    if vs.hosts.is_empty() {
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
        for (i, hr) in vs.http.iter().enumerate() {
            if hr.delegate.is_some() {
                ctx.error(
                    &spec.key("http").index(i).key("delegate"),
                    "delegate HTTP route cannot contain delegate: only one level of delegation is supported",
                    "move these routes into this VirtualService",
                );
            }
        }
    }
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = spec.key("hosts").index(i);
        checks::host(ctx, &p, h);
        if h == "*" && binds_mesh {
            ctx.error(
                &p,
                "wildcard host * is not allowed for a VirtualService bound to the mesh",
                "bind it to a gateway with `gateways:` or name the hosts",
            );
        }
    }
    for (i, g) in vs.gateways.iter().enumerate() {
        checks::gateway_name(ctx, &spec.key("gateways").index(i), g);
    }
    checks::export_to(ctx, &spec.key("exportTo"), &vs.export_to);
    // Claims exist where a gateway validated the token before routing;
    // Istio refuses claim routes on a VirtualService of the mesh alone.
    if !vs.gateways.iter().any(|g| g != "mesh") {
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
                            "bind the VirtualService to the gateway whose RequestAuthentication validates the token",
                        );
                    }
                }
            }
        }
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
        http_route(ctx, r, &p);
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
                checks::host(ctx, &mp.key("sniHosts").index(k), h);
            }
            for (k, s) in m.destination_subnets.iter().enumerate() {
                checks::ip_or_cidr_check(ctx, &mp.key("destinationSubnets").index(k), s);
            }
            if let Some(port) = m.port {
                checks::port(ctx, &mp.key("port"), port);
            }
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
            if let Some(s) = &m.source_subnet {
                checks::ip_or_cidr_check(ctx, &mp.key("sourceSubnet"), s);
            }
            if let Some(port) = m.port {
                checks::port(ctx, &mp.key("port"), port);
            }
        }
        l4_destinations(ctx, &r.route, &p.key("route"));
    }
}

fn http_route(ctx: &mut Ctx<'_>, r: &HttpRoute, p: &FieldPath) {
    if let Some(d) = &r.delegate {
        if d.name.is_empty() {
            ctx.error(
                &p.key("delegate").key("name"),
                "delegate needs the name of a VirtualService",
                "name the delegate: delegate: {name: reviews-routes, namespace: team}",
            );
        }
        if !(d.namespace.is_empty() || checks::is_dns_label(&d.namespace)) {
            ctx.error(
                &p.key("delegate").key("namespace"),
                format!("namespace {:?} is not a valid name", d.namespace),
                "namespaces are lowercase DNS labels",
            );
        }
    }
    let actions: Vec<&str> = [
        ("route", !r.route.is_empty()),
        ("redirect", r.redirect.is_some()),
        ("directResponse", r.direct_response.is_some()),
        ("delegate", r.delegate.is_some()),
    ]
    .into_iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| n)
    .collect();
    match actions.len() {
        0 => ctx.error(
            p,
            "an HTTP route needs one of route, redirect, directResponse or delegate",
            "add route: [{destination: {host: my-service}}]",
        ),
        1 => {}
        _ => ctx.error(
            p,
            format!(
                "{} are mutually exclusive in one HTTP route",
                actions.join(" and ")
            ),
            "keep one action per route; split the rest into another route",
        ),
    }
    if r.redirect.is_some() && r.rewrite.is_some() {
        ctx.error(
            &p.key("rewrite"),
            "rewrite cannot be combined with redirect",
            "a redirect answers the client itself; remove rewrite",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        http_match(ctx, m, &p.key("match").index(i));
    }
    http_destinations(ctx, &r.route, &p.key("route"));
    if let Some(rd) = &r.redirect {
        let rp = p.key("redirect");
        if let Some(code) = rd.redirect_code {
            if !REDIRECT_CODES.contains(&code) {
                ctx.error(
                    &rp.key("redirectCode"),
                    format!("redirect code {code} is not a redirect"),
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
            ctx.warn(
                &rp.key("scheme"),
                format!("unusual redirect scheme {:?}", rd.scheme),
                "use http or https",
            );
        }
        if rd.uri.is_empty()
            && rd.authority.is_empty()
            && rd.scheme.is_empty()
            && rd.port.is_none()
            && rd.derive_port.is_none()
        {
            ctx.error(
                &rp,
                "redirect changes nothing",
                "set uri, authority, scheme or port",
            );
        }
    }
    if let Some(dr) = &r.direct_response {
        let dp = p.key("directResponse");
        if !(200..=599).contains(&dr.status) {
            ctx.error(
                &dp.key("status"),
                format!("status {} is not an HTTP status", dr.status),
                "use a status from 200 to 599",
            );
        }
        if let Some(b) = &dr.body {
            if b.string.is_some() && b.bytes.is_some() {
                ctx.error(
                    &dp.key("body"),
                    "string and bytes are mutually exclusive",
                    "keep one of them",
                );
            }
            let len = b
                .string
                .as_ref()
                .or(b.bytes.as_ref())
                .map_or(0, String::len);
            if len > 1024 * 1024 {
                ctx.error(
                    &dp.key("body"),
                    format!("body is {len} bytes; at most 1 MiB is allowed"),
                    "serve large bodies from a real service",
                );
            }
        }
    }
    if let Some(rw) = &r.rewrite {
        let wp = p.key("rewrite");
        if !rw.uri.is_empty() && rw.uri_regex_rewrite.is_some() {
            ctx.error(
                &wp,
                "uri and uriRegexRewrite are mutually exclusive",
                "keep one of them",
            );
        }
        if let Some(rr) = &rw.uri_regex_rewrite {
            checks::regex(ctx, &wp.key("uriRegexRewrite").key("match"), &rr.pattern);
        }
        if rw.uri.is_empty() && rw.authority.is_empty() && rw.uri_regex_rewrite.is_none() {
            ctx.error(
                &wp,
                "rewrite changes nothing",
                "set uri, authority or uriRegexRewrite",
            );
        }
    }
    checks::duration(ctx, &p.key("timeout"), r.timeout.as_ref());
    if let Some(rt) = &r.retries {
        let rp = p.key("retries");
        if rt.attempts < 0 {
            ctx.error(
                &rp.key("attempts"),
                "attempts cannot be negative",
                "use 0 to disable retries",
            );
        }
        checks::duration(ctx, &rp.key("perTryTimeout"), rt.per_try_timeout.as_ref());
        for cond in rt
            .retry_on
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            if !RETRY_ON.contains(&cond)
                && cond
                    .parse::<u16>()
                    .map_or(true, |c| !(100..=599).contains(&c))
            {
                let fix = match crate::diag::did_you_mean(cond, RETRY_ON) {
                    Some(s) => format!(
                        "did you mean {s}? valid: {} or an HTTP status code",
                        RETRY_ON.join(", ")
                    ),
                    None => format!("valid: {} or an HTTP status code", RETRY_ON.join(", ")),
                };
                ctx.error(
                    &rp.key("retryOn"),
                    format!("unknown retry condition {cond:?}"),
                    fix,
                );
            }
        }
    }
    if let Some(f) = &r.fault {
        let fp = p.key("fault");
        if f.delay.is_none() && f.abort.is_none() {
            ctx.error(
                &fp,
                "fault needs a delay or an abort",
                "add delay: {fixedDelay: 5s, percentage: {value: 100}}",
            );
        }
        if let Some(d) = &f.delay {
            let dp = fp.key("delay");
            match (&d.fixed_delay, &d.exponential_delay) {
                (None, None) => ctx.error(&dp, "delay needs fixedDelay", "e.g. fixedDelay: 7s"),
                (Some(_), Some(_)) => ctx.error(
                    &dp,
                    "fixedDelay and exponentialDelay are mutually exclusive",
                    "keep fixedDelay",
                ),
                _ => {}
            }
            checks::duration(ctx, &dp.key("fixedDelay"), d.fixed_delay.as_ref());
            checks::percent(ctx, &dp.key("percentage"), d.percentage.as_ref());
            if let Some(pc) = d.percent {
                checks::percent_value(ctx, &dp.key("percent"), pc as f64);
            }
        }
        if let Some(a) = &f.abort {
            let ap = fp.key("abort");
            let kinds = [
                a.http_status.is_some(),
                a.grpc_status.is_some(),
                a.http2_error.is_some(),
            ];
            match kinds.iter().filter(|k| **k).count() {
                0 => ctx.error(
                    &ap,
                    "abort needs httpStatus or grpcStatus",
                    "e.g. httpStatus: 500",
                ),
                1 => {}
                _ => ctx.error(
                    &ap,
                    "httpStatus, grpcStatus and http2Error are mutually exclusive",
                    "keep one of them",
                ),
            }
            if let Some(s) = a.http_status {
                if !(200..=599).contains(&s) {
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
            checks::percent(ctx, &ap.key("percentage"), a.percentage.as_ref());
        }
    }
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        ctx.error(
            &p.key("mirrors"),
            "mirror and mirrors are mutually exclusive",
            "move the mirror into mirrors",
        );
    }
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
        checks::percent_value(ctx, &p.key("mirrorPercent"), f64::from(pc));
    }
    if let Some(c) = &r.cors_policy {
        let cp = p.key("corsPolicy");
        for (i, o) in c.allow_origins.iter().enumerate() {
            checks::string_match(ctx, &cp.key("allowOrigins").index(i), o, false);
        }
        for (i, m) in c.allow_methods.iter().enumerate() {
            if !m.bytes().all(|b| b.is_ascii_uppercase()) || m.is_empty() {
                ctx.error(
                    &cp.key("allowMethods").index(i),
                    format!("method {m:?} is not an HTTP method"),
                    "methods are uppercase, e.g. GET, POST",
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
    if let Some(h) = &r.headers {
        headers(ctx, h, &p.key("headers"));
    }
}

fn http_match(ctx: &mut Ctx<'_>, m: &HttpMatchRequest, p: &FieldPath) {
    for (field, sm) in [
        ("uri", &m.uri),
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
                checks::header_name(ctx, &hp, name, true);
            }
            // An empty match means "header present".
            checks::string_match(ctx, &hp, sm, true);
        }
    }
    for (name, sm) in &m.query_params {
        let qp = p.key("queryParams").key(name);
        if sm.prefix.is_some() {
            ctx.error(
                &qp.key("prefix"),
                "query parameters match only by exact or regex",
                "use exact or regex",
            );
        }
        checks::string_match(ctx, &qp, sm, true);
    }
    if let Some(port) = m.port {
        checks::port(ctx, &p.key("port"), port);
    }
    for (i, g) in m.gateways.iter().enumerate() {
        checks::gateway_name(ctx, &p.key("gateways").index(i), g);
    }
    checks::labels(ctx, &p.key("sourceLabels"), &m.source_labels);
}

fn headers(ctx: &mut Ctx<'_>, h: &Headers, p: &FieldPath) {
    for (side, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        let sp = p.key(side);
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for name in map.keys() {
                checks::header_name(ctx, &sp.key(op).key(name), name, false);
                if name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                    ctx.error(
                        &sp.key(op).key(name),
                        format!("header {name:?} cannot be changed with a header operation"),
                        "use rewrite.authority to change the host",
                    );
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            checks::header_name(ctx, &sp.key("remove").index(i), name, false);
        }
    }
}

pub fn destination(ctx: &mut Ctx<'_>, d: &Destination, p: &FieldPath) {
    if d.host.is_empty() {
        ctx.error(
            &p.key("host"),
            "destination host is required",
            "name the service, e.g. host: reviews",
        );
    } else {
        checks::host(ctx, &p.key("host"), &d.host);
        if d.host.contains('*') {
            ctx.error(
                &p.key("host"),
                "a destination host cannot be a wildcard",
                "name one service",
            );
        }
    }
    if !d.subset.is_empty() && !checks::is_dns_label(&d.subset) {
        ctx.error(
            &p.key("subset"),
            format!("subset name {:?} is invalid", d.subset),
            "subset names are lowercase DNS labels such as v1",
        );
    }
    if let Some(port) = &d.port {
        checks::port(ctx, &p.key("port").key("number"), port.number);
    }
}

fn weights(ctx: &mut Ctx<'_>, p: &FieldPath, weights: &[Option<i64>]) {
    for (i, w) in weights.iter().enumerate() {
        if let Some(w) = w {
            if !(0..=100).contains(w) {
                ctx.error(
                    &p.index(i).key("weight"),
                    format!("weight {w} is outside 0..100"),
                    "weights are percentages from 0 to 100",
                );
            }
        }
    }
    if weights.len() > 1 || weights.iter().any(Option::is_some) {
        let total: i64 = weights.iter().map(|w| w.unwrap_or(0)).sum();
        let implicit = weights.len() == 1 && weights[0].is_none();
        if total != 100 && !implicit && !(weights.len() == 1 && total == 0) {
            ctx.error(
                p,
                format!("destination weights sum to {total}, not 100"),
                "make the weights of this route add up to 100",
            );
        }
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

