//! The security policies that select a proxy: PeerAuthentication,
//! RequestAuthentication and AuthorizationPolicy.

use weft_api::types::security as sec;
use weft_model::*;

use super::index::{policy_scope, PolicyScope};
use super::{Compiler, Me};

pub fn build(c: &Compiler<'_>, me: &Me) -> Security {
    let authorization = authorization(c, me);
    let network_ingress = super::network_policy::ingress(c, me);
    let network_egress = super::network_policy::egress(c, me);
    Security {
        trust_domain: c.mesh.trust_domain.clone(),
        inbound_mtls: peer_mode(c, me),
        jwt_rules: jwt_rules(c, me),
        ext_authz: ext_authz(c, &authorization),
        workload_addresses: workload_addresses(c, &authorization, network_ingress.as_deref()),
        authorization,
        network_ingress,
        network_egress,
        trust_bundle: Vec::new(),
    }
}

/// Every meshed workload's and gateway's address and identity, when a policy of this
/// proxy matches on `source.ip` (the proxy checks a caller's address
/// against its certificate); nothing otherwise, so models stay small.
fn workload_addresses(
    c: &Compiler<'_>,
    authz: &Authorization,
    network: Option<&[AuthzPolicy]>,
) -> std::collections::BTreeMap<String, String> {
    let reads_source_ip = [&authz.custom, &authz.deny, &authz.allow, &authz.audit]
        .into_iter()
        .flatten()
        .chain(network.into_iter().flatten())
        .flat_map(|p| &p.rules)
        .flat_map(|r| r.from.iter().chain(&r.to).flatten().chain(&r.when))
        .any(|m| m.attribute == "source.ip");
    if !reads_source_ip {
        return Default::default();
    }
    let gateways = c.mesh.gateways.iter().filter_map(|g| {
        let ip = c.registry.gateway_address(g)?;
        Some((
            ip.to_string(),
            weft_model::names::spiffe_id(&c.mesh.trust_domain, &g.namespace, &g.service_account),
        ))
    });
    c.registry
        .instances
        .iter()
        .filter(|i| i.meshed)
        .filter_map(|i| {
            let ip = i.ip.clone()?;
            Some((
                ip,
                weft_model::names::spiffe_id(
                    &c.mesh.trust_domain,
                    &i.namespace,
                    &i.service_account,
                ),
            ))
        })
        .chain(gateways)
        .collect()
}

/// The `envoyExtAuthzHttp` and `envoyExtAuthzGrpc` providers the CUSTOM
/// policies name. A provider that is missing or of another type is left
/// out: the proxy then denies what those policies match.
fn ext_authz(c: &Compiler<'_>, authz: &Authorization) -> Vec<ExtAuthzProvider> {
    let wanted: std::collections::BTreeSet<&str> = authz
        .custom
        .iter()
        .filter_map(|p| p.provider.as_deref())
        .collect();
    c.index
        .mesh_config
        .extension_providers
        .iter()
        .filter(|p| wanted.contains(p.name.as_str()))
        .filter_map(|p| {
            let (service, port, timeout, fail_open, status_on_error) =
                match (&p.envoy_ext_authz_http, &p.envoy_ext_authz_grpc) {
                    (Some(h), _) => (
                        &h.service,
                        h.port,
                        &h.timeout,
                        h.fail_open,
                        &h.status_on_error,
                    ),
                    (None, Some(g)) => (
                        &g.service,
                        g.port,
                        &g.timeout,
                        g.fail_open,
                        &g.status_on_error,
                    ),
                    (None, None) => return None,
                };
            let host = crate::host::resolve(service, &c.mesh.root_namespace, &c.mesh.domain_suffix);
            let timeout_ms = timeout
                .as_deref()
                .and_then(|t| weft_api::types::common::parse_duration(t).ok())
                .map_or(600_000, |d| d.as_millis() as u64);
            let mut provider = ExtAuthzProvider {
                name: p.name.clone(),
                api: ExtAuthzApi::Http,
                cluster: format!("outbound|{port}||{host}"),
                authority: format!("{host}:{port}"),
                timeout_ms,
                fail_open,
                status_on_error: status_on_error
                    .as_deref()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(403),
                ..ExtAuthzProvider::default()
            };
            match &p.envoy_ext_authz_http {
                Some(h) => {
                    provider.path_prefix = h.path_prefix.clone().unwrap_or_default();
                    provider.include_request_headers = h
                        .include_request_headers_in_check
                        .iter()
                        .chain(&h.include_headers_in_check)
                        .map(|s| s.to_ascii_lowercase())
                        .collect();
                    provider.additional_headers = h.include_additional_headers_in_check.clone();
                    provider.headers_to_upstream_on_allow = lower(&h.headers_to_upstream_on_allow);
                    provider.headers_to_downstream_on_allow =
                        lower(&h.headers_to_downstream_on_allow);
                    provider.headers_to_downstream_on_deny =
                        lower(&h.headers_to_downstream_on_deny);
                }
                None => provider.api = ExtAuthzApi::Grpc,
            }
            Some(provider)
        })
        .collect()
}

