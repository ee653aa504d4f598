//! The proxy's end of the model stream: it says who it is, applies every
//! model it is sent (ACK) or keeps the last one and says why (NACK), and
//! when the control plane goes away it keeps serving, reconnects with
//! backoff and resyncs. The last applied model is cached on disk so a
//! proxy restarted while the control plane is down still starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::uri::PathAndQuery;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use weft_model::wire::{proxy_message::Kind, Ack, Hello, ModelUpdate, ProxyMessage, STREAM_PATH};
use weft_model::ProxyModel;

use crate::error::ProxyError;
use crate::held::{Held, Refusal};
use crate::shared::Shared;

#[derive(Clone)]
pub struct ClientConfig {
    pub control_plane: SocketAddr,
    /// The largest model message taken (`wire::MAX_MODEL_BYTES` unless
    /// the operator says otherwise), told to the control plane in Hello.
    pub max_model_bytes: usize,
    /// With an identity, the stream runs over TLS to the control plane's
    /// TLS port, verified against the mesh's roots; without, plain h2c.
    pub mesh: Option<Arc<crate::identity::mesh::Mesh>>,
    /// `namespace/name`.
    pub proxy: String,
    pub token: String,
    /// Where the last applied model is kept.
    pub cache: Option<PathBuf>,
    /// Told to the control plane in Hello, so it learns where to read
    /// this proxy's metrics from the proxy itself.
    pub admin: Option<SocketAddr>,
    /// `sidecar` or `gateway`.
    pub role: String,
    /// The sections of its model the proxy holds, kept across streams so
    /// that after a reconnect only what changed is sent.
    pub held: Arc<std::sync::Mutex<Held>>,
}

pub type Stream = tonic::Streaming<ModelUpdate>;

/// What this proxy says when it opens the stream.
pub fn hello(cfg: &ClientConfig, served: &str) -> Hello {
    Hello {
        proxy: cfg.proxy.clone(),
        token: cfg.token.clone(),
        served_version: served.to_owned(),
        max_model_bytes: cfg.max_model_bytes as u64,
        admin: cfg.admin.map(|a| a.to_string()).unwrap_or_default(),
        role: cfg.role.clone(),
        takes_parts: true,
        takes_sections: true,
    }
}

/// Opens the model stream and says Hello; the benchmark's simulated
/// proxies use it too, so they speak exactly what a proxy speaks.
pub async fn open(
    cfg: &ClientConfig,
    served: &str,
) -> Result<(mpsc::Sender<ProxyMessage>, Stream), String> {
    open_with(cfg, hello(cfg, served)).await
}

/// Opens the model stream with `hello` (tests say what an older proxy
/// says with it).
pub async fn open_with(
    cfg: &ClientConfig,
    hello: Hello,
) -> Result<(mpsc::Sender<ProxyMessage>, Stream), String> {
    let channel = match &cfg.mesh {
        Some(mesh) => {
            crate::identity::mesh::control_plane_channel(
                cfg.control_plane,
                mesh,
                Duration::from_secs(2),
            )
            .await?
        }
        None => {
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://{}", cfg.control_plane))
                    .map_err(|e| e.to_string())?
                    .connect_timeout(Duration::from_secs(2))
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(5));
            endpoint.connect().await.map_err(|e| {
                format!(
                    "cannot reach the control plane at {}: {e}",
                    cfg.control_plane
                )
            })?
        }
    };
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(cfg.max_model_bytes);
    grpc.ready().await.map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel(4);
    let hello = ProxyMessage {
        kind: Some(Kind::Hello(hello)),
    };
    tx.send(hello).await.map_err(|e| e.to_string())?;
    let resp = grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static(STREAM_PATH),
            tonic_prost::ProstCodec::<ProxyMessage, ModelUpdate>::default(),
        )
        .await
        .map_err(|s| format!("the control plane refused the stream: {}", s.message()))?;
    Ok((tx, resp.into_inner()))
}

/// Why the stream failed, in words an operator can act on.
fn stream_error(status: &tonic::Status) -> String {
    let msg = status.message();
    if status.code() == tonic::Code::OutOfRange || msg.contains("message length too large") {
        return format!(
            "a model larger than this proxy takes ({msg}); raise --max-model-bytes or scope the proxy with a Sidecar resource"
        );
    }
    format!("{:?}: {msg}", status.code())
}

