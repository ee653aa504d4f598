//! Validation of `networking.istio.io` resources, after Istio's
//! `pkg/config/validation` rules.

use std::collections::{BTreeMap, BTreeSet};

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

// ---------------------------------------------------------------- DestinationRule

pub fn destination_rule(ctx: &mut Ctx<'_>, dr: &DestinationRule, spec: &FieldPath) {
    if dr.host.is_empty() {
        ctx.error(
            &spec.key("host"),
            "host is required",
            "name the service this rule applies to, e.g. host: reviews",
        );
    } else {
        checks::host(ctx, &spec.key("host"), &dr.host);
    }
    checks::export_to(ctx, &spec.key("exportTo"), &dr.export_to);
    if let Some(tp) = &dr.traffic_policy {
        traffic_policy(ctx, tp, &spec.key("trafficPolicy"), true);
    }
    let mut seen = BTreeSet::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let sp = spec.key("subsets").index(i);
        if s.name.is_empty() {
            ctx.error(
                &sp.key("name"),
                "subset name is required",
                "name the subset, e.g. name: v1",
            );
        } else if !checks::is_dns_label(&s.name) {
            ctx.error(
                &sp.key("name"),
                format!("subset name {:?} is invalid", s.name),
                "subset names are lowercase DNS labels such as v1",
            );
        } else if !seen.insert(s.name.clone()) {
            ctx.error(
                &sp.key("name"),
                format!("subset {:?} is defined twice", s.name),
                "give each subset a unique name",
            );
        }
        checks::labels(ctx, &sp.key("labels"), &s.labels);
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(ctx, tp, &sp.key("trafficPolicy"), false);
        }
    }
    if let Some(ws) = &dr.workload_selector {
        checks::labels(
            ctx,
            &spec.key("workloadSelector").key("matchLabels"),
            &ws.match_labels,
        );
    }
}

fn traffic_policy(ctx: &mut Ctx<'_>, tp: &TrafficPolicy, p: &FieldPath, top: bool) {
    if let Some(lb) = &tp.load_balancer {
        load_balancer(ctx, lb, &p.key("loadBalancer"));
    }
    if let Some(cp) = &tp.connection_pool {
        connection_pool(ctx, cp, &p.key("connectionPool"));
    }
    if let Some(od) = &tp.outlier_detection {
        outlier(ctx, od, &p.key("outlierDetection"));
    }
    if let Some(tls) = &tp.tls {
        client_tls(ctx, tls, &p.key("tls"));
    }
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let pp = p.key("portLevelSettings").index(i);
        match &pl.port {
            Some(port) => {
                checks::port(ctx, &pp.key("port").key("number"), port.number);
                if !ports.insert(port.number) {
                    ctx.error(
                        &pp.key("port"),
                        format!("port {} has settings twice", port.number),
                        "merge the two entries",
                    );
                }
            }
            None => ctx.error(
                &pp.key("port"),
                "port is required in portLevelSettings",
                "add port: {number: 9080}",
            ),
        }
        if let Some(lb) = &pl.load_balancer {
            load_balancer(ctx, lb, &pp.key("loadBalancer"));
        }
        if let Some(cp) = &pl.connection_pool {
            connection_pool(ctx, cp, &pp.key("connectionPool"));
        }
        if let Some(od) = &pl.outlier_detection {
            outlier(ctx, od, &pp.key("outlierDetection"));
        }
        if let Some(tls) = &pl.tls {
            client_tls(ctx, tls, &pp.key("tls"));
        }
    }
    if !top && tp.tunnel.is_some() {
        ctx.error(
            &p.key("tunnel"),
            "tunnel is only allowed in the top-level trafficPolicy",
            "move it to spec.trafficPolicy",
        );
    }
    if let Some(v) = tp.retry_budget.as_ref().and_then(|rb| rb.percent) {
        checks::percent_value(ctx, &p.key("retryBudget").key("percent"), v);
    }
}

