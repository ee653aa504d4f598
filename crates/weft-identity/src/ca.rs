//! The certificate authority the control plane runs.
//!
//! It signs workload certificates from CSRs, for exactly the SPIFFE ID the
//! requesting proxy is entitled to. Its signing key comes from, in order:
//!
//! * Istio's plug-in CA layout (`cacerts`): `ca-cert.pem`, `ca-key.pem`,
//!   `root-cert.pem`, `cert-chain.pem`: an intermediate the user's own PKI
//!   issued; or
//! * a self-signed root weft made on first start and kept in the same
//!   directory (`root-cert.pem`, `root-key.pem` with mode 0600).

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};

use crate::pem;
use crate::IdentityError;

/// How long a generated root lives.
const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates are valid from a little before they are issued, so a peer
/// whose clock is slightly behind still accepts them.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

pub struct Authority {
    issuer: Issuer<'static, KeyPair>,
    /// Certificates sent after the leaf: the issuing certificate and its
    /// chain up to (not including) the root. Empty for a weft root.
    chain: Vec<String>,
    /// Roots peers must trust, the signing one first: the current root,
    /// the next one while a rotation is being prepared, and the previous
    /// ones until they retire.
    roots: Vec<String>,
    current: String,
    next: Option<String>,
    previous: Vec<String>,
    /// When the previous roots stop being trusted (Unix seconds).
    retire_at: Option<u64>,
    /// The directory of a weft-made root (rotation writes there); `None`
    /// for a plug-in CA, which its owner rotates.
    dir: Option<std::path::PathBuf>,
    trust_domain: String,
    /// Where the keys came from, for logs.
    pub source: String,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Authority")
            .field("trust_domain", &self.trust_domain)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Loads the CA from `dir`, creating a root there on first start.
    pub fn load_or_create(dir: &Path, trust_domain: &str) -> Result<Authority, IdentityError> {
        if dir.join("ca-key.pem").exists() {
            return Authority::plug_in(dir, trust_domain);
        }
        let (cert_path, key_path) = (dir.join("root-cert.pem"), dir.join("root-key.pem"));
        if !key_path.exists() {
            std::fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let (cert_pem, key) = new_root(trust_domain)?;
            pem::write_private(&key_path, &key.serialize_pem())?;
            pem::write_public(&cert_path, &cert_pem)?;
            tracing::info!(dir = %dir.display(), "created a new root certificate for the mesh");
        }
        let key_pem = pem::read(&key_path)?;
        let cert_pem = pem::read(&cert_path)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| IdentityError::invalid(key_path.display().to_string(), e))?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| IdentityError::invalid(cert_path.display().to_string(), e))?;
        let next = std::fs::read_to_string(dir.join("next-root-cert.pem")).ok();
        let retire_at = std::fs::read_to_string(dir.join("previous-roots.retire"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        let mut a = Authority {
            issuer,
            chain: Vec::new(),
            roots: Vec::new(),
            current: cert_pem,
            next,
            previous: previous_roots(dir)?,
            retire_at,
            dir: Some(dir.to_owned()),
            trust_domain: trust_domain.to_owned(),
            source: format!("weft root in {}", dir.display()),
        };
        a.retire_due()?;
        a.recompute();
        Ok(a)
    }

    fn recompute(&mut self) {
        let mut roots = pem::split(&self.current);
        if let Some(n) = &self.next {
            roots.extend(pem::split(n));
        }
        roots.extend(self.previous.iter().cloned());
        self.roots = roots;
    }

    fn own_dir(&self) -> Result<&Path, IdentityError> {
        self.dir.as_deref().ok_or_else(|| {
            IdentityError::invalid(
                "root rotation",
                "this mesh uses plug-in CA certificates (cacerts); rotate them with your own PKI and restart the control plane",
            )
        })
    }

    /// Rotation, step one: make the next root and trust it alongside the
    /// current one, still signing with the current one. Push the bundle
    /// to every proxy before step two.
    pub fn prepare_rotation(&mut self) -> Result<(), IdentityError> {
        let dir = self.own_dir()?.to_owned();
        if self.next.is_some() {
            return Ok(());
        }
        let (cert_pem, key) = new_root(&self.trust_domain)?;
        pem::write_private(&dir.join("next-root-key.pem"), &key.serialize_pem())?;
        pem::write_public(&dir.join("next-root-cert.pem"), &cert_pem)?;
        self.next = Some(cert_pem);
        self.recompute();
        tracing::info!("root rotation: the next root is trusted alongside the current one");
        Ok(())
    }

    /// Rotation, step two: sign with the next root; the old one stays
    /// trusted for `overlap` (the longest lifetime of what it signed).
    pub fn complete_rotation(&mut self, overlap: Duration) -> Result<(), IdentityError> {
        let dir = self.own_dir()?.to_owned();
        let Some(next) = self.next.clone() else {
            return Err(IdentityError::invalid(
                "root rotation",
                "no next root: prepare the rotation first",
            ));
        };
        let key_pem = pem::read(&dir.join("next-root-key.pem"))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| IdentityError::invalid("next-root-key.pem", e))?;
        let issuer = Issuer::from_ca_cert_pem(&next, key)?;
        let mut previous = self.previous.clone();
        previous.extend(pem::split(&self.current));
        pem::write_public(&dir.join("previous-roots.pem"), &previous.concat())?;
        let retire = unix_now() + overlap.as_secs().max(1);
        pem::write_public(&dir.join("previous-roots.retire"), &retire.to_string())?;
        pem::write_private(&dir.join("root-key.pem"), &key_pem)?;
        pem::write_public(&dir.join("root-cert.pem"), &next)?;
        let _ = std::fs::remove_file(dir.join("next-root-key.pem"));
        let _ = std::fs::remove_file(dir.join("next-root-cert.pem"));
        self.issuer = issuer;
        self.current = next;
        self.next = None;
        self.previous = previous;
        self.retire_at = Some(retire);
        self.recompute();
        tracing::info!(
            retire_in_seconds = overlap.as_secs(),
            "root rotation: signing with the new root"
        );
        Ok(())
    }

    /// Drops previous roots whose overlap is over; whether any were.
    pub fn retire_due(&mut self) -> Result<bool, IdentityError> {
        let due = self.retire_at.is_some_and(|t| t <= unix_now());
        if !due || self.previous.is_empty() {
            return Ok(false);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_file(dir.join("previous-roots.pem"));
            let _ = std::fs::remove_file(dir.join("previous-roots.retire"));
        }
        self.previous.clear();
        self.retire_at = None;
        self.recompute();
        tracing::info!("root rotation: the previous root is no longer trusted");
        Ok(true)
    }

    /// When the previous roots retire, if any are trusted.
    pub fn retire_at(&self) -> Option<u64> {
        (!self.previous.is_empty())
            .then_some(self.retire_at)
            .flatten()
    }

    /// `"preparing"` while the next root is trusted but not signing,
    /// `"overlap"` while a previous root is still trusted, else `"steady"`.
    pub fn rotation_phase(&self) -> &'static str {
        if self.next.is_some() {
            "preparing"
        } else if !self.previous.is_empty() {
            "overlap"
        } else {
            "steady"
        }
    }

    /// Istio's `cacerts` layout: an intermediate signed by the user's root.
    fn plug_in(dir: &Path, trust_domain: &str) -> Result<Authority, IdentityError> {
        let path = |f: &str| dir.join(f);
        let key_pem = pem::read(&path("ca-key.pem"))?;
        let cert_pem = pem::read(&path("ca-cert.pem"))?;
        let root_pem = pem::read(&path("root-cert.pem"))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            IdentityError::invalid(
                path("ca-key.pem").display().to_string(),
                format!(
                    "{e} (a PKCS#8 key is needed: `openssl pkcs8 -topk8 -nocrypt -in ca-key.pem`)"
                ),
            )
        })?;
        pem::certs(&path("ca-cert.pem").display().to_string(), &cert_pem)?;
        pem::certs(&path("root-cert.pem").display().to_string(), &root_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)
            .map_err(|e| IdentityError::invalid(path("ca-cert.pem").display().to_string(), e))?;
        // cert-chain.pem is the issuing certificate and everything above
        // it; send all but the roots themselves.
        let roots = pem::split(&root_pem);
        let chain = match std::fs::read_to_string(path("cert-chain.pem")) {
            Ok(text) => pem::split(&text),
            Err(_) => pem::split(&cert_pem),
        }
        .into_iter()
        .filter(|c| !roots.contains(c))
        .collect();
        Ok(Authority {
            issuer,
            chain,
            current: roots.concat(),
            roots,
            next: None,
            previous: Vec::new(),
            retire_at: None,
            dir: None,
            trust_domain: trust_domain.to_owned(),
            source: format!("plug-in CA certificates in {}", dir.display()),
        })
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The roots peers must trust, as PEM blocks.
    pub fn roots(&self) -> &[String] {
        &self.roots
    }

    /// Signs `csr_pem` for `entitled`, the one SPIFFE ID the requester may
    /// hold. The CSR must ask for exactly that ID; everything else in it
    /// (subject, other names, extensions) is ignored, so a proxy cannot
    /// obtain more than its identity. Returns the chain, leaf first.
    pub fn sign(
        &self,
        csr_pem: &str,
        entitled: &str,
        ttl: Duration,
    ) -> Result<Vec<String>, IdentityError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| IdentityError::invalid("certificate signing request", e))?;
        let requested: Vec<String> = csr
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(u) => u.as_str().to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        if requested.as_slice() != [entitled] {
            return Err(IdentityError::NotEntitled {
                requested: if requested.is_empty() {
                    "a certificate without a SPIFFE ID".to_owned()
                } else {
                    requested.join(", ")
                },
                entitled: entitled.to_owned(),
            });
        }
        csr.params = leaf_params(entitled, ttl)?;
        let leaf = csr.signed_by(&self.issuer)?;
        let mut chain = vec![leaf.pem()];
        chain.extend(self.chain.iter().cloned());
        Ok(chain)
    }

    /// A key and certificate for `id` made here, for the control plane's
    /// own TLS server (the key never leaves this process either).
    pub fn issue_local(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<(KeyPair, Vec<String>), IdentityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = leaf_params(id, ttl)?.signed_by(&key, &self.issuer)?;
        let mut chain = vec![cert.pem()];
        chain.extend(self.chain.iter().cloned());
        Ok((key, chain))
    }
}

