//! A sidecar under transparent capture: the workload's connections reach
//! the proxy through the kernel (`weft_capture`'s rules), not because the
//! application asked, and are served by where they were going
//! (`SO_ORIGINAL_DST`), as Envoy's `original_dst` listener filter does.
//!
//! Outbound (15001): a TCP service's address and port → its TCP routes;
//! a port with HTTP routes → HTTP, the virtual host by the Host header
//! (which names the service or its address); anything else, or what does
//! not speak HTTP on such a port → passthrough to where it was going.
//! Inbound (15006): a workload port → served as a plain-text connection
//! to that port is (mTLS mode, policy, HTTP or splice); any other port →
//! passthrough to the application, under the workload's policy.

use std::net::SocketAddr;
use std::sync::Arc;

use weft_model::Protocol;

use crate::http::listener::{Edge, HttpListener, Reporter, Routing};
use crate::l4::passthrough;
use crate::l4::sniff::{sniff, Prefixed};
use crate::listen::OnConnection;
use crate::shared::Shared;

/// What serves a captured outbound connection, by its original
/// destination.
#[derive(Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A TCP service's listener.
    Tcp(String),
    /// The HTTP route table of the destination's port.
    Http(u16),
    /// The TLS listeners bound to no address on the destination's port,
    /// one of which the client's SNI picks.
    Sni(u16),
    Passthrough,
    /// `outboundTrafficPolicy: REGISTRY_ONLY` and nothing knows it.
    BlackHole,
}

/// Where `destination` goes in `snap`.
pub fn outbound_target(snap: &crate::snapshot::Snapshot, destination: SocketAddr) -> Outbound {
    if let Some(name) = snap.tcp_by_address.get(&destination) {
        return Outbound::Tcp(name.clone());
    }
    let port = destination.port();
    if snap.tables.contains_key(port.to_string().as_str()) {
        return Outbound::Http(port);
    }
    if snap.tcp_by_port.contains_key(&port) {
        return Outbound::Sni(port);
    }
    if registry_only(snap) {
        return Outbound::BlackHole;
    }
    Outbound::Passthrough
}

fn registry_only(snap: &crate::snapshot::Snapshot) -> bool {
    snap.model.http.outbound == weft_model::OutboundPolicy::RegistryOnly
}

/// The HTTP listener for captured requests to `destination`: routed by
/// its port's table, policy left to the destination, as the outbound
/// proxy is; a request for a host the table does not know goes on to
/// `destination` (`client` opens its connections).
fn outbound_http(
    destination: SocketAddr,
    client: &Arc<crate::upstream::ClientSide>,
    registry_only: bool,
) -> Arc<HttpListener> {
    let port = destination.port();
    Arc::new(HttpListener {
        name: "outbound".into(),
        routing: Routing::Table {
            table: port.to_string().into(),
            port: u32::from(port),
        },
        edge: Edge::Outbound,
        policy: None,
        reporter: Reporter::Source { server_span: false },
        peer: None,
        tunnels: None,
        app: None,
        passthrough: (!registry_only)
            .then(|| Arc::new(crate::shared::App::passthrough(destination, client))),
        registry_only,
    })
}

/// Where a captured connection was going; `None` (logged) when the
/// kernel cannot say.
fn destination(stream: &tokio::net::TcpStream, remote: SocketAddr) -> Option<SocketAddr> {
    crate::sockets::original_destination(stream)
        .map_err(|e| {
            tracing::warn!(%remote, error = %e, "a captured connection has no original destination")
        })
        .ok()
}

/// Connections redirected to the outbound capture port.
pub fn on_outbound(shared: Arc<Shared>) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let shared = shared.clone();
        Box::pin(async move {
            let Some(destination) = destination(&stream, remote) else {
                return;
            };
            if Some(destination) == shared.config.captured_outbound
                || stream.local_addr().ok() == Some(destination)
            {
                // Sent to the capture port itself: serving it would loop.
                tracing::debug!(%remote, "a connection to the capture port itself is closed");
                return;
            }
            let snap = shared.snapshot.load();
            let (target, blocked) = (outbound_target(&snap, destination), registry_only(&snap));
            // A port with HTTP routes may have wildcard TLS listeners too.
            let sni_too = snap.tcp_by_port.contains_key(&destination.port());
            let egress = snap.policy.egress().cloned();
            let passthrough_client = snap
                .egress_passthrough
                .clone()
                .unwrap_or_else(|| shared.passthrough_client.clone());
            drop(snap);
            // Where the connection goes on as it was addressed, the
            // workload's egress NetworkPolicies judge that address; mesh
            // services are judged by the endpoint picked for them.
            let passthrough_denied = || egress.as_ref().and_then(|e| e.denies(destination));
            match target {
                Outbound::Tcp(name) => {
                    crate::l4::tcp::handle(shared, name, stream, remote, Some(destination), drain)
                        .await
                }
                Outbound::Http(_) => {
                    let (io, is_http) = sniff(stream).await;
                    if is_http {
                        crate::listen::downstream::serve(
                            &shared,
                            io,
                            remote,
                            "captured outbound",
                            outbound_http(destination, &passthrough_client, blocked),
                            drain,
                        )
                        .await;
                    } else {
                        let refusal = if blocked {
                            Refusal::BlackHole
                        } else {
                            Refusal::Passthrough(passthrough_denied())
                        };
                        // Not HTTP on a port with a route table: TLS may
                        // still be a wildcard host's, by its SNI.
                        if sni_too {
                            let port = destination.port();
                            by_sni(&shared, port, io, remote, destination, refusal, drain).await;
                        } else {
                            refusal.serve(&shared, io, remote, destination, drain).await;
                        }
                    }
                }
                Outbound::Sni(port) => {
                    let refusal = if blocked {
                        Refusal::BlackHole
                    } else {
                        Refusal::Passthrough(passthrough_denied())
                    };
                    by_sni(&shared, port, stream, remote, destination, refusal, drain).await
                }
                Outbound::BlackHole => passthrough::black_hole(&shared, remote, destination),
                Outbound::Passthrough => {
                    Refusal::Passthrough(passthrough_denied())
                        .serve(
                            &shared,
                            Prefixed::new(Vec::new(), stream),
                            remote,
                            destination,
                            drain,
                        )
                        .await
                }
            }
        })
    })
}

