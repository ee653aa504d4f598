//! Mutual TLS between proxies under `weft up`: the tunnel port accepts
//! only certificates from the mesh's CA, STRICT refuses plain text, and
//! the CA issues a proxy only its own identity. Real clients: openssl
//! s_client, curl, and weft's own CA client.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::curl;
use common::mesh::{up, up_with, Mesh};

const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";
const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews";

/// A certificate for `id` signed by `issuer`, valid over `[from, to]`
/// hours from now; written as `name.pem` and `name.key` in `dir`.
fn leaf(
    dir: &Path,
    name: &str,
    id: &str,
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    from: i64,
    to: i64,
) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(id.try_into().unwrap())];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::hours(from);
    params.not_after = now + time::Duration::hours(to);
    let cert = params.signed_by(&key, issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn mesh_issuer(m: &Mesh) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let ca = m.w.dir.join("ca");
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca.join("root-key.pem")).unwrap())
        .unwrap();
    rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(ca.join("root-cert.pem")).unwrap(),
        key,
    )
    .unwrap()
}

/// openssl s_client to `addr` with an optional client certificate; sends
/// the HTTP/2 preface and reports everything openssl printed.
fn s_client(m: &Mesh, addr: &str, cert: Option<&(PathBuf, PathBuf)>) -> String {
    let bundle = m.w.dir.join("run/trust-bundle.pem");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client", "-connect", addr, "-alpn", "h2", "-brief", "-CAfile",
    ])
    .arg(&bundle);
    if let Some((c, k)) = cert {
        cmd.arg("-cert").arg(c).arg("-key").arg(k);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    // TLS 1.3 servers judge the client certificate after the client thinks
    // the handshake is done: the verdict arrives on the first read.
    std::thread::sleep(Duration::from_millis(500));
    let _ = stdin.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    std::thread::sleep(Duration::from_millis(700));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_tunnel_port_accepts_only_the_mesh_certificates() {
    let m = up(100);
    let reviews_tunnel = m.w.addr(10, 4, 15008).to_string();
    // Bookinfo works, and every hop is mutual TLS with verified peers.
    let (status, _) = m.page(None);
    assert_eq!(status, 200);
    let metrics = curl(&[&format!("http://{}/metrics", m.w.addr(10, 2, 15020))]).body;
    let inbound = metrics
        .lines()
        .find(|l| l.starts_with("istio_requests_total{reporter=\"destination\""))
        .unwrap_or_else(|| panic!("{metrics}"))
        .to_owned();
    for want in [
        "source_workload=\"istio-ingressgateway\"",
        "source_principal=\"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account\"",
        "destination_service=\"productpage.default.svc.cluster.local\"",
        "connection_security_policy=\"mutual_tls\"",
    ] {
        assert!(inbound.contains(want), "{want} missing in {inbound}");
    }

    // The root's key is the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(m.w.dir.join("ca/root-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let none = s_client(&m, &reviews_tunnel, None);
    assert!(
        none.contains("Verification: OK"),
        "the server's chain: {none}"
    );
    assert!(none.contains("alert certificate required"), "{none}");

    let dir = m.w.dir.clone();
    let mesh = mesh_issuer(&m);
    let good = leaf(&dir, "good", PRODUCTPAGE, &mesh, -1, 1);
    let ok = s_client(&m, &reviews_tunnel, Some(&good));
    assert!(
        !ok.contains("alert"),
        "a mesh certificate was refused: {ok}"
    );

    let expired = leaf(&dir, "expired", PRODUCTPAGE, &mesh, -3, -1);
    let out = s_client(&m, &reviews_tunnel, Some(&expired));
    assert!(out.contains("alert certificate expired"), "{out}");

    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    other
        .distinguished_name
        .push(rcgen::DnType::CommonName, "someone else's CA");
    let other = rcgen::Issuer::new(other, other_key);
    let foreign = leaf(&dir, "foreign", PRODUCTPAGE, &other, -1, 1);
    let out = s_client(&m, &reviews_tunnel, Some(&foreign));
    assert!(out.contains("alert unknown ca"), "{out}");

    // The server presents reviews' own SPIFFE ID.
    let chain = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {reviews_tunnel} -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"
        ))
        .output()
        .unwrap();
    let san = String::from_utf8_lossy(&chain.stdout);
    assert!(san.contains(&format!("URI:{REVIEWS}")), "{san}");

    // The sidecar follows the control plane over TLS, on the CA's port.
    let log = std::fs::read_to_string(m.w.dir.join("run/logs/reviews-v1-0.proxy.log")).unwrap();
    assert!(
        log.contains(&format!(
            "connected to the control plane at {} (TLS)",
            m.w.addr(0, 253, 15012)
        )),
        "{log}"
    );

    // PERMISSIVE (the default): plain text to the workload port still works.
    let plain = curl(&[&format!("http://{}/reviews/0", m.w.addr(10, 4, 9080))]);
    assert_eq!(plain.status, 200, "{}", plain.body);
}

