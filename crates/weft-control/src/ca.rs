//! The CA service (`weft.v1.Certificates/Sign`) on the control plane's TLS
//! port, 15012, which also carries the model stream for proxies that have
//! a CA to verify it with. A proxy sends a CSR with its bootstrap token;
//! the CA signs it only for the SPIFFE ID that proxy is entitled to (its workload's
//! service account), so a stolen token cannot become another identity.
//!
//! The port serves TLS with the control plane's own SPIFFE certificate,
//! which proxies verify against the root they were given at start.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tonic::server::{Grpc, UnaryService};
use tonic::{Request, Response, Status};
use weft_identity::{tls, Authority, IdentityError};
use weft_model::wire::{
    CertificateRequest, CertificateResponse, CredentialRequest, CredentialResponse,
    CREDENTIAL_PATH, SIGN_PATH,
};

use weft_identity::inspect::CertInfo;

use crate::push::{Hub, IssuedCert};

/// Istio's default workload certificate lifetime.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Istio's maximum.
const MAX_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Shorter lifetimes are for tests of rotation; below this, rotation would
/// be most of what a proxy does.
const MIN_TTL: Duration = Duration::from_secs(5);

pub struct CaService {
    authority: std::sync::RwLock<Authority>,
    hub: Arc<Hub>,
    default_ttl: Duration,
    /// Where `credentialName` secrets are read from.
    secrets_dir: Option<std::path::PathBuf>,
    /// Woken when signing moves to another root: the control plane's own
    /// serving certificate must move with it, before the old root retires
    /// and proxies stop trusting what it signed.
    signing_moved: tokio::sync::Notify,
}

impl CaService {
    pub fn new(
        authority: Authority,
        hub: Arc<Hub>,
        default_ttl: Duration,
        secrets_dir: Option<std::path::PathBuf>,
    ) -> Arc<CaService> {
        Arc::new(CaService {
            authority: std::sync::RwLock::new(authority),
            hub,
            default_ttl,
            secrets_dir,
            signing_moved: tokio::sync::Notify::new(),
        })
    }

    /// A credential, for a proxy whose model names it.
    fn credential(&self, req: &CredentialRequest) -> Result<CredentialResponse, Status> {
        if !self.hub.accepts(&req.proxy, &req.token) {
            return Err(Status::unauthenticated(format!(
                "{}: wrong or unknown bootstrap token",
                req.proxy
            )));
        }
        if !self.hub.may_read_credential(&req.proxy, &req.name) {
            tracing::warn!(proxy = %req.proxy, credential = %req.name, "refused a credential the proxy's configuration does not use");
            return Err(Status::permission_denied(format!(
                "{}'s configuration does not use credential {:?}",
                req.proxy, req.name
            )));
        }
        let Some(dir) = &self.secrets_dir else {
            return Err(Status::not_found(
                "the control plane has no secrets directory (--secrets)",
            ));
        };
        let c = weft_identity::credential::read(dir, &req.name).map_err(Status::not_found)?;
        tracing::info!(proxy = %req.proxy, credential = %req.name, "served a credential");
        Ok(CredentialResponse {
            cert_chain: c.cert_chain,
            private_key: c.private_key,
            ca_certificates: c.ca_certificates,
            ca_crl: c.ca_crl,
        })
    }

    fn sign(&self, req: &CertificateRequest) -> Result<CertificateResponse, Status> {
        if !self.hub.accepts(&req.proxy, &req.token) {
            tracing::warn!(proxy = %req.proxy, "refused a certificate request with a wrong bootstrap token");
            return Err(Status::unauthenticated(format!(
                "{}: wrong or unknown bootstrap token",
                req.proxy
            )));
        }
        let Some(entitled) = self.hub.identity_of(&req.proxy) else {
            return Err(Status::permission_denied(format!(
                "{} has no identity in the current configuration",
                req.proxy
            )));
        };
        let ttl = match req.ttl_seconds {
            0 => self.default_ttl,
            s => Duration::from_secs(s).clamp(MIN_TTL, MAX_TTL),
        };
        let authority = self
            .authority
            .read()
            .map_err(|_| Status::internal("the CA's state is poisoned"))?;
        match authority.sign(&req.csr_pem, &entitled, ttl) {
            Ok(chain) => {
                tracing::info!(proxy = %req.proxy, identity = %entitled, ttl_seconds = ttl.as_secs(), "issued a workload certificate");
                if let Some(info) = chain
                    .first()
                    .and_then(|pem| weft_identity::pem::certs("issued", pem).ok())
                    .and_then(|ders| ders.first().and_then(|d| CertInfo::parse(d).ok()))
                {
                    self.hub.record_certificate(
                        &req.proxy,
                        IssuedCert {
                            identity: entitled.clone(),
                            serial: info.serial.clone(),
                            not_after: weft_identity::inspect::rfc3339(info.not_after),
                            not_after_unix: info
                                .not_after
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_secs()),
                            lifetime_seconds: ttl.as_secs(),
                        },
                    );
                }
                Ok(CertificateResponse {
                    cert_chain: chain,
                    trust_bundle: authority.roots().to_vec(),
                })
            }
            Err(e @ IdentityError::NotEntitled { .. }) => {
                tracing::warn!(proxy = %req.proxy, error = %e, "refused a certificate request");
                Err(Status::permission_denied(e.to_string()))
            }
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        }
    }
}

