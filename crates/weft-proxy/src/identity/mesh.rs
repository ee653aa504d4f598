//! This proxy's place in the mesh: its workload certificate (obtained from
//! the control plane's CA and rotated at half-life), the roots it trusts,
//! and the pool of mTLS tunnels (HTTP/2 CONNECT over TLS 1.3, HBONE-style)
//! it keeps to other proxies.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::upstream::streams::{Slot, StreamCount};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use weft_identity::verify::TrustBundle;
use weft_identity::workload::Request as CertRequest;
use weft_identity::{tls, CertStore};
use weft_model::wire::{
    CertificateRequest, CertificateResponse, CredentialRequest, CredentialResponse,
    CREDENTIAL_PATH, SIGN_PATH,
};

/// The port every proxy takes mTLS tunnels on.
pub const TUNNEL_PORT: u16 = 15008;

/// How a proxy reaches the CA.
#[derive(Debug, Clone)]
pub struct CaClient {
    pub ca: SocketAddr,
    pub proxy: String,
    pub token: String,
}

/// A tunnel connection is shared by requests to the same peer address
/// that expect the same identities.
type TunnelKey = (SocketAddr, Arc<[String]>);

/// Streams one tunnel connection carries before another is opened to the
/// same peer (ztunnel's pool does the same, at 100 by default): well under
/// the peer's own limit, so a stream never waits for a free one, and a
/// busy peer's connections spread over its workers.
pub const STREAMS_PER_TUNNEL: usize = 100;

/// The tunnel port's limit on concurrent streams per connection.
pub const TUNNEL_MAX_CONCURRENT_STREAMS: u32 = 1024;

/// One HTTP/2 connection to a peer's tunnel port, and how many of its
/// streams are open.
#[derive(Clone)]
struct TunnelConn {
    sender: SendRequest<Empty<Bytes>>,
    streams: StreamCount,
}

/// A peer's open tunnel connections, and the lock that lets one caller at
/// a time dial a new one (the others then find it).
#[derive(Default)]
struct Peer {
    conns: Vec<TunnelConn>,
    dialing: Arc<tokio::sync::Mutex<()>>,
}

/// One connection to a workload port, carried by a tunnel stream; it
/// holds its connection's slot for as long as it lives.
pub struct TunnelStream {
    io: TokioIo<hyper::upgrade::Upgraded>,
    _slot: Slot,
}

impl tokio::io::AsyncRead for TunnelStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TunnelStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

pub struct Mesh {
    pub certs: Arc<CertStore>,
    bundle: ArcSwap<TrustBundle>,
    pub trust_domain: String,
    /// The identity this proxy holds (and asks the CA for), known once
    /// the first model arrives.
    identity: std::sync::OnceLock<String>,
    /// Open tunnel connections by (peer tunnel address, expected peer
    /// identities).
    tunnels: Mutex<HashMap<TunnelKey, Peer>>,
    /// Client TLS configurations by expected peer identities; rebuilt
    /// when the trust bundle changes.
    client_configs: Mutex<HashMap<Arc<[String]>, Arc<rustls::ClientConfig>>>,
    /// The tunnel port's TLS configuration, likewise.
    server: arc_swap::ArcSwapOption<rustls::ServerConfig>,
    /// The root that signed the current certificate, so a rotation that
    /// moves signing to a new root renews at once.
    signed_under: Mutex<String>,
    renew: tokio::sync::Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("no workload certificate yet (the CA has not answered)")]
    NoCertificate,
    #[error("cannot connect to the tunnel at {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("mTLS with {addr} failed: {reason}")]
    Handshake { addr: SocketAddr, reason: String },
    #[error("the tunnel at {addr} refused {target}: HTTP {status}")]
    Refused {
        addr: SocketAddr,
        target: SocketAddr,
        status: u16,
    },
    #[error("tunnel to {addr}: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Identity(#[from] weft_identity::IdentityError),
}

