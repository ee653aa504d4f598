//! RequestAuthentication `jwksUri`: the control plane fetches each key set,
//! keeps it, refreshes it in the background, and inlines it into the
//! models it pushes (as istiod does), so proxies never reach out for keys.
//! A failed fetch keeps the last good keys; with none yet, the rule gets
//! an empty key set and every token for it is refused (fail closed).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use weft_model::Security;

use crate::store::Config;

/// Istio's default refresh interval for remote key sets.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(20 * 60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 1 << 20;
/// What a rule gets when its keys could never be fetched.
const NO_KEYS: &str = r#"{"keys":[]}"#;

#[derive(Debug, Clone, Default)]
struct Entry {
    keys: Option<String>,
    error: Option<String>,
}

pub struct Jwks {
    cache: Mutex<BTreeMap<String, Entry>>,
    /// Bumped when any key set changes, so models are pushed again.
    changed: watch::Sender<u64>,
}

impl Jwks {
    pub fn new() -> Arc<Jwks> {
        Arc::new(Jwks {
            cache: Mutex::new(BTreeMap::new()),
            changed: watch::channel(0).0,
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Every `jwksUri` the configuration's models name.
    pub fn uris(config: &Config) -> BTreeSet<String> {
        config
            .models
            .values()
            .flat_map(|c| c.model.security.jwt_rules.iter())
            .filter(|r| r.jwks.is_none())
            .filter_map(|r| r.jwks_uri.clone())
            .collect()
    }

    /// Fetches every URI once, together.
    pub async fn fetch_all(&self, uris: &BTreeSet<String>) {
        let fetches: Vec<_> = uris
            .iter()
            .map(|u| {
                let u = u.clone();
                tokio::spawn(async move {
                    let r = tokio::time::timeout(FETCH_TIMEOUT, fetch(&u)).await;
                    (u, r.unwrap_or_else(|_| Err("timed out".to_owned())))
                })
            })
            .collect();
        let mut changed = false;
        for f in fetches {
            let Ok((uri, result)) = f.await else { continue };
            let Ok(mut cache) = self.cache.lock() else {
                return;
            };
            let entry = cache.entry(uri.clone()).or_default();
            match result {
                Ok(keys) => {
                    if entry.keys.as_deref() != Some(keys.as_str()) {
                        tracing::info!(%uri, "JWKS fetched");
                        changed = true;
                    }
                    entry.keys = Some(keys);
                    entry.error = None;
                }
                Err(e) => {
                    eprintln!(
                        "weft: cannot fetch the JWKS at {uri}: {e}; {}",
                        if entry.keys.is_some() {
                            "keeping the last good keys"
                        } else {
                            "tokens for it are refused until it can be fetched"
                        }
                    );
                    entry.error = Some(e);
                }
            }
        }
        if changed {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    /// The URIs in `uris` never fetched yet.
    pub fn missing(&self, uris: &BTreeSet<String>) -> BTreeSet<String> {
        let Ok(cache) = self.cache.lock() else {
            return uris.clone();
        };
        uris.iter()
            .filter(|u| !cache.contains_key(*u))
            .cloned()
            .collect()
    }

    /// Inlines the fetched keys into a model's rules.
    pub fn fill(&self, security: &mut Security) {
        let Ok(cache) = self.cache.lock() else {
            return;
        };
        for rule in &mut security.jwt_rules {
            if rule.jwks.is_some() {
                continue;
            }
            if let Some(uri) = &rule.jwks_uri {
                let keys = cache
                    .get(uri)
                    .and_then(|e| e.keys.clone())
                    .unwrap_or_else(|| NO_KEYS.to_owned());
                rule.jwks = Some(keys);
            }
        }
    }

    /// Re-fetches the URIs `uris` names every `every`, for as long as the
    /// control plane runs.
    pub async fn refresh(
        self: Arc<Self>,
        uris: watch::Receiver<BTreeSet<String>>,
        every: Duration,
    ) {
        loop {
            tokio::time::sleep(every).await;
            let current = uris.borrow().clone();
            if !current.is_empty() {
                self.fetch_all(&current).await;
            }
        }
    }
}

/// GET `uri` (http, or https verified against the system's roots).
async fn fetch(uri: &str) -> Result<String, String> {
    let parsed: http::Uri = uri.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match parsed.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err("only http and https URLs are supported".into()),
    };
    let host = parsed.host().ok_or("the URL has no host")?.to_owned();
    let port = parsed.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let req = http::Request::get(path)
        .header(
            http::header::HOST,
            parsed.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(http::header::USER_AGENT, "weft-control-plane")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if https {
        let tls = tokio_rustls::TlsConnector::from(weft_identity::outside_client()?)
            .connect(
                rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?,
                tcp,
            )
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send(TokioIo::new(tls), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    let text = String::from_utf8(body.to_vec()).map_err(|_| "the body is not UTF-8".to_owned())?;
    let parsed: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    if !parsed.get("keys").is_some_and(|k| k.is_array()) {
        return Err("not a JWKS (no \"keys\" array)".into());
    }
    Ok(text)
}

async fn send<T>(
    io: T,
    req: http::Request<Empty<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| e.to_string())
}
