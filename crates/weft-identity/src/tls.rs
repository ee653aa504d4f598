//! The TLS configurations weft uses, all TLS 1.3 with the mesh verifiers.

use std::sync::Arc;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ServerConfig};

use crate::verify::{SpiffeClientVerifier, SpiffeServerVerifier, TrustBundle};
use crate::workload::CertStore;
use crate::IdentityError;

pub const ALPN_H2: &[u8] = b"h2";

/// The control plane's SPIFFE ID: the CA (15012) presents it and proxies
/// verify it.
pub fn control_plane_identity(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/ns/weft-system/sa/weft-control-plane")
}

static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn tls13() -> &'static [&'static rustls::SupportedProtocolVersion] {
    &TLS13_ONLY
}

/// The tunnel port (15008): a client certificate from the mesh is
/// required; HTTP/2 only.
pub fn tunnel_server(
    certs: Arc<CertStore>,
    bundle: &TrustBundle,
    trust_domain: &str,
) -> Result<ServerConfig, IdentityError> {
    let verifier = SpiffeClientVerifier::new(bundle, trust_domain)?;
    let mut cfg = ServerConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(tls13())?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// Dialing a peer's tunnel: present this proxy's certificate, accept only
/// a peer that is one of `expected` (any mesh identity when empty).
pub fn tunnel_client(
    certs: Arc<CertStore>,
    bundle: TrustBundle,
    trust_domain: &str,
    expected: Vec<String>,
) -> Result<ClientConfig, IdentityError> {
    let verifier = SpiffeServerVerifier::new(bundle, trust_domain, expected);
    let mut cfg = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(tls13())?
        .dangerous()
        // "dangerous" is rustls's name for any custom verifier; this one
        // verifies the chain and the SPIFFE ID (see verify.rs).
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(certs);
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// Dialing the control plane: it must be the control plane's identity; the
/// proxy authenticates with its bootstrap token, not a certificate (it
/// has none yet).
pub fn control_plane_client(
    bundle: TrustBundle,
    trust_domain: &str,
) -> Result<ClientConfig, IdentityError> {
    let verifier = SpiffeServerVerifier::new(
        bundle,
        trust_domain,
        vec![control_plane_identity(trust_domain)],
    );
    let mut cfg = ClientConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(tls13())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}

/// The control plane's CA port.
pub fn control_plane_server(
    key: &rcgen::KeyPair,
    chain_pem: &[String],
) -> Result<ServerConfig, IdentityError> {
    let chain = crate::pem::certs("control plane certificate", &chain_pem.concat())?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut cfg = ServerConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(tls13())?
        .with_no_client_auth()
        .with_single_cert(chain, der)?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(cfg)
}
