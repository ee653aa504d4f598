//! RequestAuthentication and JWT-based authorization on the ingress
//! gateway under `weft up`, as in Istio's "ingress JWT" task: tokens signed
//! by keys this test makes (openssl), the JWKS served on loopback by this
//! test, fetched and refreshed by the control plane.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::curl;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "testing@secure.istio.io";

/// A JWKS server on loopback: serves whatever `keys` holds, or 503 while
/// `failing`.
struct JwksServer {
    keys: Arc<Mutex<JwkSet>>,
    failing: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(addr: SocketAddr) -> JwksServer {
        let listener = TcpListener::bind(addr).unwrap();
        let keys = Arc::new(Mutex::new(JwkSet { keys: Vec::new() }));
        let failing = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (k, f, n) = (keys.clone(), failing.clone(), served.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(10_000) {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                n.fetch_add(1, Ordering::Relaxed);
                let reply = if f.load(Ordering::Relaxed) {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                } else {
                    let body = serde_json::to_string(&*k.lock().unwrap()).unwrap();
                    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                };
                let _ = s.write_all(reply.as_bytes());
            }
        });
        JwksServer {
            keys,
            failing,
            served,
        }
    }
}

/// A signing key made by openssl, and its public JWK.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
    kid: String,
}

impl Signer {
    fn new(dir: &Path, kid: &str, alg: Algorithm) -> Signer {
        let pem = dir.join(format!("{kid}.pem"));
        let args: Vec<&str> = match alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 => {
                vec![
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ]
            }
            Algorithm::ES256 => vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            Algorithm::ES384 => vec![
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ],
            Algorithm::EdDSA => vec!["genpkey", "-algorithm", "ed25519"],
            other => panic!("no key type for {other:?}"),
        };
        let ok = Command::new("openssl")
            .args(&args)
            .arg("-out")
            .arg(&pem)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl genpkey for {alg:?}");
        let text = std::fs::read(&pem).unwrap();
        let key = match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&text).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&text).unwrap(),
            _ => EncodingKey::from_rsa_pem(&text).unwrap(),
        };
        Signer {
            alg,
            key,
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    fn token(&self, claims: serde_json::Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn claims(groups: &[&str], aud: &str, exp_in: i64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": aud, "groups": groups,
        "iat": now, "exp": now + exp_in,
    })
}

