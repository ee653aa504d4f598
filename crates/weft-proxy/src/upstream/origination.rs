//! TLS origination for DestinationRule `tls.mode` SIMPLE and MUTUAL: the
//! proxy speaks TLS to the upstream on the application's behalf. The
//! server is always verified: against the credential's CA, the
//! `caCertificates` file, or the system's roots; by `subjectAltNames` when
//! given, else by the SNI name.

use std::io;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use weft_model::TlsOrigination;

use crate::identity::credentials::Credentials;

/// What a built configuration depends on: the credential it was built
/// from and when the caCrl file was written.
type Stamp = (usize, Option<std::time::SystemTime>);

pub struct TlsOrigin {
    mutual: bool,
    settings: TlsOrigination,
    pub server_name: ServerName<'static>,
    alpn: Vec<Vec<u8>>,
    credentials: Option<Arc<Credentials>>,
    /// The built configuration, and the credential it was built from (a
    /// renewed credential rebuilds it).
    cache: Mutex<Option<(Stamp, Arc<ClientConfig>)>>,
}

impl TlsOrigin {
    pub fn new(
        mutual: bool,
        settings: &TlsOrigination,
        host: &str,
        h2: bool,
        credentials: Option<Arc<Credentials>>,
    ) -> Result<TlsOrigin, String> {
        let name = if settings.sni.is_empty() {
            host
        } else {
            &settings.sni
        };
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("SNI {name:?} is not a server name: {e}"))?;
        Ok(TlsOrigin {
            mutual,
            settings: settings.clone(),
            server_name,
            alpn: if h2 {
                vec![b"h2".to_vec()]
            } else {
                vec![b"http/1.1".to_vec()]
            },
            credentials,
            cache: Mutex::new(None),
        })
    }

    /// The client configuration, built on first use.
    pub fn config(&self) -> io::Result<Arc<ClientConfig>> {
        let cred = match (&self.settings.credential_name, &self.credentials) {
            (n, _) if n.is_empty() => None,
            (n, Some(c)) => Some(c.get(n).map_err(io::Error::other)?),
            (n, None) => {
                return Err(io::Error::other(format!(
                    "credential {n:?}: this proxy has no credentials"
                )))
            }
        };
        // A new credential, or a caCrl file written since, builds anew.
        let crl_written = (!self.settings.ca_crl.is_empty())
            .then(|| {
                std::fs::metadata(&self.settings.ca_crl)
                    .and_then(|m| m.modified())
                    .ok()
            })
            .flatten();
        let stamp = (
            cred.as_ref().map_or(0, |c| Arc::as_ptr(c) as usize),
            crl_written,
        );
        if let Ok(cache) = self.cache.lock() {
            if let Some((s, cfg)) = cache.as_ref() {
                if *s == stamp {
                    return Ok(cfg.clone());
                }
            }
        }
        let roots = match cred.as_ref().and_then(|c| c.roots.clone()) {
            Some(r) => r,
            None if !self.settings.ca_certificates.is_empty() => {
                let path = std::path::Path::new(&self.settings.ca_certificates);
                let text = weft_identity::pem::read(path).map_err(io::Error::other)?;
                let mut store = RootCertStore::empty();
                for c in weft_identity::pem::certs(&self.settings.ca_certificates, &text)
                    .map_err(io::Error::other)?
                {
                    store.add(c).map_err(io::Error::other)?;
                }
                Arc::new(store)
            }
            None => Arc::new(weft_identity::pem::system_roots().map_err(io::Error::other)?),
        };
        let mut crls = cred.as_ref().map(|c| c.crls.clone()).unwrap_or_default();
        if !self.settings.ca_crl.is_empty() {
            let path = &self.settings.ca_crl;
            let text =
                weft_identity::pem::read(std::path::Path::new(path)).map_err(io::Error::other)?;
            crls.extend(weft_identity::pem::crls(path, &text).map_err(io::Error::other)?);
        }
        let provider = weft_identity::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?;
        let builder = if self.settings.subject_alt_names.is_empty() && crls.is_empty() {
            builder.with_root_certificates(roots)
        } else if self.settings.subject_alt_names.is_empty() {
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                provider.clone(),
            )
            .with_crls(crls)
            .enforce_revocation_expiration()
            .build()
            .map_err(io::Error::other)?;
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                // Chain verified as webpki does; the name checked against
                // subjectAltNames instead of the SNI (see SanVerifier).
                .with_custom_certificate_verifier(Arc::new(SanVerifier {
                    roots,
                    crls,
                    sans: self.settings.subject_alt_names.clone(),
                    algs: provider.signature_verification_algorithms,
                }))
        };
        let mut cfg = if self.mutual {
            let key = match cred.as_ref().and_then(|c| c.key.clone()) {
                Some(k) => k,
                None => self.key_from_files()?,
            };
            builder.with_client_cert_resolver(Arc::new(FixedClient(key)))
        } else {
            builder.with_no_client_auth()
        };
        cfg.alpn_protocols = self.alpn.clone();
        let cfg = Arc::new(cfg);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((stamp, cfg.clone()));
        }
        Ok(cfg)
    }

    fn key_from_files(&self) -> io::Result<Arc<rustls::sign::CertifiedKey>> {
        let (c, k) = (
            &self.settings.client_certificate,
            &self.settings.private_key,
        );
        if c.is_empty() || k.is_empty() {
            return Err(io::Error::other(
                "MUTUAL needs a client certificate: set credentialName, or clientCertificate and privateKey",
            ));
        }
        let chain_text =
            weft_identity::pem::read(std::path::Path::new(c)).map_err(io::Error::other)?;
        let key_text =
            weft_identity::pem::read(std::path::Path::new(k)).map_err(io::Error::other)?;
        let chain = weft_identity::pem::certs(c, &chain_text).map_err(io::Error::other)?;
        let key = weft_identity::pem::private_key(k, &key_text).map_err(io::Error::other)?;
        Ok(Arc::new(
            rustls::sign::CertifiedKey::from_der(chain, key, &weft_identity::provider())
                .map_err(io::Error::other)?,
        ))
    }
}

#[derive(Debug)]
struct FixedClient(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClient {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Istio's `subjectAltNames`: the server's chain must lead to the roots,
/// revoked by none of the revocation lists, and one of its DNS or URI
/// names must be in the list.
#[derive(Debug)]
struct SanVerifier {
    roots: Arc<RootCertStore>,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
    sans: Vec<String>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        weft_identity::revocation::verify_server_chain(
            end_entity,
            intermediates,
            &self.roots,
            &self.crls,
            now,
            &self.algs,
        )?;
        let info = weft_identity::inspect::CertInfo::parse(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let names = info.dns_names.iter().chain(info.uris.iter());
        let wanted = |n: &String| self.sans.iter().any(|s| s.eq_ignore_ascii_case(n));
        if names.clone().any(wanted) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate names {:?}, none of subjectAltNames {:?}",
                names.collect::<Vec<_>>(),
                self.sans
            )))
        }
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
