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
        traffic_policy(ctx, tp, &spec.key("trafficPolicy"));
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
        } else if !checks::is_istio_label(&s.name) {
            ctx.error(
                &sp.key("name"),
                format!("subset name {:?} is invalid", s.name),
                "subset names are DNS labels such as v1",
            );
        }
        if !seen.insert(s.name.clone()) {
            ctx.error(
                &sp.key("name"),
                format!("duplicate subset names: {:?}", s.name),
                "give each subset a unique name",
            );
        }
        checks::labels(ctx, &sp.key("labels"), &s.labels);
        if let Some(tp) = &s.traffic_policy {
            traffic_policy(ctx, tp, &sp.key("trafficPolicy"));
        }
    }
    if let Some(ws) = &dr.workload_selector {
        let wp = spec.key("workloadSelector");
        checks::selector_wildcards(ctx, &wp.key("matchLabels"), &ws.match_labels);
        checks::empty_selector(ctx, &wp, ws.match_labels.is_empty(), "");
    }
}

/// Istio's `validateTrafficPolicy`, the same at the top level and in a
/// subset.
fn traffic_policy(ctx: &mut Ctx<'_>, tp: &TrafficPolicy, p: &FieldPath) {
    let empty = tp.outlier_detection.is_none()
        && tp.connection_pool.is_none()
        && tp.load_balancer.is_none()
        && tp.tls.is_none()
        && tp.port_level_settings.is_empty()
        && tp.tunnel.is_none()
        && tp.proxy_protocol.is_none()
        && tp.retry_budget.is_none();
    if empty {
        ctx.error(
            p,
            "traffic policy must have at least one field",
            "remove the empty trafficPolicy, or set e.g. loadBalancer",
        );
        return;
    }
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        ctx.error(
            p,
            "tunnel and proxyProtocol must not be set together",
            "keep one of them",
        );
        return;
    }
    if let Some(od) = &tp.outlier_detection {
        outlier(ctx, od, &p.key("outlierDetection"));
    }
    if let Some(cp) = &tp.connection_pool {
        connection_pool(ctx, cp, &p.key("connectionPool"));
    }
    if let Some(lb) = &tp.load_balancer {
        load_balancer(
            ctx,
            lb,
            tp.outlier_detection.is_some(),
            &p.key("loadBalancer"),
        );
    }
    if let Some(tls) = &tp.tls {
        client_tls(ctx, tls, &p.key("tls"));
    }
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        port_traffic_policy(ctx, pl, &p.key("portLevelSettings").index(i));
    }
    if let Some(t) = &tp.tunnel {
        tunnel(ctx, t, &p.key("tunnel"));
    }
    // The CRD bounds the budget's percent (the webhook does not).
    if let Some(v) = tp.retry_budget.as_ref().and_then(|rb| rb.percent) {
        checks::percent_value(ctx, &p.key("retryBudget").key("percent"), v);
    }
    if let Some(pp) = &tp.proxy_protocol {
        if !matches!(pp.version.as_str(), "" | "V1" | "V2") {
            ctx.error(
                &p.key("proxyProtocol").key("version"),
                format!("proxy protocol version is invalid: {:?}", pp.version),
                "use V1 or V2",
            );
        }
    }
}

fn port_traffic_policy(ctx: &mut Ctx<'_>, pl: &PortTrafficPolicy, pp: &FieldPath) {
    if pl.port.is_none() {
        ctx.error(
            &pp.key("port"),
            "portTrafficPolicy must have valid port",
            "add port: {number: 9080}",
        );
    }
    if pl.outlier_detection.is_none()
        && pl.connection_pool.is_none()
        && pl.load_balancer.is_none()
        && pl.tls.is_none()
    {
        ctx.error(
            pp,
            "port traffic policy must have at least one field",
            "set loadBalancer, connectionPool, outlierDetection or tls for the port",
        );
        return;
    }
    if let Some(od) = &pl.outlier_detection {
        outlier(ctx, od, &pp.key("outlierDetection"));
    }
    if let Some(cp) = &pl.connection_pool {
        connection_pool(ctx, cp, &pp.key("connectionPool"));
    }
    if let Some(lb) = &pl.load_balancer {
        load_balancer(
            ctx,
            lb,
            pl.outlier_detection.is_some(),
            &pp.key("loadBalancer"),
        );
    }
    if let Some(tls) = &pl.tls {
        client_tls(ctx, tls, &pp.key("tls"));
    }
}

