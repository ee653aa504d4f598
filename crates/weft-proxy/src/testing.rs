//! An in-process harness (feature `testing`): a proxy started from a model
//! inside the test's own process, fake upstreams that say who answered,
//! and an in-process control plane (weft-control's model stream) that
//! pushes models to it. Addresses are the harness's to choose: upstreams
//! and the sidecar's outbound port take ephemeral ports on 127.0.0.1;
//! listeners with fixed port numbers (a gateway's) bind a loopback
//! address [`loopback`] hands out.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use weft_model::ProxyModel;

use crate::control::ClientConfig;
use crate::error::ProxyError;
use crate::identity::credentials::{Credentials, Source};
use crate::proxy::Proxy;
use crate::shared::RuntimeConfig;
use crate::telemetry::access_log::AccessLog;

/// A loopback address of the test's own, for listeners whose port numbers
/// are fixed: 127.251.x.y, held by a lock file for the life of the
/// returned guard (each test runs in its own process, so the lock is what
/// keeps two tests apart).
pub fn loopback() -> Loopback {
    let locks = std::env::temp_dir().join("weft-harness-addresses");
    let _ = std::fs::create_dir_all(&locks);
    for x in 1..=250u8 {
        for y in 1..=250u8 {
            let Ok(file) = std::fs::File::create(locks.join(format!("{x}.{y}.lock"))) else {
                continue;
            };
            if file.try_lock().is_ok() {
                return Loopback {
                    ip: IpAddr::from([127, 251, x, y]),
                    _lock: file,
                };
            }
        }
    }
    panic!("every harness loopback address is taken");
}

pub struct Loopback {
    pub ip: IpAddr,
    _lock: std::fs::File,
}

/// A fake upstream: answers every request 200 with `x-served-by: <name>`
/// and a body naming the method, path and Host it saw.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("an ephemeral port on loopback");
        let addr = listener.local_addr().expect("bound address");
        let hits = Arc::new(AtomicUsize::new(0));
        let (counted, named) = (hits.clone(), name.to_owned());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, name) = (counted.clone(), named.clone());
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let name = name.clone();
                    async move {
                        let host = req
                            .headers()
                            .get(http::header::HOST)
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = format!("{} {} {host}\n", req.method(), req.uri());
                        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                        if let Ok(v) = http::HeaderValue::from_str(&name) {
                            resp.headers_mut().insert("x-served-by", v);
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                tokio::spawn(
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned(),
                );
            }
        });
        Upstream {
            name: name.to_owned(),
            addr,
            hits,
            task,
        }
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Compiles `files` (Istio and weft YAML) as the control plane does; the
/// models by proxy name (`namespace/name`).
pub fn compile(files: &[PathBuf]) -> BTreeMap<String, ProxyModel> {
    let mut store =
        weft_control::store::Store::of_files(files.to_vec(), weft_compile::MeshConfig::default());
    let config = store.load(None);
    let refused: Vec<String> = config.refused.iter().map(|d| d.to_string()).collect();
    assert!(
        refused.is_empty(),
        "the test's YAML was refused: {refused:?}"
    );
    config
        .models
        .iter()
        .map(|(name, c)| (name.clone(), c.model.clone()))
        .collect()
}

/// A directory of the test's own, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "weft-harness-{what}-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("a fixture file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The model stream of a control plane, in the test's process.
pub struct ControlPlane {
    pub addr: SocketAddr,
    hub: Arc<weft_control::push::Hub>,
    tokens: TempDir,
    generation: u64,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start() -> ControlPlane {
        let listener = weft_control::push::bind("127.0.0.1:0".parse().expect("address"))
            .await
            .expect("an ephemeral port for the model stream");
        let addr = listener.local_addr().expect("bound address");
        let hub = weft_control::push::Hub::new();
        let task = tokio::spawn(weft_control::push::serve(listener, hub.clone()));
        ControlPlane {
            addr,
            hub,
            tokens: TempDir::new("tokens"),
            generation: 0,
            task,
        }
    }

    /// Sends models to proxies that take parts in parts of `bytes` (so a
    /// test's small models come in many parts).
    pub fn split_models_in_parts_of(&self, bytes: usize) {
        self.hub.set_part_bytes(bytes);
    }