impl Mesh {
    pub fn new(bundle: TrustBundle, trust_domain: &str) -> Arc<Mesh> {
        Arc::new(Mesh {
            certs: CertStore::new(),
            bundle: ArcSwap::from_pointee(bundle),
            trust_domain: trust_domain.to_owned(),
            identity: std::sync::OnceLock::new(),
            tunnels: Mutex::new(HashMap::new()),
            client_configs: Mutex::new(HashMap::new()),
            server: arc_swap::ArcSwapOption::empty(),
            signed_under: Mutex::new(String::new()),
            renew: tokio::sync::Notify::new(),
        })
    }

    /// Sets the identity to ask the CA for (once; later calls are ignored).
    pub fn set_identity(&self, id: &str) {
        let _ = self.identity.set(id.to_owned());
    }

    pub fn identity(&self) -> &str {
        self.identity.get().map_or("", String::as_str)
    }

    pub fn bundle(&self) -> Arc<TrustBundle> {
        self.bundle.load_full()
    }

    pub fn ready(&self) -> bool {
        self.certs
            .current()
            .is_some_and(|c| c.not_after > SystemTime::now())
    }

    /// The certificate chain and trust bundle, for `/certs` and `weft
    /// x509`. Never the key.
    pub fn describe(&self) -> serde_json::Value {
        use weft_identity::inspect::{rfc3339, CertInfo};
        let info = |pem: &str| -> serde_json::Value {
            let der = weft_identity::pem::certs("certificate", pem).ok();
            match der
                .as_ref()
                .and_then(|d| d.first())
                .map(|d| CertInfo::parse(d))
            {
                Some(Ok(c)) => serde_json::json!({
                    "subject": c.subject, "issuer": c.issuer, "uris": c.uris,
                    "serial": c.serial, "notBefore": rfc3339(c.not_before),
                    "notAfter": rfc3339(c.not_after), "isCa": c.is_ca, "pem": pem,
                }),
                _ => serde_json::json!({"error": "does not parse", "pem": pem}),
            }
        };
        let bundle: Vec<serde_json::Value> = self.bundle().pem.iter().map(|p| info(p)).collect();
        match self.certs.current() {
            None => serde_json::json!({
                "identity": self.identity(), "state": "WAITING", "trustBundle": bundle,
            }),
            Some(c) => serde_json::json!({
                "identity": c.identity,
                "state": if c.not_after > SystemTime::now() { "ACTIVE" } else { "EXPIRED" },
                "serial": c.serial,
                "notBefore": weft_identity::inspect::rfc3339(c.not_before),
                "notAfter": weft_identity::inspect::rfc3339(c.not_after),
                "refreshAt": weft_identity::inspect::rfc3339(c.refresh_at()),
                "chain": c.chain_pem.iter().map(|p| info(p)).collect::<Vec<_>>(),
                "trustBundle": bundle,
            }),
        }
    }