fn tunnel(ctx: &mut Ctx<'_>, t: &TunnelSettings, p: &FieldPath) {
    if !matches!(t.protocol.as_str(), "" | "CONNECT" | "POST") {
        ctx.error(
            &p.key("protocol"),
            "tunnel protocol must be \"CONNECT\" or \"POST\"",
            "use CONNECT or POST",
        );
    }
    if !checks::is_ip(&t.target_host) {
        if let Some(why) = checks::fqdn_error(&t.target_host) {
            ctx.error(
                &p.key("targetHost"),
                format!("tunnel target host must be a valid FQDN or IP address: {why}"),
                "name the proxy's host, e.g. proxy.example.com",
            );
        }
    }
    checks::port(ctx, &p.key("targetPort"), t.target_port);
}

/// Istio's `validateLoadBalancer`; `outlier` says whether the same policy
/// has outlier detection, which failover needs.
fn load_balancer(ctx: &mut Ctx<'_>, lb: &LoadBalancerSettings, outlier: bool, p: &FieldPath) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        ctx.error(
            p,
            "simple and consistentHash are mutually exclusive",
            "keep one load-balancing policy",
        );
    }
    if let Some(ch) = &lb.consistent_hash {
        consistent_hash(ctx, ch, &p.key("consistentHash"));
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        ctx.error(
            p,
            "only one of localityLbSetting and zoneAwareLbSetting can be set",
            "keep one of them",
        );
    }
    if let Some(l) = &lb.locality_lb_setting {
        locality_lb(ctx, l, outlier, &p.key("localityLbSetting"));
    }
    if let Some(z) = &lb.zone_aware_lb_setting {
        zone_aware_lb(ctx, z, outlier, &p.key("zoneAwareLbSetting"));
    }
    if let Some(w) = &lb.warmup {
        let wp = p.key("warmup");
        match &w.duration {
            None => ctx.error(
                &wp.key("duration"),
                "duration is required",
                "e.g. duration: 60s",
            ),
            Some(d) => checks::duration(ctx, &wp.key("duration"), Some(d)),
        }
        if w.minimum_percent.is_some_and(|m| m > 100.0) {
            ctx.error(
                &wp.key("minimumPercent"),
                "minimumPercent value should be less than or equal to 100",
                "use a percentage from 0 to 100",
            );
        }
        if w.aggression.is_some_and(|a| a <= 0.0) {
            ctx.error(
                &wp.key("aggression"),
                "aggression should be greater than 0",
                "use 1 for a linear ramp, more for a steeper one",
            );
        }
    }
}

fn consistent_hash(ctx: &mut Ctx<'_>, ch: &ConsistentHashLb, cp: &FieldPath) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    if keys.iter().filter(|k| **k).count() > 1 {
        ctx.error(
            cp,
            "httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName are mutually exclusive",
            "keep one hash key",
        );
    }
    if let Some(c) = &ch.http_cookie {
        let kp = cp.key("httpCookie");
        if c.name.is_empty() {
            ctx.error(
                &kp.key("name"),
                "name required for HttpCookie",
                "e.g. name: user",
            );
        }
        let mut names = BTreeSet::new();
        for (i, a) in c.attributes.iter().enumerate() {
            let ap = kp.key("attributes").index(i).key("name");
            if a.name.is_empty() {
                ctx.error(
                    &ap,
                    "cookie attribute name cannot be empty",
                    "e.g. name: SameSite",
                );
            } else if !names.insert(a.name.as_str()) {
                ctx.error(
                    &ap,
                    format!("duplicate cookie attribute name: {}", a.name),
                    "give each attribute once",
                );
            }
        }
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        ctx.error(
            cp,
            "ringHash and maglev are mutually exclusive",
            "keep one hash algorithm",
        );
    }
    if ch.minimum_ring_size.is_some_and(|n| n != 0) {
        ctx.warn(
            &cp.key("minimumRingSize"),
            "consistent hash minimumRingSize is deprecated, use ringHash instead",
            "write ringHash: {minimumRingSize: N}",
        );
        if ch.ring_hash.is_some() || ch.maglev.is_some() {
            ctx.error(
                &cp.key("minimumRingSize"),
                "only one of minimumRingSize or maglev/ringHash can be specified",
                "move the size into ringHash",
            );
        }
    }
    if let Some(m) = &ch.maglev {
        let size = m.table_size.unwrap_or(0);
        let tp = cp.key("maglev").key("tableSize");
        if size == 0 {
            ctx.error(
                &tp,
                "tableSize must be set for maglev",
                "e.g. tableSize: 65537",
            );
        }
        if size >= 5_000_011 {
            ctx.error(
                &tp,
                "tableSize must be less than 5000011 for maglev",
                "e.g. tableSize: 65537",
            );
        }
        if !is_prime(size) {
            ctx.error(
                &tp,
                "tableSize must be a prime number for maglev",
                "e.g. tableSize: 65537",
            );
        }
    }
}

