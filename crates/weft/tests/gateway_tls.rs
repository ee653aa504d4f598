//! TLS at the edges under `weft up`: the ingress gateway terminates TLS
//! (SIMPLE and MUTUAL, picked by SNI, ALPN h2) with certificates from the
//! secrets directory, redirects plain HTTP when asked, and sidecars
//! originate TLS to servers outside the mesh (DestinationRule SIMPLE and
//! MUTUAL), always verifying them. External servers are openssl s_server
//! on loopback.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::curl;

use common::certs::{ca, leaf, leaf_with_serial};

/// A credential directory in the Kubernetes TLS secret layout.
fn secret(secrets: &Path, name: &str, certs: &Path, leaf: Option<&str>, ca: Option<&str>) {
    let d = secrets.join(name);
    std::fs::create_dir_all(&d).unwrap();
    if let Some(l) = leaf {
        std::fs::copy(certs.join(format!("{l}.pem")), d.join("tls.crt")).unwrap();
        std::fs::copy(certs.join(format!("{l}.key")), d.join("tls.key")).unwrap();
    }
    if let Some(c) = ca {
        std::fs::copy(certs.join(format!("{c}.pem")), d.join("ca.crt")).unwrap();
    }
}

/// An HTTPS server outside the mesh: openssl s_server answering GET with
/// its status page.
struct SServer(std::process::Child);

impl SServer {
    fn start(addr: &str, certs: &Path, leaf: &str, client_ca: Option<&str>) -> SServer {
        let mut cmd = Command::new("openssl");
        cmd.args(["s_server", "-quiet", "-www", "-accept", addr])
            .arg("-cert")
            .arg(certs.join(format!("{leaf}.pem")))
            .arg("-key")
            .arg(certs.join(format!("{leaf}.key")));
        if let Some(c) = client_ca {
            cmd.arg("-Verify")
                .arg("1")
                .arg("-CAfile")
                .arg(certs.join(format!("{c}.pem")));
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_port(addr.parse().unwrap());
        SServer(child)
    }
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `https://{host}:8443/productpage` from the gateway at `ingress_ip`,
/// trusting `edge-ca` of `certs`, with the client certificate `who` of
/// `certs` when given.
fn productpage(ingress_ip: &str, certs: &Path, host: &str, who: Option<&str>) -> common::Reply {
    let mut args = vec![
        "--resolve".to_owned(),
        format!("{host}:8443:{ingress_ip}"),
        "--cacert".to_owned(),
        certs.join("edge-ca.pem").display().to_string(),
    ];
    if let Some(who) = who {
        args.push("--cert".into());
        args.push(certs.join(format!("{who}.pem")).display().to_string());
        args.push("--key".into());
        args.push(certs.join(format!("{who}.key")).display().to_string());
    }
    args.push(format!("https://{host}:8443/productpage"));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(&refs)
}

/// A sidecar's answer to a request for an external server it would not
/// trust: 503, flagged UF (upstream connection failure).
#[track_caller]
fn assert_upstream_failure(r: &common::Reply) {
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("UF"),
        "{}",
        r.headers
    );
}

#[test]
fn ingress_tls_simple_mutual_redirect_and_egress_origination() {
    let certs = std::env::temp_dir().join(format!("weft-gwtls-{}", std::process::id()));
    let secrets = certs.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let edge = ca(&certs, "edge-ca", "edge test CA");
    leaf(&certs, "bookinfo", &["bookinfo.example.com"], &edge);
    leaf(&certs, "mtls", &["mtls.example.com"], &edge);
    leaf(&certs, "client", &["client.example.com"], &edge);
    leaf(&certs, "external", &["secure.external.test"], &edge);
    let stranger = ca(&certs, "stranger-ca", "someone else's CA");
    leaf(&certs, "untrusted", &["untrusted.external.test"], &stranger);
    secret(
        &secrets,
        "bookinfo-credential",
        &certs,
        Some("bookinfo"),
        None,
    );
    secret(
        &secrets,
        "mtls-credential",
        &certs,
        Some("mtls"),
        Some("edge-ca"),
    );
    secret(&secrets, "external-ca", &certs, None, Some("edge-ca"));
    secret(
        &secrets,
        "client-credential",
        &certs,
        Some("client"),
        Some("edge-ca"),
    );

    let ext = "127.107.0.200";
    let _simple = SServer::start(&format!("{ext}:9443"), &certs, "external", None);
    let _mutual = SServer::start(&format!("{ext}:9444"), &certs, "external", Some("edge-ca"));
    let _untrusted = SServer::start(&format!("{ext}:9445"), &certs, "untrusted", None);
    let extra = format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: secure-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8443, name: https, protocol: HTTPS}}
    tls: {{mode: SIMPLE, credentialName: bookinfo-credential}}
    hosts: [bookinfo.example.com]
  - port: {{number: 8443, name: https-mtls, protocol: HTTPS}}
    tls: {{mode: MUTUAL, credentialName: mtls-credential}}
    hosts: [mtls.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo-secure}}