    /// The server side of the tunnel port.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, MeshError> {
        if let Some(c) = self.server.load_full() {
            return Ok(c);
        }
        let c = Arc::new(tls::tunnel_server(
            self.certs.clone(),
            &self.bundle(),
            &self.trust_domain,
        )?);
        self.server.store(Some(c.clone()));
        Ok(c)
    }

    fn client_config(
        &self,
        expected: &Arc<[String]>,
    ) -> Result<Arc<rustls::ClientConfig>, MeshError> {
        let mut configs = self
            .client_configs
            .lock()
            .map_err(|_| MeshError::NoCertificate)?;
        if let Some(c) = configs.get(expected) {
            return Ok(c.clone());
        }
        let c = Arc::new(tls::tunnel_client(
            self.certs.clone(),
            TrustBundle::clone(&self.bundle()),
            &self.trust_domain,
            expected.to_vec(),
        )?);
        configs.insert(expected.clone(), c.clone());
        Ok(c)
    }

    /// Opens a tunnel stream to `target` (an address the peer proxy
    /// serves) through the peer's tunnel port at `tunnel`, on an open
    /// HTTP/2 connection to that peer with a stream to spare, or a new one.
    /// `baggage` tells the peer who is calling, for its metrics (the
    /// verified identity is in the certificate). The whole of it, dialing
    /// included, takes at most `connect_timeout`; a connection that turns
    /// out to be closing is left for another.
    pub async fn open(
        &self,
        tunnel: SocketAddr,
        target: SocketAddr,
        expected: &Arc<[String]>,
        baggage: &http::HeaderValue,
        source: Option<std::net::IpAddr>,
        connect_timeout: Duration,
    ) -> Result<TunnelStream, MeshError> {
        if !self.ready() {
            return Err(MeshError::NoCertificate);
        }
        let key = (tunnel, expected.clone());
        // Boxed: the handshakes' future is kilobytes, and it would
        // otherwise sit inside every tunnel stream's future.
        let opened = Box::pin(async {
            let mut tries = 0;
            loop {
                tries += 1;
                let (conn, slot) = self.claim(&key, source).await?;
                match open_stream(conn.sender.clone(), tunnel, target, baggage).await {
                    Ok(io) => return Ok(TunnelStream { io, _slot: slot }),
                    // The connection was closing (GOAWAY, a dead peer):
                    // the stream never started, so another may carry it.
                    Err(e) if conn.sender.is_closed() && tries < 3 => {
                        tracing::debug!(%tunnel, error = %e, "tunnel connection closed; trying another");
                        self.forget(&key, &conn);
                    }
                    Err(e) => return Err(e),
                }
            }
        });
        tokio::time::timeout(connect_timeout, opened)
            .await
            .map_err(|_| MeshError::Connect {
                addr: tunnel,
                reason: format!(
                    "no tunnel stream within the connect timeout ({} ms)",
                    connect_timeout.as_millis()
                ),
            })?
    }

    /// A connection to the peer with a free stream, and the stream's slot
    /// on it: an open one, else a new one (one caller dials at a time, so
    /// a burst of requests does not open a connection each).
    async fn claim(
        &self,
        key: &TunnelKey,
        source: Option<std::net::IpAddr>,
    ) -> Result<(TunnelConn, Slot), MeshError> {
        let dialing = {
            let mut tunnels = self.tunnels.lock().map_err(|_| MeshError::NoCertificate)?;
            let peer = tunnels.entry(key.clone()).or_default();
            if let Some(claimed) = claim_free(peer) {
                return Ok(claimed);
            }
            peer.dialing.clone()
        };
        let _dialing = dialing.lock().await;
        if let Ok(mut tunnels) = self.tunnels.lock() {
            if let Some(claimed) = tunnels.get_mut(key).and_then(claim_free) {
                return Ok(claimed);
            }
        }
        let sender = self.connect(key.0, &key.1, source).await?;
        let (streams, slot) = StreamCount::first();
        let conn = TunnelConn { sender, streams };
        if let Ok(mut tunnels) = self.tunnels.lock() {
            tunnels
                .entry(key.clone())
                .or_default()
                .conns
                .push(conn.clone());
        }
        Ok((conn, slot))
    }

    fn forget(&self, key: &TunnelKey, conn: &TunnelConn) {
        if let Ok(mut tunnels) = self.tunnels.lock() {
            if let Some(peer) = tunnels.get_mut(key) {
                peer.conns.retain(|c| !c.streams.same(&conn.streams));
            }
        }
    }

    /// How many tunnel connections are open to each peer, for tests and
    /// `/certs`.
    pub fn tunnel_connections(&self) -> usize {
        self.tunnels
            .lock()
            .map(|t| t.values().map(|p| p.conns.len()).sum())
            .unwrap_or(0)
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        expected: &Arc<[String]>,
        source: Option<std::net::IpAddr>,
    ) -> Result<SendRequest<Empty<Bytes>>, MeshError> {
        let tcp = crate::sockets::connect(addr, source)
            .await
            .map_err(|e| MeshError::Connect {
                addr,
                reason: e.to_string(),
            })?;
        let _ = tcp.set_nodelay(true);
        let config = self.client_config(expected)?;
        let name = rustls::pki_types::ServerName::try_from("weft-tunnel").map_err(|e| {
            MeshError::Handshake {
                addr,
                reason: e.to_string(),
            }
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| MeshError::Handshake {
                addr,
                reason: e.to_string(),
            })?;
        let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|e| MeshError::Handshake {
                addr,
                reason: e.to_string(),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "tunnel connection ended");
            }
        });
        Ok(sender)
    }

    /// The roots the control plane pushed with the model. When signing
    /// has moved to another root, the certificate is renewed now.
    pub fn adopt_bundle(&self, roots: &[String]) {
        if roots.is_empty() {
            return;
        }
        self.set_bundle(roots);
        let signed_under = self
            .signed_under
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if !signed_under.is_empty() && signed_under != roots[0] {
            tracing::info!("the mesh's signing root changed; renewing the certificate");
            self.renew.notify_one();
        }
    }

    fn set_bundle(&self, roots: &[String]) {
        if roots.is_empty() || self.bundle.load().pem == roots {
            return;
        }
        match TrustBundle::from_pem("the CA's trust bundle", roots) {
            Ok(b) => {
                self.bundle.store(Arc::new(b));
                if let Ok(mut c) = self.client_configs.lock() {
                    c.clear();
                }
                self.server.store(None);
                tracing::info!(roots = roots.len(), "trust bundle updated");
            }
            Err(e) => tracing::warn!(error = %e, "ignoring a trust bundle that does not parse"),
        }
    }
}