/// Envoy's primality test, which Istio's validation follows (0 counts as
/// not prime; 1, 2 and 3 as prime).
fn is_prime(x: u64) -> bool {
    if x != 0 && x < 4 {
        return true;
    }
    if x & 1 == 0 {
        return false;
    }
    let mut f = 3;
    while f * f <= x {
        if x.is_multiple_of(f) {
            return false;
        }
        f += 2;
    }
    true
}

/// Istio's `ValidateLocalityLbSetting`.
fn locality_lb(ctx: &mut Ctx<'_>, l: &LocalityLbSetting, outlier: bool, lp: &FieldPath) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        ctx.error(
            lp,
            "can not simultaneously specify 'distribute' and 'failover'",
            "keep one of them",
        );
        return;
    }
    if !l.failover.is_empty() {
        if let Some(t) = l.failover_priority.iter().find(|t| is_topology_label(t)) {
            ctx.error(
                &lp.key("failoverPriority"),
                format!("can not simultaneously set 'failover' and topology label {t:?} in 'failoverPriority'"),
                "drop the topology label: failover already orders by region",
            );
            return;
        }
    }
    for (i, d) in l.distribute.iter().enumerate() {
        let dp = lp.key("distribute").index(i);
        if d.to.values().any(|w| !(1..=100).contains(w)) {
            ctx.error(
                &dp.key("to"),
                "locality weight must be in range [1, 100]",
                "use weights from 1 to 100",
            );
            return;
        }
        let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            ctx.error(
                &dp.key("to"),
                format!("total locality weight {total} != 100"),
                "make the weights add up to 100",
            );
            return;
        }
        if let Some(why) = localities_error(d.to.keys().map(String::as_str)) {
            ctx.error(
                &dp.key("to"),
                why,
                "write region[/zone[/subzone]], with '*' only at the end",
            );
        }
    }
    if let Some(why) = localities_error(l.distribute.iter().map(|d| d.from.as_str())) {
        ctx.error(
            &lp.key("distribute"),
            why,
            "write region[/zone[/subzone]], with '*' only at the end",
        );
    }
    if (!l.failover.is_empty() || !l.failover_priority.is_empty()) && !outlier {
        ctx.warn(
            lp,
            "outlier detection policy must be provided for failover",
            "add outlierDetection to the same traffic policy",
        );
    }
    for (i, f) in l.failover.iter().enumerate() {
        region_failover(
            ctx,
            &f.from,
            &f.to,
            &lp.key("failover").index(i),
            "locality lb",
        );
    }
}

/// Istio's `ValidateZoneAwareLbSetting`.
fn zone_aware_lb(ctx: &mut Ctx<'_>, z: &ZoneAwareLbSetting, outlier: bool, zp: &FieldPath) {
    if let Some(t) = z.failover_priority.iter().find(|t| is_topology_label(t)) {
        ctx.error(
            &zp.key("failoverPriority"),
            format!("'failoverPriority' for zone aware lb must not use topology label {t:?}; region- and zone-level routing are handled automatically"),
            "drop the topology label",
        );
    }
    if (!z.failover.is_empty() || !z.failover_priority.is_empty()) && !outlier {
        ctx.warn(
            zp,
            "outlier detection policy must be provided for failover",
            "add outlierDetection to the same traffic policy",
        );
    }
    for (i, f) in z.failover.iter().enumerate() {
        region_failover(
            ctx,
            &f.from,
            &f.to,
            &zp.key("failover").index(i),
            "zone aware lb",
        );
    }
}

