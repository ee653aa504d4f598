//! TLS origination for DestinationRule `tls.mode` SIMPLE and MUTUAL: the
//! proxy speaks TLS to the upstream on the application's behalf. The
//! server is always verified: against the credential's CA, the
//! `caCertificates` file, or the system's roots; by `subjectAltNames` when
//! given, else by the SNI name.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use weft_identity::verify::{CheckedServerVerifier, LeafCheck};
use weft_model::TlsOrigination;

use crate::identity::credentials::{crl_file_written, revocation_lists, Credential, Credentials};

/// What a built configuration depends on: the credential it was built
/// from (held, so a renewed one is never mistaken for it) and when the
/// caCrl file was written.
struct Stamp {
    credential: Option<Arc<Credential>>,
    crl_written: Option<SystemTime>,
}

impl PartialEq for Stamp {
    fn eq(&self, other: &Stamp) -> bool {
        let credential = |s: &Stamp| s.credential.as_ref().map(Arc::as_ptr);
        credential(self) == credential(other) && self.crl_written == other.crl_written
    }
}

pub struct TlsOrigin {
    mutual: bool,
    settings: TlsOrigination,
    pub server_name: ServerName<'static>,
    alpn: Vec<Vec<u8>>,
    credentials: Option<Arc<Credentials>>,
    /// The built configuration, and what it was built from (a renewed
    /// credential or a rewritten caCrl file rebuilds it).
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
        let stamp = Stamp {
            credential: cred.clone(),
            crl_written: crl_file_written(&self.settings.ca_crl),
        };
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
        let crls =
            revocation_lists(cred.as_deref(), &self.settings.ca_crl).map_err(io::Error::other)?;
        let provider = weft_identity::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?;
        let builder = if self.settings.subject_alt_names.is_empty() && crls.is_empty() {
            builder.with_root_certificates(roots)
        } else if self.settings.subject_alt_names.is_empty() {
            let verifier =
                rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .with_crls(crls)
                    .enforce_revocation_expiration()
                    .build()
                    .map_err(io::Error::other)?;
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                // Chain verified as webpki does; the name checked against
                // subjectAltNames instead of the SNI (see SubjectAltNames).
                .with_custom_certificate_verifier(Arc::new(CheckedServerVerifier::with_check(
                    roots,
                    crls,
                    SubjectAltNames(self.settings.subject_alt_names.clone()),
                )))
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

/// Istio's `subjectAltNames`: once the server's chain leads to the roots,
/// revoked by none of the revocation lists, one of its DNS or URI names
/// must be in the list (matched as a gateway matches a client's).
#[derive(Debug)]
struct SubjectAltNames(Vec<String>);

impl LeafCheck for SubjectAltNames {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let info = weft_identity::inspect::CertInfo::parse(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if weft_identity::pins::names_match(&info, &self.0) {
            Ok(())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate names {:?}, none of subjectAltNames {:?}",
                info.dns_names
                    .iter()
                    .chain(info.uris.iter())
                    .collect::<Vec<_>>(),
                self.0
            )))
        }
    }
}
