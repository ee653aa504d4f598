//! A proxy's own certificate: the key is made here and never leaves the
//! process; the CA only ever sees the CSR. The current certificate sits in
//! an `ArcSwap`, so rotation replaces it for new handshakes while
//! established connections keep going.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

use crate::inspect::CertInfo;
use crate::IdentityError;

/// A key pair and the CSR asking for `id`, to be sent to the CA.
pub struct Request {
    key: KeyPair,
    pub csr_pem: String,
}

impl Request {
    pub fn new(id: &str) -> Result<Request, IdentityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names =
            vec![SanType::URI(id.try_into().map_err(|e| {
                IdentityError::invalid(format!("SPIFFE ID {id:?}"), e)
            })?)];
        let csr_pem = params.serialize_request(&key)?.pem()?;
        Ok(Request { key, csr_pem })
    }

    /// Pairs the key with the chain the CA returned, checking that the
    /// leaf is for `id` and carries this request's public key.
    pub fn complete(self, id: &str, chain_pem: &[String]) -> Result<WorkloadCert, IdentityError> {
        let chain = crate::pem::certs("the CA's answer", &chain_pem.concat())?;
        let info = CertInfo::parse(&chain[0])?;
        let got = info.spiffe_id()?;
        if got != id {
            return Err(IdentityError::invalid(
                "the CA's answer",
                format!("the certificate is for {got}, not {id}"),
            ));
        }
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let key = CertifiedKey::from_der(chain, der, &crate::provider())?;
        Ok(WorkloadCert {
            key: Arc::new(key),
            chain_pem: chain_pem.to_vec(),
            identity: id.to_owned(),
            serial: info.serial.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            received: SystemTime::now(),
        })
    }
}

/// A certificate and key ready for rustls.
pub struct WorkloadCert {
    pub key: Arc<CertifiedKey>,
    /// Leaf first, PEM.
    pub chain_pem: Vec<String>,
    pub identity: String,
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// When it arrived; `not_before` is backdated for clock skew, so it
    /// does not say when the lifetime began.
    pub received: SystemTime,
}

impl std::fmt::Debug for WorkloadCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadCert")
            .field("identity", &self.identity)
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl WorkloadCert {
    /// When to ask for the next one: half-way through its life, as Istio
    /// and ztunnel do, so a CA outage has half a lifetime to heal.
    pub fn refresh_at(&self) -> SystemTime {
        let start = self.received.max(self.not_before);
        let life = self.not_after.duration_since(start).unwrap_or_default();
        start + life / 2
    }

    pub fn remaining(&self) -> Duration {
        self.not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }
}

/// The proxy's current certificate, swapped on rotation.
#[derive(Debug, Default)]
pub struct CertStore {
    current: ArcSwapOption<WorkloadCert>,
}

impl CertStore {
    pub fn new() -> Arc<CertStore> {
        Arc::new(CertStore::default())
    }

    pub fn set(&self, cert: WorkloadCert) {
        self.current.store(Some(Arc::new(cert)));
    }

    pub fn current(&self) -> Option<Arc<WorkloadCert>> {
        self.current.load_full()
    }

    fn key(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .load()
            .as_ref()
            .filter(|c| c.not_after > SystemTime::now())
            .map(|c| c.key.clone())
    }
}

impl rustls::server::ResolvesServerCert for CertStore {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.key()
    }
}

impl rustls::client::ResolvesClientCert for CertStore {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.key()
    }

    fn has_certs(&self) -> bool {
        true
    }
}