fn is_topology_label(l: &str) -> bool {
    matches!(
        l,
        "topology.kubernetes.io/region"
            | "topology.kubernetes.io/zone"
            | "topology.istio.io/subzone"
    )
}

fn region_failover(ctx: &mut Ctx<'_>, from: &str, to: &str, fp: &FieldPath, what: &str) {
    if from == to {
        ctx.error(
            fp,
            format!("{what} failover settings must specify different regions"),
            "fail over to a different region",
        );
    }
    if from.contains('/') || to.contains('/') {
        ctx.error(
            fp,
            format!("{what} failover only specifies region"),
            "write region names only",
        );
    }
    if from.contains('*') || to.contains('*') {
        ctx.error(
            fp,
            format!("{what} failover region should not contain '*' wildcard"),
            "name the regions",
        );
    }
}

/// Istio's `validateLocalities`: at most one `*`, only at the end; no
/// empty part; no locality that overlaps one before it.
fn localities_error<'a>(localities: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut seen: Vec<Vec<&str>> = Vec::new();
    for loc in localities {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Some(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        let parts: Vec<&str> = loc.split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Some(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        // A trailing `*` covers everything below the parts before it.
        let key: Vec<&str> = parts.iter().copied().take_while(|p| *p != "*").collect();
        let overlaps = seen.iter().any(|prev| {
            let n = prev.len().min(key.len());
            prev[..n] == key[..n]
        });
        if overlaps {
            return Some(format!(
                "locality {loc} overlap with previous specified ones"
            ));
        }
        seen.push(key);
    }
    None
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

/// Istio's `validateConnectionPool`.
fn connection_pool(ctx: &mut Ctx<'_>, cp: &ConnectionPoolSettings, p: &FieldPath) {
    if cp.tcp.is_none() && cp.http.is_none() {
        ctx.error(
            p,
            "connection pool must have at least one field",
            "set tcp or http limits, or remove connectionPool",
        );
        return;
    }
    if let Some(tcp) = &cp.tcp {
        let tp = p.key("tcp");
        non_negative(ctx, &tp, "maxConnections", tcp.max_connections);
        checks::duration(ctx, &tp.key("connectTimeout"), tcp.connect_timeout.as_ref());
        checks::duration(
            ctx,
            &tp.key("maxConnectionDuration"),
            tcp.max_connection_duration.as_ref(),
        );
        // 0s switches the idle timeout off.
        let idle = tcp.idle_timeout.as_ref().filter(|d| !d.as_std().is_zero());
        checks::duration(ctx, &tp.key("idleTimeout"), idle);
        if let Some(ka) = &tcp.tcp_keepalive {
            let kp = tp.key("tcpKeepalive");
            checks::duration(ctx, &kp.key("time"), ka.time.as_ref());
            checks::duration(ctx, &kp.key("interval"), ka.interval.as_ref());
        }
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
        if http.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            ctx.error(
                &hp.key("useClientProtocol"),
                "use client protocol must not be true when h2UpgradePolicy is UPGRADE",
                "keep one of them",
            );
        }
        if let Some(ka) = &http.http2_keep_alive {
            let kp = hp.key("http2KeepAlive");
            for (field, d) in [("interval", &ka.interval), ("timeout", &ka.timeout)] {
                match d {
                    None => ctx.error(
                        &kp.key(field),
                        format!("http2 keepalive {field} is required"),
                        format!("e.g. {field}: 10s"),
                    ),
                    Some(d) => checks::duration(ctx, &kp.key(field), Some(d)),
                }
            }
        }
    }
}

/// Istio's `validateOutlierDetection`.
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
    if od.consecutive_errors.is_some_and(|n| n != 0) {
        ctx.warn(
            &p.key("consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
            "write consecutive5xxErrors",
        );
    }
    if od.split_external_local_origin_errors != Some(true)
        && od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
    {
        ctx.error(
            &p.key("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
            "set splitExternalLocalOriginErrors: true",
        );
    }
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

/// Istio's `ValidateTLS` for client (DestinationRule) settings.
fn client_tls(ctx: &mut Ctx<'_>, tls: &ClientTlsSettings, p: &FieldPath) {
    let namespace = ctx.resource.namespace().to_owned();
    if let Some(rest) = tls
        .credential_name
        .as_deref()
        .and_then(|c| c.strip_prefix("configmap://"))
    {
        let (ns, name) = match rest.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (namespace.as_str(), rest),
        };
        if name.is_empty() || name.contains('/') {
            ctx.error(
                &p.key("credentialName"),
                format!("invalid configmap:// credentialName {rest:?}"),
                "write configmap://NAME or configmap://NAMESPACE/NAME",
            );
        } else if ns != namespace || namespace.is_empty() {
            ctx.error(
                &p.key("credentialName"),
                format!("invalid configmap:// credentialName: namespace must match the configuration namespace {namespace:?}"),
                "refer to a ConfigMap in the rule's own namespace",
            );
        }
    }
    let skip = tls.insecure_skip_verify == Some(true);
    let simple_conflict = tls.ca_certificates.is_some()
        || tls.credential_name.is_some()
        || !tls.subject_alt_names.is_empty();
    let mutual_conflict = tls.ca_certificates.is_some() || !tls.subject_alt_names.is_empty();
    match tls.mode {
        Some(ClientTlsMode::Simple) if skip && simple_conflict => ctx.error(
            &p.key("insecureSkipVerify"),
            "cannot specify caCertificates or credentialName or subjectAltNames when insecureSkipVerify is set true",
            "drop insecureSkipVerify: weft verifies the server anyway",
        ),
        Some(ClientTlsMode::Mutual) if skip && mutual_conflict => ctx.error(
            &p.key("insecureSkipVerify"),
            "cannot specify caCertificates or subjectAltNames when insecureSkipVerify is set true",
            "drop insecureSkipVerify: weft verifies the server anyway",
        ),
        _ => {}
    }
    let by_credential = matches!(
        tls.mode,
        Some(ClientTlsMode::Simple | ClientTlsMode::Mutual)
    ) && tls.credential_name.is_some();
    if by_credential {
        if tls.client_certificate.is_some()
            || tls.ca_certificates.is_some()
            || tls.private_key.is_some()
            || tls.ca_crl.is_some()
        {
            ctx.error(
                p,
                "cannot specify client certificates or CA certificate or CA CRL if credentialName is set",
                "keep credentialName (put ca.crt and ca.crl in its secret) or the file paths",
            );
        }
        return;
    }
    if tls.mode == Some(ClientTlsMode::Mutual) {
        if tls.client_certificate.is_none() {
            ctx.error(
                &p.key("clientCertificate"),
                "client certificate required for mutual tls",
                "set clientCertificate and privateKey, or credentialName",
            );
        }
        if tls.private_key.is_none() {
            ctx.error(
                &p.key("privateKey"),
                "private key required for mutual tls",
                "set clientCertificate and privateKey, or credentialName",
            );
        }
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
    if let Some(ws) = &se.workload_selector {
        let wp = spec.key("workloadSelector");
        checks::selector_wildcards(ctx, &wp.key("labels"), &ws.labels);
        checks::empty_selector(ctx, &wp, ws.labels.is_empty(), "service entry: ");
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        ctx.error(
            &spec.key("workloadSelector"),
            "only one of workloadSelector or endpoints is allowed in a ServiceEntry",
            "keep one way of naming the endpoints",
        );
    }
    if se.hosts.is_empty() {
        ctx.error(
            &spec.key("hosts"),
            "a ServiceEntry needs at least one host",
            "e.g. hosts: [api.example.com]",
        );
    }
    let resolution = se.resolution.unwrap_or(Resolution::None);
    for (i, h) in se.hosts.iter().enumerate() {
        let p = spec.key("hosts").index(i);
        if h == "*" {
            ctx.error(
                &p,
                "a ServiceEntry host cannot be *",
                "name the external hosts",
            );
            continue;
        }
        checks::host(ctx, &p, h);
        if checks::is_partial_wildcard(h) && resolution != Resolution::DynamicDns {
            ctx.warn(
                &p,
                format!("partial wildcard {h:?} not allowed"),
                "a wildcard should be the whole first label, as in *.example.com",
            );
        }
    }
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        checks::ip_or_cidr_check(ctx, &spec.key("addresses").index(i), a);
    }
    if cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        ctx.error(
            &spec.key("addresses"),
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
            "give single addresses, or use resolution: NONE",
        );
    }
    let namespace = ctx.resource.namespace();
    checks::export_to(
        ctx,
        &spec.key("exportTo"),
        namespace,
        &se.export_to,
        checks::ExportOf::ServiceEntry,
    );
    service_entry_ports(ctx, se, resolution, spec);
    let names: BTreeSet<&str> = se.ports.iter().map(|p| p.name.as_str()).collect();
    let endpoints = spec.key("endpoints");
    match resolution {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                ctx.error(
                    &endpoints,
                    "no endpoints should be provided for resolution type NONE",
                    "use resolution: STATIC or DNS with endpoints",
                );
            }
            if se.workload_selector.is_some() {
                ctx.warn(
                    &spec.key("workloadSelector"),
                    "workloadSelector should not be set when resolution mode is NONE",
                    "use resolution: STATIC to send traffic to the selected workloads",
                );
            }
        }
        Resolution::Static => {
            for (i, e) in se.endpoints.iter().enumerate() {
                endpoint(ctx, e, &endpoints.index(i), Some(&names), false);
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if se.endpoints.is_empty() {
                if let Some((i, why)) = se
                    .hosts
                    .iter()
                    .enumerate()
                    .find_map(|(i, h)| dns_host_error(h).map(|w| (i, w)))
                {
                    ctx.error(
                        &spec.key("hosts").index(i),
                        format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode DNS: {why}"),
                        "name a host DNS can resolve, or list endpoints",
                    );
                }
            }
            if resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                ctx.error(
                    &endpoints,
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
                    "use resolution: DNS to balance over several endpoints",
                );
            }
            for (i, e) in se.endpoints.iter().enumerate() {
                let ep = endpoints.index(i);
                if !checks::is_ip(&e.address) && checks::fqdn_error(&e.address).is_some() {
                    ctx.error(
                        &ep.key("address"),
                        format!(
                            "endpoint address {:?} is not a valid FQDN or an IP address",
                            e.address
                        ),
                        "give a DNS name or an IP address",
                    );
                }
                checks::labels(ctx, &ep.key("labels"), &e.labels);
                endpoint_ports(ctx, e, &ep, Some(&names));
            }
            let tcp = se.ports.iter().any(|p| is_tcp_protocol(&p.protocol));
            if !se.addresses.is_empty() && tcp && se.hosts.len() > 1 {
                ctx.warn(
                    &spec.key("hosts"),
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                    "give each host its own ServiceEntry",
                );
            }
        }
        Resolution::DynamicDns => dynamic_dns(ctx, se, spec),
    }
    // Plain TCP cannot tell hosts apart; only NONE ignores them.
    if resolution != Resolution::None && se.hosts.len() > 1 {
        let opaque = se.ports.iter().any(|p| {
            !checks::is_http_protocol(&p.protocol) && !checks::is_tls_protocol(&p.protocol)
        });
        if opaque {
            ctx.error(
                &spec.key("ports"),
                "multiple hosts provided with non-HTTP, non-TLS ports",
                "give each host its own ServiceEntry, or declare the ports HTTP or TLS",
            );
        }
    }
}

