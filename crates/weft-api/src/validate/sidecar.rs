//! Sidecar validation, after Istio's `ValidateSidecar`.

use std::collections::{BTreeMap, BTreeSet};

use crate::path::FieldPath;
use crate::types::networking::*;

use super::destination_rule::connection_pool;
use super::gateway::{bind_ip, namespaced_host, tls_options, Hosts};
use super::{checks, Ctx};

pub fn sidecar(ctx: &mut Ctx<'_>, sc: &Sidecar, spec: &FieldPath) {
    if let Some(ws) = &sc.workload_selector {
        let wp = spec.key("workloadSelector");
        let before = ctx.error_count();
        checks::selector_wildcards(ctx, &wp.key("labels"), &ws.labels);
        if ctx.error_count() > before {
            return;
        }
        checks::empty_selector(ctx, &wp, &ws.labels, "sidecar: ");
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        ctx.error(
            spec,
            "sidecar: empty configuration provided",
            "add egress: [{hosts: ['./*', 'istio-system/*']}]",
        );
        return;
    }
    let mut ports = BTreeSet::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        ingress(ctx, l, &spec.key("ingress").index(i), &mut ports);
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        connection_pool(ctx, cp, &spec.key("inboundConnectionPool"));
    }
    egress(ctx, sc, spec);
    if let Some(tp) = &sc.outbound_traffic_policy {
        outbound_traffic_policy(ctx, tp, &spec.key("outboundTrafficPolicy"));
    }
}

fn ingress(ctx: &mut Ctx<'_>, l: &IngressListener, ip: &FieldPath, ports: &mut BTreeSet<u32>) {
    let Some(port) = &l.port else {
        ctx.error(
            &ip.key("port"),
            "sidecar: port is required for ingress listeners",
            "add port: {number: 9080, protocol: HTTP, name: http}",
        );
        return;
    };
    let pp = ip.key("port");
    listener_port(ctx, port, &pp);
    checks::port(ctx, &pp.key("number"), port.number);
    if !l.bind.is_empty() {
        bind_ip(ctx, &ip.key("bind"), &l.bind);
    }
    if !ports.insert(port.number) {
        ctx.error(
            &pp.key("number"),
            "sidecar: ports on IP bound listeners must be unique",
            "give each listener its own port",
        );
    }
    if !l.default_endpoint.is_empty() {
        default_endpoint(ctx, &l.default_endpoint, &ip.key("defaultEndpoint"));
    }
    if let Some(tls) = &l.tls {
        ingress_tls(ctx, tls, port, &ip.key("tls"));
    }
    if let Some(cp) = &l.connection_pool {
        connection_pool(ctx, cp, &ip.key("connectionPool"));
        if cp.http.is_some() && !checks::is_http_protocol(&port.protocol) {
            ctx.warn(
                &ip.key("connectionPool").key("http"),
                format!(
                    "sidecar: HTTP connection pool settings are configured for port {} ({:?}) but its protocol is not HTTP ({}); only TCP settings will apply",
                    port.number, port.name, port.protocol
                ),
                "declare the port's protocol HTTP, or keep only tcp settings",
            );
        }
    }
}

