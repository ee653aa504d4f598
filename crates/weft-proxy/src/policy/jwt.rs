//! RequestAuthentication: JWTs checked as Istio does. A request without a
//! token passes with no request principal (an AuthorizationPolicy with
//! `requestPrincipals` is what demands one); a token that is present must
//! be valid for a rule whose issuer it names, or the request gets 401.
//!
//! Rules and their keys (JWKS, inlined by the control plane even when the
//! resource names a `jwksUri`) are compiled once per push.

use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use weft_model::JwtRule;

use crate::policy::authz::Jwt;

/// Envoy's default allowance for clock skew.
const LEEWAY_SECONDS: u64 = 60;

pub struct JwtAuthn {
    rules: Vec<RuleRt>,
}

struct RuleRt {
    issuer: String,
    audiences: Vec<String>,
    keys: Vec<KeyRt>,
    /// (header, prefix) locations; Istio's default is `Authorization:
    /// Bearer `.
    headers: Vec<(HeaderName, String)>,
    params: Vec<String>,
    cookies: Vec<String>,
    payload_header: Option<HeaderName>,
    claim_headers: Vec<(HeaderName, String)>,
    forward: bool,
    /// Claims matched item by item when they are a space-separated
    /// string: Istio's `scope` and `permission`, and the rule's own.
    space_delimited: Vec<String>,
    origin: String,
    /// Why the keys could not be used, when they could not.
    key_error: Option<String>,
}

struct KeyRt {
    kid: Option<String>,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// Where a token was found.
enum Location {
    Header(HeaderName),
    Param,
    Cookie,
}

impl RuleRt {
    fn compile(r: &JwtRule) -> RuleRt {
        let mut headers: Vec<(HeaderName, String)> = r
            .from_headers
            .iter()
            .filter_map(|h| {
                HeaderName::from_bytes(h.name.to_ascii_lowercase().as_bytes())
                    .ok()
                    .map(|n| (n, h.prefix.clone()))
            })
            .collect();
        let mut params = r.from_params.clone();
        if r.from_headers.is_empty() && r.from_params.is_empty() && r.from_cookies.is_empty() {
            headers.push((http::header::AUTHORIZATION, "Bearer ".into()));
            params.push("access_token".into());
        }
        let (keys, key_error) = match r.jwks.as_deref() {
            None => (
                Vec::new(),
                Some("no keys: the JWKS has not been fetched".to_owned()),
            ),
            Some(text) => match serde_json::from_str::<JwkSet>(text) {
                Err(e) => (Vec::new(), Some(format!("the JWKS does not parse: {e}"))),
                Ok(set) => {
                    let keys: Vec<KeyRt> = set
                        .keys
                        .iter()
                        .filter_map(|jwk| {
                            let key = DecodingKey::from_jwk(jwk).ok()?;
                            let alg = jwk
                                .common
                                .key_algorithm
                                .and_then(|a| format!("{a:?}").parse::<Algorithm>().ok());
                            Some(KeyRt {
                                kid: jwk.common.key_id.clone(),
                                alg,
                                key,
                            })
                        })
                        .collect();
                    let err = keys
                        .is_empty()
                        .then(|| "the JWKS has no usable key".to_owned());
                    (keys, err)
                }
            },
        };
        let mut space_delimited: Vec<String> = ["permission", "scope"]
            .into_iter()
            .map(str::to_owned)
            .chain(r.space_delimited_claims.iter().cloned())
            .collect();
        space_delimited.sort();
        space_delimited.dedup();
        RuleRt {
            space_delimited,
            issuer: r.issuer.clone(),
            audiences: r.audiences.clone(),
            keys,
            headers,
            params,
            cookies: r.from_cookies.clone(),
            payload_header: r
                .output_payload_to_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).ok()),
            claim_headers: r
                .output_claim_to_headers
                .iter()
                .filter_map(|c| {
                    HeaderName::from_bytes(c.header.as_bytes())
                        .ok()
                        .map(|h| (h, c.claim.clone()))
                })
                .collect(),
            forward: r.forward_original_token,
            origin: r.origin.clone(),
            key_error,
        }
    }

    /// The token this rule's locations hold in the request, if any.
    fn find(&self, headers: &HeaderMap, query: Option<&str>) -> Option<(String, Location)> {
        for (name, prefix) in &self.headers {
            for v in headers.get_all(name) {
                let Ok(v) = v.to_str() else { continue };
                let token = if prefix.is_empty() {
                    Some(v.trim())
                } else if v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
                {
                    Some(v[prefix.len()..].trim())
                } else {
                    None
                };
                if let Some(t) = token.filter(|t| !t.is_empty()) {
                    return Some((t.to_owned(), Location::Header(name.clone())));
                }
            }
        }
        if let Some(q) = query {
            for pair in q.split('&') {
                if let Some((k, v)) = pair.split_once('=') {
                    if self.params.iter().any(|p| p == k) && !v.is_empty() {
                        return Some((v.to_owned(), Location::Param));
                    }
                }
            }
        }
        for cookie in headers.get_all(http::header::COOKIE) {
            let Ok(c) = cookie.to_str() else { continue };
            for pair in c.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if self.cookies.iter().any(|n| n == k) && !v.is_empty() {
                        return Some((v.to_owned(), Location::Cookie));
                    }
                }
            }
        }
        None
    }

    fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        if let Some(e) = &self.key_error {
            return Err(format!("{}: {e}", self.origin));
        }
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
        }
        let candidates = self.keys.iter().filter(|k| {
            kid.is_none_or(|kid| k.kid.as_deref().is_none_or(|k| k == kid))
                && k.alg.is_none_or(|a| a == alg)
        });
        let mut last = format!(
            "no key in the JWKS of {} fits the token (kid {kid:?}, {alg:?})",
            self.origin
        );
        for k in candidates {
            match jsonwebtoken::decode::<serde_json::Value>(token, &k.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = format!("{e}"),
            }
        }
        Err(last)
    }
}

