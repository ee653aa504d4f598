//! What a certificate says: its SPIFFE ID, serial and validity, for the
//! verifiers, `weft x509` and expiry warnings.

use std::time::{Duration, SystemTime};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::IdentityError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// URI SANs (a workload certificate has exactly one, its SPIFFE ID).
    pub uris: Vec<String>,
    pub dns_names: Vec<String>,
    /// Lowercase hex, colon-free.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::invalid("certificate", format!("not X.509 DER: {e}")))?;
        if !rest.is_empty() {
            return Err(IdentityError::invalid(
                "certificate",
                "trailing bytes after the certificate",
            ));
        }
        let mut uris = Vec::new();
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => uris.push((*u).to_owned()),
                    GeneralName::DNSName(d) => dns_names.push((*d).to_owned()),
                    _ => {}
                }
            }
        }
        let at = |t: x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            if secs >= 0 {
                SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
            } else {
                SystemTime::UNIX_EPOCH
            }
        };
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            uris,
            dns_names,
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before: at(cert.validity().not_before),
            not_after: at(cert.validity().not_after),
            is_ca: cert.is_ca(),
        })
    }

    /// The one SPIFFE ID a workload certificate must carry.
    pub fn spiffe_id(&self) -> Result<&str, IdentityError> {
        let ids: Vec<&String> = self
            .uris
            .iter()
            .filter(|u| u.starts_with("spiffe://"))
            .collect();
        match ids.as_slice() {
            [one] => Ok(one.as_str()),
            [] => Err(IdentityError::invalid(
                "certificate",
                "it carries no spiffe:// URI SAN",
            )),
            _ => Err(IdentityError::invalid(
                "certificate",
                "it carries more than one SPIFFE ID",
            )),
        }
    }

    /// Time left until expiry (zero when expired).
    pub fn remaining(&self) -> Duration {
        self.not_after
            .duration_since(SystemTime::now())
            .unwrap_or_default()
    }

    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

/// RFC 3339 in UTC, for display.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}