fn lower(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.to_ascii_lowercase()).collect()
}

fn mode_of(m: Option<&sec::Mtls>) -> Option<MtlsMode> {
    match m.and_then(|m| m.mode) {
        Some(sec::MtlsMode::Strict) => Some(MtlsMode::Strict),
        Some(sec::MtlsMode::Permissive) => Some(MtlsMode::Permissive),
        Some(sec::MtlsMode::Disable) => Some(MtlsMode::Disable),
        Some(sec::MtlsMode::Unset) | None => None,
    }
}

/// Istio's precedence: workload over namespace over mesh, and port-level
/// over the workload's own mode. UNSET inherits from the level above.
pub(crate) fn peer_mode(c: &Compiler<'_>, me: &Me) -> MtlsPolicy {
    let mut levels: Vec<(
        PolicyScope,
        &weft_api::resource::Resource,
        &sec::PeerAuthentication,
    )> = c
        .index
        .peer_authentications
        .iter()
        .filter_map(|(r, pa)| {
            policy_scope(
                r.namespace(),
                pa.selector.as_ref(),
                &c.mesh.root_namespace,
                &me.namespace,
                &me.labels,
            )
            .map(|s| (s, *r, *pa))
        })
        .collect();
    levels.sort_by_key(|(s, _, _)| *s);
    let mut policy = MtlsPolicy::default();
    let mut seen = std::collections::BTreeSet::new();
    for (scope, r, pa) in levels {
        // One policy per level: the first by namespace/name, as Istio takes
        // the oldest.
        if !seen.insert(scope) {
            continue;
        }
        policy
            .origin
            .push(format!("PeerAuthentication {}/{}", r.namespace(), r.name()));
        if let Some(m) = mode_of(pa.mtls.as_ref()) {
            policy.mode = m;
        }
        if scope == PolicyScope::Workload {
            for (port, m) in &pa.port_level_mtls {
                if let Some(mode) = mode_of(Some(m)) {
                    if me.ports.iter().any(|(_, p)| p == port) {
                        policy.ports.insert(*port, mode);
                    }
                }
            }
        }
    }
    policy
}

fn jwt_rules(c: &Compiler<'_>, me: &Me) -> Vec<JwtRule> {
    let mut out = Vec::new();
    for (r, ra) in &c.index.request_authentications {
        if policy_scope(
            r.namespace(),
            ra.selector.as_ref(),
            &c.mesh.root_namespace,
            &me.namespace,
            &me.labels,
        )
        .is_none()
        {
            continue;
        }
        for rule in &ra.jwt_rules {
            out.push(JwtRule {
                origin: format!("RequestAuthentication {}/{}", r.namespace(), r.name()),
                issuer: rule.issuer.clone(),
                audiences: rule.audiences.clone(),
                jwks_uri: rule.jwks_uri.clone(),
                jwks: rule.jwks.clone(),
                from_headers: if rule.from_headers.is_empty()
                    && rule.from_params.is_empty()
                    && rule.from_cookies.is_empty()
                {
                    vec![JwtHeader {
                        name: "authorization".into(),
                        prefix: "Bearer ".into(),
                    }]
                } else {
                    rule.from_headers
                        .iter()
                        .map(|h| JwtHeader {
                            name: h.name.to_ascii_lowercase(),
                            prefix: h.prefix.clone(),
                        })
                        .collect()
                },
                from_params: if rule.from_headers.is_empty()
                    && rule.from_params.is_empty()
                    && rule.from_cookies.is_empty()
                {
                    vec!["access_token".into()]
                } else {
                    rule.from_params.clone()
                },
                from_cookies: rule.from_cookies.clone(),
                output_payload_to_header: rule.output_payload_to_header.clone(),
                output_claim_to_headers: rule
                    .output_claim_to_headers
                    .iter()
                    .map(|h| ClaimToHeader {
                        header: h.header.to_ascii_lowercase(),
                        claim: h.claim.clone(),
                    })
                    .collect(),
                forward_original_token: rule.forward_original_token,
                space_delimited_claims: rule.space_delimited_claims.clone(),
            });
        }
    }
    out
}