impl JwtAuthn {
    pub fn compile(rules: &[JwtRule]) -> JwtAuthn {
        JwtAuthn {
            rules: rules.iter().map(RuleRt::compile).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks the request's token, if it carries one. `Ok(None)`: no token.
    /// On success the token is removed unless a rule forwards it, and the
    /// rule's output headers are set.
    pub fn authenticate(
        &self,
        headers: &mut HeaderMap,
        query: Option<&str>,
    ) -> Result<Option<Jwt>, String> {
        let found = self.rules.iter().find_map(|r| r.find(headers, query));
        let Some((token, location)) = found else {
            return Ok(None);
        };
        let header = jsonwebtoken::decode_header(&token)
            .map_err(|e| format!("the token is not a JWT: {e}"))?;
        let unverified: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(&token)
            .map_err(|e| format!("the token's payload does not decode: {e}"))?;
        let iss = unverified
            .get("iss")
            .and_then(|v| v.as_str())
            .ok_or("the token has no issuer (iss)")?;
        let rule = self.rules.iter().find(|r| r.issuer == iss).ok_or_else(|| {
            format!("issuer {iss:?} is not configured by any RequestAuthentication here")
        })?;
        let claims = rule.verify(&token, header.alg, header.kid.as_deref())?;
        let sub = claims.get("sub").and_then(|v| v.as_str()).unwrap_or("");
        let audiences = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => vec![a.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let jwt = Jwt {
            principal: format!("{iss}/{sub}"),
            audiences,
            presenter: claims
                .get("azp")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned(),
            claims,
            space_delimited: rule.space_delimited.clone(),
        };
        if let Some(h) = &rule.payload_header {
            // The payload segment is already base64url, as Istio outputs it.
            if let Some(v) = token
                .split('.')
                .nth(1)
                .and_then(|p| HeaderValue::from_str(p).ok())
            {
                headers.insert(h.clone(), v);
            }
        }
        for (h, claim) in &rule.claim_headers {
            let value = match jwt.claims.get(claim) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => continue,
                Some(other) => other.to_string(),
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(h.clone(), v);
            }
        }
        if !rule.forward {
            if let Location::Header(name) = location {
                headers.remove(name);
            }
        }
        Ok(Some(jwt))
    }
}