impl CaService {
    /// The roots every proxy must trust now, signing root first.
    pub fn roots(&self) -> Vec<String> {
        self.authority
            .read()
            .map(|a| a.roots().to_vec())
            .unwrap_or_default()
    }

    /// Runs `f` on the authority (rotation steps).
    pub fn with_authority<T>(
        &self,
        f: impl FnOnce(&mut Authority) -> Result<T, IdentityError>,
    ) -> Result<T, IdentityError> {
        let mut a = self
            .authority
            .write()
            .map_err(|_| IdentityError::invalid("CA", "state poisoned"))?;
        let signing = a.roots().first().cloned();
        let result = f(&mut a);
        if a.roots().first() != signing.as_ref() {
            self.signing_moved.notify_one();
        }
        result
    }

    /// `{phase, roots: [{serial, subject, notAfter}], retireAt}` for status.
    pub fn describe(&self) -> serde_json::Value {
        let Ok(a) = self.authority.read() else {
            return serde_json::Value::Null;
        };
        let roots: Vec<serde_json::Value> = a
            .roots()
            .iter()
            .filter_map(|p| weft_identity::pem::certs("root", p).ok())
            .filter_map(|d| d.first().and_then(|c| CertInfo::parse(c).ok()))
            .map(|c| {
                serde_json::json!({
                    "serial": c.serial, "subject": c.subject,
                    "notAfter": weft_identity::inspect::rfc3339(c.not_after),
                })
            })
            .collect();
        serde_json::json!({
            "source": a.source,
            "phase": a.rotation_phase(),
            "roots": roots,
            "retireAt": a.retire_at(),
        })
    }
}

/// Writes the roots proxies must trust where `weft up` and `weft proxy
/// --ca-root` read them. They are public; the keys stay in the CA
/// directory.
pub fn write_trust_bundle(roots: &[String], path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, roots.concat())
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

#[derive(Clone)]
struct SignSvc(Arc<CaService>);

#[derive(Clone)]
struct CredentialSvc(Arc<CaService>);

impl UnaryService<CredentialRequest> for CredentialSvc {
    type Response = CredentialResponse;
    type Future = BoxFuture<Result<Response<CredentialResponse>, Status>>;

    fn call(&mut self, req: Request<CredentialRequest>) -> Self::Future {
        let ca = self.0.clone();
        Box::pin(async move { ca.credential(req.get_ref()).map(Response::new) })
    }
}

impl UnaryService<CertificateRequest> for SignSvc {
    type Response = CertificateResponse;
    type Future = BoxFuture<Result<Response<CertificateResponse>, Status>>;

    fn call(&mut self, req: Request<CertificateRequest>) -> Self::Future {
        let ca = self.0.clone();
        Box::pin(async move { ca.sign(req.get_ref()).map(Response::new) })
    }
}

/// The control plane's own TLS configuration, re-issued at half-life.
pub fn serving_config(ca: &CaService) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
    let authority = ca
        .authority
        .read()
        .map_err(|_| IdentityError::invalid("CA", "state poisoned"))?;
    let id = tls::control_plane_identity(authority.trust_domain());
    let (key, chain) = authority.issue_local(&id, DEFAULT_TTL)?;
    Ok(Arc::new(tls::control_plane_server(&key, &chain)?))
}

/// Serves the CA on `listener` until the process ends.
pub async fn serve(listener: TcpListener, ca: Arc<CaService>) -> Result<(), IdentityError> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let tls_config = Arc::new(ArcSwap::new(serving_config(&ca)?));
    {
        let (ca, tls_config) = (ca.clone(), tls_config.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(DEFAULT_TTL / 2) => {}
                    _ = ca.signing_moved.notified() => {}
                }
                match serving_config(&ca) {
                    Ok(c) => tls_config.store(c),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot renew the control plane's certificate")
                    }
                }
            }
        });
    }
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config.load_full());
        let ca = ca.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "CA: TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let ca = ca.clone();
                    req.extensions_mut().insert(crate::push::Peer(peer));
                    async move {
                        // The model stream, over TLS (as istiod serves xDS on 15012).
                        if req.uri().path() == weft_model::wire::STREAM_PATH {
                            return Ok(crate::push::serve_stream(ca.hub.clone(), req).await);
                        }
                        if req.uri().path() == CREDENTIAL_PATH {
                            let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                                CredentialResponse,
                                CredentialRequest,
                            >::default());
                            return Ok(grpc.unary(CredentialSvc(ca), req).await);
                        }
                        if req.uri().path() != SIGN_PATH {
                            let mut resp = http::Response::new(tonic::body::Body::empty());
                            resp.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/grpc"),
                            );
                            resp.headers_mut()
                                .insert("grpc-status", http::HeaderValue::from_static("12"));
                            return Ok::<_, std::convert::Infallible>(resp);
                        }
                        let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                            CertificateResponse,
                            CertificateRequest,
                        >::default());
                        Ok(grpc.unary(SignSvc(ca), req).await)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http2_only()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::ControlError> {
    crate::listen::bind(addr, "the CA").await
}