fn service_entry_ports(
    ctx: &mut Ctx<'_>,
    se: &ServiceEntry,
    resolution: Resolution,
    spec: &FieldPath,
) {
    // Istio allocates addresses for ServiceEntries (PILOT_ENABLE_IP_AUTOALLOCATE,
    // on by default) except with resolution NONE or when the label
    // networking.istio.io/enable-autoallocate-ip is "false".
    let opted_out = ctx
        .resource
        .meta
        .labels
        .get("networking.istio.io/enable-autoallocate-ip")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let allocated = resolution != Resolution::None && !opted_out;
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let pp = spec.key("ports").index(i);
        if !names.insert(port.name.as_str()) {
            ctx.error(
                &pp.key("name"),
                format!("service entry port name {:?} already defined", port.name),
                "give each port a unique name",
            );
        }
        if !numbers.insert(port.number) {
            ctx.error(
                &pp.key("number"),
                format!("service entry port {} already defined", port.number),
                "list each port once",
            );
        }
        if let Some(t) = port.target_port.filter(|t| *t != 0) {
            checks::port(ctx, &pp.key("targetPort"), t);
        }
        if se.addresses.is_empty() && !allocated && matches!(port.protocol.as_str(), "" | "TCP") {
            ctx.warn(
                &pp.key("protocol"),
                "addresses are required for ports serving TCP (or unset) protocol when IP autoallocation is not enabled",
                "give the ServiceEntry addresses, or declare the port's protocol",
            );
        }
        checks::port_name(ctx, &pp.key("name"), &port.name);
        if !port.protocol.is_empty() {
            checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
        }
        checks::port(ctx, &pp.key("number"), port.number);
    }
}

