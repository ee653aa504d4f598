//! A server's chain checked against the roots and, when there are any,
//! revocation lists (a DestinationRule's `caCrl`, or `ca.crl` in its
//! credential), without checking the server name: the verifiers that
//! check a SPIFFE ID or `subjectAltNames` instead use it
//! (`verify::CheckedServerVerifier`).

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::{CertificateError, RootCertStore};

pub fn verify_server_chain(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    roots: &RootCertStore,
    crls: &[CertificateRevocationListDer<'static>],
    now: UnixTime,
    algs: &WebPkiSupportedAlgorithms,
) -> Result<(), rustls::Error> {
    if crls.is_empty() {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        return rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            algs.all,
        );
    }
    let parsed: Vec<webpki::CertRevocationList<'_>> = crls
        .iter()
        .map(|c| {
            webpki::BorrowedCertRevocationList::from_der(c.as_ref())
                .map(Into::into)
                .map_err(|e| rustls::Error::General(format!("a revocation list is unusable: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let refs: Vec<&webpki::CertRevocationList<'_>> = parsed.iter().collect();
    let revocation = webpki::RevocationOptionsBuilder::new(&refs)
        .map_err(|_| rustls::Error::General("no revocation lists".into()))?
        .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
        .build();
    let ee = webpki::EndEntityCert::try_from(end_entity).map_err(certificate_error)?;
    ee.verify_for_usage(
        algs.all,
        &roots.roots,
        intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        Some(revocation),
        None,
    )
    .map(|_| ())
    .map_err(certificate_error)
}

fn certificate_error(e: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    rustls::Error::InvalidCertificate(match e {
        E::CertRevoked => CertificateError::Revoked,
        E::CrlExpired { .. } => CertificateError::ExpiredRevocationList,
        E::UnknownRevocationStatus => CertificateError::UnknownRevocationStatus,
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => {
            CertificateError::Other(rustls::OtherError(std::sync::Arc::new(WebpkiError(other))))
        }
    })
}

#[derive(Debug)]
struct WebpkiError(webpki::Error);

impl std::fmt::Display for WebpkiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for WebpkiError {}