fn load_balancer(ctx: &mut Ctx<'_>, lb: &LoadBalancerSettings, p: &FieldPath) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        ctx.error(
            p,
            "simple and consistentHash are mutually exclusive",
            "keep one load-balancing policy",
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        let cp = p.key("consistentHash");
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip == Some(true),
            ch.http_query_parameter_name.is_some(),
        ];
        match keys.iter().filter(|k| **k).count() {
            0 => ctx.error(&cp, "consistentHash needs a hash key", "set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"),
            1 => {}
            _ => ctx.error(&cp, "httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName are mutually exclusive", "keep one hash key"),
        }
        if let Some(h) = &ch.http_header_name {
            checks::header_name(ctx, &cp.key("httpHeaderName"), h, false);
        }
        if let Some(c) = &ch.http_cookie {
            if c.name.is_empty() {
                ctx.error(
                    &cp.key("httpCookie").key("name"),
                    "cookie name is required",
                    "e.g. name: user",
                );
            }
        }
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            ctx.error(
                &cp,
                "ringHash and maglev are mutually exclusive",
                "keep one hash algorithm",
            );
        }
    }
    if let Some(l) = &lb.locality_lb_setting {
        let lp = p.key("localityLbSetting");
        if !l.distribute.is_empty() && !l.failover.is_empty() {
            ctx.error(
                &lp,
                "distribute and failover are mutually exclusive",
                "keep one of them",
            );
        }
        for (i, d) in l.distribute.iter().enumerate() {
            let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
            if total != 100 {
                ctx.error(
                    &lp.key("distribute").index(i).key("to"),
                    format!("locality weights sum to {total}, not 100"),
                    "make the weights add up to 100",
                );
            }
            if d.from.is_empty() {
                ctx.error(
                    &lp.key("distribute").index(i).key("from"),
                    "from is required",
                    "e.g. from: us-west/zone1/*",
                );
            }
        }
        for (i, f) in l.failover.iter().enumerate() {
            let fp = lp.key("failover").index(i);
            if f.from.is_empty() || f.to.is_empty() {
                ctx.error(
                    &fp,
                    "failover needs from and to regions",
                    "e.g. {from: us-east, to: eu-west}",
                );
            } else if f.from == f.to {
                ctx.error(
                    &fp,
                    "failover from and to are the same region",
                    "fail over to a different region",
                );
            }
            if f.from.contains('/') || f.to.contains('/') {
                ctx.error(
                    &fp,
                    "failover is between regions, not zones",
                    "write region names only",
                );
            }
        }
    }
}

