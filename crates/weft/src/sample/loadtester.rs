//! A load tester that answers Flagger's webhooks as Flagger's
//! `flagger-loadtester` does, so Canary YAML written for it works
//! unchanged: `POST /` with a webhook payload whose `metadata.type` is
//! `cmd` (the default: run in the background, one run per canary and
//! command at a time) or `bash` (run now; 500 with the output when it
//! fails), and the manual gates `/gate/{approve,halt,check,open,close}`
//! and `/rollback/{check,open,close}`. Beyond Flagger's: a payload whose
//! phase says the rollout ended (a post-rollout or event webhook) stops
//! that canary's background commands, so load never outlives its
//! rollout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::Common;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// How long a command may run (Flagger's loadtester: 1h).
    #[arg(long, default_value = "3600", value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Default)]
struct State {
    /// Gate name (`podinfo.test`, `rollback.podinfo.test`) → open.
    gates: HashMap<String, bool>,
    /// Background commands running, by canary and command.
    running: HashMap<(String, String), tokio::sync::oneshot::Sender<()>>,
}

type Shared = Arc<Mutex<State>>;

#[derive(serde::Deserialize, Default)]
struct Payload {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

impl Payload {
    fn canary(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.common.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.common.listen))?;
    eprintln!("loadtester listening on {}", listener.local_addr()?);
    let state: Shared = Arc::default();
    let timeout = Duration::from_secs(args.timeout);
    loop {
        let (stream, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), timeout, req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    Ok(r)
}

async fn handle(
    state: Shared,
    timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return reply(StatusCode::OK, "OK"),
        "/gate/approve" => return reply(StatusCode::OK, "OK"),
        "/gate/halt" => return reply(StatusCode::FORBIDDEN, "Forbidden"),
        _ => {}
    }
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "POST a webhook payload");
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::BAD_REQUEST, ""),
    };
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        return reply(StatusCode::BAD_REQUEST, "the body is not a webhook payload");
    };
    let canary = payload.canary();
    let gate = |key: String, open: Option<bool>| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        match open {
            Some(o) => {
                s.gates.insert(key.clone(), o);
                eprintln!("{key} gate {}", if o { "opened" } else { "closed" });
                None
            }
            None => Some(*s.gates.entry(key).or_insert(false)),
        }
    };
    let checked = |open: Option<bool>| match open {
        Some(true) => reply(StatusCode::OK, "Approved"),
        _ => reply(StatusCode::FORBIDDEN, "Forbidden"),
    };
    match path.as_str() {
        "/gate/check" => return checked(gate(canary, None)),
        "/gate/open" => {
            gate(canary, Some(true));
            return reply(StatusCode::ACCEPTED, "");
        }
        "/gate/close" => {
            gate(canary, Some(false));
            return reply(StatusCode::ACCEPTED, "");
        }
        "/rollback/check" => return checked(gate(format!("rollback.{canary}"), None)),
        "/rollback/open" => {
            gate(format!("rollback.{canary}"), Some(true));
            return reply(StatusCode::ACCEPTED, "");
        }
        "/rollback/close" => {
            gate(format!("rollback.{canary}"), Some(false));
            return reply(StatusCode::ACCEPTED, "");
        }
        _ => {}
    }
    if matches!(payload.phase.as_str(), "Succeeded" | "Failed") {
        stop_commands(&state, &canary);
    }
    if payload.metadata.is_empty() {
        return reply(StatusCode::BAD_REQUEST, "metadata not found in payload");
    }
    let kind = payload
        .metadata
        .get("type")
        .cloned()
        .unwrap_or_else(|| "cmd".into());
    let Some(cmd) = payload.metadata.get("cmd").cloned() else {
        return reply(StatusCode::BAD_REQUEST, "cmd not found in metadata");
    };
    match kind.as_str() {
        "bash" => {
            eprintln!("{canary} bash command {cmd}");
            let run = tokio::process::Command::new("bash")
                .args(["-c", &cmd])
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(timeout, run).await {
                Ok(Ok(out)) if out.status.success() => {
                    let give_back = payload
                        .metadata
                        .get("returnCmdOutput")
                        .is_some_and(|v| v == "true");
                    reply(
                        StatusCode::OK,
                        if give_back { out.stdout } else { Vec::new() },
                    )
                }
                Ok(Ok(out)) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "command {cmd} failed: {}: {}{}",
                        out.status,
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                ),
                Ok(Err(e)) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(_) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("command {cmd} timed out after {timeout:?}"),
                ),
            }
        }
        "cmd" => {
            start_command(&state, canary, cmd, timeout);
            reply(StatusCode::ACCEPTED, "")
        }
        other => reply(
            StatusCode::BAD_REQUEST,
            format!("unknown task type {other}"),
        ),
    }
}

/// Starts `cmd` for `canary` unless it is already running.
fn start_command(state: &Shared, canary: String, cmd: String, timeout: Duration) {
    let key = (canary.clone(), cmd.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel();
    {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.running.contains_key(&key) {
            eprintln!("{canary} command skipped {cmd} is already running");
            return;
        }
        s.running.insert(key.clone(), stop);
    }
    let state = state.clone();
    tokio::spawn(async move {
        eprintln!("{canary} task starting {cmd}");
        let child = tokio::process::Command::new("sh")
            .args(["-c", &cmd])
            .kill_on_drop(true)
            .output();
        tokio::select! {
            out = tokio::time::timeout(timeout, child) => match out {
                Ok(Ok(o)) if o.status.success() => eprintln!("{canary} command finished {cmd}"),
                Ok(Ok(o)) => eprintln!(
                    "{canary} command failed {cmd} {} {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr)
                ),
                Ok(Err(e)) => eprintln!("{canary} command failed {cmd} {e}"),
                Err(_) => eprintln!("{canary} command timed out {cmd}"),
            },
            _ = stopped => eprintln!("{canary} rollout ended: command stopped {cmd}"),
        }
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .remove(&key);
    });
}

/// The rollout of `canary` ended: its background commands stop.
fn stop_commands(state: &Shared, canary: &str) {
    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
    let keys: Vec<_> = s
        .running
        .keys()
        .filter(|(c, _)| c == canary)
        .cloned()
        .collect();
    for k in keys {
        if let Some(stop) = s.running.remove(&k) {
            let _ = stop.send(());
        }
    }
}
