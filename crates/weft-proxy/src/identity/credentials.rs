//! TLS credentials named by `credentialName` (Gateway servers,
//! DestinationRule TLS origination): fetched from the control plane over
//! its TLS port (which serves a proxy only the names its model uses), or
//! read from a local directory when the proxy runs from a model file.
//! They are loaded before a model that names them is swapped in, and
//! re-read periodically so a renewed secret takes effect.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateRevocationListDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use weft_identity::credential::CredentialPem;
use weft_model::ServerTls;

use crate::identity::mesh::{CaClient, Mesh};

/// A credential ready for rustls.
pub struct Credential {
    /// Certificate chain and key, when the credential has them.
    pub key: Option<Arc<CertifiedKey>>,
    /// Roots to verify the peer with, when it has a CA.
    pub roots: Option<Arc<RootCertStore>>,
    /// Revocation lists for the peer's chain (`ca.crl`).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pem: CredentialPem,
    /// The gateway server configurations built from this credential (a
    /// renewed credential is a new `Credential`, so it starts empty).
    server_configs: Mutex<Vec<BuiltServer>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("has_key", &self.key.is_some())
            .field("has_roots", &self.roots.is_some())
            .finish_non_exhaustive()
    }
}

/// A gateway server's configuration, with the settings it was built for
/// and when their caCrl file was written.
struct BuiltServer {
    server: ServerTls,
    crl_written: Option<SystemTime>,
    config: Arc<ServerConfig>,
}

/// How many server configurations a credential keeps: those of servers a
/// new model changed are never asked for again.
const SERVER_CONFIGS: usize = 8;

impl Credential {
    /// `server`'s configuration, made by `build` from this credential the
    /// first time it is asked for and again when `server`'s caCrl file is
    /// rewritten; otherwise a handshake takes it as it is.
    pub fn server_config(
        &self,
        server: &ServerTls,
        build: impl FnOnce() -> Result<ServerConfig, String>,
    ) -> Result<Arc<ServerConfig>, String> {
        let crl_written = crl_file_written(&server.ca_crl);
        if let Ok(built) = self.server_configs.lock() {
            if let Some(b) = built
                .iter()
                .find(|b| b.server == *server && b.crl_written == crl_written)
            {
                return Ok(b.config.clone());
            }
        }
        let config = Arc::new(build()?);
        if let Ok(mut built) = self.server_configs.lock() {
            built.retain(|b| b.server != *server);
            if built.len() >= SERVER_CONFIGS {
                built.remove(0);
            }
            built.push(BuiltServer {
                server: server.clone(),
                crl_written,
                config: config.clone(),
            });
        }
        Ok(config)
    }
}

/// The revocation lists a peer's chain is checked against: the
/// credential's `ca.crl` and the `caCrl` file (a Gateway server's or a
/// DestinationRule's), when there is one.
pub fn revocation_lists(
    credential: Option<&Credential>,
    ca_crl: &str,
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let mut crls = credential.map(|c| c.crls.clone()).unwrap_or_default();
    if !ca_crl.is_empty() {
        let text = weft_identity::pem::read(Path::new(ca_crl)).map_err(|e| e.to_string())?;
        crls.extend(weft_identity::pem::crls(ca_crl, &text).map_err(|e| e.to_string())?);
    }
    Ok(crls)
}

/// When the `caCrl` file was last written (`None` without one): a
/// configuration built from an older file is built anew.
pub fn crl_file_written(ca_crl: &str) -> Option<SystemTime> {
    if ca_crl.is_empty() {
        return None;
    }
    std::fs::metadata(ca_crl).and_then(|m| m.modified()).ok()
}

pub enum Source {
    /// No credentials: anything that needs one fails.
    None,
    Dir(PathBuf),
    ControlPlane {
        mesh: Arc<Mesh>,
        ca: CaClient,
    },
}

type Loaded = HashMap<String, Result<Arc<Credential>, String>>;

pub struct Credentials {
    source: Source,
    loaded: ArcSwap<Loaded>,
}

