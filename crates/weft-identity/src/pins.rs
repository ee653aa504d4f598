//! What a gateway asks of a client certificate beyond its chain: pins
//! (Istio's `verifyCertificateSpki` and `verifyCertificateHash`: the
//! SHA-256 of its public key or of the whole certificate; either list
//! matching admits it, as Envoy does) and `subjectAltNames` (one of its
//! DNS or URI names must be listed).

use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::CertificateError;

use crate::verify::{CheckedClientVerifier, LeafCheck};

type Sha256 = [u8; 32];

/// The pins a server admits; empty admits every certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertPins {
    spki: Vec<Sha256>,
    cert: Vec<Sha256>,
}

/// Why a pin is not one: `spki` pins are base64 of 32 bytes, `hash` pins
/// 64 hex digits, optionally in colon-separated pairs.
pub fn spki_pin(pin: &str) -> Result<Sha256, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pin.trim())
        .map_err(|e| format!("{pin:?} is not base64: {e}"))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "{pin:?} decodes to {} bytes; a SHA-256 pin is 32 (base64 of the SubjectPublicKeyInfo's digest)",
            b.len()
        )
    })
}

pub fn hash_pin(pin: &str) -> Result<Sha256, String> {
    let hex: String = pin.trim().chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{pin:?} is not a SHA-256 fingerprint: 64 hex digits, optionally as colon-separated pairs"
        ));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

impl CertPins {
    pub fn parse(spki: &[String], hash: &[String]) -> Result<CertPins, String> {
        Ok(CertPins {
            spki: spki.iter().map(|p| spki_pin(p)).collect::<Result<_, _>>()?,
            cert: hash.iter().map(|p| hash_pin(p)).collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.spki.is_empty() && self.cert.is_empty()
    }

    /// Whether a DER certificate matches a pin (true when there are none).
    pub fn admits(&self, der: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        if self.cert.contains(&sha256(der)) {
            return true;
        }
        if self.spki.is_empty() {
            return false;
        }
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => self.spki.contains(&sha256(cert.public_key().raw)),
            Err(_) => false,
        }
    }
}

fn sha256(data: &[u8]) -> Sha256 {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Whether a DER certificate names one of `sans` (DNS names compared
/// without case, URIs exactly); any certificate when `sans` is empty.
pub fn names_one_of(der: &[u8], sans: &[String]) -> bool {
    if sans.is_empty() {
        return true;
    }
    crate::inspect::CertInfo::parse(der).is_ok_and(|info| names_match(&info, sans))
}

/// Whether `info` carries one of `sans`, as Envoy's exact matchers read
/// Istio's `subjectAltNames`: DNS names without regard to case (DNS has
/// none), URIs (SPIFFE IDs) exactly.
pub fn names_match(info: &crate::inspect::CertInfo, sans: &[String]) -> bool {
    info.dns_names
        .iter()
        .any(|d| sans.iter().any(|s| s.eq_ignore_ascii_case(d)))
        || info.uris.iter().any(|u| sans.contains(u))
}

/// Pins and `subjectAltNames` asked of a client certificate after its
/// chain (see [`PinnedClientVerifier`]).
#[derive(Debug)]
pub struct Pinned {
    pins: CertPins,
    sans: Vec<String>,
}

impl LeafCheck for Pinned {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.pins.admits(end_entity) && names_one_of(end_entity, &self.sans) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

/// A client verifier that runs `inner` (the CA chain, revocation) and
/// then admits only pinned certificates that name one of `sans`.
pub type PinnedClientVerifier = CheckedClientVerifier<Pinned>;

impl PinnedClientVerifier {
    /// `inner` itself when there are neither pins nor names to ask for.
    pub fn wrap(
        inner: Arc<dyn ClientCertVerifier>,
        pins: CertPins,
        sans: Vec<String>,
    ) -> Arc<dyn ClientCertVerifier> {
        if pins.is_empty() && sans.is_empty() {
            return inner;
        }
        Arc::new(CheckedClientVerifier::with_check(
            inner,
            Pinned { pins, sans },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_match_without_case_and_uris_exactly() {
        let info = crate::inspect::CertInfo {
            subject: String::new(),
            issuer: String::new(),
            uris: vec!["spiffe://cluster.local/ns/a/sa/b".into()],
            dns_names: vec!["api.example.com".into()],
            serial: String::new(),
            not_before: std::time::SystemTime::UNIX_EPOCH,
            not_after: std::time::SystemTime::UNIX_EPOCH,
            is_ca: false,
        };
        let m = |s: &str| names_match(&info, &[s.to_owned()]);
        assert!(m("API.example.com"));
        assert!(m("spiffe://cluster.local/ns/a/sa/b"));
        assert!(!m("spiffe://cluster.local/ns/A/sa/b"));
        assert!(!m("other.example.com"));
    }

    fn cert() -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["client.example.com".into()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_matches_its_own_pins_only() {
        let der = cert();
        let other = cert();
        let hash: String = sha256(&der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let spki =
            base64::engine::general_purpose::STANDARD.encode(sha256(parsed.public_key().raw));
        let by_hash = CertPins::parse(&[], &[hash]).unwrap();
        let by_spki = CertPins::parse(&[spki], &[]).unwrap();
        for pins in [&by_hash, &by_spki] {
            assert!(pins.admits(&der));
            assert!(!pins.admits(&other));
        }
        assert!(CertPins::default().admits(&other), "no pins admit all");
    }

    #[test]
    fn subject_alt_names_admit_only_the_names_listed() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.example.com".into()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://example.com/ns/a/sa/b".try_into().unwrap(),
        ));
        let der = params.self_signed(&key).unwrap().der().to_vec();
        assert!(names_one_of(&der, &[]));
        assert!(names_one_of(&der, &["CLIENT.example.com".into()]));
        assert!(names_one_of(
            &der,
            &["spiffe://example.com/ns/a/sa/b".into()]
        ));
        assert!(!names_one_of(&der, &["other.example.com".into()]));
    }

    #[test]
    fn malformed_pins_are_refused_with_the_reason() {
        assert!(hash_pin("abc").unwrap_err().contains("64 hex digits"));
        assert!(hash_pin(&"g".repeat(64)).is_err());
        assert!(spki_pin("not base64!").unwrap_err().contains("not base64"));
        assert!(spki_pin("AAAA").unwrap_err().contains("32"));
        assert!(hash_pin(&"ab".repeat(32)).is_ok());
    }
}
