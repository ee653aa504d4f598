//! The listeners a proxy runs, kept equal to what its model asks for: a
//! model that adds a listener (a gateway port, say) gets it bound without
//! restarting the process; one that removes a listener stops accepting
//! there and lets that listener's connections drain; one that changes what
//! a listener serves on the same address hands the socket to a new accept
//! loop, so no connection is refused in between.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::drain::Drain;
use super::workers::Workers;
use super::{accept_loop, OnConnection};
use crate::error::BindError;

/// A listener the model and the host's settings call for.
pub struct Planned {
    /// The model's name for it (`outbound`, `tunnel` and the listeners'
    /// own names).
    pub name: String,
    pub addr: SocketAddr,
    /// What it serves, in words that change when serving does (its
    /// protocol, its route table): a listener whose shape changes gets a
    /// new accept loop.
    pub shape: String,
    pub serve: OnConnection,
    /// What a bind error calls it.
    pub what: String,
    /// How its socket is opened (transparent for TPROXY capture).
    pub socket: crate::sockets::SocketOptions,
}

struct Running {
    addr: SocketAddr,
    shape: String,
    local: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<TcpListener>,
    drain: Arc<Drain>,
}

/// What a reconcile changed, by listener name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub bound: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Default)]
pub struct ListenerSet {
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    /// Where each listener bound, readable without waiting.
    bound: Mutex<Vec<(String, SocketAddr)>>,
}

impl ListenerSet {
    /// Makes the running listeners the `planned` ones. A listener that
    /// cannot be bound is an error (the others are still reconciled, and
    /// the next reconcile tries it again); removed listeners drain for up
    /// to `drain` in the background.
    pub async fn reconcile(
        &self,
        planned: Vec<Planned>,
        workers: &Arc<Workers>,
        drain: Duration,
    ) -> Result<Changes, Vec<BindError>> {
        let mut running = self.running.lock().await;
        let mut changes = Changes::default();
        let mut errors = Vec::new();
        let wanted: std::collections::HashSet<&str> =
            planned.iter().map(|p| p.name.as_str()).collect();
        let gone: Vec<String> = running
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = running.remove(&name) {
                retire(r, drain).await;
                changes.removed.push(name);
            }
        }
        for p in planned {
            let reuse = match running.get(&p.name) {
                Some(r) if r.addr == p.addr && r.shape == p.shape => continue,
                // The same address, served differently: the socket moves
                // to the new accept loop.
                Some(r) if r.addr == p.addr => running.remove(&p.name),
                Some(_) => {
                    if let Some(r) = running.remove(&p.name) {
                        retire(r, drain).await;
                    }
                    None
                }
                None => None,
            };
            let (listener, replaced) = match reuse {
                Some(old) => {
                    let _ = old.stop.send(true);
                    let listener = old.task.await.ok();
                    drain_in_background(old.drain.clone(), old.addr, drain);
                    match listener {
                        Some(l) => (l, true),
                        None => match super::bind_with(p.addr, &p.what, &p.socket).await {
                            Ok((l, _)) => (l, true),
                            Err(e) => {
                                errors.push(e);
                                continue;
                            }
                        },
                    }
                }
                None => match super::bind_with(p.addr, &p.what, &p.socket).await {
                    Ok((l, _)) => (l, false),
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                },
            };
            let local = listener.local_addr().unwrap_or(p.addr);
            let (stop, stop_rx) = watch::channel(false);
            let listener_drain = Arc::new(Drain::new());
            let task = tokio::spawn(accept_loop(
                listener,
                workers.clone(),
                p.serve,
                listener_drain.clone(),
                stop_rx,
            ));
            if replaced {
                changes.replaced.push(p.name.clone());
            } else {
                changes.bound.push(p.name.clone());
            }
            running.insert(
                p.name,
                Running {
                    addr: p.addr,
                    shape: p.shape,
                    local,
                    stop,
                    task,
                    drain: listener_drain,
                },
            );
        }
        let mut bound: Vec<(String, SocketAddr)> =
            running.iter().map(|(n, r)| (n.clone(), r.local)).collect();
        bound.sort();
        if let Ok(mut b) = self.bound.lock() {
            *b = bound;
        }
        if errors.is_empty() {
            Ok(changes)
        } else {
            Err(errors)
        }
    }

    /// Where each running listener bound (ports chosen by the OS when 0).
    pub fn bound(&self) -> Vec<(String, SocketAddr)> {
        self.bound.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Stops accepting everywhere, then waits up to `limit` for every
    /// listener's connections to finish. Returns whether all did.
    pub async fn close(&self, limit: Duration) -> bool {
        let mut running = self.running.lock().await;
        let mut drains = Vec::new();
        for (_, r) in running.drain() {
            let _ = r.stop.send(true);
            let _ = r.task.await;
            drains.push(r.drain);
        }
        if let Ok(mut b) = self.bound.lock() {
            b.clear();
        }
        // Every listener's connections are told at once, and all are
        // waited for against one deadline.
        for d in &drains {
            d.begin();
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut all = true;
        for d in &drains {
            all &= d.finished_by(deadline).await;
        }
        all
    }
}

/// Stops a listener's accept loop, closes its socket and lets its
/// connections drain in the background.
async fn retire(r: Running, drain: Duration) {
    let _ = r.stop.send(true);
    // The loop hands the socket back; dropping it closes the port.
    drop(r.task.await);
    drain_in_background(r.drain, r.addr, drain);
}

/// Lets a listener's connections finish, for up to `limit`.
fn drain_in_background(d: Arc<Drain>, addr: SocketAddr, limit: Duration) {
    tokio::spawn(async move {
        if !d.drain(limit).await {
            tracing::warn!(%addr, "drain time over on a listener that went away");
        }
    });
}