fn dynamic_dns(ctx: &mut Ctx<'_>, se: &ServiceEntry, spec: &FieldPath) {
    ctx.unimplemented(
        &spec.key("resolution"),
        "resolution DYNAMIC_DNS is accepted but not implemented by weft: requests go to the address the application resolved, as with NONE",
        "use DNS with named hosts, or expect NONE's behaviour",
    );
    for (i, h) in se.hosts.iter().enumerate() {
        if !h.starts_with('*') {
            ctx.error(
                &spec.key("hosts").index(i),
                "host must be wildcarded for resolution mode DYNAMIC_DNS",
                "write e.g. *.example.com",
            );
        }
    }
    if !se.addresses.is_empty() {
        ctx.error(
            &spec.key("addresses"),
            "addresses cannot be set for resolution type DYNAMIC_DNS: HTTP route domains are generated from the hosts only",
            "remove addresses",
        );
    }
    if !se.endpoints.is_empty() {
        ctx.error(
            &spec.key("endpoints"),
            "endpoints cannot be set for resolution type DYNAMIC_DNS: the destination address comes from the host",
            "remove endpoints",
        );
    }
    for (i, p) in se.ports.iter().enumerate() {
        let ok = ["HTTP", "TLS", "GRPC", "HTTP2"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&p.protocol));
        if !ok {
            ctx.error(
                &spec.key("ports").index(i).key("protocol"),
                "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS",
                "declare the port HTTP, TLS, GRPC or HTTP2",
            );
        }
    }
    let waypoint = ctx
        .resource
        .meta
        .labels
        .get("istio.io/use-waypoint")
        .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
    if se.location == Some(Location::MeshInternal) && waypoint {
        ctx.error(
            &spec.key("location"),
            "location MESH_INTERNAL with resolution type DYNAMIC_DNS is not supported when using waypoints",
            "use location: MESH_EXTERNAL",
        );
    }
}