fn non_negative(ctx: &mut Ctx<'_>, p: &FieldPath, field: &str, v: Option<i64>) {
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

fn connection_pool(ctx: &mut Ctx<'_>, cp: &ConnectionPoolSettings, p: &FieldPath) {
    if let Some(tcp) = &cp.tcp {
        let tp = p.key("tcp");
        non_negative(ctx, &tp, "maxConnections", tcp.max_connections);
        checks::duration(ctx, &tp.key("connectTimeout"), tcp.connect_timeout.as_ref());
        checks::duration(
            ctx,
            &tp.key("maxConnectionDuration"),
            tcp.max_connection_duration.as_ref(),
        );
        checks::duration(ctx, &tp.key("idleTimeout"), tcp.idle_timeout.as_ref());
    }
    if let Some(http) = &cp.http {
        let hp = p.key("http");
        non_negative(
            ctx,
            &hp,
            "http1MaxPendingRequests",
            http.http1_max_pending_requests,
        );
        non_negative(ctx, &hp, "http2MaxRequests", http.http2_max_requests);
        non_negative(
            ctx,
            &hp,
            "maxRequestsPerConnection",
            http.max_requests_per_connection,
        );
        non_negative(ctx, &hp, "maxRetries", http.max_retries);
        non_negative(
            ctx,
            &hp,
            "maxConcurrentStreams",
            http.max_concurrent_streams,
        );
        checks::duration(ctx, &hp.key("idleTimeout"), http.idle_timeout.as_ref());
    }
}

fn outlier(ctx: &mut Ctx<'_>, od: &OutlierDetection, p: &FieldPath) {
    non_negative(
        ctx,
        p,
        "consecutiveGatewayErrors",
        od.consecutive_gateway_errors,
    );
    non_negative(ctx, p, "consecutive5xxErrors", od.consecutive_5xx_errors);
    non_negative(
        ctx,
        p,
        "consecutiveLocalOriginFailures",
        od.consecutive_local_origin_failures,
    );
    non_negative(ctx, p, "consecutiveErrors", od.consecutive_errors);
    checks::duration(ctx, &p.key("interval"), od.interval.as_ref());
    checks::duration(
        ctx,
        &p.key("baseEjectionTime"),
        od.base_ejection_time.as_ref(),
    );
    for (field, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = v {
            if !(0..=100).contains(&v) {
                ctx.error(
                    &p.key(field),
                    format!("{field} {v} is outside 0..100"),
                    "use a percentage from 0 to 100",
                );
            }
        }
    }
}

fn client_tls(ctx: &mut Ctx<'_>, tls: &ClientTlsSettings, p: &FieldPath) {
    let files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some();
    match tls.mode {
        Some(ClientTlsMode::IstioMutual) => {
            if files || tls.credential_name.is_some() {
                ctx.error(p, "ISTIO_MUTUAL uses the mesh's own certificates; clientCertificate, privateKey, caCertificates and credentialName cannot be set", "use mode: MUTUAL to present your own certificate");
            }
        }
        Some(ClientTlsMode::Mutual) => {
            if tls.credential_name.is_none()
                && (tls.client_certificate.is_none() || tls.private_key.is_none())
            {
                ctx.error(
                    p,
                    "MUTUAL needs clientCertificate and privateKey, or credentialName",
                    "set credentialName to a secret holding the client certificate",
                );
            }
        }
        Some(ClientTlsMode::Simple) | Some(ClientTlsMode::Disable) | None => {}
    }
    if tls.credential_name.is_some() && files {
        ctx.error(
            p,
            "credentialName cannot be combined with certificate files",
            "keep credentialName or the file paths",
        );
    }
    if tls.insecure_skip_verify == Some(true) {
        ctx.warn(&p.key("insecureSkipVerify"), "certificate verification is switched off for this destination", "weft never skips verification: the upstream's certificate is still verified; set caCertificates or credentialName to trust it");
    }
    if let Some(sni) = &tls.sni {
        checks::host(ctx, &p.key("sni"), sni);
    }
}

// ---------------------------------------------------------------- Gateway

pub fn gateway(ctx: &mut Ctx<'_>, gw: &Gateway, spec: &FieldPath) {
    if gw.servers.is_empty() {
        ctx.error(
            &spec.key("servers"),
            "a Gateway needs at least one server",
            "add servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]",
        );
    }
    checks::labels(ctx, &spec.key("selector"), &gw.selector);
    let mut names = BTreeSet::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let sp = spec.key("servers").index(i);
        let protocol = match &s.port {
            None => {
                ctx.error(
                    &sp.key("port"),
                    "server port is required",
                    "add port: {number: 80, name: http, protocol: HTTP}",
                );
                String::new()
            }
            Some(port) => {
                let pp = sp.key("port");
                checks::port(ctx, &pp.key("number"), port.number);
                if port.protocol.is_empty() {
                    ctx.error(
                        &pp.key("protocol"),
                        "protocol is required",
                        "e.g. protocol: HTTP",
                    );
                } else {
                    checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
                }
                if !port.name.is_empty() && !names.insert(port.name.clone()) {
                    ctx.error(
                        &pp.key("name"),
                        format!("port name {:?} is used by two servers", port.name),
                        "give each server's port a unique name",
                    );
                }
                port.protocol.to_ascii_uppercase()
            }
        };
        if s.hosts.is_empty() {
            ctx.error(
                &sp.key("hosts"),
                "a server needs at least one host",
                "e.g. hosts: ['*'] or ['bookinfo.example.com']",
            );
        }
        for (j, h) in s.hosts.iter().enumerate() {
            namespaced_host(ctx, &sp.key("hosts").index(j), h);
        }
        let tls_needed = matches!(protocol.as_str(), "HTTPS" | "TLS");
        match &s.tls {
            None if tls_needed => ctx.error(
                &sp.key("tls"),
                format!("a {protocol} server needs tls settings"),
                "add tls: {mode: SIMPLE, credentialName: my-cert}",
            ),
            None => {}
            Some(tls) => server_tls(ctx, tls, &sp.key("tls"), &protocol),
        }
        if !s.bind.is_empty()
            && s.bind.parse::<std::net::IpAddr>().is_err()
            && !s.bind.starts_with("unix://")
        {
            ctx.error(
                &sp.key("bind"),
                format!("bind {:?} is not an IP address", s.bind),
                "use an address such as 127.0.0.1",
            );
        }
    }
}

