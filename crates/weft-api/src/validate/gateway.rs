//! Gateway validation, after Istio's `ValidateGateway`, `validateServer`
//! and `validateTLSOptions` (the last shared with Sidecar ingress TLS).

use std::collections::BTreeSet;

use base64::Engine;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, Ctx};

/// The annotation Istio puts on Gateways it converts from the Gateway
/// API, which relaxes the name and `~` host rules.
const GATEWAY_SEMANTICS: &str = "internal.istio.io/gateway-semantics";

pub fn gateway(ctx: &mut Ctx<'_>, gw: &Gateway, spec: &FieldPath) {
    let semantics = ctx
        .resource
        .meta
        .annotations
        .get(GATEWAY_SEMANTICS)
        .is_some_and(|v| v == "gateway");
    let name = ctx.resource.name().to_owned();
    if !semantics && !checks::is_istio_label(&name) {
        ctx.error(
            &FieldPath::root().key("metadata").key("name"),
            format!("invalid gateway name: {name:?}"),
            "Gateway names are DNS labels (no dots), e.g. bookinfo-gateway",
        );
    }
    if gw.servers.is_empty() {
        ctx.error(
            &spec.key("servers"),
            "gateway must have at least one server",
            "add servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]",
        );
    }
    let mut names = BTreeSet::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let sp = spec.key("servers").index(i);
        server(ctx, s, &sp, semantics);
        if let Some(port) = &s.port {
            if !names.insert(port.name.as_str()) {
                ctx.error(
                    &sp.key("port").key("name"),
                    format!(
                        "port names in servers must be unique: duplicate name {:?}",
                        port.name
                    ),
                    "give each server's port a unique name",
                );
            }
            let https_redirect = s.tls.as_ref().is_some_and(|t| t.https_redirect);
            if https_redirect && !checks::is_http_protocol(&port.protocol) {
                ctx.warn(
                    &sp.key("tls").key("httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                    "move httpsRedirect to the plain-HTTP server",
                );
            }
        }
    }
}

