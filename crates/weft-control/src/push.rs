//! The model stream (`weft.v1.ModelStream/Stream`, port 15010): every
//! proxy holds one open; the control plane sends its current model at once
//! and every change after, and records each ACK or NACK.
//!
//! A proxy proves who it is with a bootstrap token the control plane
//! wrote for it (a 0600 file in the run directory), and is only ever sent
//! its own model.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{Grpc, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use weft_model::wire::{proxy_message::Kind, Ack, Hello, ModelUpdate, ProxyMessage, STREAM_PATH};

pub use crate::served::Served;

/// What each proxy should run, by proxy name.
pub type Models = BTreeMap<String, Arc<Served>>;

/// A proxy's side of the stream, for `weft status`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxySync {
    pub connected: bool,
    /// Open streams: a proxy briefly holds two while it reconnects.
    #[serde(skip)]
    pub streams: u32,
    pub sent_version: String,
    pub acked_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nack: Option<String>,
    /// Why the proxy is not getting its current model, when the stream
    /// (not the proxy) is the reason: a model over the size the proxy
    /// takes, a broken stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub reconnects: u32,
    /// Bytes of models and changes sent on its streams, from the start.
    pub sent_bytes: u64,
    /// Where the proxy's admin port is, as its Hello said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<std::net::SocketAddr>,
    /// `sidecar` or `gateway`, as its Hello said.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub role: String,
    /// The workload certificate the CA last issued this proxy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IssuedCert>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCert {
    pub identity: String,
    pub serial: String,
    /// RFC 3339.
    pub not_after: String,
    /// Seconds since the Unix epoch, for arithmetic.
    pub not_after_unix: u64,
    pub lifetime_seconds: u64,
}

pub struct Hub {
    models: watch::Sender<Arc<Models>>,
    tokens: Mutex<BTreeMap<String, String>>,
    /// Proxy → the SPIFFE ID the CA may issue it.
    identities: Mutex<BTreeMap<String, String>>,
    /// Proxy → the TLS credentials its model names (all it may read).
    credentials: Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
    sync: Mutex<BTreeMap<String, ProxySync>>,
    /// Proxy → the configuration generation its model last changed in, so
    /// `weft apply` knows whose ACKs a change waits for.
    changed_in: Mutex<BTreeMap<String, u64>>,
    nonce: std::sync::atomic::AtomicU64,
    /// The size of the parts a model is sent in (`wire::PART_BYTES`;
    /// smaller in tests, so that small models come in many parts).
    part_bytes: std::sync::atomic::AtomicUsize,
    /// Streams sending a whole model at once. A whole mesh's model is
    /// megabytes, and 2000 proxies connecting together would otherwise
    /// hold 2000 of them in memory while they wait for their sockets.
    whole_sends: tokio::sync::Semaphore,
    /// How many distinct sections the models being served hold, and their
    /// bytes (each held once however many models have it).
    sections_held: Mutex<(usize, usize)>,
    /// Group tokens VMs register with (see `registration`).
    grants: Mutex<Option<Arc<crate::registration::Grants>>>,
    /// Where registrations and departures are told.
    registrations: Mutex<Option<mpsc::UnboundedSender<Registration>>>,
}

/// A VM's proxy came or went (see `registration`).
#[derive(Debug, Clone)]
pub enum Registration {
    Joined(crate::registration::Admitted),
    /// Its last stream ended.
    Left(String),
}

/// The peer address of a stream's connection, put in the request's
/// extensions where it was accepted.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// How many streams send a whole model at the same time.
const WHOLE_SENDS: usize = 8;

/// Below this a payload is sent without waiting for a turn.
const SMALL_PAYLOAD: usize = 64 * 1024;