/// Puts a model sent in parts back together: the parts of one model come
/// in order on the stream, each with the model's version and nonce.
#[derive(Debug, Default)]
pub struct Assembler {
    nonce: String,
    version: String,
    parts: u32,
    got: Vec<bytes::Bytes>,
    bytes: usize,
}

impl Assembler {
    /// Takes one message. Returns the whole model's update once every part
    /// has come (at once for a model sent whole), `None` while parts are
    /// missing; an error for parts that do not fit together or a model
    /// over `limit` bytes, which the proxy NACKs.
    pub fn take(&mut self, u: ModelUpdate, limit: usize) -> Result<Option<ModelUpdate>, String> {
        if u.parts <= 1 {
            *self = Assembler::default();
            return Ok(Some(u));
        }
        if u.part == 0 {
            *self = Assembler {
                nonce: u.nonce.clone(),
                version: u.version.clone(),
                parts: u.parts,
                got: Vec::with_capacity(u.parts as usize),
                bytes: 0,
            };
        }
        let fits = u.nonce == self.nonce
            && u.version == self.version
            && u.parts == self.parts
            && u.part as usize == self.got.len();
        if !fits {
            *self = Assembler::default();
            return Err(format!(
                "part {} of {} of model {} does not follow the parts before it",
                u.part + 1,
                u.parts,
                u.version
            ));
        }
        self.bytes += u.model_json.len();
        if self.bytes > limit {
            let version = std::mem::take(&mut self.version);
            *self = Assembler::default();
            return Err(format!(
                "model {version} is over the {limit} bytes this proxy takes (--max-model-bytes)"
            ));
        }
        self.got.push(u.model_json);
        if self.got.len() < self.parts as usize {
            return Ok(None);
        }
        let mut whole = bytes::BytesMut::with_capacity(self.bytes);
        for part in self.got.drain(..) {
            whole.extend_from_slice(&part);
        }
        let done = std::mem::take(self);
        Ok(Some(ModelUpdate {
            version: done.version,
            nonce: done.nonce,
            model_json: whole.freeze(),
            part: 0,
            parts: 1,
            in_sections: u.in_sections,
        }))
    }
}

fn decode(json: &[u8]) -> Result<ProxyModel, String> {
    let model: ProxyModel = serde_json::from_slice(json)
        .map_err(|e| format!("model is not valid JSON for this weft: {e}"))?;
    check_version(model)
}

fn check_version(model: ProxyModel) -> Result<ProxyModel, String> {
    if model.model_version != weft_model::MODEL_VERSION {
        return Err(format!(
            "model version {} is not {}",
            model.model_version,
            weft_model::MODEL_VERSION
        ));
    }
    Ok(model)
}

/// The model an update makes, and what the proxy holds once it serves
/// it: its sections on top of what is held, or a whole model (after which
/// no sections are held).
fn model_of(cfg: &ClientConfig, update: &ModelUpdate) -> Result<(ProxyModel, Held), Refusal> {
    let refused = |error| Refusal {
        error,
        resync: false,
    };
    if update.in_sections {
        // `take` copies what is held into what will be: read it in place.
        let taken = match cfg.held.lock() {
            Ok(held) => held.take(&update.version, &update.model_json),
            Err(_) => Held::default().take(&update.version, &update.model_json),
        };
        let (model, next) = taken?;
        return Ok((check_version(model).map_err(refused)?, next));
    }
    Ok((
        decode(&update.model_json).map_err(refused)?,
        Held::default(),
    ))
}

fn hold(cfg: &ClientConfig, next: Held) {
    if let Ok(mut h) = cfg.held.lock() {
        *h = next;
    }
}

/// Keeps the applied model on disk: the JSON it came in, or, for one that
/// came in sections, the model written out.
fn save_cache(cfg: &ClientConfig, update: &ModelUpdate, model: &ProxyModel) {
    if let Some(path) = &cfg.cache {
        let written;
        let json: &[u8] = if update.in_sections {
            written = serde_json::to_vec(model).unwrap_or_default();
            &written
        } else {
            &update.model_json
        };
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, json)
            .and_then(|()| std::fs::rename(&tmp, path))
            .is_err()
        {
            tracing::warn!(path = %path.display(), "cannot cache the model");
        }
    }
}

