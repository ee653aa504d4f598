//! Reading PEM certificates and keys, with errors that name the file.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::IdentityError;

/// Every certificate in a PEM text, in order. `what` names the source
/// (a file, "the CA's answer") in errors.
pub fn certs(what: &str, pem: &str) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    blocks(what, pem, "certificates", "CERTIFICATE")
}

/// Every revocation list in a PEM text (`-----BEGIN X509 CRL-----`).
pub fn crls(
    what: &str,
    pem: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, IdentityError> {
    blocks(what, pem, "revocation lists", "X509 CRL")
}

/// Every `label` block in a PEM text, at least one.
fn blocks<T: PemObject>(
    what: &str,
    pem: &str,
    kind: &str,
    label: &str,
) -> Result<Vec<T>, IdentityError> {
    let items: Vec<T> = T::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| IdentityError::invalid(what, format!("not PEM {kind}: {e}")))?;
    if items.is_empty() {
        return Err(IdentityError::invalid(
            what,
            format!("no `-----BEGIN {label}-----` block found"),
        ));
    }
    Ok(items)
}

pub fn private_key(what: &str, pem: &str) -> Result<PrivateKeyDer<'static>, IdentityError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| IdentityError::invalid(what, format!("not a PEM private key: {e}")))
}

pub fn read(path: &Path) -> Result<String, IdentityError> {
    std::fs::read_to_string(path).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Splits a PEM text into one string per certificate block.
pub fn split(pem: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in pem.lines() {
        let line = line.trim_end();
        if line.starts_with("-----BEGIN ") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

/// Writes `text` readable by the owner only (keys, tokens).
pub fn write_private(path: &Path, text: &str) -> Result<(), IdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| IdentityError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

pub fn write_public(path: &Path, text: &str) -> Result<(), IdentityError> {
    std::fs::write(path, text).map_err(|source| IdentityError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Debian's bundle of the system's trusted roots.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The system's trusted roots, for TLS to servers outside the mesh: the
/// bundle `SSL_CERT_FILE` names, as OpenSSL and Go (Flagger's, istiod's)
/// read it, else Debian's.
pub fn system_roots() -> Result<rustls::RootCertStore, IdentityError> {
    let named = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|p| !p.is_empty());
    let file = named.as_deref().unwrap_or(SYSTEM_ROOTS);
    let text = read(Path::new(file))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(file, &text)? {
        // A bundle may carry certificates webpki cannot use; skip them.
        let _ = roots.add(cert);
    }
    Ok(roots)
}
