//! Validation of `security.istio.io` PeerAuthentication and
//! RequestAuthentication, and the workload selection (selector or
//! targetRef) the security and telemetry kinds share.

use crate::path::FieldPath;
use crate::types::common::{PolicyTargetReference, WorkloadSelector};
use crate::types::security::*;

use super::security_checks as sc;
use super::{checks, written, Ctx};

/// Condition keys Istio's AuthorizationPolicy accepts in `when`.
pub const CONDITION_KEYS: &[&str] = &[
    "request.headers",
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "source.trustDomain",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "request.auth.claims",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

/// The (group, kind) pairs a targetRef may name, as Istio allows them.
/// An empty group is the core group.
const TARGET_KINDS: &[(&str, &str)] = &[
    ("core", "Service"),
    ("networking.istio.io", "ServiceEntry"),
    ("gateway.networking.k8s.io", "Gateway"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// At most this many `targetRefs` (the CRDs' maxItems).
const MAX_TARGET_REFS: usize = 16;

/// How a policy chooses its workloads: a selector, one targetRef or a
/// list of them, as AuthorizationPolicy, RequestAuthentication and
/// Telemetry all do.
pub(super) fn selector_and_target(
    ctx: &mut Ctx<'_>,
    spec: &FieldPath,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    if selector.is_some() && (target_ref.is_some() || !target_refs.is_empty()) {
        ctx.error(
            &spec.key("selector"),
            "selector and targetRef(s) are mutually exclusive",
            "keep one way of choosing the workloads",
        );
    }
    if target_ref.is_some() && !target_refs.is_empty() {
        ctx.error(
            &spec.key("targetRefs"),
            "targetRef and targetRefs are mutually exclusive",
            "move targetRef into targetRefs",
        );
    }
    if let Some(s) = selector {
        checks::labels(
            ctx,
            &spec.key("selector").key("matchLabels"),
            &s.match_labels,
        );
        if s.match_labels.is_empty() {
            ctx.warn(
                &spec.key("selector"),
                "the selector has no labels, so it selects every workload in the namespace",
                "add matchLabels such as {app: reviews}, or remove the selector to say \"the whole namespace\" plainly",
            );
        }
    }
    if target_refs.len() > MAX_TARGET_REFS {
        ctx.error(
            &spec.key("targetRefs"),
            format!(
                "{} targetRefs are listed; at most {MAX_TARGET_REFS} targetRefs are allowed",
                target_refs.len()
            ),
            "split the policy in two",
        );
    }
    let refs = target_ref.into_iter().map(|r| (spec.key("targetRef"), r));
    let many = target_refs
        .iter()
        .enumerate()
        .map(|(i, r)| (spec.key("targetRefs").index(i), r));
    for (p, r) in refs.chain(many) {
        target(ctx, &p, r);
    }
}

fn target(ctx: &mut Ctx<'_>, p: &FieldPath, r: &PolicyTargetReference) {
    if r.name.is_empty() {
        ctx.error(
            &p.key("name"),
            "targetRef name is required",
            "name the Service or Gateway",
        );
    }
    if !r.namespace.is_empty() {
        ctx.error(
            &p.key("namespace"),
            format!(
                "targetRef namespace {:?}: a cross-namespace targetRef is not supported",
                r.namespace
            ),
            "remove namespace; a policy targets objects in its own namespace",
        );
    }
    let group = if r.group.is_empty() {
        "core"
    } else {
        r.group.as_str()
    };
    match TARGET_KINDS.iter().find(|(_, k)| *k == r.kind) {
        None => ctx.error(
            &p.key("kind"),
            format!("targetRef kind {:?} is not supported", r.kind),
            "use Service, ServiceEntry, Gateway or GatewayClass",
        ),
        Some((want, kind)) if *want != group => {
            let fix = if *want == "core" {
                format!("{kind} is in the core group: remove group or write group: \"\"")
            } else {
                format!("{kind} is in group {want}: write group: {want}")
            };
            ctx.error(
                &p.key("group"),
                format!("targetRef {}/{} is not supported", r.group, r.kind),
                fix,
            );
        }
        Some(_) => {}
    }
}

pub fn peer_authentication(ctx: &mut Ctx<'_>, pa: &PeerAuthentication, spec: &FieldPath) {
    selector_and_target(ctx, spec, pa.selector.as_ref(), None, &[]);
    if written::is_empty_map(ctx, &spec.key("portLevelMtls")) {
        ctx.error(
            &spec.key("portLevelMtls"),
            "portLevelMtls is empty",
            "give at least one port, e.g. portLevelMtls: {8080: {mode: DISABLE}}, or remove it",
        );
    }
    if !pa.port_level_mtls.is_empty() {
        let selects = pa
            .selector
            .as_ref()
            .is_some_and(|s| !s.match_labels.is_empty());
        if !selects {
            ctx.error(&spec.key("portLevelMtls"), "portLevelMtls needs a workload selector", "add selector: {matchLabels: {app: my-app}}; ports belong to workloads, not namespaces");
        }
        for port in pa.port_level_mtls.keys() {
            checks::port(
                ctx,
                &spec.key("portLevelMtls").key(&port.to_string()),
                *port,
            );
        }
    }
}

/// At most this many `spaceDelimitedClaims` (the CRD's maxItems).
const MAX_SPACE_DELIMITED_CLAIMS: usize = 64;

pub fn request_authentication(ctx: &mut Ctx<'_>, ra: &RequestAuthentication, spec: &FieldPath) {
    selector_and_target(
        ctx,
        spec,
        ra.selector.as_ref(),
        ra.target_ref.as_ref(),
        &ra.target_refs,
    );
    for (i, r) in ra.jwt_rules.iter().enumerate() {
        jwt_rule(ctx, r, &spec.key("jwtRules").index(i));
    }
}

fn jwt_rule(ctx: &mut Ctx<'_>, r: &JwtRule, p: &FieldPath) {
    let uri_field = if written::is_written(ctx, &p.key("jwks_uri")) {
        "jwks_uri"
    } else {
        "jwksUri"
    };
    let uri_error = r.jwks_uri.as_deref().and_then(|u| {
        if u.is_empty() {
            Some("it is empty".to_owned())
        } else if u.len() > 2048 {
            Some("it is longer than 2048 characters".to_owned())
        } else {
            sc::jwks_uri_error(u)
        }
    });
    if let (Some(u), Some(why)) = (&r.jwks_uri, &uri_error) {
        ctx.error(
            &p.key(uri_field),
            format!("jwksUri {u:?} is not a valid URL: {why}"),
            "write an http(s) URL, e.g. https://example.com/.well-known/jwks.json",
        );
    }
    if written::is_empty_string(ctx, &p.key("issuer")) {
        ctx.error(
            &p.key("issuer"),
            "issuer is empty",
            "set the `iss` your tokens carry, e.g. issuer: https://accounts.example.com, or remove issuer and keep jwksUri",
        );
    } else if r.issuer.is_empty() {
        match &r.jwks_uri {
            None => ctx.error(
                p,
                "issuer or jwksUri is required",
                "set the `iss` your tokens carry, e.g. issuer: https://accounts.example.com",
            ),
            Some(_) if uri_error.is_some() => {}
            Some(_) => ctx.unimplemented(
                &p.key(uri_field),
                "a rule without issuer is accepted, but weft picks a token's rule by its issuer, so tokens are refused as coming from an unknown issuer",
                "set issuer to the `iss` the tokens carry",
            ),
        }
    }
    if r.jwks.is_some() && r.jwks_uri.is_some() {
        ctx.error(
            p,
            "jwks and jwksUri are mutually exclusive",
            "keep one source of keys",
        );
    }
    if let Some(j) = &r.jwks {
        jwks(ctx, &p.key("jwks"), j);
    }
    for (j, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            ctx.error(
                &p.key("audiences").index(j),
                "empty audience",
                "remove it, or write the `aud` the tokens carry",
            );
        }
    }
    for (j, h) in r.from_headers.iter().enumerate() {
        checks::header_name(
            ctx,
            &p.key("fromHeaders").index(j).key("name"),
            &h.name,
            false,
        );
    }
    for (field, what, values) in [
        ("fromParams", "query parameter name", &r.from_params),
        ("fromCookies", "cookie name", &r.from_cookies),
        (
            "spaceDelimitedClaims",
            "claim name",
            &r.space_delimited_claims,
        ),
    ] {
        for (j, v) in values.iter().enumerate() {
            if v.is_empty() {
                ctx.error(
                    &p.key(field).index(j),
                    format!("empty {what}"),
                    format!("remove it, or give the {what}"),
                );
            }
        }
    }
    if r.space_delimited_claims.len() > MAX_SPACE_DELIMITED_CLAIMS {
        ctx.error(
            &p.key("spaceDelimitedClaims"),
            format!(
                "{} spaceDelimitedClaims are listed; at most {MAX_SPACE_DELIMITED_CLAIMS} are allowed",
                r.space_delimited_claims.len()
            ),
            "list only the claims whose values are space-separated lists",
        );
    }
    for (j, c) in r.output_claim_to_headers.iter().enumerate() {
        let cp = p.key("outputClaimToHeaders").index(j);
        if c.header.is_empty() {
            ctx.error(
                &cp.key("header"),
                "header is required",
                "name the header to write the claim to, e.g. header: x-jwt-sub",
            );
        } else if !sc::is_strict_header_name(&c.header) {
            ctx.error(
                &cp.key("header"),
                format!(
                    "header name {:?} may only hold letters, digits, '-' and '_'",
                    c.header
                ),
                "e.g. header: x-jwt-sub",
            );
        }
        if c.claim.is_empty() {
            ctx.error(
                &cp.key("claim"),
                "claim is required",
                "name the claim to copy, e.g. claim: sub",
            );
        }
    }
    if let Some(h) = &r.output_payload_to_header {
        checks::header_name(ctx, &p.key("outputPayloadToHeader"), h, false);
    }
    checks::duration(ctx, &p.key("timeout"), r.timeout.as_ref());
    if r.presence == Some(JwtPresence::Required) {
        ctx.unimplemented(
            &p.key("presence"),
            "presence REQUIRED is accepted but not implemented by weft: a request without a token passes this RequestAuthentication",
            "refuse requests without a token with an AuthorizationPolicy: rules: [{from: [{source: {requestPrincipals: [\"*\"]}}]}]",
        );
    }
}

/// An inline key set, as Istio's JWK parser reads it.
fn jwks(ctx: &mut Ctx<'_>, p: &FieldPath, text: &str) {
    match sc::parse_jwks(text) {
        Err(why) => ctx.error(
            p,
            format!("jwks is not a JSON Web Key Set: {why}"),
            "paste a JSON object with a \"keys\" list of keys, each with its kty (RSA, EC, OKP or oct)",
        ),
        Ok((keys, single)) => {
            if single {
                ctx.unimplemented(
                    p,
                    "jwks holds one JSON Web Key, not a set: Istio takes it, but weft's proxy reads only a key set, so no token can be verified",
                    "wrap the key in a set: {\"keys\": [ ...the key... ]}",
                );
            }
            for (i, k) in keys.iter().enumerate() {
                if sc::is_private_key(k) {
                    ctx.warn(
                        p,
                        format!("jwks key {i} contains private key material; only public keys verify tokens"),
                        "publish the public half only (drop \"d\" and the other private members; never inline a symmetric key)",
                    );
                }
            }
        }
    }
}