fn server(ctx: &mut Ctx<'_>, s: &Server, sp: &FieldPath, semantics: bool) {
    if s.hosts.is_empty() {
        ctx.error(
            &sp.key("hosts"),
            "server config must contain at least one host",
            "e.g. hosts: ['*'] or ['bookinfo.example.com']",
        );
    }
    for (j, h) in s.hosts.iter().enumerate() {
        namespaced_host(
            ctx,
            &sp.key("hosts").index(j),
            h,
            Hosts::Gateway { semantics },
        );
    }
    let port_ok = server_port(ctx, s, &sp.key("port"));
    server_bind(ctx, s, &sp.key("bind"));
    if let Some(tls) = &s.tls {
        tls_options(ctx, tls, &sp.key("tls"));
    }
    let Some(port) = s.port.as_ref().filter(|_| port_ok) else {
        return;
    };
    let is_tls = checks::is_tls_protocol(&port.protocol);
    match &s.tls {
        None if is_tls => ctx.error(
            &sp.key("tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
            "add tls: {mode: SIMPLE, credentialName: my-cert}",
        ),
        Some(tls) if !is_tls && checks::is_http_protocol(&port.protocol) => {
            let files = tls.ca_certificates.is_some()
                || tls.private_key.is_some()
                || tls.server_certificate.is_some();
            if !is_passthrough(tls) || files {
                ctx.error(
                    &sp.key("tls"),
                    "server cannot have TLS settings for plain text HTTP ports",
                    "use protocol: HTTPS to terminate TLS, or keep only httpsRedirect",
                );
            }
        }
        Some(_) if !is_tls => ctx.error(
            &sp.key("tls"),
            "server cannot have TLS settings for non HTTPS/TLS ports",
            "use protocol: TLS or HTTPS, or remove tls",
        ),
        _ => {}
    }
}

/// A mode left out is PASSTHROUGH, the enum's first value.
fn is_passthrough(tls: &ServerTlsSettings) -> bool {
    matches!(
        tls.mode,
        None | Some(ServerTlsMode::Passthrough) | Some(ServerTlsMode::AutoPassthrough)
    )
}

/// Istio's `validateServerPort`; whether the port is sound.
fn server_port(ctx: &mut Ctx<'_>, s: &Server, pp: &FieldPath) -> bool {
    let Some(port) = &s.port else {
        ctx.error(
            pp,
            "port is required",
            "add port: {number: 80, name: http, protocol: HTTP}",
        );
        return false;
    };
    let before = ctx.error_count();
    if port.protocol.is_empty() {
        ctx.error(
            &pp.key("protocol"),
            "invalid protocol \"\"",
            format!(
                "e.g. protocol: HTTP; valid protocols: {}",
                checks::PROTOCOLS.join(", ")
            ),
        );
    } else {
        checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
    }
    if port.number > 0 || !s.bind.starts_with("unix://") {
        checks::port(ctx, &pp.key("number"), port.number);
    }
    if port.target_port.is_some_and(|t| t > 0) {
        ctx.error(
            &pp.key("targetPort"),
            "targetPort has no impact on Gateways",
            "remove targetPort",
        );
    }
    if port.name.is_empty() {
        ctx.error(&pp.key("name"), "port name must be set", "e.g. name: http");
    }
    ctx.error_count() == before
}

/// Istio's `validateServerBind`: a unix socket (port 0) or an IP.
fn server_bind(ctx: &mut Ctx<'_>, s: &Server, bp: &FieldPath) {
    if s.bind.starts_with("unix://") {
        checks::unix_address(ctx, bp, &s.bind);
        if s.port.as_ref().is_some_and(|p| p.number != 0) {
            ctx.error(
                bp,
                "port number must be 0 for unix domain socket",
                "set port.number: 0 for a unix socket bind",
            );
        }
    } else if !s.bind.is_empty() {
        bind_ip(ctx, bp, &s.bind);
    }
}

/// An IP address as Go's `netip.ParseAddr` reads one: IPv6 may carry a
/// zone (`::1%lo`).
pub(super) fn bind_ip(ctx: &mut Ctx<'_>, p: &FieldPath, bind: &str) {
    let addr = match bind.split_once('%') {
        Some((ip, zone)) if ip.contains(':') && !zone.is_empty() => ip,
        _ => bind,
    };
    if !checks::is_ip(addr) {
        ctx.error(
            p,
            format!("{bind} is not a valid IP"),
            "use an address such as 127.0.0.1",
        );
    }
}

/// Where a `namespace/host` is written: Gateway servers allow a bare
/// host and IP addresses; Sidecar egress needs the namespace and allows
/// `~ns` to exclude one.
#[derive(Clone, Copy)]
pub(super) enum Hosts {
    Gateway { semantics: bool },
    Sidecar,
}

/// Istio's `ValidateNamespaceSlashWildcardHostname`.
pub(super) fn namespaced_host(ctx: &mut Ctx<'_>, p: &FieldPath, h: &str, on: Hosts) {
    let Some((ns, host)) = h.split_once('/') else {
        match on {
            Hosts::Gateway { .. } => host_part(ctx, p, h, on),
            Hosts::Sidecar => ctx.error(
                p,
                format!("host {h:?} must be of form namespace/dnsName"),
                format!("write e.g. \"*/{h}\" or \"./{h}\""),
            ),
        }
        return;
    };
    if ns.is_empty() || host.is_empty() {
        ctx.error(
            p,
            format!("config namespace and dnsName in host entry {h:?} cannot be empty"),
            "write namespace/host, e.g. ./reviews.default.svc.cluster.local",
        );
    }
    let ns_ok = match on {
        Hosts::Sidecar => {
            let ns = ns.strip_prefix('~').unwrap_or(ns);
            ns.is_empty() || ns == "*" || ns == "." || checks::is_istio_label(ns)
        }
        Hosts::Gateway { semantics } => {
            ns == "*" || ns == "." || (ns == "~" && semantics) || checks::is_istio_label(ns)
        }
    };
    if !ns_ok {
        ctx.error(
            p,
            format!("invalid namespace value {ns:?} in {h:?}"),
            "write namespace/host with namespace *, . or a namespace name",
        );
    }
    host_part(ctx, p, host, on);
}

/// Istio's `validateSidecarOrGatewayHostnamePart`.
fn host_part(ctx: &mut Ctx<'_>, p: &FieldPath, host: &str, on: Hosts) {
    if host != "*" && !host.contains('.') {
        ctx.error(
            p,
            format!("short names (non FQDN) are not allowed: {host:?}"),
            format!("write the full name, e.g. {host}.default.svc.cluster.local"),
        );
    }
    if let Some(why) = checks::wildcard_domain_error(host) {
        let ip_on_gateway = matches!(on, Hosts::Gateway { .. }) && checks::is_ip(host);
        if !ip_on_gateway {
            ctx.error(
                p,
                why,
                "write a DNS name such as bookinfo.example.com or *.example.com",
            );
        }
    }
    if checks::is_partial_wildcard(host) {
        ctx.error(
            p,
            format!("partial wildcard {host:?} not allowed"),
            "a wildcard must be the whole first label, as in *.example.com, or * alone",
        );
    }
}

/// Istio's `validateTLSOptions`, for Gateway servers and Sidecar ingress.
pub(super) fn tls_options(ctx: &mut Ctx<'_>, tls: &ServerTlsSettings, p: &FieldPath) {
    tls_versions(ctx, tls, p);
    cipher_suites(ctx, &tls.cipher_suites, &p.key("cipherSuites"));
    ecdh_curves(ctx, &tls.ecdh_curves, &p.key("ecdhCurves"));
    pins(ctx, tls, p);
    let creds = tls.credential_name.is_some();
    let cred_list = !tls.credential_names.is_empty();
    let files = tls.server_certificate.is_some() || tls.private_key.is_some();
    let multi = !tls.tls_certificates.is_empty();
    match tls.mode {
        Some(ServerTlsMode::IstioMutual) => {
            for (set, field) in [
                (tls.server_certificate.is_some(), "serverCertificate"),
                (tls.private_key.is_some(), "privateKey"),
                (tls.ca_certificates.is_some(), "caCertificates"),
                (multi, "tlsCertificates"),
                (creds, "credentialName"),
                (cred_list, "credentialNames"),
            ] {
                if set {
                    ctx.error(
                        &p.key(field),
                        format!("ISTIO_MUTUAL TLS cannot have an associated {field}"),
                        "ISTIO_MUTUAL uses the mesh's certificates: remove it, or use MUTUAL",
                    );
                }
            }
            return;
        }
        None | Some(ServerTlsMode::Passthrough) | Some(ServerTlsMode::AutoPassthrough)
            if tls.ca_crl.is_some()
                || files
                || tls.ca_certificates.is_some()
                || multi
                || creds
                || cred_list =>
        {
            ctx.warn(
                p,
                "PASSTHROUGH mode does not use certificates, they will be ignored (a tls block without mode is PASSTHROUGH)",
                "set mode: SIMPLE to terminate TLS with them, or remove them",
            );
        }
        _ => {}
    }
    let pair = tls.server_certificate.is_some() && tls.private_key.is_some();
    let sources = [pair, creds, cred_list, multi]
        .iter()
        .filter(|b| **b)
        .count();
    if sources > 1 {
        ctx.error(
            p,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates should be specified",
            "keep one source of certificates",
        );
    }
    let terminating = matches!(
        tls.mode,
        Some(ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual)
    );
    if terminating && (creds || cred_list) {
        return;
    }
    if terminating {
        let mutual = tls.mode != Some(ServerTlsMode::Simple);
        let what = if mutual { "MUTUAL TLS" } else { "SIMPLE TLS" };
        if mutual && tls.ca_certificates.is_none() {
            ctx.error(
                &p.key("caCertificates"),
                format!("{what} requires a client CA bundle"),
                "set caCertificates, or use credentialName with a ca.crt",
            );
        }
        if tls.tls_certificates.len() > 2 {
            ctx.warn(
                &p.key("tlsCertificates"),
                format!("{what} can support up to 2 server certificates"),
                "keep one RSA and one ECDSA certificate",
            );
        }
        let certs: Vec<(bool, bool, FieldPath)> = if multi {
            tls.tls_certificates
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        c.server_certificate.is_some(),
                        c.private_key.is_some(),
                        p.key("tlsCertificates").index(i),
                    )
                })
                .collect()
        } else {
            vec![(
                tls.server_certificate.is_some(),
                tls.private_key.is_some(),
                p.clone(),
            )]
        };
        for (cert, key, cp) in certs {
            if !cert {
                ctx.error(
                    &cp.key("serverCertificate"),
                    format!("{what} requires a server certificate"),
                    "set credentialName, or serverCertificate and privateKey",
                );
            }
            if !key {
                ctx.error(
                    &cp.key("privateKey"),
                    format!("{what} requires a private key"),
                    "set credentialName, or serverCertificate and privateKey",
                );
            }
        }
    }
    if tls.ca_crl.is_some() {
        if creds {
            ctx.error(
                &p.key("caCrl"),
                "CRL is not supported with credentialName; CRL has to be specified in the credential",
                "put ca.crl in the credential's secret",
            );
        }
        if tls.mode == Some(ServerTlsMode::Simple) {
            ctx.error(
                &p.key("caCrl"),
                "CRL is not supported with SIMPLE TLS",
                "revocation applies to client certificates: use MUTUAL",
            );
        }
    }
}