impl Credentials {
    pub fn new(source: Source) -> Arc<Credentials> {
        Arc::new(Credentials {
            source,
            loaded: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// The credential `name`, or why it is not available.
    pub fn get(&self, name: &str) -> Result<Arc<Credential>, String> {
        match self.loaded.load().get(name) {
            Some(r) => r.clone(),
            None => Err(format!("credential {name:?} is not loaded")),
        }
    }

    /// Loads every name in `names` not loaded yet (or that failed before).
    pub async fn ensure(&self, names: &BTreeSet<String>) {
        let current = self.loaded.load_full();
        let missing: Vec<&String> = names
            .iter()
            .filter(|n| !matches!(current.get(*n), Some(Ok(_))))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut next = Loaded::clone(&current);
        for name in missing {
            let result = self.fetch(name).await.and_then(|pem| parse(name, pem));
            if let Err(e) = &result {
                tracing::warn!(credential = %name, error = %e, "credential unavailable");
                eprintln!("weft proxy: credential {name:?} unavailable: {e}");
            }
            next.insert(name.clone(), result.map(Arc::new));
        }
        self.loaded.store(Arc::new(next));
    }

    /// Re-reads the credentials that could not be had (`all`: every one);
    /// replaces those that changed.
    pub async fn refresh(&self, all: bool) {
        let current = self.loaded.load_full();
        let mut next = Loaded::clone(&current);
        let mut changed = false;
        for (name, old) in current.iter() {
            if !all && old.is_ok() {
                continue;
            }
            let Ok(pem) = self.fetch(name).await else {
                // Keep serving the last good credential.
                continue;
            };
            if old.as_ref().is_ok_and(|c| c.pem == pem) {
                continue;
            }
            match parse(name, pem) {
                Ok(c) => {
                    tracing::info!(credential = %name, "credential renewed");
                    next.insert(name.clone(), Ok(Arc::new(c)));
                    changed = true;
                }
                Err(why) => {
                    tracing::warn!(credential = %name, %why, "a changed credential is unusable; the last good one keeps serving");
                }
            }
        }
        if changed {
            self.loaded.store(Arc::new(next));
        }
    }

    async fn fetch(&self, name: &str) -> Result<CredentialPem, String> {
        match &self.source {
            Source::None => {
                Err("this proxy has no source of credentials (--secrets or --ca)".into())
            }
            Source::Dir(dir) => weft_identity::credential::read(dir, name),
            Source::ControlPlane { mesh, ca } => {
                let r = crate::identity::mesh::request_credential(
                    ca,
                    &mesh.bundle(),
                    &mesh.trust_domain,
                    name,
                )
                .await?;
                Ok(CredentialPem {
                    cert_chain: r.cert_chain,
                    private_key: r.private_key,
                    ca_certificates: r.ca_certificates,
                    ca_crl: r.ca_crl,
                })
            }
        }
    }
}

fn parse(name: &str, pem: CredentialPem) -> Result<Credential, String> {
    let what = format!("credential {name:?}");
    let key = if pem.cert_chain.trim().is_empty() {
        None
    } else {
        let chain = weft_identity::pem::certs(&what, &pem.cert_chain).map_err(|e| e.to_string())?;
        let der: PrivateKeyDer<'static> =
            weft_identity::pem::private_key(&what, &pem.private_key).map_err(|e| e.to_string())?;
        let key = CertifiedKey::from_der(chain, der, &weft_identity::provider())
            .map_err(|e| format!("{what}: the key does not fit the certificate: {e}"))?;
        Some(Arc::new(key))
    };
    let roots = if pem.ca_certificates.trim().is_empty() {
        None
    } else {
        let mut store = RootCertStore::empty();
        for c in
            weft_identity::pem::certs(&what, &pem.ca_certificates).map_err(|e| e.to_string())?
        {
            store
                .add(c)
                .map_err(|e| format!("{what}: a CA certificate is not usable: {e}"))?;
        }
        Some(Arc::new(store))
    };
    let crls = if pem.ca_crl.trim().is_empty() {
        Vec::new()
    } else {
        weft_identity::pem::crls(&what, &pem.ca_crl).map_err(|e| e.to_string())?
    };
    Ok(Credential {
        key,
        roots,
        crls,
        pem,
        server_configs: Mutex::new(Vec::new()),
    })
}

/// Re-reads credentials every `every` for as long as the proxy runs, and
/// one that could not be had every two seconds: a secret made after the
/// Gateway that names it takes effect at once, not at the next refresh.
pub async fn keep_fresh(credentials: Arc<Credentials>, every: Duration) {
    let missing_every = Duration::from_secs(2).min(every);
    let mut since_all = Duration::ZERO;
    loop {
        tokio::time::sleep(missing_every).await;
        since_all += missing_every;
        let all = since_all >= every;
        if all {
            since_all = Duration::ZERO;
        }
        credentials.refresh(all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Result<ServerConfig, String> {
        Ok(
            ServerConfig::builder_with_provider(weft_identity::provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(rustls::server::ResolvesServerCertUsingSni::new())),
        )
    }

    #[test]
    fn a_server_configuration_is_built_once_and_again_for_a_rewritten_crl_file() {
        let cred = Credential {
            key: None,
            roots: None,
            crls: Vec::new(),
            pem: CredentialPem::default(),
            server_configs: Mutex::new(Vec::new()),
        };
        let crl =
            std::env::temp_dir().join(format!("weft-server-config-{}.crl", std::process::id()));
        std::fs::write(&crl, "a revocation list").unwrap();
        let server = ServerTls {
            mode: "MUTUAL".into(),
            ca_crl: crl.display().to_string(),
            ..ServerTls::default()
        };
        let other = ServerTls {
            mode: "SIMPLE".into(),
            ..ServerTls::default()
        };
        let builds = std::cell::Cell::new(0);
        let get = |server: &ServerTls| {
            cred.server_config(server, || {
                builds.set(builds.get() + 1);
                config()
            })
            .unwrap()
        };
        let first = get(&server);
        assert!(Arc::ptr_eq(&first, &get(&server)), "a handshake rebuilt it");
        get(&other);
        assert_eq!(builds.get(), 2, "one build per server");

        let file = std::fs::File::options().write(true).open(&crl).unwrap();
        file.set_modified(SystemTime::now() + Duration::from_secs(60))
            .unwrap();
        let rebuilt = get(&server);
        assert!(
            !Arc::ptr_eq(&first, &rebuilt),
            "a rewritten caCrl was not read"
        );
        assert!(Arc::ptr_eq(&rebuilt, &get(&server)));
        assert_eq!(builds.get(), 3);
        std::fs::remove_file(&crl).unwrap();
    }
}