/// Istio's `protocol.Parse(p).IsTCP()`: the protocols carried over TCP
/// as streams (unset is "unsupported", not TCP).
fn is_tcp_protocol(p: &str) -> bool {
    ["TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(p))
}

/// Why a host cannot be resolved by DNS (Istio's `ValidateFQDN`, which
/// takes no wildcard).
fn dns_host_error(h: &str) -> Option<String> {
    checks::fqdn_error(h)
}

/// Istio's `validateWorkloadEntry`, for a WorkloadEntry (`services` is
/// `None`, FQDN addresses allowed) and a STATIC ServiceEntry's endpoints
/// (`services` names the entry's ports).
fn endpoint(
    ctx: &mut Ctx<'_>,
    e: &WorkloadEntry,
    ep: &FieldPath,
    services: Option<&BTreeSet<&str>>,
    fqdn_allowed: bool,
) {
    let addr = e.address.as_str();
    if addr.is_empty() {
        if e.network.is_empty() {
            ctx.error(
                &ep.key("address"),
                "address is required",
                "give the workload's IP address or DNS name",
            );
            return;
        }
        ctx.warn(
            &ep.key("address"),
            format!("address is unset with network {:?}", e.network),
            "weft does not route between networks: give the workload's address to reach it",
        );
    }
    let unix = addr.starts_with("unix://");
    if unix {
        checks::unix_address(ctx, &ep.key("address"), addr);
        if !e.ports.is_empty() {
            ctx.error(
                &ep.key("ports"),
                format!("unix endpoint {addr} must not include ports"),
                "remove ports: a socket has none",
            );
        }
    } else if !addr.is_empty() && !checks::is_ip(addr) {
        if !fqdn_allowed {
            ctx.error(
                &ep.key("address"),
                format!("endpoint address {addr:?} is not a valid IP address"),
                "STATIC endpoints need IP addresses; use resolution: DNS for host names",
            );
        } else if checks::fqdn_error(addr).is_some() {
            ctx.error(
                &ep.key("address"),
                format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
                "give a DNS name or an IP address",
            );
        }
    }
    endpoint_ports(ctx, e, ep, services);
    checks::labels(ctx, &ep.key("labels"), &e.labels);
    if unix && services.is_some_and(|s| s.len() != 1) {
        ctx.error(
            ep,
            "exactly 1 service port required for unix endpoints",
            "declare one port in spec.ports",
        );
    }
}

fn endpoint_ports(
    ctx: &mut Ctx<'_>,
    e: &WorkloadEntry,
    ep: &FieldPath,
    services: Option<&BTreeSet<&str>>,
) {
    for (name, port) in &e.ports {
        let pp = ep.key("ports").key(name);
        if services.is_some_and(|s| !s.contains(name.as_str())) {
            ctx.error(
                &pp,
                format!("endpoint port {name:?} is not defined by the service entry"),
                "use one of the names in spec.ports",
            );
        }
        checks::port_name(ctx, &pp, name);
        checks::port(ctx, &pp, *port);
    }
}

// ---------------------------------------------------------------- WorkloadEntry / Group

pub fn workload_entry(ctx: &mut Ctx<'_>, we: &WorkloadEntry, spec: &FieldPath) {
    endpoint(ctx, we, spec, None, true);
}

/// Istio validates the group's labels and probe, not its template (whose
/// address and other fields are filled in per VM).
pub fn workload_group(ctx: &mut Ctx<'_>, wg: &WorkloadGroup, spec: &FieldPath) {
    if wg.template.is_none() {
        ctx.error(
            &spec.key("template"),
            "template is required",
            "add template: {serviceAccount: my-sa}",
        );
        return;
    }
    if let Some(m) = &wg.metadata {
        checks::labels(ctx, &spec.key("metadata").key("labels"), &m.labels);
    }
    if let Some(p) = &wg.probe {
        probe(ctx, p, &spec.key("probe"));
    }
}

fn probe(ctx: &mut Ctx<'_>, p: &ReadinessProbe, pp: &FieldPath) {
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        non_negative(ctx, pp, field, v);
    }
    // Istio's validation knows httpGet, tcpSocket and exec; any other
    // method (grpc among them) is refused.
    match (&p.http_get, &p.tcp_socket, &p.exec) {
        (Some(h), _, _) => {
            let hp = pp.key("httpGet");
            checks::port(ctx, &hp.key("port"), h.port);
            if let Some(s) = h
                .scheme
                .as_deref()
                .filter(|s| !matches!(*s, "" | "HTTP" | "HTTPS"))
            {
                ctx.error(
                    &hp.key("scheme"),
                    format!("httpGet.scheme {s:?} must be one of \"HTTPS\", \"HTTP\""),
                    "use HTTP or HTTPS",
                );
            }
            for (i, h) in h.http_headers.iter().enumerate() {
                let ok = !h.name.is_empty()
                    && h.name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    ctx.error(
                        &hp.key("httpHeaders").index(i).key("name"),
                        format!("header name {:?} is not a valid header name", h.name),
                        "probe header names are letters, digits and '-'",
                    );
                }
            }
        }
        (None, Some(t), _) => checks::port(ctx, &pp.key("tcpSocket").key("port"), t.port),
        (None, None, Some(e)) => {
            if e.command.is_empty() {
                ctx.error(
                    &pp.key("exec").key("command"),
                    "exec.command is required",
                    "e.g. command: [cat, /tmp/healthy]",
                );
            }
        }
        (None, None, None) => ctx.error(
            pp,
            "unknown health check method: a probe needs httpGet, tcpSocket or exec",
            "e.g. httpGet: {path: /ready, port: 8080}",
        ),
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
