//! Bytes from outside that carry identity: a peer's certificate (DER and
//! PEM) and a bearer token. Parsing must never panic, and a token that is
//! not signed by the configured key must never authenticate.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use weft_proxy::policy::jwt::JwtAuthn;

/// One rule with an RSA key no fuzz input can sign for.
fn authn() -> &'static JwtAuthn {
    static A: OnceLock<JwtAuthn> = OnceLock::new();
    A.get_or_init(|| {
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        JwtAuthn::compile(&[weft_model::JwtRule {
            origin: "fuzz".into(),
            issuer: "fuzz-issuer".into(),
            audiences: vec![],
            jwks_uri: None,
            jwks: Some(jwks.into()),
            from_headers: vec![],
            from_params: vec![],
            from_cookies: vec![],
            output_payload_to_header: Some("x-payload".into()),
            output_claim_to_headers: vec![],
            forward_original_token: false,
            space_delimited_claims: vec!["roles".into()],
        }])
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = weft_identity::inspect::CertInfo::parse(data).map(|c| c.spiffe_id().map(str::len));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = weft_identity::pem::certs("fuzz", text);
    let _ = text.parse::<weft_identity::SpiffeId>();
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("Bearer {text}")) {
        headers.insert(http::header::AUTHORIZATION, v);
        let result = authn().authenticate(&mut headers, None);
        assert!(!matches!(result, Ok(Some(_))), "an unsigned token authenticated");
    }
    let _ = authn().authenticate(&mut http::HeaderMap::new(), Some(text));
});