/// A listener port: no targetPort, an optional name and its protocol
/// (empty: sniffed).
fn listener_port(ctx: &mut Ctx<'_>, port: &Port, pp: &FieldPath) {
    if port.target_port.is_some_and(|t| t > 0) {
        ctx.error(
            &pp.key("targetPort"),
            "targetPort has no impact on Sidecars",
            "remove targetPort",
        );
    }
    if !port.name.is_empty() {
        checks::port_name(ctx, &pp.key("name"), &port.name);
    }
    if !port.protocol.is_empty() {
        checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT`, `:PORT`
/// or a unix socket.
fn default_endpoint(ctx: &mut Ctx<'_>, ep: &str, p: &FieldPath) {
    if ep.starts_with("unix://") {
        checks::unix_address(ctx, p, ep);
        return;
    }
    let fix = "write 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///path";
    let Some((host, port)) = ep.rsplit_once(':') else {
        ctx.error(p, format!("defaultEndpoint {ep:?} has no port"), fix);
        return;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if !matches!(host, "" | "127.0.0.1" | "0.0.0.0" | "::1" | "::") {
        ctx.error(
            p,
            "sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:port, [::]:port, unix://filepath or unset",
            fix,
        );
    }
    match port.parse::<u32>() {
        Ok(n) => checks::port(ctx, p, n),
        Err(_) => ctx.error(
            p,
            format!("sidecar: defaultEndpoint port ({port}) is not a number"),
            fix,
        ),
    }
}

fn ingress_tls(ctx: &mut Ctx<'_>, tls: &ServerTlsSettings, port: &Port, tp: &FieldPath) {
    for (set, field, what) in [
        (
            !tls.subject_alt_names.is_empty(),
            "subjectAltNames",
            "subjectAltNames is not supported in ingress tls",
        ),
        (
            tls.https_redirect,
            "httpsRedirect",
            "httpsRedirect is not supported",
        ),
        (
            tls.credential_name.is_some(),
            "credentialName",
            "credentialName is not currently supported",
        ),
        (
            !tls.credential_names.is_empty(),
            "credentialNames",
            "credentialNames is not currently supported",
        ),
        (
            !tls.tls_certificates.is_empty(),
            "tlsCertificates",
            "tlsCertificates is not currently supported",
        ),
    ] {
        if set {
            ctx.error(
                &tp.key(field),
                format!("sidecar: {what}"),
                "a sidecar's ingress TLS takes serverCertificate, privateKey and caCertificates files",
            );
        }
    }
    if let Some(mode @ (ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough)) = tls.mode {
        let name = if mode == ServerTlsMode::IstioMutual {
            "ISTIO_MUTUAL"
        } else {
            "AUTO_PASSTHROUGH"
        };
        ctx.error(
            &tp.key("mode"),
            format!("configuration is invalid: cannot set mode to {name} in sidecar ingress tls"),
            "use SIMPLE or MUTUAL",
        );
    }
    if !checks::is_tls_protocol(&port.protocol) {
        ctx.error(
            tp,
            "server cannot have TLS settings for non HTTPS/TLS ports",
            "declare the port HTTPS or TLS",
        );
    }
    tls_options(ctx, tls, tp);
}

fn egress(ctx: &mut Ctx<'_>, sc: &Sidecar, spec: &FieldPath) {
    let mut ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all = false;
    let last = sc.egress.len().saturating_sub(1);
    for (i, e) in sc.egress.iter().enumerate() {
        let ep = spec.key("egress").index(i);
        match &e.port {
            None if catch_all => {
                ctx.error(
                    &ep,
                    "sidecar: egress can have only one listener with empty port",
                    "give the other listeners a port",
                );
                continue;
            }
            None if i == last => catch_all = true,
            None => ctx.error(
                &ep,
                "sidecar: the egress listener with empty port should be the last listener in the list",
                "move it to the end",
            ),
            Some(port) => {
                egress_port(ctx, e, port, &ep);
                let unique = if port.number == 0 {
                    sockets.insert(e.bind.as_str())
                } else {
                    ports.insert(port.number)
                };
                if !unique {
                    let what = if port.number == 0 { "unix domain socket values for listeners" } else { "ports on IP bound listeners" };
                    ctx.error(&ep.key("port"), format!("sidecar: {what} must be unique"), "give each listener its own");
                }
            }
        }
        egress_hosts(ctx, e, &ep.key("hosts"));
    }
}

/// Istio's `validateSidecarEgressPortBindAndCaptureMode`: port 0 is a
/// unix-socket listener.
fn egress_port(ctx: &mut Ctx<'_>, e: &EgressListener, port: &Port, ep: &FieldPath) {
    let pp = ep.key("port");
    listener_port(ctx, port, &pp);
    if port.number == 0 {
        if !e.bind.starts_with("unix://") {
            ctx.error(
                &ep.key("bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
                "bind to unix:///path.sock, or give a port number",
            );
        } else {
            checks::unix_address(ctx, &ep.key("bind"), &e.bind);
        }
        if matches!(e.capture_mode, Some(CaptureMode::Iptables)) {
            ctx.error(
                &ep.key("captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
                "use captureMode: NONE",
            );
        }
    } else {
        checks::port(ctx, &pp.key("number"), port.number);
        if !e.bind.is_empty() {
            bind_ip(ctx, &ep.key("bind"), &e.bind);
        }
    }
}

/// Hosts as `namespace/host`; a host named twice, or `*/*` beside others,
/// is warned about.
fn egress_hosts(ctx: &mut Ctx<'_>, e: &EgressListener, hp: &FieldPath) {
    if e.hosts.is_empty() {
        ctx.error(
            hp,
            "sidecar: egress listener must contain at least one host",
            "e.g. hosts: ['./*']",
        );
        return;
    }
    let own = ctx.resource.namespace().to_owned();
    let mut by_ns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (j, h) in e.hosts.iter().enumerate() {
        let p = hp.index(j);
        if let Some((ns, svc)) = h.split_once('/').filter(|(ns, _)| !ns.starts_with('~')) {
            let ns = if ns == "." {
                own.clone()
            } else {
                ns.to_owned()
            };
            let seen = by_ns.entry(ns).or_default();
            let duplicate = if svc == "*" {
                !seen.is_empty()
            } else {
                seen.contains(svc) || seen.contains("*")
            };
            if duplicate {
                ctx.warn(
                    &p,
                    format!("duplicated egress host: {h}"),
                    "list each host once",
                );
            }
            seen.insert(svc.to_owned());
        }
        namespaced_host(ctx, &p, h, Hosts::Sidecar);
    }
    let all = by_ns.get("*").is_some_and(|s| s.contains("*"));
    if all && by_ns.len() != 1 {
        ctx.warn(
            hp,
            "`*/*` host select all resources, no other hosts can be added",
            "keep */* alone, or list the namespaces",
        );
    }
}

/// Istio's `validateSidecarOutboundTrafficPolicy`.
fn outbound_traffic_policy(ctx: &mut Ctx<'_>, tp: &OutboundTrafficPolicy, p: &FieldPath) {
    let Some(proxy) = &tp.egress_proxy else {
        return;
    };
    let pp = p.key("egressProxy");
    if tp.mode != Some(OutboundMode::AllowAny) {
        ctx.error(
            &pp,
            "sidecar: egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode",
            "set mode: ALLOW_ANY",
        );
        return;
    }
    if let Some(why) = checks::fqdn_error(&proxy.host) {
        ctx.error(
            &pp.key("host"),
            why,
            "name the egress proxy's host, e.g. egress.example.com",
        );
    }
    let Some(port) = &proxy.port else {
        ctx.error(
            &pp.key("port"),
            "sidecar: egressProxy port must be non-nil",
            "add port: {number: 3128}",
        );
        return;
    };
    if proxy.host == "*" {
        ctx.error(
            &pp.key("host"),
            "invalid destination host *",
            "name one host",
        );
    }
    if !proxy.subset.is_empty() && !checks::is_istio_label(&proxy.subset) {
        ctx.error(
            &pp.key("subset"),
            format!("subset name is invalid: {}", proxy.subset),
            "subset names are DNS labels such as v1",
        );
    }
    checks::port(ctx, &pp.key("port").key("number"), port.number);
}
