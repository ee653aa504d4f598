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

#[cfg(test)]
mod tests;