    /// Pushes `models` (by proxy name) as the next configuration.
    pub fn publish(&mut self, models: &BTreeMap<String, ProxyModel>) {
        self.generation += 1;
        let cache = weft_control::served::SectionCache::default();
        let served = models
            .iter()
            .map(|(name, m)| {
                let served = weft_control::served::Served::of_model(m, &m.security, &cache)
                    .expect("a model serializes");
                (name.clone(), Arc::new(served))
            })
            .collect();
        for name in models.keys() {
            self.hub
                .token_file(&self.tokens.0, name)
                .expect("a token file");
        }
        self.hub.publish(served, self.generation);
    }

    /// How proxy `name` connects (plain h2c, its bootstrap token).
    pub fn client(&self, name: &str) -> ClientConfig {
        let token = self
            .hub
            .token_file(&self.tokens.0, name)
            .and_then(std::fs::read_to_string)
            .expect("the proxy's token");
        ClientConfig {
            control_plane: self.addr,
            max_model_bytes: weft_model::wire::MAX_MODEL_BYTES,
            mesh: None,
            proxy: name.to_owned(),
            token: token.trim().to_owned(),
            cache: None,
            admin: None,
            role: String::new(),
            held: Default::default(),
        }
    }

    /// The version proxy `name` last acknowledged.
    pub fn acked(&self, name: &str) -> String {
        self.hub
            .sync()
            .get(name)
            .map(|s| s.acked_version.clone())
            .unwrap_or_default()
    }

    pub fn served_version(&self, name: &str) -> Option<String> {
        self.hub.served_version(name)
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A proxy running in the test's process, without mTLS.
pub struct TestProxy {
    pub proxy: Proxy,
}

impl TestProxy {
    /// A sidecar whose outbound proxy takes an ephemeral port.
    pub async fn sidecar(model: ProxyModel) -> Result<TestProxy, ProxyError> {
        let config = RuntimeConfig {
            outbound: Some("127.0.0.1:0".parse().expect("address")),
            drain: Duration::from_secs(5),
            ..RuntimeConfig::default()
        };
        TestProxy::with(model, config).await
    }

    /// A gateway whose ports bind `ip` with their own numbers.
    pub async fn gateway(model: ProxyModel, ip: IpAddr) -> Result<TestProxy, ProxyError> {
        let config = RuntimeConfig {
            gateway_ip: Some(ip),
            drain: Duration::from_secs(5),
            ..RuntimeConfig::default()
        };
        TestProxy::with(model, config).await
    }

    pub async fn with(model: ProxyModel, config: RuntimeConfig) -> Result<TestProxy, ProxyError> {
        let proxy = Proxy::start(
            model,
            "v0".into(),
            config,
            AccessLog::off(),
            None,
            Credentials::new(Source::None),
        )
        .await?;
        Ok(TestProxy { proxy })
    }

    /// Where the sidecar's outbound proxy listens.
    pub fn outbound(&self) -> SocketAddr {
        self.proxy.addr("outbound").expect("an outbound listener")
    }
}

/// A response as a test reads it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn served_by(&self) -> &str {
        self.headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// GET `url` through the HTTP proxy at `proxy` (absolute-form, as a
/// client honouring `HTTP_PROXY` sends it), or straight to its host when
/// `proxy` is `None`. Errors are the connection's.
pub async fn get(proxy: Option<SocketAddr>, url: &str) -> Result<Reply, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let authority = uri.authority().ok_or("the URL has no host")?.clone();
    let target = match proxy {
        Some(p) => p,
        None => tokio::net::lookup_host(authority.as_str())
            .await
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?,
    };
    let stream = tokio::net::TcpStream::connect(target)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req_uri = match proxy {
        Some(_) => uri.clone(),
        None => uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?,
    };
    let req = http::Request::get(req_uri)
        .header(http::header::HOST, authority.as_str())
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .map_err(|_| "no response within 10 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The repository's `examples/` directory, for tests that start from the
/// bundled bookinfo.
pub fn examples() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples"))
}
