//! Workload identity for weft: the certificate authority the control plane
//! runs, SPIFFE IDs, the workload certificates proxies hold (their keys
//! never leave the proxy), and the rustls verifiers that accept a peer
//! only when its chain leads to the mesh's roots and its SPIFFE ID is the
//! one expected.
//!
//! ring is the one crypto provider; configurations are built with it
//! explicitly, never through a process-wide default.

pub mod ca;
pub mod credential;
pub mod inspect;
pub mod pem;
pub mod pins;
pub mod revocation;
pub mod server_tls;
pub mod spiffe;
pub mod tls;
pub mod verify;
pub mod workload;

use std::path::PathBuf;
use std::sync::Arc;

pub use ca::Authority;
pub use spiffe::SpiffeId;
pub use workload::{CertStore, WorkloadCert};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {why}")]
    Invalid { what: String, why: String },
    #[error("not a SPIFFE ID ({id:?}): {why}")]
    BadSpiffeId { id: String, why: String },
    #[error("this proxy may only be issued {entitled}, not {requested}")]
    NotEntitled { requested: String, entitled: String },
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

impl IdentityError {
    pub fn invalid(what: impl Into<String>, why: impl std::fmt::Display) -> Self {
        IdentityError::Invalid {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

/// The crypto provider every configuration is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> =
        std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A client configuration for TLS to servers outside the mesh, verified
/// against `roots`.
pub fn client_trusting(
    roots: rustls::RootCertStore,
) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::invalid("the TLS client configuration", e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// As [`client_trusting`] the system's roots (`SSL_CERT_FILE` where
/// set), read once.
pub fn outside_client() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            pem::system_roots()
                .and_then(client_trusting)
                .map_err(|e| e.to_string())
        })
        .clone()
}

#[cfg(test)]
mod tests;
