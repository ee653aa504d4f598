//! TLS credentials named by `credentialName`, read from the secrets
//! directory: `<dir>/<name>/` with a Kubernetes TLS secret's keys
//! (`tls.crt`, `tls.key`, `ca.crt`, `ca.crl`) or Istio's generic ones (`cert`,
//! `key`, `cacert`). The CA of a mutual-TLS credential may also live in
//! Istio's separate `<name>-cacert` secret.

use std::path::Path;

/// A credential's PEM texts; any may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialPem {
    pub cert_chain: String,
    pub private_key: String,
    pub ca_certificates: String,
    /// Revocation lists for the peer's chain (`ca.crl`).
    pub ca_crl: String,
}

fn first(dir: &Path, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::fs::read_to_string(dir.join(n)).ok())
}

/// A credential name is a Kubernetes object name: nothing that could
/// leave the secrets directory.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

pub fn read(dir: &Path, name: &str) -> Result<CredentialPem, String> {
    if !valid_name(name) {
        return Err(format!("{name:?} is not a valid credential name"));
    }
    let secret = dir.join(name);
    if !secret.is_dir() {
        return Err(format!(
            "credential {name:?} not found: put tls.crt and tls.key (and ca.crt to verify peers) in {}",
            secret.display()
        ));
    }
    let cert = first(&secret, &["tls.crt", "cert"]).unwrap_or_default();
    let key = first(&secret, &["tls.key", "key"]).unwrap_or_default();
    // The CA and its revocation lists may live in `<name>-cacert`.
    let cacert = dir.join(format!("{name}-cacert"));
    let ca_side = |names: &[&str]| {
        first(&secret, names)
            .or_else(|| first(&cacert, names))
            .unwrap_or_default()
    };
    let ca = ca_side(&["ca.crt", "cacert"]);
    let crl = ca_side(&["ca.crl"]);
    if cert.is_empty() != key.is_empty() {
        return Err(format!(
            "credential {name:?} in {} has a certificate without a key or a key without a certificate",
            secret.display()
        ));
    }
    if cert.is_empty() && ca.is_empty() {
        return Err(format!(
            "credential {name:?} in {} is empty",
            secret.display()
        ));
    }
    Ok(CredentialPem {
        cert_chain: cert,
        private_key: key,
        ca_certificates: ca,
        ca_crl: crl,
    })
}

/// Whether a credential a Gateway serves with is usable, as istioctl's
/// IST0161 judges a gateway's secret: it has a certificate and its key,
/// the certificate parses, and it is valid now. Checked by analysis only:
/// the gateway itself reports what it cannot load when it loads it.
pub fn check_serving(dir: &Path, name: &str) -> Result<(), String> {
    let pem = read(dir, name)?;
    check_serving_pem(name, &pem.cert_chain, &pem.private_key)
}

/// As [`check_serving`], for a credential's PEM texts (a Kubernetes
/// Secret's `tls.crt` and `tls.key`, say).
pub fn check_serving_pem(name: &str, cert_chain: &str, private_key: &str) -> Result<(), String> {
    if cert_chain.trim().is_empty() || private_key.trim().is_empty() {
        return Err(format!(
            "credential {name:?} has no certificate and key to serve with"
        ));
    }
    crate::pem::private_key(name, private_key).map_err(|e| e.to_string())?;
    let chain = crate::pem::certs(name, cert_chain).map_err(|e| e.to_string())?;
    let leaf = chain
        .first()
        .ok_or_else(|| format!("credential {name:?} holds no certificate"))?;
    let info = crate::inspect::CertInfo::parse(leaf).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now();
    if now > info.not_after {
        return Err(format!(
            "credential {name:?}'s certificate expired at {}",
            crate::inspect::rfc3339(info.not_after)
        ));
    }
    if now < info.not_before {
        return Err(format!(
            "credential {name:?}'s certificate is not valid before {}",
            crate::inspect::rfc3339(info.not_before)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_directory() {
        for bad in ["", "../x", "a/b", ".hidden", "UPPER", "x\0"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(valid_name("bookinfo-credential"));
        let err = read(Path::new("/nonexistent"), "../etc").unwrap_err();
        assert!(err.contains("not a valid credential name"), "{err}");
    }

    /// A self-signed serving certificate valid from `from` to `to`
    /// (seconds from now), written as `<dir>/<name>/tls.{crt,key}`.
    fn write_cert(dir: &Path, name: &str, from: i64, to: i64) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["web.example.com".into()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::seconds(from);
        params.not_after = now + time::Duration::seconds(to);
        let cert = params.self_signed(&key).unwrap();
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join(name).join("tls.key"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn a_serving_credential_needs_a_key_a_parsable_certificate_and_its_dates() {
        let dir = std::env::temp_dir().join(format!("weft-cred-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_cert(&dir, "good", -60, 3600);
        write_cert(&dir, "expired", -7200, -3600);
        write_cert(&dir, "future", 3600, 7200);
        std::fs::create_dir_all(dir.join("garbage")).unwrap();
        std::fs::write(
            dir.join("garbage/tls.crt"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("garbage/tls.key"),
            std::fs::read(dir.join("good/tls.key")).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(dir.join("ca-only")).unwrap();
        std::fs::copy(dir.join("good/tls.crt"), dir.join("ca-only/ca.crt")).unwrap();

        assert_eq!(check_serving(&dir, "good"), Ok(()));
        let expired = check_serving(&dir, "expired").unwrap_err();
        assert!(expired.contains("expired at"), "{expired}");
        let future = check_serving(&dir, "future").unwrap_err();
        assert!(future.contains("not valid before"), "{future}");
        assert!(check_serving(&dir, "garbage").is_err());
        let ca_only = check_serving(&dir, "ca-only").unwrap_err();
        assert!(ca_only.contains("no certificate and key"), "{ca_only}");
        assert!(check_serving(&dir, "absent")
            .unwrap_err()
            .contains("not found"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