fn matcher(attribute: &str, values: &[String], negate: bool) -> Option<AuthzMatch> {
    (!values.is_empty()).then(|| AuthzMatch {
        attribute: attribute.into(),
        values: values.to_vec(),
        negate,
    })
}

/// A rule's `from` source; principals are written for every trust domain
/// of `bundle` (the mesh's and its aliases).
fn source(s: &sec::Source, bundle: &[String]) -> Vec<AuthzMatch> {
    let principals = super::trust_domain::with_aliases(&s.principals, bundle);
    let not_principals = super::trust_domain::with_aliases(&s.not_principals, bundle);
    [
        matcher("source.principal", &principals, false),
        matcher("source.principal", &not_principals, true),
        matcher("request.auth.principal", &s.request_principals, false),
        matcher("request.auth.principal", &s.not_request_principals, true),
        matcher("source.namespace", &s.namespaces, false),
        matcher("source.namespace", &s.not_namespaces, true),
        matcher("source.ip", &s.ip_blocks, false),
        matcher("source.ip", &s.not_ip_blocks, true),
        matcher("remote.ip", &s.remote_ip_blocks, false),
        matcher("remote.ip", &s.not_remote_ip_blocks, true),
        matcher("source.serviceAccount", &s.service_accounts, false),
        matcher("source.serviceAccount", &s.not_service_accounts, true),
        matcher("source.trustDomain", &s.trust_domains, false),
        matcher("source.trustDomain", &s.not_trust_domains, true),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn operation(o: &sec::Operation) -> Vec<AuthzMatch> {
    [
        matcher("request.host", &o.hosts, false),
        matcher("request.host", &o.not_hosts, true),
        matcher("destination.port", &o.ports, false),
        matcher("destination.port", &o.not_ports, true),
        matcher("request.method", &o.methods, false),
        matcher("request.method", &o.not_methods, true),
        matcher("request.path", &o.paths, false),
        matcher("request.path", &o.not_paths, true),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn authorization(c: &Compiler<'_>, me: &Me) -> Authorization {
    let mut out = Authorization::default();
    let bundle: Vec<String> = std::iter::once(c.mesh.trust_domain.clone())
        .chain(c.index.mesh_config.trust_domain_aliases.iter().cloned())
        .collect();
    for (r, ap) in &c.index.authorization_policies {
        if policy_scope(
            r.namespace(),
            ap.selector.as_ref(),
            &c.mesh.root_namespace,
            &me.namespace,
            &me.labels,
        )
        .is_none()
        {
            continue;
        }
        let rules = ap
            .rules
            .iter()
            .flatten()
            .map(|rule| AuthzRule {
                from: rule
                    .from
                    .iter()
                    .filter_map(|f| f.source.as_ref())
                    .map(|src| source(src, &bundle))
                    .collect(),
                to: rule
                    .to
                    .iter()
                    .filter_map(|t| t.operation.as_ref())
                    .map(operation)
                    .collect(),
                when: rule
                    .when
                    .iter()
                    .flat_map(|w| {
                        [
                            matcher(&w.key, &w.values, false),
                            matcher(&w.key, &w.not_values, true),
                        ]
                    })
                    .flatten()
                    .collect(),
            })
            .collect();
        let policy = AuthzPolicy {
            name: format!("AuthorizationPolicy {}/{}", r.namespace(), r.name()),
            provider: ap.provider.as_ref().map(|p| p.name.clone()),
            rules,
        };
        // A value that cannot be read enforces the policy, as Istio does
        // (validation warns about it).
        let dry_run = weft_api::annotations::dry_run(&r.meta.annotations).unwrap_or(false);
        match (ap.action.unwrap_or_default(), dry_run) {
            (sec::AuthzAction::Allow, false) => out.allow.push(policy),
            (sec::AuthzAction::Deny, false) => out.deny.push(policy),
            (sec::AuthzAction::Audit, false) => out.audit.push(policy),
            (sec::AuthzAction::Custom, false) => out.custom.push(policy),
            (sec::AuthzAction::Allow, true) => out.dry_run_allow.push(policy),
            (sec::AuthzAction::Deny, true) => out.dry_run_deny.push(policy),
            (sec::AuthzAction::Custom, true) => out.dry_run_custom.push(policy),
            // AUDIT only records already; a dry run of it changes nothing.
            (sec::AuthzAction::Audit, true) => out.audit.push(policy),
        }
    }
    out
}