/// What a captured outbound connection nothing in the mesh takes gets:
/// the black hole (REGISTRY_ONLY), or passthrough to where it was going
/// unless an egress NetworkPolicy denies it (why).
enum Refusal {
    BlackHole,
    Passthrough(Option<String>),
}

impl Refusal {
    async fn serve<T>(
        self,
        shared: &Arc<Shared>,
        io: T,
        remote: SocketAddr,
        destination: SocketAddr,
        drain: crate::listen::drain::Watch,
    ) where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        match self {
            Refusal::BlackHole => passthrough::black_hole(shared, remote, destination),
            Refusal::Passthrough(Some(why)) => {
                passthrough::denied(shared, remote, destination, why)
            }
            Refusal::Passthrough(None) => {
                let _drain = drain;
                passthrough::splice(
                    shared,
                    io,
                    remote,
                    destination,
                    (None, false),
                    passthrough::OUTBOUND,
                )
                .await;
            }
        }
    }
}

/// A captured TLS connection to an address no listener holds on `port`:
/// the listener bound to no address there whose routes name its SNI best
/// takes it, as Envoy picks among a port's filter chains; none, `refusal`.
async fn by_sni<T>(
    shared: &Arc<Shared>,
    port: u16,
    mut io: T,
    remote: SocketAddr,
    destination: SocketAddr,
    refusal: Refusal,
    drain: crate::listen::drain::Watch,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut hello = Vec::new();
    let sni =
        crate::l4::sni::read_sni(&mut io, &mut hello, std::time::Duration::from_secs(5)).await;
    let listener = sni.and_then(|sni| {
        let snap = shared.snapshot.load();
        snap.tcp_by_port
            .get(&port)?
            .iter()
            .filter_map(|name| {
                let rank = crate::l4::tcp::routes_sni(snap.tcp.get(name)?, &sni)?;
                Some((rank, name))
            })
            // The first of equals, in the model's order.
            .rev()
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, name)| name.clone())
    });
    let io = Prefixed::new(hello, io);
    match listener {
        Some(name) => {
            crate::l4::tcp::handle(shared.clone(), name, io, remote, Some(destination), drain).await
        }
        None => refusal.serve(shared, io, remote, destination, drain).await,
    }
}

/// Connections redirected to the inbound capture port.
pub fn on_inbound(shared: Arc<Shared>) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let shared = shared.clone();
        Box::pin(async move {
            let Some(destination) = destination(&stream, remote) else {
                return;
            };
            let port = u32::from(destination.port());
            // Plain text to any port is refused under STRICT, as a
            // sidecar's declared ports refuse it.
            if shared.mesh.is_some()
                && super::sidecar::mtls_mode(&shared, port) == weft_model::MtlsMode::Strict
            {
                super::sidecar::refuse_plaintext(&shared, port, remote);
                return;
            }
            if shared.apps.contains_key(&port) {
                let protocol = shared
                    .snapshot
                    .load()
                    .inbound_protocols
                    .get(&port)
                    .copied()
                    .unwrap_or(Protocol::Unknown);
                super::sidecar::serve(shared, stream, port, protocol, remote, None, drain).await;
                return;
            }
            if let Err(why) = super::sidecar::connection_allowed(&shared, port, remote, None) {
                super::sidecar::log_denied(&shared, port, remote, why);
                return;
            }
            let _drain = drain;
            passthrough::splice(
                &shared,
                stream,
                remote,
                destination,
                // Under TPROXY the application sees the client itself.
                if shared.config.tproxy {
                    (Some(remote.ip()), true)
                } else {
                    (shared.config.app_source, false)
                },
                passthrough::INBOUND,
            )
            .await;
        })
    })
}
