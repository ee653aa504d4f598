//! rustls verifiers for the mesh. A peer is accepted only when its chain
//! leads to one of the mesh's roots (signatures, validity dates, key
//! usage checked by webpki) and its certificate names exactly one SPIFFE
//! ID that is acceptable: in the trust domain, and, when the caller knows
//! whom it is dialing, one of the expected identities. There is no mode
//! that skips any of this.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
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

/// What a verifier asks of a peer's leaf certificate once its chain is
/// verified (a SPIFFE ID, pins, `subjectAltNames`).
pub trait LeafCheck: std::fmt::Debug + Send + Sync {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error>;
}

/// The mesh's identity check: a SPIFFE ID in `trust_domain`, and one of
/// `expected` when that is not empty.
#[derive(Debug)]
pub struct MeshIdentity {
    trust_domain: String,
    expected: Vec<String>,
}

impl LeafCheck for MeshIdentity {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        check_identity(end_entity, &self.trust_domain, &self.expected).map(|_| ())
    }
}

/// Verifies a server by its chain (to `roots`, revoked by none of `crls`)
/// and `check`, not by the name dialed.
#[derive(Debug)]
pub struct CheckedServerVerifier<C> {
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    algs: WebPkiSupportedAlgorithms,
    check: C,
}

impl<C: LeafCheck> CheckedServerVerifier<C> {
    pub fn with_check(
        roots: Arc<RootCertStore>,
        crls: Vec<CertificateRevocationListDer<'static>>,
        check: C,
    ) -> Self {
        CheckedServerVerifier {
            roots,
            crls,
            algs: crate::provider().signature_verification_algorithms,
            check,
        }
    }
}

/// Verifies the server a proxy dials (the tunnel peer, the CA).
pub type SpiffeServerVerifier = CheckedServerVerifier<MeshIdentity>;

impl SpiffeServerVerifier {
    pub fn new(bundle: TrustBundle, trust_domain: &str, expected: Vec<String>) -> Self {
        CheckedServerVerifier::with_check(
            bundle.roots,
            Vec::new(),
            MeshIdentity {
                trust_domain: trust_domain.to_owned(),
                expected,
            },
        )
    }
}

impl<C: LeafCheck> ServerCertVerifier for CheckedServerVerifier<C> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        crate::revocation::verify_server_chain(
            end_entity,
            intermediates,
            &self.roots,
            &self.crls,
            now,
            &self.algs,
        )?;
        self.check.check(end_entity)?;
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

/// A client verifier that runs `inner` (the chain, revocation, whether a
/// certificate is required) and then `check` on the leaf.
#[derive(Debug)]
pub struct CheckedClientVerifier<C> {
    inner: Arc<dyn ClientCertVerifier>,
    check: C,
}

impl<C: LeafCheck> CheckedClientVerifier<C> {
    pub fn with_check(inner: Arc<dyn ClientCertVerifier>, check: C) -> Self {
        CheckedClientVerifier { inner, check }
    }
}

/// Verifies the clients of a proxy's tunnel port: a client certificate is
/// required, chained to the mesh's roots, with a SPIFFE ID in the trust
/// domain. Which identities may do what is authorization's job.
pub type SpiffeClientVerifier = CheckedClientVerifier<MeshIdentity>;

impl SpiffeClientVerifier {
    pub fn new(bundle: &TrustBundle, trust_domain: &str) -> Result<Self, IdentityError> {
        let inner =
            WebPkiClientVerifier::builder_with_provider(bundle.roots.clone(), crate::provider())
                .build()
                .map_err(|e| IdentityError::invalid("trust bundle", e))?;
        Ok(CheckedClientVerifier::with_check(
            inner,
            MeshIdentity {
                trust_domain: trust_domain.to_owned(),
                expected: Vec::new(),
            },
        ))
    }
}

impl<C: LeafCheck> ClientCertVerifier for CheckedClientVerifier<C> {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        self.check.check(end_entity)?;
        Ok(verified)
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