/// How long a stream holds a turn: a proxy that stops reading would hold
/// its turn (and every other proxy's first model) for ever, so a send
/// still under way after this goes on without its turn. Waiters wait in
/// line: giving up the wait instead (as weft did) let every proxy of a
/// 10 000-proxy mesh send its whole model at once after the wait, and the
/// control plane stopped accepting connections.
const TURN_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub {
            models: watch::channel(Arc::new(Models::new())).0,
            tokens: Mutex::new(BTreeMap::new()),
            identities: Mutex::new(BTreeMap::new()),
            credentials: Mutex::new(BTreeMap::new()),
            sync: Mutex::new(BTreeMap::new()),
            changed_in: Mutex::new(BTreeMap::new()),
            nonce: std::sync::atomic::AtomicU64::new(1),
            part_bytes: std::sync::atomic::AtomicUsize::new(weft_model::wire::PART_BYTES),
            whole_sends: tokio::sync::Semaphore::new(WHOLE_SENDS),
            sections_held: Mutex::new((0, 0)),
            grants: Mutex::new(None),
            registrations: Mutex::new(None),
        })
    }

    /// VMs may register with the tokens `grants` holds; each joining and
    /// leaving is told on `tell`.
    pub fn set_registrations(
        &self,
        grants: Arc<crate::registration::Grants>,
        tell: mpsc::UnboundedSender<Registration>,
    ) {
        if let Ok(mut g) = self.grants.lock() {
            *g = Some(grants);
        }
        if let Ok(mut r) = self.registrations.lock() {
            *r = Some(tell);
        }
    }

    fn grants(&self) -> Option<Arc<crate::registration::Grants>> {
        self.grants.lock().ok().and_then(|g| g.clone())
    }

    fn tell(&self, what: Registration) {
        if let Some(tx) = self.registrations.lock().ok().and_then(|r| r.clone()) {
            let _ = tx.send(what);
        }
    }

    /// Sends models to proxies that take parts in parts of `bytes`.
    pub fn set_part_bytes(&self, bytes: usize) {
        self.part_bytes
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Publishes the models of configuration `generation`; sessions push
    /// only what changed.
    pub fn publish(&self, models: Models, generation: u64) {
        if let Ok(mut changed) = self.changed_in.lock() {
            let before = self.models.borrow();
            for (name, served) in &models {
                if before.get(name).map(|s| &s.version) != Some(&served.version) {
                    changed.insert(name.clone(), generation);
                }
            }
        }
        self.models.send_replace(Arc::new(models));
    }

    /// Records what the models being served hold in sections.
    pub fn set_sections_held(&self, held: (usize, usize)) {
        if let Ok(mut h) = self.sections_held.lock() {
            *h = held;
        }
    }

    /// Distinct sections held, and their bytes.
    pub fn sections_held(&self) -> (usize, usize) {
        self.sections_held.lock().map(|h| *h).unwrap_or_default()
    }

    /// The generation `proxy`'s model last changed in.
    pub fn changed_in(&self, proxy: &str) -> u64 {
        self.changed_in
            .lock()
            .ok()
            .and_then(|c| c.get(proxy).copied())
            .unwrap_or(0)
    }

    /// The bootstrap token of `proxy`, created on first use and written to
    /// `dir/<proxy>.token` with mode 0600.
    pub fn token_file(
        &self,
        dir: &std::path::Path,
        proxy: &str,
    ) -> std::io::Result<std::path::PathBuf> {
        let path = dir.join(format!("{}.token", proxy.replace('/', ".")));
        // Written already: every change asks again for every proxy, and
        // reading 2000 files each time is work for nothing.
        if self
            .tokens
            .lock()
            .map_err(|_| std::io::Error::other("token table poisoned"))?
            .contains_key(proxy)
        {
            return Ok(path);
        }
        std::fs::create_dir_all(dir)?;
        // A token survives control-plane restarts, so running proxies are
        // still recognised when it comes back.
        let existing = std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.len() == 32);
        let token = {
            let mut tokens = self
                .tokens
                .lock()
                .map_err(|_| std::io::Error::other("token table poisoned"))?;
            tokens
                .entry(proxy.to_owned())
                .or_insert_with(|| {
                    existing
                        .clone()
                        .unwrap_or_else(|| format!("{:032x}", fastrand_u128()))
                })
                .clone()
        };
        if existing.as_deref() != Some(token.as_str()) {
            write_private(&path, &token)?;
        }
        Ok(path)
    }

    /// The admin addresses connected proxies gave in their Hello.
    pub fn admin_addresses(&self) -> Vec<(String, std::net::SocketAddr)> {
        self.sync
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|(_, p)| p.connected)
                    .filter_map(|(name, p)| Some((name.clone(), p.admin?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn sync(&self) -> BTreeMap<String, ProxySync> {
        self.sync.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn record(&self, proxy: &str, f: impl FnOnce(&mut ProxySync)) {
        if let Ok(mut s) = self.sync.lock() {
            // Looked up first: the entry is there for every ACK but the
            // first, and the key is not worth a copy each time.
            match s.get_mut(proxy) {
                Some(state) => f(state),
                None => f(s.entry(proxy.to_owned()).or_default()),
            }
        }
    }

    /// Whether `hello` may open a stream: its proxy's own token, or a
    /// group token that registers it (`Some`: it joins by registration).
    fn authorized(
        &self,
        hello: &Hello,
        peer: Option<SocketAddr>,
    ) -> Result<Option<crate::registration::Admitted>, String> {
        if self.token_matches(&hello.proxy, &hello.token) {
            return Ok(None);
        }
        let Some(grants) = self.grants() else {
            return Err(format!("{}: wrong or unknown bootstrap token", hello.proxy));
        };
        match grants.admit(&hello.proxy, &hello.token, peer.map(|p| p.ip())) {
            Ok(admitted) => Ok(Some(admitted)),
            Err(crate::registration::Refused::Unknown) => {
                Err(format!("{}: wrong or unknown bootstrap token", hello.proxy))
            }
            Err(why) => Err(format!("{}: {why}", hello.proxy)),
        }
    }

    /// Whether `token` proves `proxy` (the CA asks): its own token, or
    /// the group token it registered with.
    pub fn accepts(&self, proxy: &str, token: &str) -> bool {
        self.token_matches(proxy, token) || self.grants().is_some_and(|g| g.bound(proxy, token))
    }

    /// Whether `token` is `proxy`'s bootstrap token.
    pub fn token_matches(&self, proxy: &str, token: &str) -> bool {
        self.tokens
            .lock()
            .map(|t| {
                t.get(proxy)
                    .is_some_and(|tok| constant_time_eq(tok.as_bytes(), token.as_bytes()))
            })
            .unwrap_or(false)
    }

    /// The content version `proxy` is being served (after key sets are
    /// inlined, which the compiled version does not include).
    pub fn served_version(&self, proxy: &str) -> Option<String> {
        self.models.borrow().get(proxy).map(|s| s.version.clone())
    }

    /// Records the certificate the CA issued `proxy`.
    pub fn record_certificate(&self, proxy: &str, cert: IssuedCert) {
        self.record(proxy, |s| s.certificate = Some(cert));
    }

    /// Records which SPIFFE ID each proxy is entitled to.
    pub fn set_identities(&self, ids: BTreeMap<String, String>) {
        if let Ok(mut m) = self.identities.lock() {
            *m = ids;
        }
    }

    /// Records which credentials each proxy's model names.
    pub fn set_credentials(&self, names: BTreeMap<String, std::collections::BTreeSet<String>>) {
        if let Ok(mut m) = self.credentials.lock() {
            *m = names;
        }
    }

    pub fn may_read_credential(&self, proxy: &str, name: &str) -> bool {
        self.credentials
            .lock()
            .map(|m| m.get(proxy).is_some_and(|n| n.contains(name)))
            .unwrap_or(false)
    }

    pub fn identity_of(&self, proxy: &str) -> Option<String> {
        self.identities.lock().ok()?.get(proxy).cloned()
    }
}

pub(crate) fn fastrand_u128() -> u128 {
    // Tokens only need to be unguessable by other local users; the OS
    // random source seeds them.
    let mut buf = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut buf);
    }
    u128::from_le_bytes(buf)
}

pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

#[derive(Clone)]
struct StreamSvc(Arc<Hub>);

impl StreamingService<ProxyMessage> for StreamSvc {
    type Response = ModelUpdate;
    type ResponseStream = ReceiverStream<Result<ModelUpdate, Status>>;
    type Future = BoxFuture<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, req: Request<Streaming<ProxyMessage>>) -> Self::Future {
        let hub = self.0.clone();
        let peer = req.extensions().get::<Peer>().map(|p| p.0);
        Box::pin(async move {
            let mut inbound = req.into_inner();
            let hello = match inbound.message().await? {
                Some(ProxyMessage {
                    kind: Some(Kind::Hello(h)),
                }) => h,
                _ => return Err(Status::invalid_argument("the first message must be Hello")),
            };
            let registered = match hub.authorized(&hello, peer) {
                Ok(r) => r,
                Err(why) => {
                    tracing::warn!(proxy = %hello.proxy, "refused a proxy: {why}");
                    return Err(Status::unauthenticated(why));
                }
            };
            let joined = registered.is_some();
            if let Some(admitted) = registered {
                hub.tell(Registration::Joined(admitted));
            }
            // One message queued: a model's parts are slices of one buffer,
            // which lives until the last of them is written.
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(session(hub, hello, inbound, tx, joined));
            Ok(Response::new(ReceiverStream::new(rx)))
        })
    }
}

