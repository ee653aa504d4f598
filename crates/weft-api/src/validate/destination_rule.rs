//! DestinationRule validation, after Istio's `ValidateDestinationRule`
//! and the traffic-policy checks it calls (and the CRD's bounds).

use std::collections::BTreeSet;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, Ctx};

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
        } else {
            checks::subset_name(ctx, &sp.key("name"), &s.name);
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
        checks::empty_selector(ctx, &wp, &ws.match_labels, "");
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
    settings(
        ctx,
        Settings {
            outlier: tp.outlier_detection.as_ref(),
            pool: tp.connection_pool.as_ref(),
            lb: tp.load_balancer.as_ref(),
            tls: tp.tls.as_ref(),
        },
        p,
    );
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
    settings(
        ctx,
        Settings {
            outlier: pl.outlier_detection.as_ref(),
            pool: pl.connection_pool.as_ref(),
            lb: pl.load_balancer.as_ref(),
            tls: pl.tls.as_ref(),
        },
        pp,
    );
}

/// The settings a policy and a port's policy share.
struct Settings<'a> {
    outlier: Option<&'a OutlierDetection>,
    pool: Option<&'a ConnectionPoolSettings>,
    lb: Option<&'a LoadBalancerSettings>,
    tls: Option<&'a ClientTlsSettings>,
}

fn settings(ctx: &mut Ctx<'_>, s: Settings<'_>, p: &FieldPath) {
    if let Some(od) = s.outlier {
        outlier(ctx, od, &p.key("outlierDetection"));
    }
    if let Some(cp) = s.pool {
        connection_pool(ctx, cp, &p.key("connectionPool"));
    }
    if let Some(lb) = s.lb {
        load_balancer(ctx, lb, s.outlier.is_some(), &p.key("loadBalancer"));
    }
    if let Some(tls) = s.tls {
        client_tls(ctx, tls, &p.key("tls"));
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
    let regions: Vec<_> = l.failover.iter().map(|f| (&*f.from, &*f.to)).collect();
    failover(
        ctx,
        lp,
        &regions,
        &l.failover_priority,
        outlier,
        "locality lb",
    );
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
    let regions: Vec<_> = z.failover.iter().map(|f| (&*f.from, &*f.to)).collect();
    failover(
        ctx,
        zp,
        &regions,
        &z.failover_priority,
        outlier,
        "zone aware lb",
    );
}

/// What locality and zone-aware settings share: failover needs outlier
/// detection in the same policy, and each `failover` entry names two
/// different regions.
fn failover(
    ctx: &mut Ctx<'_>,
    p: &FieldPath,
    regions: &[(&str, &str)],
    priority: &[String],
    outlier: bool,
    what: &str,
) {
    if (!regions.is_empty() || !priority.is_empty()) && !outlier {
        ctx.warn(
            p,
            "outlier detection policy must be provided for failover",
            "add outlierDetection to the same traffic policy",
        );
    }
    for (i, (from, to)) in regions.iter().enumerate() {
        region_failover(ctx, from, to, &p.key("failover").index(i), what);
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
/// empty part (a locality splits in at most three, the last taking the
/// rest); no locality that an earlier one already covers (a wildcard
/// covers what follows it, not what came before).
fn localities_error<'a>(localities: impl Iterator<Item = &'a str>) -> Option<String> {
    use std::collections::BTreeMap;
    type Zones<'a> = BTreeMap<&'a str, BTreeMap<&'a str, bool>>;
    let mut seen: BTreeMap<&str, Zones<'_>> = BTreeMap::new();
    let overlap = |loc: &str| {
        Some(format!(
            "locality {loc} overlap with previous specified ones"
        ))
    };
    for loc in localities {
        let stars = loc.matches('*').count();
        if stars > 1 || (stars == 1 && !loc.ends_with('*')) {
            return Some(format!(
                "locality {loc} wildcard '*' number can not exceed 1 and must be in the end"
            ));
        }
        if seen.contains_key("*") {
            return overlap(loc);
        }
        let parts: Vec<&str> = loc.splitn(3, '/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Some(format!(
                "locality {loc} must not contain empty region/zone/subzone info"
            ));
        }
        let region = parts[0];
        match parts.len() {
            1 => {
                if seen.contains_key(region) {
                    return overlap(loc);
                }
                seen.insert(
                    region,
                    BTreeMap::from([("*", BTreeMap::from([("*", true)]))]),
                );
            }
            2 => {
                let zone = parts[1];
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") || zones.contains_key(zone) {
                    return overlap(loc);
                }
                zones.insert(zone, BTreeMap::from([("*", true)]));
            }
            _ => {
                let (zone, subzone) = (parts[1], parts[2]);
                let zones = seen.entry(region).or_default();
                if zones.contains_key("*") {
                    return overlap(loc);
                }
                let subzones = zones.entry(zone).or_default();
                if subzones.contains_key("*") || subzones.contains_key(subzone) {
                    return overlap(loc);
                }
                subzones.insert(subzone, true);
            }
        }
    }
    None
}

/// Istio's `validateConnectionPool`.
pub(super) fn connection_pool(ctx: &mut Ctx<'_>, cp: &ConnectionPoolSettings, p: &FieldPath) {
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
        checks::non_negative(ctx, &tp, "maxConnections", tcp.max_connections);
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
        checks::non_negative(
            ctx,
            &hp,
            "http1MaxPendingRequests",
            http.http1_max_pending_requests,
        );
        checks::non_negative(ctx, &hp, "http2MaxRequests", http.http2_max_requests);
        checks::non_negative(
            ctx,
            &hp,
            "maxRequestsPerConnection",
            http.max_requests_per_connection,
        );
        checks::non_negative(ctx, &hp, "maxRetries", http.max_retries);
        checks::non_negative(
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
    checks::non_negative(
        ctx,
        p,
        "consecutiveGatewayErrors",
        od.consecutive_gateway_errors,
    );
    checks::non_negative(ctx, p, "consecutive5xxErrors", od.consecutive_5xx_errors);
    checks::non_negative(
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