#[test]
fn strict_refuses_plain_text_and_the_ca_issues_only_the_entitled_identity() {
    let strict = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec:\n  mtls: {mode: STRICT}\n";
    let m = up_with(101, strict);
    let (status, body) = m.page(None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Reviews served by"), "{body}");
    // Plain text straight to the sidecar's workload port is refused.
    let plain = curl(&[&format!("http://{}/reviews/0", m.w.addr(10, 4, 9080))]);
    assert_eq!(plain.status, 0, "plain text got through: {}", plain.body);
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(m.w.dir.join("run/logs/reviews-v1-0.access.log")).unwrap();
    assert!(
        log.contains("plain text refused: mTLS is STRICT on port 9080 (PeerAuthentication istio-system/default)"),
        "{log}"
    );

    // The CA: productpage's bootstrap token gets productpage's identity
    // and nothing else.
    let run = m.w.dir.join("run");
    let token = std::fs::read_to_string(run.join("tokens/default.productpage-v1-0.token")).unwrap();
    let bundle = weft_identity::verify::TrustBundle::from_pem(
        "bundle",
        &weft_identity::pem::split(&std::fs::read_to_string(run.join("trust-bundle.pem")).unwrap()),
    )
    .unwrap();
    let ca = |token: &str| weft_proxy::identity::mesh::CaClient {
        ca: m.w.addr(0, 253, 15012),
        proxy: "default/productpage-v1-0".into(),
        token: token.trim().to_owned(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ask = |client: weft_proxy::identity::mesh::CaClient, id: &str| {
        let req = weft_identity::workload::Request::new(id).unwrap();
        let r = rt.block_on(weft_proxy::identity::mesh::request_certificate(
            &client,
            &bundle,
            "cluster.local",
            &req.csr_pem,
        ));
        (req, r)
    };
    let (req, granted) = ask(ca(&token), PRODUCTPAGE);
    let granted = granted.unwrap();
    let cert = req.complete(PRODUCTPAGE, &granted.cert_chain).unwrap();
    assert_eq!(cert.identity, PRODUCTPAGE);
    let (_, refused) = ask(ca(&token), REVIEWS);
    let refused = refused.unwrap_err();
    assert!(
        refused.contains("PermissionDenied")
            && refused.contains(&format!("may only be issued {PRODUCTPAGE}, not {REVIEWS}")),
        "{refused}"
    );
    let (_, wrong) = ask(ca("0123456789abcdef0123456789abcdef"), PRODUCTPAGE);
    assert!(wrong.unwrap_err().contains("Unauthenticated"));
    // Nor any TLS credential its configuration does not name.
    let cred = rt.block_on(weft_proxy::identity::mesh::request_credential(
        &ca(&token),
        &bundle,
        "cluster.local",
        "bookinfo-credential",
    ));
    let cred = cred.unwrap_err();
    assert!(
        cred.contains("PermissionDenied") && cred.contains("does not use credential"),
        "{cred}"
    );
    // Neither the token nor a key appears in any log.
    for e in std::fs::read_dir(run.join("logs")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
        assert!(!text.contains(token.trim()), "a token leaked into a log");
        assert!(!text.contains("PRIVATE KEY"), "a key leaked into a log");
    }
}

/// `weft x509` for a workload.
fn x509(m: &Mesh, workload: &str) -> serde_json::Value {
    let out = common::weft()
        .args(["x509", workload, "--admin", &m.admin, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Three clients loading productpage every 20 ms, each for `within` or
/// `most` pages, whichever ends first.
fn steady_pages(m: &Mesh, within: Duration, most: usize) -> Vec<std::thread::JoinHandle<Vec<u16>>> {
    let url = format!("http://{}/productpage", m.ingress);
    let started = std::time::Instant::now();
    (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                while started.elapsed() < within && statuses.len() < most {
                    statuses.push(curl(&[&url]).status);
                    std::thread::sleep(Duration::from_millis(20));
                }
                statuses
            })
        })
        .collect()
}

/// Every status the `steady_pages` clients saw.
fn pages_seen(clients: Vec<std::thread::JoinHandle<Vec<u16>>>) -> Vec<u16> {
    clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect()
}

/// Polls `workload`'s certificate (`weft x509`) until `done` holds, for
/// at most `within`; fails with the certificate and the proxy's log.
fn wait_x509(
    m: &Mesh,
    workload: &str,
    within: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let cert = x509(m, workload);
        if done(&cert) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{workload}'s certificate did not change as expected: {cert}\nits log:\n{}",
            std::fs::read_to_string(m.w.dir.join(format!("run/logs/{workload}-0.proxy.log")))
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Six-second certificates renew every three seconds while pages load
/// through every hop; no request fails, and `weft x509` and `weft status`
/// show the renewed certificates.
#[test]
fn certificates_rotate_under_steady_traffic() {
    let m = common::mesh::up_with_args(106, "", &["--cert-ttl", "6s"]);
    let first = x509(&m, "reviews-v1");
    assert_eq!(first["identity"], REVIEWS);
    assert_eq!(first["state"], "ACTIVE");
    assert_eq!(first["chain"][0]["uris"][0], REVIEWS);
    assert!(first["trustBundle"][0]["isCa"].as_bool().unwrap());
    assert!(!first.to_string().contains("PRIVATE KEY"));

    let pages = steady_pages(&m, Duration::from_secs(8), 400);
    let statuses = pages_seen(pages);
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert!(statuses.len() > 100, "only {} pages", statuses.len());
    assert_eq!(
        failed,
        0,
        "{failed} of {} pages failed across rotations",
        statuses.len()
    );

    let later = x509(&m, "reviews-v1");
    assert_ne!(
        first["serial"], later["serial"],
        "the certificate was not renewed"
    );
    let log = std::fs::read_to_string(m.w.dir.join("run/logs/reviews-v1-0.proxy.log")).unwrap();
    assert!(log.matches("installed").count() >= 3, "{log}");

    let status = common::weft()
        .args(["status", "--admin", &m.admin])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("CERT"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
}

fn ca_state(m: &Mesh) -> serde_json::Value {
    let r = curl(&[&format!("http://{}/api/status", m.admin)]);
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["controlPlane"]["ca"].clone()
}

fn wait_phase(m: &Mesh, phase: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let ca = ca_state(m);
        if ca["phase"] == phase {
            return ca;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never reached {phase}: {ca}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `weft ca rotate` under steady traffic: the new root reaches every proxy,
/// then signs (proxies renew), then the old root retires; no page fails.
#[test]
fn root_rotation_under_steady_traffic() {
    let m = common::mesh::up_with_args(110, "", &["--cert-ttl", "6s"]);
    let before = ca_state(&m);
    assert_eq!(before["phase"], "steady");
    let old_root = before["roots"][0]["serial"].as_str().unwrap().to_owned();
    let pages = steady_pages(&m, Duration::from_secs(14), 700);
    std::thread::sleep(Duration::from_millis(800));
    let out = common::weft()
        .args(["ca", "rotate", "--admin", &m.admin])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Signing moved to the new root; the old one is still trusted.
    let overlap = wait_phase(&m, "overlap");
    assert_eq!(overlap["roots"].as_array().unwrap().len(), 2, "{overlap}");
    let new_root = overlap["roots"][0]["serial"].as_str().unwrap().to_owned();
    assert_ne!(new_root, old_root);
    assert_eq!(overlap["roots"][1]["serial"], old_root);
    // Proxies renewed under the new root at once.
    wait_x509(&m, "reviews-v1", Duration::from_secs(5), |cert| {
        cert["chain"][0]["issuer"] == overlap["roots"][0]["subject"]
    });
    // The old root retires after the certificate lifetime.
    let steady = wait_phase(&m, "steady");
    assert_eq!(steady["roots"].as_array().unwrap().len(), 1, "{steady}");
    assert_eq!(steady["roots"][0]["serial"], new_root);
    // With the old root gone, proxies still renew: the CA they call now
    // proves itself under the new root (its own certificate moved too).
    let retired_at = x509(&m, "reviews-v1")["serial"].clone();
    wait_x509(&m, "reviews-v1", Duration::from_secs(6), |cert| {
        cert["serial"] != retired_at
    });
    let statuses = pages_seen(pages);
    let failed = statuses.iter().filter(|s| **s != 200).count();
    assert!(statuses.len() > 150, "only {} pages", statuses.len());
    assert_eq!(
        failed,
        0,
        "{failed} of {} pages failed across the rotation",
        statuses.len()
    );
    let bundle = std::fs::read_to_string(m.w.dir.join("run/trust-bundle.pem")).unwrap();
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
}

/// Istio's plug-in CA layout (`cacerts`: an intermediate from the user's
/// own root) and a trust domain of the user's: workload certificates chain
/// through the intermediate to that root, and carry that trust domain.
#[test]
fn plug_in_ca_and_own_trust_domain() {
    let dir = std::env::temp_dir().join(format!("weft-cacerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_params = |cn: &str| {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p
    };
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca_params("Example Corp Root CA");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = rcgen::Issuer::new(root_params, root_key);
    let int_key = rcgen::KeyPair::generate().unwrap();
    let int = ca_params("Example Corp mesh intermediate")
        .signed_by(&int_key, &root_issuer)
        .unwrap();
    std::fs::write(dir.join("root-cert.pem"), root.pem()).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), int.pem()).unwrap();
    std::fs::write(dir.join("ca-key.pem"), int_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("cert-chain.pem"), int.pem() + &root.pem()).unwrap();

    let d = dir.display().to_string();
    let m = common::mesh::up_with_args(111, "", &["--ca-dir", &d, "--trust-domain", "example.org"]);
    let (status, body) = m.page(None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Reviews served by"), "{body}");
    let cert = x509(&m, "reviews-v1");
    assert_eq!(
        cert["identity"],
        "spiffe://example.org/ns/default/sa/bookinfo-reviews"
    );
    let chain = cert["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "leaf and intermediate: {cert}");
    assert!(chain[1]["subject"]
        .as_str()
        .unwrap()
        .contains("Example Corp mesh intermediate"));
    let bundle = cert["trustBundle"].as_array().unwrap();
    assert_eq!(bundle.len(), 1);
    assert!(bundle[0]["subject"]
        .as_str()
        .unwrap()
        .contains("Example Corp Root CA"));
    // A plug-in root is rotated with its owner's PKI, not by weft.
    let out = common::weft()
        .args(["ca", "rotate", "--admin", &m.admin])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        m.w.log("up").contains("plug-in CA certificates")
            || std::fs::read_to_string(m.w.dir.join("run/logs/control-plane.log"))
                .unwrap()
                .contains("plug-in CA certificates")
    );
    assert_eq!(ca_state(&m)["phase"], "steady");
    let _ = std::fs::remove_dir_all(&dir);
}
