//! TLS credentials named by `credentialName`, read from the secrets
//! directory: `<dir>/<name>/` with a Kubernetes TLS secret's keys
//! (`tls.crt`, `tls.key`, `ca.crt`) or Istio's generic ones (`cert`,
//! `key`, `cacert`). The CA of a mutual-TLS credential may also live in
//! Istio's separate `<name>-cacert` secret.

use std::path::Path;

/// A credential's PEM texts; any may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialPem {
    pub cert_chain: String,
    pub private_key: String,
    pub ca_certificates: String,
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
    let ca = first(&secret, &["ca.crt", "cacert"])
        .or_else(|| first(&dir.join(format!("{name}-cacert")), &["ca.crt", "cacert"]))
        .unwrap_or_default();
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
    })
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
}