#[test]
fn ingress_jwt_with_remote_keys_claims_and_refresh() {
    let dir = std::env::temp_dir().join(format!("weft-jwt-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let algs = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let signers: Vec<Signer> = algs
        .iter()
        .enumerate()
        .map(|(i, a)| Signer::new(&dir, &format!("k{i}"), *a))
        .collect();
    let jwks_addr: SocketAddr = "127.104.0.250:18443".parse().unwrap();
    let server = JwksServer::start(jwks_addr);
    server.keys.lock().unwrap().keys = signers.iter().map(Signer::jwk).collect();
    let extra = format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt-on-ingress, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  jwtRules:
  - issuer: "{ISSUER}"
    jwksUri: "http://{jwks_addr}/jwks.json"
    audiences: ["bookinfo"]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-group1, namespace: istio-system}}
spec:
  selector: {{matchLabels: {{istio: ingressgateway}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/*"]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: ["group1"]}}]
---
# Istio's JWT claim routing task: routes on claims of the token the
# gateway validated, by a top-level claim or a nested one.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: by-claims}}
spec:
  hosts: [claims.example.com]
  gateways: [bookinfo-gateway]
  http:
  - name: gold
    match:
    - uri: {{prefix: /details}}
      headers: {{"@request.auth.claims.tier": {{exact: gold}}}}
    route: [{{destination: {{host: details, port: {{number: 9080}}}}}}]
  - name: blue-team
    match:
    - headers: {{"@request.auth.claims[org][team]": {{prefix: bl}}}}
      withoutHeaders: {{"@request.auth.claims.tier": {{exact: banned}}}}
    route: [{{destination: {{host: details, port: {{number: 9080}}}}}}]
"#
    );
    let m = crate::common::mesh::up_in(
        crate::common::World::any(),
        &extra,
        &["--jwks-refresh", "300ms"],
        &[],
    );
    let url = format!("http://{}/productpage", m.ingress);
    let with = |token: &str| curl(&["-H", &format!("Authorization: Bearer {token}"), &url]);

    // No token: no request principal, so the ALLOW policy does not match.
    let r = curl(&[&url]);
    assert_eq!((r.status, r.body.trim()), (403, "RBAC: access denied"));
    // A token that is not a JWT.
    let r = with("not.a.token");
    assert_eq!((r.status, r.body.trim()), (401, "Jwt verification fails"));
    // Every algorithm Istio users sign with.
    for s in &signers {
        let r = with(&s.token(claims(&["group1"], "bookinfo", 3600)));
        assert_eq!(r.status, 200, "{:?}: {}", s.alg, r.headers);
    }
    let s = &signers[0];
    // Valid, but the claim the policy wants is missing.
    assert_eq!(
        with(&s.token(claims(&["group2"], "bookinfo", 3600))).status,
        403
    );
    // Expired (beyond the 60 s allowance), or for another audience.
    let r = with(&s.token(claims(&["group1"], "bookinfo", -600)));
    assert_eq!(r.status, 401);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .contains("Expired"),
        "{}",
        r.headers
    );
    assert_eq!(
        with(&s.token(claims(&["group1"], "other", 3600))).status,
        401
    );
    // Routes on claims: the request reaches details only by a claim the
    // token carries; without one no route matches (404, NR).
    let routed = |extra: serde_json::Value| {
        let mut c = claims(&["group1"], "bookinfo", 3600);
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        curl(&[
            "-H",
            &format!("Authorization: Bearer {}", s.token(c)),
            "-H",
            "Host: claims.example.com",
            &format!("http://{}/details/0", m.ingress),
        ])
    };
    let gold = routed(serde_json::json!({"tier": "gold"}));
    assert_eq!(gold.status, 200, "{}", gold.headers);
    assert!(
        gold.body.contains("\"id\":0") || gold.body.contains("\"id\": 0"),
        "{}",
        gold.body
    );
    let silver = routed(serde_json::json!({"tier": "silver"}));
    assert_eq!(silver.status, 404, "{}", silver.headers);
    assert!(
        silver
            .header("x-weft-reason")
            .unwrap_or_default()
            .contains("route"),
        "{}",
        silver.headers
    );
    assert_eq!(
        routed(serde_json::json!({"tier": "silver", "org": {"team": "blue"}})).status,
        200
    );
    assert_eq!(
        routed(serde_json::json!({"tier": "banned", "org": {"team": "blue"}})).status,
        404
    );

    // Signed by a key the JWKS does not have.
    let stranger = Signer::new(&dir, "k0", Algorithm::RS256);
    assert_eq!(
        with(&stranger.token(claims(&["group1"], "bookinfo", 3600))).status,
        401
    );

    // A new key published in the JWKS is picked up by the refresh.
    let fresh = Signer::new(&dir, "k9", Algorithm::ES256);
    server.keys.lock().unwrap().keys.push(fresh.jwk());
    let token = fresh.token(claims(&["group1"], "bookinfo", 3600));
    let started = Instant::now();
    while with(&token).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new key never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The JWKS server fails: the last good keys keep working.
    server.failing.store(true, Ordering::Relaxed);
    let before = server.served.load(Ordering::Relaxed);
    while server.served.load(Ordering::Relaxed) < before + 3 {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(with(&token).status, 200);
    assert!(
        m.w.log("up").contains("keeping the last good keys")
            || std::fs::read_to_string(m.w.dir.join("run/logs/control-plane.log"))
                .unwrap()
                .contains("keeping the last good keys")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Token locations, outputs and forwarding on a sidecar's inbound side,
/// with the key set written inline: reviews-v1's sidecar in front of an
/// httpbin that shows what arrived.
#[test]
fn token_locations_outputs_and_forwarding() {
    let mut w = crate::common::World::any();
    let a = Signer::new(&w.dir, "a", Algorithm::ES256);
    let b = Signer::new(&w.dir, "b", Algorithm::EdDSA);
    let jwks = |s: &Signer| {
        serde_json::to_string(&JwkSet {
            keys: vec![s.jwk()],
        })
        .unwrap()
    };
    let extra = format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: reviews-jwt}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: issuer-a
    jwks: '{}'
    fromHeaders: [{{name: x-jwt, prefix: "Token "}}]
    outputClaimToHeaders: [{{header: x-user, claim: sub}}]
    outputPayloadToHeader: x-jwt-payload
  - issuer: issuer-b
    jwks: '{}'
    fromParams: [token]
    forwardOriginalToken: true
"#,
        jwks(&a),
        jwks(&b)
    );
    let f = w.write("jwt.yaml", &extra);
    w.httpbin("reviews-app", w.addr(2, 4, 9080), &[]);
    let model = w.model(
        "reviews-v1",
        &[crate::common::repo().join("examples/bookinfo"), f],
        "reviews.json",
    );
    let (m, ip, app, log) = (
        model.display().to_string(),
        w.ip(0, 4),
        format!("9080={}", w.addr(2, 4, 9080)),
        w.dir.join("access.log").display().to_string(),
    );
    w.spawn(
        "sidecar",
        &[
            "proxy",
            "--model",
            &m,
            "--inbound-ip",
            &ip,
            "--app",
            &app,
            "--explain",
            "--access-log",
            &log,
        ],
        Some(w.addr(0, 4, 9080)),
    );
    let base = format!("http://{}/headers", w.addr(0, 4, 9080));
    let seen = |r: &crate::common::Reply| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["headers"].clone()
    };
    let token = |s: &Signer, iss: &str| {
        let mut c = claims(&[], "x", 3600);
        c["iss"] = iss.into();
        s.token(c)
    };

    // Issuer a, in its own header with its prefix: claims go out as
    // headers, the payload too, and the token itself is removed.
    let ta = token(&a, "issuer-a");
    let r = curl(&["-H", &format!("x-jwt: Token {ta}"), &base]);
    assert_eq!(r.status, 200, "{}", r.body);
    let h = seen(&r);
    assert_eq!(h["x-user"], "alice", "{h}");
    assert_eq!(h["x-jwt-payload"], ta.split('.').nth(1).unwrap(), "{h}");
    assert!(h.get("x-jwt").is_none(), "the token was forwarded: {h}");

    // Issuer b, from a query parameter, forwarded as asked.
    let tb = token(&b, "issuer-b");
    let r = curl(&[&format!("{base}?token={tb}")]);
    assert_eq!(r.status, 200, "{}", r.body);

    // A token where no rule looks is not a token: the request passes and
    // the header goes on untouched.
    let r = curl(&["-H", &format!("Authorization: Bearer {ta}"), &base]);
    assert_eq!(r.status, 200);
    assert_eq!(seen(&r)["authorization"], format!("Bearer {ta}"));

    // A's token in B's place: B's location, A's issuer, B's keys do not
    // matter; the issuer's rule decides, and a's key verifies it.
    let r = curl(&[&format!("{base}?token={ta}")]);
    assert_eq!(r.status, 200);
    // Issuer b's claim signed with a's key: refused, with the reason.
    let forged = token(&a, "issuer-b");
    let r = curl(&[&format!("{base}?token={forged}")]);
    assert_eq!(r.status, 401);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("JWT: "),
        "{}",
        r.headers
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(w.dir.join("access.log")).unwrap();
    assert!(
        log.lines().any(
            |l| l.contains("\"response_code\":401") && l.contains("\"response_flags\":\"JWT\"")
        ),
        "{log}"
    );
}