/// The first model: from the control plane when it answers within `wait`,
/// else from the cache of the last run.
pub async fn first_model(
    cfg: &ClientConfig,
    wait: Duration,
) -> Result<(ProxyModel, String), ProxyError> {
    // With a cached model to fall back on, do not hold the proxy down
    // waiting for a control plane that may be gone.
    let has_cache = cfg.cache.as_ref().is_some_and(|p| p.exists());
    let wait = if has_cache {
        wait.min(Duration::from_secs(1))
    } else {
        wait
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut last_error = String::new();
    while tokio::time::Instant::now() < deadline {
        match open(cfg, "").await {
            Ok((_tx, mut stream)) => {
                let mut parts = Assembler::default();
                loop {
                    match tokio::time::timeout_at(deadline, stream.message()).await {
                        Ok(Ok(Some(update))) => match parts.take(update, cfg.max_model_bytes) {
                            Ok(Some(update)) => {
                                let (model, next) = model_of(cfg, &update)
                                    .map_err(|r| ProxyError::InvalidModel(r.error))?;
                                save_cache(cfg, &update, &model);
                                hold(cfg, next);
                                return Ok((model, update.version));
                            }
                            Ok(None) => continue,
                            Err(e) => last_error = e,
                        },
                        Ok(Ok(None)) => last_error = "the control plane closed the stream".into(),
                        Ok(Err(s)) => last_error = s.message().to_owned(),
                        Err(_) => last_error = "no model within the wait".into(),
                    }
                    break;
                }
            }
            Err(e) => last_error = e,
        }
        if last_error.contains("refused the stream") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(path) = &cfg.cache {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(model) = serde_json::from_str::<ProxyModel>(&text) {
                tracing::warn!(error = %last_error, "starting from the cached model; will sync when the control plane answers");
                return Ok((model, weft_model::names::content_version(&text)));
            }
        }
    }
    Err(ProxyError::InvalidModel(format!("no model: {last_error}")))
}

/// Keeps the stream open for as long as the proxy runs.
pub async fn follow(cfg: ClientConfig, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let served = shared.snapshot.load().version.clone();
        match open(&cfg, &served).await {
            Ok((tx, mut stream)) => {
                backoff = Duration::from_millis(100);
                eprintln!(
                    "weft proxy: connected to the control plane at {} ({}), serving {served}",
                    cfg.control_plane,
                    if cfg.mesh.is_some() {
                        "TLS"
                    } else {
                        "plain text"
                    }
                );
                let mut parts = Assembler::default();
                let ended = loop {
                    let update = match stream.message().await {
                        Ok(Some(update)) => update,
                        Ok(None) => break "the control plane closed the stream".to_owned(),
                        Err(status) => break stream_error(&status),
                    };
                    let (nonce, version) = (update.nonce.clone(), update.version.clone());
                    let update = match parts.take(update, cfg.max_model_bytes) {
                        Ok(Some(whole)) => whole,
                        Ok(None) => continue,
                        Err(e) => {
                            eprintln!(
                                "weft proxy: {e}; {} keeps serving",
                                shared.snapshot.load().version
                            );
                            let nack = ProxyMessage {
                                kind: Some(Kind::Ack(Ack {
                                    nonce,
                                    version,
                                    error: e,
                                    resync: false,
                                })),
                            };
                            if tx.send(nack).await.is_err() {
                                break "the control plane stopped reading the stream".to_owned();
                            }
                            continue;
                        }
                    };
                    let (result, resync) = match model_of(&cfg, &update) {
                        Ok((m, next)) => {
                            // Credentials first: the new model may name new ones.
                            shared.credentials.ensure(&m.credential_names()).await;
                            let cached = cfg.cache.is_some().then(|| m.clone());
                            let applied =
                                crate::reconfigure::apply(&shared, m, update.version.clone())
                                    .await
                                    .map_err(|e| e.to_string());
                            if applied.is_ok() {
                                hold(&cfg, next);
                                if let Some(m) = &cached {
                                    save_cache(&cfg, &update, m);
                                }
                            }
                            (applied, false)
                        }
                        Err(r) => (Err(r.error), r.resync),
                    };
                    let error = match &result {
                        Ok(()) => {
                            eprintln!("weft proxy: model {} applied", update.version);
                            String::new()
                        }
                        Err(e) if resync => {
                            eprintln!("weft proxy: {e}; asking for all of it");
                            e.clone()
                        }
                        Err(e) => {
                            eprintln!(
                                "weft proxy: model {} refused, {} keeps serving: {e}",
                                update.version,
                                shared.snapshot.load().version
                            );
                            e.clone()
                        }
                    };
                    let ack = ProxyMessage {
                        kind: Some(Kind::Ack(Ack {
                            nonce: update.nonce,
                            version: update.version,
                            error,
                            resync,
                        })),
                    };
                    if tx.send(ack).await.is_err() {
                        break "the control plane stopped reading the stream".to_owned();
                    }
                };
                // Said to the control plane too when it can still hear, so
                // `weft status` shows why this proxy is behind.
                let _ = tx
                    .send(ProxyMessage {
                        kind: Some(Kind::Ack(Ack {
                            nonce: String::new(),
                            version: String::new(),
                            error: ended.clone(),
                            resync: false,
                        })),
                    })
                    .await;
                eprintln!(
                    "weft proxy: the model stream ended: {ended}; still serving {}; reconnecting",
                    shared.snapshot.load().version
                );
                tracing::warn!(reason = %ended, "model stream ended");
                if ended.contains("larger than") {
                    // The same model would come again at once: wait.
                    backoff = Duration::from_secs(5);
                }
            }
            Err(e) => {
                eprintln!("weft proxy: {e}; retrying");
                tracing::debug!(error = %e, "control plane unreachable");
            }
        }
        // Jittered so a restarted control plane is not hit by every proxy at once.
        tokio::time::sleep(
            backoff + Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2)),
        )
        .await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::Assembler;
    use weft_model::wire::ModelUpdate;

    fn part(version: &str, nonce: &str, part: u32, parts: u32, text: &str) -> ModelUpdate {
        ModelUpdate {
            version: version.into(),
            nonce: nonce.into(),
            model_json: bytes::Bytes::from(text.to_owned()),
            part,
            parts,
            in_sections: false,
        }
    }

    #[test]
    fn parts_come_together_and_a_gap_or_excess_is_refused() {
        let mut a = Assembler::default();
        let whole = a.take(part("v1", "1", 0, 1, "{}"), 100).unwrap();
        assert_eq!(whole.map(|u| u.model_json), Some(bytes::Bytes::from("{}")));
        assert!(a.take(part("v2", "2", 0, 3, "ab"), 100).unwrap().is_none());
        assert!(a.take(part("v2", "2", 1, 3, "cd"), 100).unwrap().is_none());
        let done = a.take(part("v2", "2", 2, 3, "e"), 100).unwrap().unwrap();
        assert_eq!(
            (done.version.as_str(), &done.model_json[..]),
            ("v2", &b"abcde"[..])
        );
        // A missing part: the next one does not follow.
        assert!(a.take(part("v3", "3", 0, 3, "ab"), 100).unwrap().is_none());
        let gap = a.take(part("v3", "3", 2, 3, "e"), 100).unwrap_err();
        assert!(gap.contains("does not follow"), "{gap}");
        // A new model starts over whatever came before.
        assert!(a.take(part("v4", "4", 0, 2, "ab"), 100).unwrap().is_none());
        assert!(a.take(part("v5", "5", 0, 2, "xy"), 100).unwrap().is_none());
        let v5 = a.take(part("v5", "5", 1, 2, "z"), 100).unwrap().unwrap();
        assert_eq!(&v5.model_json[..], b"xyz");
        // Over the proxy's limit, counted over the parts.
        assert!(a.take(part("v6", "6", 0, 2, "abc"), 5).unwrap().is_none());
        let over = a.take(part("v6", "6", 1, 2, "def"), 5).unwrap_err();
        assert!(over.contains("over the 5 bytes"), "{over}");
    }

    #[test]
    fn a_model_over_the_limit_is_explained() {
        let status = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 14680064 bytes, the limit is: 4194304 bytes",
        );
        let why = super::stream_error(&status);
        assert!(why.contains("larger than this proxy takes"), "{why}");
        assert!(why.contains("14680064"), "{why}");
        assert!(why.contains("--max-model-bytes"), "{why}");
        let other = super::stream_error(&tonic::Status::unavailable("connection reset"));
        assert_eq!(other, "Unavailable: connection reset");
    }
}