/// Claims a stream on one of `peer`'s open connections that has one to
/// spare, dropping the connections that have closed.
fn claim_free(peer: &mut Peer) -> Option<(TunnelConn, Slot)> {
    peer.conns.retain(|c| !c.sender.is_closed());
    peer.conns.iter().find_map(|c| {
        c.streams
            .try_claim(STREAMS_PER_TUNNEL)
            .map(|slot| (c.clone(), slot))
    })
}

/// One CONNECT stream to `target` on a tunnel connection.
async fn open_stream(
    mut sender: SendRequest<Empty<Bytes>>,
    tunnel: SocketAddr,
    target: SocketAddr,
    baggage: &http::HeaderValue,
) -> Result<TokioIo<hyper::upgrade::Upgraded>, MeshError> {
    let stream_err = |e: hyper::Error| MeshError::Stream {
        addr: tunnel,
        reason: e.to_string(),
    };
    sender.ready().await.map_err(stream_err)?;
    let req = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(target.to_string())
        .version(http::Version::HTTP_2)
        .header("baggage", baggage)
        .body(Empty::new())
        .map_err(|e| MeshError::Stream {
            addr: tunnel,
            reason: e.to_string(),
        })?;
    let resp = sender.send_request(req).await.map_err(stream_err)?;
    if resp.status() != http::StatusCode::OK {
        return Err(MeshError::Refused {
            addr: tunnel,
            target,
            status: resp.status().as_u16(),
        });
    }
    hyper::upgrade::on(resp)
        .await
        .map(TokioIo::new)
        .map_err(stream_err)
}

/// Asks the CA for a certificate now, then again at each half-life, for
/// as long as the proxy runs. Failures are retried with backoff; the old
/// certificate keeps serving until it expires.
pub async fn keep_certified(mesh: Arc<Mesh>, ca: CaClient) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match certify(&mesh, &ca).await {
            Ok(refresh_at) => {
                backoff = Duration::from_millis(200);
                let wait = refresh_at
                    .duration_since(SystemTime::now())
                    .unwrap_or_default()
                    .max(Duration::from_secs(1));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    // A root rotation: jittered, so proxies do not all
                    // hit the CA in the same instant.
                    _ = mesh.renew.notified() => {
                        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..500))).await;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(ca = %ca.ca, error = %e, "cannot get a workload certificate; retrying");
                eprintln!(
                    "weft proxy: cannot get a workload certificate from {}: {e}",
                    ca.ca
                );
                tokio::time::sleep(
                    backoff
                        + Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2)),
                )
                .await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn certify(mesh: &Mesh, ca: &CaClient) -> Result<SystemTime, String> {
    let identity = mesh.identity().to_owned();
    if identity.is_empty() {
        return Err("no identity to ask for yet".into());
    }
    let request = CertRequest::new(&identity).map_err(|e| e.to_string())?;
    let resp =
        request_certificate(ca, &mesh.bundle(), &mesh.trust_domain, &request.csr_pem).await?;
    mesh.set_bundle(&resp.trust_bundle);
    if let (Some(root), Ok(mut s)) = (resp.trust_bundle.first(), mesh.signed_under.lock()) {
        *s = root.clone();
    }
    let cert = request
        .complete(&identity, &resp.cert_chain)
        .map_err(|e| e.to_string())?;
    let refresh_at = cert.refresh_at();
    tracing::info!(identity = %cert.identity, serial = %cert.serial, expires = %weft_identity::inspect::rfc3339(cert.not_after), "workload certificate installed");
    eprintln!(
        "weft proxy: certificate for {} installed (serial {}, expires {})",
        cert.identity,
        cert.serial,
        weft_identity::inspect::rfc3339(cert.not_after)
    );
    mesh.certs.set(cert);
    Ok(refresh_at)
}

