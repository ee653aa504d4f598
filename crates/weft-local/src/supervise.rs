//! Running the processes of a local mesh: start, log to a file, restart
//! with backoff when one dies, and stop cleanly.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::watch;

#[derive(Debug, Clone)]
pub struct Spec {
    /// `default/reviews-v1-0` or `default/reviews-v1-0 (sidecar)`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct State {
    pub pid: Option<u32>,
    pub running: bool,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
}

/// A supervised process.
pub struct Managed {
    pub spec: Spec,
    pub state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Managed {
    pub fn start(spec: Spec) -> Managed {
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(supervise(spec.clone(), state.clone(), rx));
        Managed {
            spec,
            state,
            stop,
            task,
        }
    }

    pub fn snapshot(&self) -> State {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops it: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

const GRACE: Duration = Duration::from_secs(5);

async fn supervise(spec: Spec, state: Arc<Mutex<State>>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        if *stop.borrow() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log);
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("WEFT_DIE_WITH_PARENT", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Ok(f) = log {
            if let Ok(f2) = f.try_clone() {
                cmd.stdout(f).stderr(f2);
            }
        }
        let started = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let why = format!("cannot start {}: {e}", spec.program.display());
                eprintln!("weft: {}: {why}; fix the Workload's command (a program on PATH or a full path); retrying in {}s", spec.name, backoff.as_secs().max(1));
                if let Ok(mut s) = state.lock() {
                    s.running = false;
                    s.last_exit = Some(why);
                }
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        if let Ok(mut s) = state.lock() {
            s.pid = child.id();
            s.running = true;
        }
        tokio::select! {
            status = child.wait() => {
                let text = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                if let Ok(mut s) = state.lock() {
                    s.running = false;
                    s.pid = None;
                    s.restarts += 1;
                    s.last_exit = Some(text.clone());
                }
                if *stop.borrow() {
                    return;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                eprintln!("weft: {} exited ({text}); restarting in {} ms — its log: {}", spec.name, backoff.as_millis(), spec.log.display());
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            _ = stop.changed() => {
                if let Some(pid) = child.id() {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                }
                if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                if let Ok(mut s) = state.lock() {
                    s.running = false;
                    s.pid = None;
                }
                return;
            }
        }
    }
}

/// Sleeps `d` unless asked to stop first; true when stopping.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