async fn session(
    hub: Arc<Hub>,
    hello: Hello,
    mut inbound: Streaming<ProxyMessage>,
    tx: mpsc::Sender<Result<ModelUpdate, Status>>,
    registered: bool,
) {
    let proxy = hello.proxy.clone();
    let mut models = hub.models.subscribe();
    let mut sent = hello.served_version.clone();
    // What the proxy holds, as far as this stream knows, so a change is
    // sent as what changed since: the model it said it serves when that
    // is the current one, else nothing (it is sent all of its model).
    let mut holds: Option<Arc<Served>> = models
        .borrow()
        .get(&proxy)
        .filter(|s| s.version == hello.served_version)
        .cloned();
    // What it last ACKed, which it goes back to when it NACKs; and what
    // it was sent and has not answered yet, oldest first.
    let mut acked = holds.clone();
    let mut unanswered: std::collections::VecDeque<Arc<Served>> = Default::default();
    let limit = match hello.max_model_bytes {
        0 => weft_model::wire::LEGACY_MAX_MODEL_BYTES,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    // A model too large for the proxy is not sent (it would break the
    // stream, which the proxy would reopen to be sent it again): the
    // version refused that way, so it is said once.
    let mut too_large: Option<String> = None;
    hub.record(&proxy, |s| {
        if s.streams == 0 && !s.sent_version.is_empty() {
            s.reconnects += 1;
        }
        s.streams += 1;
        s.connected = true;
        s.acked_version = hello.served_version.clone();
        s.admin = hello.admin.parse().ok();
        s.role = hello.role.clone();
    });
    tracing::info!(%proxy, serving = %hello.served_version, "proxy connected");
    loop {
        let current = models.borrow_and_update().get(&proxy).cloned();
        if let Some(served) = current.filter(|s| s.version != sent) {
            let version = served.version.clone();
            let in_sections = hello.takes_sections && served.in_sections();
            let change = holds
                .as_ref()
                .filter(|_| in_sections)
                .and_then(|h| served.change_from(h));
            // A whole model waits its turn (see `whole_sends`); the turn is
            // held until every part is on the stream.
            let mut turn = match change {
                Some(_) => None,
                None if served.bytes < SMALL_PAYLOAD => None,
                None => hub.whole_sends.acquire().await.ok(),
            };
            let turn_ends = tokio::time::Instant::now() + TURN_HOLD;
            let payload = if in_sections {
                change.unwrap_or_else(|| served.full())
            } else {
                served.whole_json()
            };
            if payload.len() > limit {
                if too_large.as_deref() != Some(version.as_str()) {
                    let why = format!(
                        "model {version} is {} bytes, over the {limit} bytes this proxy takes{}; it keeps serving {sent} (scope it with a Sidecar resource, or raise its --max-model-bytes)",
                        payload.len(),
                        if hello.takes_parts { "" } else { " in one message" }
                    );
                    tracing::warn!(%proxy, "{why}");
                    eprintln!("weft: {proxy}: {why}");
                    hub.record(&proxy, |s| s.error = Some(why));
                    too_large = Some(version.clone());
                }
            } else {
                let nonce = hub
                    .nonce
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    .to_string();
                let part_bytes = hub.part_bytes.load(std::sync::atomic::Ordering::Relaxed);
                let how = Framing {
                    takes_parts: hello.takes_parts,
                    part_bytes,
                    in_sections,
                };
                let mut closed = false;
                for update in in_parts(&version, &nonce, &payload, how) {
                    // Room on the stream first, so that a turn that ends
                    // while waiting for it loses no part.
                    let room = match turn {
                        Some(_) => match tokio::time::timeout_at(turn_ends, tx.reserve()).await {
                            Ok(room) => room,
                            Err(_) => {
                                // Held too long: the rest goes without a turn.
                                turn = None;
                                tx.reserve().await
                            }
                        },
                        None => tx.reserve().await,
                    };
                    match room {
                        Ok(room) => room.send(Ok(update)),
                        Err(_) => {
                            closed = true;
                            break;
                        }
                    }
                }
                // A turn lasts until the stream has taken the last part (till
                // then the whole payload is alive), or for TURN_HOLD.
                if !closed && turn.is_some() {
                    closed = matches!(
                        tokio::time::timeout_at(turn_ends, tx.reserve()).await,
                        Ok(Err(_))
                    );
                }
                drop(turn);
                if closed {
                    tracing::warn!(%proxy, "the model stream closed while a model was being sent");
                    break;
                }
                hub.record(&proxy, |s| {
                    s.sent_version = version.clone();
                    s.sent_bytes += payload.len() as u64;
                    s.error = None;
                });
                sent = version;
                if in_sections {
                    holds = Some(served.clone());
                    unanswered.push_back(served);
                } else {
                    holds = None;
                }
            }
        }
        tokio::select! {
            changed = models.changed() => if changed.is_err() { break },
            msg = inbound.message() => match msg {
                Ok(Some(ProxyMessage { kind: Some(Kind::Ack(Ack { version, error, resync, .. })) })) => {
                    // What it answers, and everything sent before it.
                    let answered = unanswered.iter().position(|s| s.version == version).and_then(|at| {
                        unanswered.drain(..=at).next_back()
                    });
                    if resync {
                        // A change came on top of a model it does not hold:
                        // send it all of the current one.
                        tracing::info!(%proxy, %error, "the proxy asks for all of its model");
                        holds = None;
                        unanswered.clear();
                        sent = String::new();
                        continue;
                    }
                    if error.is_empty() {
                        if answered.is_some() {
                            acked = answered;
                        }
                        hub.record(&proxy, |s| { s.acked_version = version; s.nack = None; });
                    } else if version.is_empty() {
                        // The proxy's word on why its stream is ending.
                        tracing::warn!(%proxy, %error, "the proxy is leaving the model stream");
                        eprintln!("weft: {proxy} is leaving the model stream: {error}");
                        hub.record(&proxy, |s| s.error = Some(error));
                    } else {
                        // It went back to what it last ACKed; a change sent
                        // on top of the refused one it will ask again for.
                        holds = acked.clone();
                        tracing::warn!(%proxy, %version, %error, "proxy refused its model (NACK)");
                        eprintln!("weft: {proxy} refused model {version} (NACK): {error}");
                        hub.record(&proxy, |s| s.nack = Some(error));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(%proxy, error = %e, "the model stream broke");
                    eprintln!("weft: the model stream of {proxy} broke: {e}");
                    hub.record(&proxy, |s| s.error = Some(format!("the stream broke: {e}")));
                    break;
                }
            },
        }
    }
    let mut gone = false;
    hub.record(&proxy, |s| {
        s.streams = s.streams.saturating_sub(1);
        s.connected = s.streams > 0;
        gone = !s.connected;
    });
    tracing::info!(%proxy, "proxy disconnected");
    if registered && gone {
        hub.tell(Registration::Left(proxy));
    }
}

/// How a proxy's stream carries a model.
#[derive(Debug, Clone, Copy)]
struct Framing {
    takes_parts: bool,
    part_bytes: usize,
    /// The payload is encoded sections, not the model's JSON.
    in_sections: bool,
}

/// The messages that carry `payload` (the model's JSON, or its sections):
/// one, or, to a proxy that takes parts, as many as it takes parts of
/// `part_bytes` each (slices of one buffer, not copies).
fn in_parts(version: &str, nonce: &str, payload: &bytes::Bytes, how: Framing) -> Vec<ModelUpdate> {
    let whole = |model_json: bytes::Bytes, part: u32, parts: u32| ModelUpdate {
        version: version.to_owned(),
        nonce: nonce.to_owned(),
        model_json,
        part,
        parts,
        in_sections: how.in_sections,
    };
    if !how.takes_parts || payload.len() <= how.part_bytes {
        return vec![whole(payload.clone(), 0, 1)];
    }
    let parts = payload.len().div_ceil(how.part_bytes);
    (0..parts)
        .map(|i| {
            let end = ((i + 1) * how.part_bytes).min(payload.len());
            whole(
                payload.slice(i * how.part_bytes..end),
                i as u32,
                parts as u32,
            )
        })
        .collect()
}

/// One model stream, whatever port it arrived on.
pub async fn serve_stream(
    hub: Arc<Hub>,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<tonic::body::Body> {
    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<ModelUpdate, ProxyMessage>::default());
    grpc.streaming(StreamSvc(hub), req).await
}

/// Serves the stream on `listener` (gRPC over h2c) until the process ends.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    let hub = hub.clone();
                    req.extensions_mut().insert(Peer(peer));
                    async move {
                        if req.uri().path() != STREAM_PATH {
                            let mut resp = http::Response::new(tonic::body::Body::empty());
                            resp.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/grpc"),
                            );
                            resp.headers_mut()
                                .insert("grpc-status", http::HeaderValue::from_static("12"));
                            return Ok::<_, std::convert::Infallible>(resp);
                        }
                        Ok(serve_stream(hub, req).await)
                    }
                });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http2_only()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds the stream's address, explaining a taken port.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::ControlError> {
    crate::listen::bind(addr, "the configuration stream").await
}

#[cfg(test)]
mod part_tests {
    use super::in_parts;

    #[test]
    fn a_model_goes_in_parts_only_to_a_proxy_that_takes_them() {
        let json = bytes::Bytes::from(vec![b'x'; 10]);
        let how = |takes_parts, part_bytes| super::Framing {
            takes_parts,
            part_bytes,
            in_sections: false,
        };
        let old = in_parts("v", "1", &json, how(false, 3));
        assert_eq!(
            (old.len(), old[0].parts, old[0].model_json.len()),
            (1, 1, 10)
        );
        let parts = in_parts("v", "1", &json, how(true, 3));
        let sizes: Vec<usize> = parts.iter().map(|p| p.model_json.len()).collect();
        assert_eq!(sizes, [3, 3, 3, 1]);
        assert!(parts
            .iter()
            .enumerate()
            .all(|(i, p)| p.part == i as u32 && p.parts == 4 && p.nonce == "1"));
        assert_eq!(in_parts("v", "1", &json, how(true, 10)).len(), 1);
    }
}