/// Roots kept for their overlap period after a rotation
/// (`previous-roots.pem`); trusted, never used to sign.
fn previous_roots(dir: &Path) -> Result<Vec<String>, IdentityError> {
    let path = dir.join("previous-roots.pem");
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(pem::split(&pem::read(&path)?))
}

fn new_root(trust_domain: &str) -> Result<(String, KeyPair), IdentityError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    // Each root is named apart, so a chain names its own root after a
    // rotation.
    let serial = random_serial();
    let tag: String = serial
        .to_bytes()
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    dn.push(DnType::CommonName, format!("weft root CA {tag}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + ROOT_LIFETIME;
    params.serial_number = Some(serial);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key))
}

fn leaf_params(id: &str, ttl: Duration) -> Result<CertificateParams, IdentityError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names =
        vec![SanType::URI(id.try_into().map_err(|e| {
            IdentityError::invalid(format!("SPIFFE ID {id:?}"), e)
        })?)];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + ttl;
    params.serial_number = Some(random_serial());
    Ok(params)
}

/// 128 random bits from ring's system random source, high bit clear so
/// the DER integer stays positive.
fn random_serial() -> SerialNumber {
    use rustls::crypto::ring::default_provider;
    let mut bytes = [0u8; 16];
    if default_provider().secure_random.fill(&mut bytes).is_err() {
        // The system random source failing is not recoverable here;
        // fall back to the clock so serials still differ.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

#[cfg(test)]
impl Authority {
    /// A certificate for `id` with the given validity, for tests of expiry.
    pub(crate) fn issue_with_validity(
        &self,
        id: &str,
        not_before: time::OffsetDateTime,
        not_after: time::OffsetDateTime,
    ) -> Result<(KeyPair, Vec<String>), IdentityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = leaf_params(id, Duration::from_secs(60))?;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((key, vec![cert.pem()]))
    }
}
