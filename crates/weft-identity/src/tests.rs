//! The CA, workload certificates and verifiers, with real rustls
//! handshakes in memory.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConnection, ServerConnection};

use crate::verify::TrustBundle;
use crate::workload::{CertStore, Request, WorkloadCert};
use crate::{tls, Authority, IdentityError};

const REVIEWS: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews";
const PRODUCTPAGE: &str = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage";

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("weft-identity-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn issue(ca: &Authority, id: &str) -> WorkloadCert {
    let req = Request::new(id).unwrap();
    let chain = ca
        .sign(&req.csr_pem, id, Duration::from_secs(3600))
        .unwrap();
    req.complete(id, &chain).unwrap()
}

fn store(cert: WorkloadCert) -> Arc<CertStore> {
    let s = CertStore::new();
    s.set(cert);
    s
}

/// Runs a TLS handshake between the two configurations in memory.
fn handshake(
    client: rustls::ClientConfig,
    server: rustls::ServerConfig,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from("peer.mesh").unwrap();
    let mut c = ClientConnection::new(Arc::new(client), name)?;
    let mut s = ServerConnection::new(Arc::new(server))?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut buf.as_slice()).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut buf.as_slice()).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            // The server learns of a bad client certificate from the
            // client's last flight.
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
            return Ok((c, s));
        }
    }
    panic!("handshake did not finish");
}

/// Presents one key whatever happens (the proxy's own store would not
/// offer an expired certificate at all).
#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[test]
fn root_is_created_once_with_a_private_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("root");
    let a = Authority::load_or_create(&dir, "cluster.local").unwrap();
    let mode = std::fs::metadata(dir.join("root-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let b = Authority::load_or_create(&dir, "cluster.local").unwrap();
    assert_eq!(a.roots(), b.roots(), "a restart must keep the root");
    assert!(!format!("{a:?}").contains("PRIVATE"), "{a:?}");
}

#[test]
fn the_ca_issues_only_the_entitled_identity() {
    let ca = Authority::load_or_create(&tmpdir("entitled"), "cluster.local").unwrap();
    let cert = issue(&ca, REVIEWS);
    assert_eq!(cert.identity, REVIEWS);
    let life = cert.not_after.duration_since(cert.not_before).unwrap();
    assert!(life >= Duration::from_secs(3600) && life < Duration::from_secs(3600 + 400));
    // Renewal at half the lifetime from issue, not from the backdated
    // start.
    let until = cert
        .refresh_at()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        until > Duration::from_secs(1790) && until <= Duration::from_secs(1800),
        "{until:?}"
    );
    // A proxy entitled to productpage asking for reviews is refused.
    let req = Request::new(REVIEWS).unwrap();
    match ca.sign(&req.csr_pem, PRODUCTPAGE, Duration::from_secs(60)) {
        Err(IdentityError::NotEntitled {
            requested,
            entitled,
        }) => {
            assert_eq!(requested, REVIEWS);
            assert_eq!(entitled, PRODUCTPAGE);
        }
        other => panic!("{other:?}"),
    }
    assert!(ca
        .sign("not a csr", REVIEWS, Duration::from_secs(60))
        .is_err());
    // A CA answer for someone else is not accepted by the requester.
    let req = Request::new(REVIEWS).unwrap();
    let other = Request::new(PRODUCTPAGE).unwrap();
    let chain = ca
        .sign(&other.csr_pem, PRODUCTPAGE, Duration::from_secs(60))
        .unwrap();
    assert!(req.complete(REVIEWS, &chain).is_err());
}

#[test]
fn mutual_tls_accepts_the_expected_peer_and_nothing_else() {
    let ca = Authority::load_or_create(&tmpdir("mtls"), "cluster.local").unwrap();
    let bundle = TrustBundle::from_pem("roots", ca.roots()).unwrap();
    let server_certs = store(issue(&ca, REVIEWS));
    let client_certs = store(issue(&ca, PRODUCTPAGE));
    let server = || tls::tunnel_server(server_certs.clone(), &bundle, "cluster.local").unwrap();
    let client = |certs: &Arc<CertStore>, expected: &[&str]| {
        tls::tunnel_client(
            certs.clone(),
            bundle.clone(),
            "cluster.local",
            expected.iter().map(|s| s.to_string()).collect(),
        )
        .unwrap()
    };

    let (c, s) = handshake(client(&client_certs, &[REVIEWS]), server()).unwrap();
    let peer = s.peer_certificates().unwrap()[0].clone();
    assert_eq!(crate::verify::peer_identity(&peer).unwrap(), PRODUCTPAGE);
    assert_eq!(c.alpn_protocol(), Some(tls::ALPN_H2));

    // The client expected someone else.
    let err = handshake(client(&client_certs, &[PRODUCTPAGE]), server()).unwrap_err();
    assert!(
        err.to_string().contains("not the expected identity"),
        "{err}"
    );

    // A client certificate from another CA.
    let other = Authority::load_or_create(&tmpdir("other"), "cluster.local").unwrap();
    let foreign = store(issue(&other, PRODUCTPAGE));
    let err = handshake(client(&foreign, &[REVIEWS]), server()).unwrap_err();
    // Both roots are named alike, so webpki finds the wrong "issuer" and
    // its signature fails; with distinct names it is UnknownIssuer.
    let e = err.to_string();
    assert!(
        e.contains("BadSignature") || e.contains("UnknownIssuer"),
        "{e}"
    );

    // An expired certificate from the right CA.
    let now = time::OffsetDateTime::now_utc();
    let (key, chain) = ca
        .issue_with_validity(
            PRODUCTPAGE,
            now - time::Duration::hours(3),
            now - time::Duration::hours(1),
        )
        .unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let expired = rustls::sign::CertifiedKey::from_der(
        crate::pem::certs("chain", &chain.concat()).unwrap(),
        der,
        &crate::provider(),
    )
    .unwrap();
    let expired_client = rustls::ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(crate::verify::SpiffeServerVerifier::new(
            bundle.clone(),
            "cluster.local",
            vec![],
        )))
        .with_client_cert_resolver(Arc::new(Fixed(Arc::new(expired))));
    let err = handshake(expired_client, server()).unwrap_err();
    assert!(err.to_string().contains("certificate expired"), "{err}");

    // Another trust domain, same root.
    let foreign_td = store(issue(&ca, "spiffe://example.org/ns/default/sa/x"));
    let err = handshake(client(&foreign_td, &[REVIEWS]), server()).unwrap_err();
    assert!(err.to_string().contains("not in trust domain"), "{err}");
}