/// `namespace/host` (or just `host`) as in Gateway servers and Sidecar
/// egress; namespace `*`, `.` or `~` or a name.
pub fn namespaced_host(ctx: &mut Ctx<'_>, p: &FieldPath, h: &str) {
    let (ns, host) = h.split_once('/').unwrap_or(("", h));
    if !(ns.is_empty() || ns == "*" || ns == "." || ns == "~" || checks::is_dns_label(ns)) {
        ctx.error(
            p,
            format!("namespace {ns:?} in {h:?} is invalid"),
            "write namespace/host with namespace *, . or a name",
        );
    }
    checks::host(ctx, p, host);
    if checks::is_partial_wildcard(host) {
        ctx.error(
            p,
            format!("partial wildcard {host:?} not allowed"),
            "a wildcard must be the whole first label, as in *.example.com, or * alone",
        );
    }
}

fn server_tls(ctx: &mut Ctx<'_>, tls: &ServerTlsSettings, p: &FieldPath, protocol: &str) {
    let files = tls.server_certificate.is_some() || tls.private_key.is_some();
    if matches!(protocol, "HTTP") && tls.mode.is_some() {
        ctx.error(
            &p.key("mode"),
            "an HTTP server cannot terminate TLS",
            "use protocol: HTTPS, or keep only httpsRedirect for HTTP",
        );
    }
    match tls.mode {
        Some(ServerTlsMode::Simple)
        | Some(ServerTlsMode::Mutual)
        | Some(ServerTlsMode::OptionalMutual) => {
            let has_creds = tls.credential_name.is_some() || !tls.credential_names.is_empty();
            let has_files = tls.server_certificate.is_some() && tls.private_key.is_some();
            if !has_creds && !has_files {
                ctx.error(
                    p,
                    "TLS termination needs credentialName, or serverCertificate and privateKey",
                    "set credentialName to the name of a secret with the server certificate",
                );
            }
            if has_creds && files {
                ctx.error(
                    p,
                    "credentialName cannot be combined with certificate files",
                    "keep credentialName or the file paths",
                );
            }
            if matches!(tls.mode, Some(ServerTlsMode::Mutual))
                && !has_creds
                && tls.ca_certificates.is_none()
            {
                ctx.error(
                    p,
                    "MUTUAL needs caCertificates (or credentialName with a CA) to verify clients",
                    "set caCertificates to the CA bundle of your clients",
                );
            }
        }
        Some(ServerTlsMode::Passthrough) | Some(ServerTlsMode::AutoPassthrough) => {
            if files || tls.credential_name.is_some() {
                ctx.error(
                    p,
                    "PASSTHROUGH does not terminate TLS; certificates cannot be set",
                    "remove the certificate fields or use mode: SIMPLE",
                );
            }
        }
        Some(ServerTlsMode::IstioMutual) | None => {
            if tls.mode.is_none() && !tls.https_redirect && protocol != "HTTP" {
                ctx.error(&p.key("mode"), "tls mode is required", "e.g. mode: SIMPLE");
            }
        }
    }
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version) {
        if (min as u8) > (max as u8) && !matches!(max, TlsProtocolVersion::Auto) {
            ctx.error(
                p,
                "minProtocolVersion is above maxProtocolVersion",
                "swap them",
            );
        }
    }
}

// ---------------------------------------------------------------- ServiceEntry

