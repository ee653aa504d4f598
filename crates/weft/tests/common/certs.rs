//! Test certificates: a CA and leaves it signs, written as PEM files.

use std::path::Path;

/// Writes `name.pem` / `name.key` for a certificate with DNS `names`,
/// signed by `issuer`.
pub fn leaf(dir: &Path, name: &str, names: &[&str], issuer: &rcgen::Issuer<'_, rcgen::KeyPair>) {
    leaf_with_serial(dir, name, names, issuer, None);
}

/// As `leaf`, with serial number `serial` when given, so a revocation
/// list can name it.
pub fn leaf_with_serial(
    dir: &Path,
    name: &str,
    names: &[&str],
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    serial: Option<u64>,
) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.serial_number = serial.map(rcgen::SerialNumber::from);
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

pub fn ca(dir: &Path, name: &str, cn: &str) -> rcgen::Issuer<'static, rcgen::KeyPair> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let cert = p.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    rcgen::Issuer::new(p, key)
}
