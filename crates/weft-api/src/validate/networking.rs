//! Validation of `networking.istio.io` resources other than
//! VirtualService, after Istio's `pkg/config/validation` rules.

use base64::Engine;
use std::collections::BTreeSet;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, Ctx};

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
    let of = if dr.workload_selector.is_some() {
        checks::ExportOf::DestinationRuleWithSelector
    } else {
        checks::ExportOf::Other
    };
    let namespace = ctx.resource.namespace();
    checks::export_to(ctx, &spec.key("exportTo"), namespace, &dr.export_to, of);
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
    tls_versions(ctx, tls, p);
    cipher_suites(ctx, &tls.cipher_suites, &p.key("cipherSuites"));
    for (i, pin) in tls.verify_certificate_spki.iter().enumerate() {
        let ok = base64::engine::general_purpose::STANDARD
            .decode(pin.trim())
            .is_ok_and(|b| b.len() == 32);
        if !ok {
            ctx.error(
                &p.key("verifyCertificateSpki").index(i),
                format!("{pin:?} is not a SHA-256 SPKI pin"),
                "write the base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (44 characters)",
            );
        }
    }
    for (i, pin) in tls.verify_certificate_hash.iter().enumerate() {
        let hex: String = pin.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            ctx.error(
                &p.key("verifyCertificateHash").index(i),
                format!("{pin:?} is not a SHA-256 certificate fingerprint"),
                "write 64 hex digits, optionally as colon-separated pairs (openssl x509 -fingerprint -sha256)",
            );
        }
    }
}

/// Istio's warning for old protocol versions, and weft's when the bounds
/// leave nothing it speaks (it offers TLS 1.2 and 1.3; such a server
/// refuses every handshake).
fn tls_versions(ctx: &mut Ctx<'_>, tls: &ServerTlsSettings, p: &FieldPath) {
    use TlsProtocolVersion as V;
    let (min, max) = (tls.min_protocol_version, tls.max_protocol_version);
    if matches!(min, Some(V::V1_0 | V::V1_1)) && tls.cipher_suites.is_empty() {
        ctx.warn(
            &p.key("minProtocolVersion"),
            "TLS versions below TLSV1_2 require setting compatible ciphers, as the defaults no longer include any",
            "weft offers TLS 1.2 and 1.3 only; use TLSV1_2",
        );
    }
    let rank = |v: V| match v {
        V::Auto => None,
        V::V1_0 => Some(0),
        V::V1_1 => Some(1),
        V::V1_2 => Some(2),
        V::V1_3 => Some(3),
    };
    let (lo, hi) = (
        min.and_then(rank).unwrap_or(0).max(2),
        max.and_then(rank).unwrap_or(3),
    );
    if lo > hi {
        ctx.warn(
            p,
            "minProtocolVersion and maxProtocolVersion leave no TLS version weft offers (1.2 and 1.3): this server refuses every handshake",
            "set maxProtocolVersion to TLSV1_2 or above, and no higher minProtocolVersion",
        );
    }
}

/// Istio's warnings for cipher suites BoringSSL does not know and for
/// duplicates, and weft's for those it knows but rustls does not offer.
fn cipher_suites(ctx: &mut Ctx<'_>, suites: &[String], p: &FieldPath) {
    let mut invalid = std::collections::BTreeSet::new();
    let mut duplicate = std::collections::BTreeSet::new();
    let mut not_offered = std::collections::BTreeSet::new();
    let mut seen = std::collections::BTreeSet::new();
    for cs in suites {
        let expression =
            cs.is_empty() || cs == "ALL" || !cs.starts_with(|c: char| c.is_ascii_alphanumeric());
        if expression {
            continue;
        }
        if !ENVOY_CIPHER_SUITES.contains(&cs.as_str()) {
            invalid.insert(cs.as_str());
        } else if !seen.insert(cs.as_str()) {
            duplicate.insert(cs.as_str());
        } else if !cs.starts_with("ECDHE-") || !(cs.contains("GCM") || cs.contains("CHACHA20")) {
            not_offered.insert(cs.as_str());
        }
    }
    if !invalid.is_empty() {
        ctx.warn(
            p,
            format!("ignoring invalid cipher suites: {invalid:?}"),
            "use OpenSSL names, e.g. ECDHE-ECDSA-AES128-GCM-SHA256",
        );
    }
    if !duplicate.is_empty() {
        ctx.warn(
            p,
            format!("ignoring duplicate cipher suites: {duplicate:?}"),
            "list each suite once",
        );
    }
    if !not_offered.is_empty() {
        ctx.warn(
            p,
            format!("weft does not offer {not_offered:?}: it has only ECDHE suites with AES-GCM or ChaCha20-Poly1305"),
            "use ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256 or another ECDHE AEAD suite",
        );
    }
}

/// The suites Envoy (BoringSSL) accepts in `cipherSuites`, as Istio's
/// validation lists them.
const ENVOY_CIPHER_SUITES: &[&str] = &[
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

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
    let namespace = ctx.resource.namespace();
    checks::export_to(
        ctx,
        &spec.key("exportTo"),
        namespace,
        &se.export_to,
        checks::ExportOf::ServiceEntry,
    );
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