/// Certificate pins as Envoy takes them. Istio's validation does not
/// check them; a malformed one makes weft's server refuse every
/// handshake (Envoy refuses the listener), so weft warns.
fn pins(ctx: &mut Ctx<'_>, tls: &ServerTlsSettings, p: &FieldPath) {
    for (i, pin) in tls.verify_certificate_spki.iter().enumerate() {
        let ok = base64::engine::general_purpose::STANDARD
            .decode(pin.trim())
            .is_ok_and(|b| b.len() == 32);
        if !ok {
            ctx.warn(
                &p.key("verifyCertificateSpki").index(i),
                format!("{pin:?} is not a SHA-256 SPKI pin: this server will refuse every handshake"),
                "write the base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo (44 characters)",
            );
        }
    }
    for (i, pin) in tls.verify_certificate_hash.iter().enumerate() {
        let hex: String = pin.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            ctx.warn(
                &p.key("verifyCertificateHash").index(i),
                format!("{pin:?} is not a SHA-256 certificate fingerprint: this server will refuse every handshake"),
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

/// Curves Envoy knows that weft (ring) has no key exchange for; a
/// server left with none refuses every handshake.
fn ecdh_curves(ctx: &mut Ctx<'_>, curves: &[String], p: &FieldPath) {
    let offered = ["X25519", "P-256", "P-384"];
    let missing: Vec<&str> = curves
        .iter()
        .map(String::as_str)
        .filter(|c| !offered.contains(c))
        .collect();
    if missing.is_empty() {
        return;
    }
    let none_left = curves.iter().all(|c| !offered.contains(&c.as_str()));
    let consequence = if none_left {
        ": none is left, so this server refuses every handshake"
    } else {
        ""
    };
    ctx.warn(
        p,
        format!("weft does not offer ecdhCurves {missing:?}{consequence}"),
        "weft offers X25519, P-256 and P-384",
    );
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