pub fn service_entry(ctx: &mut Ctx<'_>, se: &ServiceEntry, spec: &FieldPath) {
    if se.hosts.is_empty() {
        ctx.error(
            &spec.key("hosts"),
            "a ServiceEntry needs at least one host",
            "e.g. hosts: [api.example.com]",
        );
    }
    for (i, h) in se.hosts.iter().enumerate() {
        let p = spec.key("hosts").index(i);
        checks::host(ctx, &p, h);
        if h == "*" {
            ctx.error(
                &p,
                "a ServiceEntry host cannot be *",
                "name the external hosts",
            );
        } else if checks::is_partial_wildcard(h) && se.resolution != Some(Resolution::DynamicDns) {
            ctx.warn(
                &p,
                format!("partial wildcard {h:?} not allowed"),
                "a wildcard should be the whole first label, as in *.example.com",
            );
        }
    }
    for (i, a) in se.addresses.iter().enumerate() {
        checks::ip_or_cidr_check(ctx, &spec.key("addresses").index(i), a);
    }
    checks::export_to(ctx, &spec.key("exportTo"), &se.export_to);
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let pp = spec.key("ports").index(i);
        checks::port(ctx, &pp.key("number"), port.number);
        if !numbers.insert(port.number) {
            ctx.error(
                &pp.key("number"),
                format!("port {} is listed twice", port.number),
                "list each port once",
            );
        }
        if port.name.is_empty() {
            ctx.error(&pp.key("name"), "port name is required", "e.g. name: https");
        } else if !names.insert(port.name.clone()) {
            ctx.error(
                &pp.key("name"),
                format!("port name {:?} is used twice", port.name),
                "give each port a unique name",
            );
        }
        if !port.protocol.is_empty() {
            checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
        }
        if let Some(t) = port.target_port {
            checks::port(ctx, &pp.key("targetPort"), t);
        }
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        ctx.error(
            &spec.key("workloadSelector"),
            "workloadSelector and endpoints are mutually exclusive",
            "keep one way of naming the endpoints",
        );
    }
    let resolution = se.resolution.unwrap_or(Resolution::None);
    if resolution == Resolution::DynamicDns {
        ctx.unimplemented(
            &spec.key("resolution"),
            "resolution DYNAMIC_DNS is accepted but not implemented by weft: requests go to the address the application resolved, as with NONE",
            "use DNS with named hosts, or expect NONE's behaviour",
        );
    }
    match resolution {
        Resolution::Static if se.endpoints.is_empty() && se.workload_selector.is_none() => {
            ctx.error(
                &spec.key("endpoints"),
                "resolution STATIC needs endpoints",
                "list endpoints with their IP addresses, or use resolution: DNS",
            );
        }
        Resolution::Dns | Resolution::DnsRoundRobin if se.endpoints.is_empty() => {
            for (i, h) in se.hosts.iter().enumerate() {
                if h.starts_with("*.") {
                    ctx.error(
                        &spec.key("hosts").index(i),
                        "a wildcard host cannot be resolved by DNS without endpoints",
                        "use resolution: NONE for wildcard hosts",
                    );
                }
            }
        }
        _ => {}
    }
    for (i, e) in se.endpoints.iter().enumerate() {
        let ep = spec.key("endpoints").index(i);
        if e.address.is_empty() {
            ctx.error(
                &ep.key("address"),
                "endpoint address is required",
                "give an IP address or a DNS name",
            );
        } else if resolution == Resolution::Static
            && e.address.parse::<std::net::IpAddr>().is_err()
            && !e.address.starts_with("unix://")
        {
            ctx.error(
                &ep.key("address"),
                format!(
                    "{:?} is not an IP address; STATIC endpoints need addresses",
                    e.address
                ),
                "use resolution: DNS for host names",
            );
        }
        for (name, port) in &e.ports {
            checks::port(ctx, &ep.key("ports").key(name), *port);
            if !se.ports.iter().any(|p| &p.name == name) {
                ctx.error(
                    &ep.key("ports").key(name),
                    format!("port name {name:?} is not declared in spec.ports"),
                    "use one of the names in spec.ports",
                );
            }
        }
        checks::labels(ctx, &ep.key("labels"), &e.labels);
    }
}