spec:
  hosts: [bookinfo.example.com, mtls.example.com]
  gateways: [secure-gateway]
  http:
  - route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external}}
spec:
  hosts: [secure.external.test, mutual.external.test, untrusted.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints:
  - {{address: {ext}, ports: {{http: 9443}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-mutual}}
spec:
  hosts: [mutual.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints:
  - {{address: {ext}, ports: {{http: 9444}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external-untrusted}}
spec:
  hosts: [untrusted.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints:
  - {{address: {ext}, ports: {{http: 9445}}}}
---
# Sidecars take a credentialName only from a rule that selects them, as in
# Istio.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure-external}}
spec:
  host: secure.external.test
  workloadSelector: {{matchLabels: {{app: productpage}}}}
  trafficPolicy: {{tls: {{mode: SIMPLE, credentialName: external-ca}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: mutual-external}}
spec:
  host: mutual.external.test
  workloadSelector: {{matchLabels: {{app: productpage}}}}
  trafficPolicy: {{tls: {{mode: MUTUAL, credentialName: client-credential, sni: secure.external.test}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: untrusted-external}}
spec:
  host: untrusted.external.test
  workloadSelector: {{matchLabels: {{app: productpage}}}}
  trafficPolicy: {{tls: {{mode: SIMPLE, credentialName: external-ca}}}}
"#
    );
    let s = secrets.display().to_string();
    let m = common::mesh::up_with_args(107, &extra, &["--secrets", &s]);
    let ingress_ip = m.ingress.rsplit_once(':').unwrap().0.to_owned();
    let cafile = certs.join("edge-ca.pem").display().to_string();
    let resolve = |host: &str| format!("{host}:8443:{ingress_ip}");

    // SIMPLE: TLS terminated with the credential, HTTP/2 by ALPN.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--max-time",
            "10",
        ])
        .args([
            "--resolve",
            &resolve("bookinfo.example.com"),
            "--cacert",
            &cafile,
        ])
        .arg("https://bookinfo.example.com:8443/productpage")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2");

    // MUTUAL: no client certificate, no page; the client's, the page.
    let r = productpage(&ingress_ip, &certs, "mtls.example.com", None);
    assert_eq!(r.status, 0, "served without a client certificate");
    let r = productpage(&ingress_ip, &certs, "mtls.example.com", Some("client"));
    assert_eq!(r.status, 200, "{}", r.headers);

    // A name no server admits: no handshake.
    let r = curl(&[
        "--resolve",
        &resolve("other.example.com"),
        "-k",
        "https://other.example.com:8443/",
    ]);
    assert_eq!(r.status, 0);

    // Egress: productpage's sidecar originates TLS to servers outside.
    let proxy = format!("http://{}", m.w.addr(10, 2, 15001));
    let r = curl(&["-x", &proxy, "http://secure.external.test/"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Ciphers"),
        "not s_server's page: {}",
        r.body
    );
    let r = curl(&["-x", &proxy, "http://mutual.external.test/"]);
    assert_eq!(r.status, 200, "{}", r.body);
    // A server whose certificate the CA did not sign is refused: 503 UF.
    assert_upstream_failure(&curl(&["-x", &proxy, "http://untrusted.external.test/"]));
    std::thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_dir_all(&certs);
}

/// `tls.httpsRedirect` on a plain-HTTP gateway server: 301 to https for
/// the hosts of that server only.
#[test]
fn https_redirect_on_the_plain_port() {
    let mut w = common::World::new(108);
    let gw = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    tls: {httpsRedirect: true}
    hosts: [secure.example.com]
  - port: {number: 8080, name: http-open, protocol: HTTP}
    hosts: [open.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: [secure.example.com, open.example.com]
  gateways: [edge]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
"#;
    let f = w.write("edge.yaml", gw);
    let services = common::repo().join("examples/bookinfo/services.yaml");
    let workloads = common::repo().join("examples/bookinfo/workloads.yaml");
    let model = w.model("istio-ingressgateway", &[services, workloads, f], "gw.json");
    w.httpbin("productpage", w.addr(0, 2, 9080), &[]);
    let (m, listen) = (
        model.display().to_string(),
        format!("8080={}", w.addr(3, 1, 8080)),
    );
    w.spawn(
        "gateway",
        &[
            "proxy",
            "--model",
            &m,
            "--listen",
            &listen,
            "--access-log",
            "off",
        ],
        Some(w.addr(3, 1, 8080)),
    );
    let url = format!("http://{}/get?x=1", w.addr(3, 1, 8080));
    let r = curl(&["-H", "Host: secure.example.com", &url]);
    assert_eq!(r.status, 301, "{}", r.headers);
    assert_eq!(
        r.header("location").as_deref(),
        Some("https://secure.example.com/get?x=1")
    );
    let r = curl(&["-H", "Host: open.example.com", &url]);
    assert_eq!(r.status, 200, "{}", r.headers);
}

/// A PEM revocation list from `issuer` revoking `serials`.
fn crl(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, serials: &[u64]) -> String {
    let params = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 1, 1),
        next_update: rcgen::date_time_ymd(2099, 1, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: serials
            .iter()
            .map(|s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(*s),
                revocation_time: rcgen::date_time_ymd(2025, 6, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).unwrap().pem().unwrap()
}

/// SHA-256 of a PEM certificate's DER, as `verifyCertificateHash` takes
/// it (colon-separated upper-case pairs, as `openssl x509 -fingerprint`
/// prints it).
fn fingerprint(pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_owned()
}

/// What `openssl s_client` negotiated with the gateway for `sni`, with
/// extra client `args`: `Some((protocol, cipher))`, or `None` when the
/// handshake failed.
fn negotiated(ingress: &str, sni: &str, args: &[&str]) -> Option<(String, String)> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            ingress,
            "-servername",
            sni,
            "-brief",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    Some((field("Protocol version:")?, field("Ciphersuite:")?))
}

/// Gateway servers honour verifyCertificateHash/Spki (a client the CA
/// signed but not pinned is refused), subjectAltNames, revocation lists (`ca.crl` in the
/// credential), minProtocolVersion/maxProtocolVersion and cipherSuites;
/// a DestinationRule's caCrl refuses a revoked external server.
#[test]
fn ingress_pins_revocation_versions_and_suites_and_egress_crl() {
    let certs = std::env::temp_dir().join(format!("weft-gwtls2-{}", std::process::id()));
    let secrets = certs.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let edge = ca(&certs, "edge-ca", "edge test CA");
    leaf(
        &certs,
        "edge",
        &[
            "pinned.example.com",
            "revoked.example.com",
            "tls13.example.com",
            "suites.example.com",
            "named.example.com",
        ],
        &edge,
    );
    leaf_with_serial(&certs, "client", &["client.example.com"], &edge, Some(7001));
    leaf_with_serial(
        &certs,
        "pinned",
        &["pinned-client.example.com"],
        &edge,
        Some(7002),
    );
    leaf_with_serial(
        &certs,
        "external",
        &["secure.external.test"],
        &edge,
        Some(7003),
    );
    secret(
        &secrets,
        "edge-credential",
        &certs,
        Some("edge"),
        Some("edge-ca"),
    );
    secret(
        &secrets,
        "revoking-credential",
        &certs,
        Some("edge"),
        Some("edge-ca"),
    );
    std::fs::write(
        secrets.join("revoking-credential/ca.crl"),
        crl(&edge, &[7001]),
    )
    .unwrap();
    let external_crl = certs.join("external.crl");
    std::fs::write(&external_crl, crl(&edge, &[7003])).unwrap();
    let pin = fingerprint(&certs.join("pinned.pem"));

    let ext = "127.109.0.200";
    let _server = SServer::start(&format!("{ext}:9443"), &certs, "external", None);
    let extra = format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: strict-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8443, name: https-pinned, protocol: HTTPS}}
    tls: {{mode: MUTUAL, credentialName: edge-credential, verifyCertificateHash: ["{pin}"]}}
    hosts: [pinned.example.com]
  - port: {{number: 8443, name: https-named, protocol: HTTPS}}
    tls: {{mode: MUTUAL, credentialName: edge-credential, subjectAltNames: [pinned-client.example.com]}}
    hosts: [named.example.com]
  - port: {{number: 8443, name: https-revoked, protocol: HTTPS}}
    tls: {{mode: MUTUAL, credentialName: revoking-credential}}
    hosts: [revoked.example.com]
  - port: {{number: 8443, name: https-tls13, protocol: HTTPS}}
    tls: {{mode: SIMPLE, credentialName: edge-credential, minProtocolVersion: TLSV1_3}}
    hosts: [tls13.example.com]
  - port: {{number: 8443, name: https-suites, protocol: HTTPS}}
    tls:
      mode: SIMPLE
      credentialName: edge-credential
      maxProtocolVersion: TLSV1_2
      cipherSuites: [ECDHE-ECDSA-CHACHA20-POLY1305]
    hosts: [suites.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: strict}}
spec:
  hosts: [pinned.example.com, named.example.com, revoked.example.com, tls13.example.com, suites.example.com]
  gateways: [strict-gateway]
  http:
  - route: [{{destination: {{host: productpage, port: {{number: 9080}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: external}}
spec:
  hosts: [secure.external.test, revoked.external.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  location: MESH_EXTERNAL
  endpoints:
  - {{address: {ext}, ports: {{http: 9443}}}}
---
# Sidecars take a credentialName only from a rule that selects them, as in
# Istio.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: secure-external}}
spec:
  host: secure.external.test
  trafficPolicy: {{tls: {{mode: SIMPLE, caCertificates: "{ca}"}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: revoked-external}}
spec:
  host: revoked.external.test
  trafficPolicy:
    tls: {{mode: SIMPLE, caCertificates: "{ca}", caCrl: "{crl}", sni: secure.external.test}}
"#,
        ca = certs.join("edge-ca.pem").display(),
        crl = external_crl.display(),
    );
    let s = secrets.display().to_string();
    let m = common::mesh::up_with_args(109, &extra, &["--secrets", &s]);
    let ingress_ip = m.ingress.rsplit_once(':').unwrap().0.to_owned();
    let ingress = format!("{ingress_ip}:8443");
    let client = |host: &str, who: Option<&str>| productpage(&ingress_ip, &certs, host, who).status;

    // verifyCertificateHash: the CA signed both clients; only the pinned
    // one gets the page.
    assert_eq!(client("pinned.example.com", Some("pinned")), 200);
    assert_eq!(
        client("pinned.example.com", Some("client")),
        0,
        "an unpinned client was served"
    );
    // subjectAltNames: only the client the list names.
    assert_eq!(client("named.example.com", Some("pinned")), 200);
    assert_eq!(
        client("named.example.com", Some("client")),
        0,
        "a client the list does not name was served"
    );
    // ca.crl in the credential: the revoked client is refused, the other
    // is served.
    assert_eq!(
        client("revoked.example.com", Some("client")),
        0,
        "a revoked client was served"
    );
    assert_eq!(client("revoked.example.com", Some("pinned")), 200);

    // minProtocolVersion TLSV1_3: a TLS 1.2 client is refused.
    assert_eq!(
        negotiated(&ingress, "tls13.example.com", &[]).map(|n| n.0),
        Some("TLSv1.3".to_owned())
    );
    assert_eq!(
        negotiated(&ingress, "tls13.example.com", &["-tls1_2"]),
        None
    );
    // maxProtocolVersion TLSV1_2 and one suite: that suite, or nothing.
    assert_eq!(
        negotiated(&ingress, "suites.example.com", &[]),
        Some((
            "TLSv1.2".to_owned(),
            "ECDHE-ECDSA-CHACHA20-POLY1305".to_owned()
        ))
    );
    assert_eq!(
        negotiated(
            &ingress,
            "suites.example.com",
            &["-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]
        ),
        None
    );

    // Egress: caCrl revokes the external server's certificate, so the
    // revoked name gets 503 UF while the same server is fine without it.
    let proxy = format!("http://{}", m.w.addr(10, 2, 15001));
    let r = curl(&["-x", &proxy, "http://secure.external.test/"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_upstream_failure(&curl(&["-x", &proxy, "http://revoked.external.test/"]));
    let _ = std::fs::remove_dir_all(&certs);
}