/// One `Sign` call over TLS; the CA must prove the control plane's
/// identity against `bundle`.
pub async fn request_certificate(
    ca: &CaClient,
    bundle: &TrustBundle,
    trust_domain: &str,
    csr_pem: &str,
) -> Result<CertificateResponse, String> {
    let req = CertificateRequest {
        proxy: ca.proxy.clone(),
        token: ca.token.clone(),
        csr_pem: csr_pem.to_owned(),
        ttl_seconds: 0,
    };
    unary(ca, bundle, trust_domain, SIGN_PATH, req).await
}

/// A `credentialName` credential, from the control plane.
pub async fn request_credential(
    ca: &CaClient,
    bundle: &TrustBundle,
    trust_domain: &str,
    name: &str,
) -> Result<CredentialResponse, String> {
    let req = CredentialRequest {
        proxy: ca.proxy.clone(),
        token: ca.token.clone(),
        name: name.to_owned(),
    };
    unary(ca, bundle, trust_domain, CREDENTIAL_PATH, req).await
}

/// One unary call to the control plane's TLS port.
async fn unary<Req, Resp>(
    ca: &CaClient,
    bundle: &TrustBundle,
    trust_domain: &str,
    path: &'static str,
    req: Req,
) -> Result<Resp, String>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    let config = Arc::new(
        tls::control_plane_client(bundle.clone(), trust_domain).map_err(|e| e.to_string())?,
    );
    let channel = tonic::transport::Endpoint::from_static("http://weft-ca")
        .connect_timeout(Duration::from_secs(3))
        .connect_with_connector(TlsConnector {
            addr: ca.ca,
            config,
        })
        .await
        .map_err(|e| format!("cannot reach the CA: {e}"))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let resp = grpc
        .unary(
            tonic::Request::new(req),
            http::uri::PathAndQuery::from_static(path),
            tonic_prost::ProstCodec::<Req, Resp>::default(),
        )
        .await
        .map_err(|s| format!("the CA refused ({:?}): {}", s.code(), s.message()))?;
    Ok(resp.into_inner())
}

/// A tonic channel to the control plane's TLS port, verified as the
/// control plane against the mesh's current roots.
pub async fn control_plane_channel(
    addr: SocketAddr,
    mesh: &Mesh,
    connect_timeout: Duration,
) -> Result<tonic::transport::Channel, String> {
    let config = Arc::new(
        tls::control_plane_client(TrustBundle::clone(&mesh.bundle()), &mesh.trust_domain)
            .map_err(|e| e.to_string())?,
    );
    tonic::transport::Endpoint::from_static("http://weft-control-plane")
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .connect_with_connector(TlsConnector { addr, config })
        .await
        .map_err(|e| format!("cannot reach the control plane at {addr} over TLS: {e}"))
}

/// Dials the CA over TLS for tonic.
#[derive(Clone)]
struct TlsConnector {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

impl tower_service::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let (addr, config) = (self.addr, self.config.clone());
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = rustls::pki_types::ServerName::try_from("weft-control-plane")
                .map_err(std::io::Error::other)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