// ---------------------------------------------------------------- WorkloadEntry / Group

pub fn workload_entry(
    ctx: &mut Ctx<'_>,
    we: &WorkloadEntry,
    spec: &FieldPath,
    address_required: bool,
) {
    if we.address.is_empty() && address_required {
        // Istio takes a workload on another network without an address
        // (it is reached through that network's gateway), with a warning.
        if we.network.is_empty() {
            ctx.error(
                &spec.key("address"),
                "address is required",
                "give the workload's IP address or DNS name",
            );
        } else {
            ctx.warn(
                &spec.key("address"),
                format!("address is unset with network {:?}", we.network),
                "weft does not route between networks: give the workload's address to reach it",
            );
        }
    }
    for (name, port) in &we.ports {
        checks::port(ctx, &spec.key("ports").key(name), *port);
    }
    checks::labels(ctx, &spec.key("labels"), &we.labels);
    if let Some(w) = we.weight {
        if w == 0 {
            ctx.warn(
                &spec.key("weight"),
                "weight 0 is treated as 1",
                "leave weight out or give a positive weight",
            );
        }
    }
    if !we.locality.is_empty() && we.locality.split('/').count() > 3 {
        ctx.error(
            &spec.key("locality"),
            format!(
                "locality {:?} has more than region/zone/subzone",
                we.locality
            ),
            "write region/zone/subzone",
        );
    }
}

pub fn workload_group(ctx: &mut Ctx<'_>, wg: &WorkloadGroup, spec: &FieldPath) {
    match &wg.template {
        Some(t) => {
            workload_entry(ctx, t, &spec.key("template"), false);
            if !t.address.is_empty() {
                ctx.error(
                    &spec.key("template").key("address"),
                    "a WorkloadGroup template cannot set address",
                    "addresses belong to the WorkloadEntries created from the group",
                );
            }
        }
        None => ctx.error(
            &spec.key("template"),
            "template is required",
            "add template: {serviceAccount: my-sa}",
        ),
    }
    if let Some(m) = &wg.metadata {
        checks::labels(ctx, &spec.key("metadata").key("labels"), &m.labels);
    }
}

// ---------------------------------------------------------------- Sidecar

pub fn sidecar(ctx: &mut Ctx<'_>, sc: &Sidecar, spec: &FieldPath) {
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        ctx.error(
            spec,
            "a Sidecar with no ingress, egress or outboundTrafficPolicy does nothing",
            "add egress: [{hosts: ['./*', 'istio-system/*']}]",
        );
    }
    if let Some(ws) = &sc.workload_selector {
        checks::labels(ctx, &spec.key("workloadSelector").key("labels"), &ws.labels);
    }
    let mut catch_all = 0;
    for (i, e) in sc.egress.iter().enumerate() {
        let ep = spec.key("egress").index(i);
        if e.hosts.is_empty() {
            ctx.error(
                &ep.key("hosts"),
                "an egress listener needs at least one host",
                "e.g. hosts: ['./*']",
            );
        }
        for (j, h) in e.hosts.iter().enumerate() {
            let hp = ep.key("hosts").index(j);
            if !h.contains('/') {
                ctx.error(
                    &hp,
                    format!("egress host {h:?} must be namespace/host"),
                    format!("write e.g. \"*/{h}\" or \"./{h}\""),
                );
            } else {
                namespaced_host(ctx, &hp, h);
            }
        }
        match &e.port {
            Some(port) => checks::port(ctx, &ep.key("port").key("number"), port.number),
            None => catch_all += 1,
        }
        if catch_all > 1 {
            ctx.error(
                &ep,
                "only one egress listener may leave out the port",
                "give the other listeners a port",
            );
        }
    }
    for (i, l) in sc.ingress.iter().enumerate() {
        let ip = spec.key("ingress").index(i);
        match &l.port {
            Some(port) => checks::port(ctx, &ip.key("port").key("number"), port.number),
            None => ctx.error(
                &ip.key("port"),
                "an ingress listener needs a port",
                "add port: {number: 9080, protocol: HTTP, name: http}",
            ),
        }
    }
}
