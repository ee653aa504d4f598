//! rustls verifiers for the mesh. A peer is accepted only when its chain
//! leads to one of the mesh's roots (signatures, validity dates, key
//! usage checked by webpki) and its certificate names exactly one SPIFFE
//! ID that is acceptable: in the trust domain, and, when the caller knows
//! whom it is dialing, one of the expected identities. There is no mode
//! that skips any of this.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};

use crate::inspect::CertInfo;
use crate::IdentityError;

/// The roots a proxy trusts.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    roots: Arc<RootCertStore>,
    pub pem: Vec<String>,
}

impl TrustBundle {
    pub fn from_pem(what: &str, pem: &[String]) -> Result<TrustBundle, IdentityError> {
        let mut roots = RootCertStore::empty();
        for cert in crate::pem::certs(what, &pem.concat())? {
            roots
                .add(cert)
                .map_err(|e| IdentityError::invalid(what, format!("not a usable root: {e}")))?;
        }
        Ok(TrustBundle {
            roots: Arc::new(roots),
            pem: pem.to_vec(),
        })
    }
}

/// The SPIFFE ID of a verified peer's leaf certificate.
pub fn peer_identity(end_entity: &CertificateDer<'_>) -> Result<String, IdentityError> {
    Ok(CertInfo::parse(end_entity)?.spiffe_id()?.to_owned())
}

fn identity_error(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        IdentityError::invalid("peer certificate", why),
    ))))
}

/// Checks the leaf's SPIFFE ID: in `trust_domain`, and in `expected` when
/// that is not empty.
fn check_identity(
    end_entity: &CertificateDer<'_>,
    trust_domain: &str,
    expected: &[String],
) -> Result<String, rustls::Error> {
    let id = peer_identity(end_entity).map_err(|e| identity_error(e.to_string()))?;
    let in_domain = id
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(td, _)| td == trust_domain);
    if !in_domain {
        return Err(identity_error(format!(
            "{id} is not in trust domain {trust_domain}"
        )));
    }
    if !expected.is_empty() && !expected.contains(&id) {
        return Err(identity_error(format!(
            "{id} is not the expected identity ({})",
            expected.join(", ")
        )));
    }
    Ok(id)
}

/// Verifies the server a proxy dials (the tunnel peer, the CA).
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    bundle: TrustBundle,
    trust_domain: String,
    expected: Vec<String>,
    algs: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    pub fn new(bundle: TrustBundle, trust_domain: &str, expected: Vec<String>) -> Self {
        SpiffeServerVerifier {
            bundle,
            trust_domain: trust_domain.to_owned(),
            expected,
            algs: crate::provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.bundle.roots,
            intermediates,
            now,
            self.algs.all,
        )?;
        check_identity(end_entity, &self.trust_domain, &self.expected)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Verifies the clients of a proxy's tunnel port: a client certificate is
/// required, chained to the mesh's roots, with a SPIFFE ID in the trust
/// domain. Which identities may do what is authorization's job.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl SpiffeClientVerifier {
    pub fn new(bundle: &TrustBundle, trust_domain: &str) -> Result<Self, IdentityError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(bundle.roots.clone(), crate::provider())
                .build()
                .map_err(|e| IdentityError::invalid("trust bundle", e))?;
        Ok(SpiffeClientVerifier {
            inner,
            trust_domain: trust_domain.to_owned(),
        })
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_identity(end_entity, &self.trust_domain, &[])?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
