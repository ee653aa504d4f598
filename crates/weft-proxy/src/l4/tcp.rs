//! Opaque TCP: a listener per service port, routed by the model's TCP
//! routes (weighted), spliced to a load-balanced endpoint.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_model::TcpRoute;

use crate::listen::OnConnection;
use crate::shared::Shared;
use crate::telemetry::access_log::Entry;
use crate::telemetry::flags::{Flags, ResponseFlag};

/// Connections accepted on TCP listener `name`.
pub fn on_connection(shared: Arc<Shared>, name: String) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        Box::pin(handle(
            shared.clone(),
            name.clone(),
            stream,
            remote,
            None,
            drain,
        ))
    })
}

/// The route for a connection: a TLS route whose `sniHosts` match the
/// client's SNI, else the first route without SNI hosts.
fn pick_route<'a>(routes: &'a [TcpRoute], sni: Option<&str>) -> Option<&'a TcpRoute> {
    let by_sni = sni.and_then(|name| {
        routes.iter().find(|r| {
            r.sni_hosts.iter().any(|h| match h.strip_prefix('*') {
                Some(suffix) => name.ends_with(suffix),
                None => h.eq_ignore_ascii_case(name),
            })
        })
    });
    by_sni.or_else(|| routes.iter().find(|r| r.sni_hosts.is_empty()))
}

/// Whether a TLS route of `routes` names `sni` among its SNI hosts.
pub(crate) fn routes_sni(routes: &[TcpRoute], sni: &str) -> bool {
    pick_route(routes, Some(sni)).is_some_and(|r| !r.sni_hosts.is_empty())
}

/// Routes one client connection (a TCP stream, or a CONNECT tunnel) by
/// the routes of listener `name`.
///
/// `destination` is where a captured connection was going: a cluster of
/// a ServiceEntry with `resolution: NONE` and no endpoints sends there,
/// as Envoy's original-destination cluster does.
pub async fn handle<S>(
    shared: Arc<Shared>,
    name: String,
    mut client: S,
    remote: SocketAddr,
    destination: Option<SocketAddr>,
    drain: crate::listen::drain::Watch,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    // Held until the connection ends: the drain waits for it.
    let _drain = drain;
    let start = Instant::now();
    let snap = shared.snapshot.load_full();
    let mut entry = Entry {
        protocol: "TCP",
        route_name: Some(name.as_str().into()),
        ..Entry::starting_now(remote)
    };
    let mut flags = Flags::default();
    let outcome: Result<(u64, u64), String> = async {
        let routes = snap.tcp.get(&name).ok_or_else(|| {
            flags.add(ResponseFlag::NoRoute);
            format!("listener {name} is no longer configured")
        })?;
        let mut hello = Vec::new();
        let sni = if routes.iter().any(|r| !r.sni_hosts.is_empty()) {
            crate::l4::sni::read_sni(&mut client, &mut hello, Duration::from_secs(5)).await
        } else {
            None
        };
        if let Some(name) = &sni {
            entry.authority = http::HeaderValue::from_str(name).ok();
        }
        let route = pick_route(routes, sni.as_deref()).ok_or_else(|| {
            flags.add(ResponseFlag::NoRoute);
            format!("listener {name} has no route")
        })?;
        let dest = crate::upstream::pick_weighted(&route.destinations)
            .ok_or_else(|| format!("{} has no destination", route.origin))?;
        entry.upstream_cluster = Some(dest.cluster.as_str().into());
        let cluster = snap
            .cluster(&dest.cluster)
            .ok_or_else(|| format!("cluster {} is not configured", dest.cluster))?
            .clone();
        let _in_flight = cluster.start_request();
        let original = destination.filter(|_| cluster.to_original_destination());
        let ep = match original {
            Some(_) => None,
            None => Some(
                cluster
                    .pick(Some(remote.ip().to_string().as_bytes()), None)
                    .ok_or_else(|| {
                        flags.add(ResponseFlag::NoHealthyUpstream);
                        format!("no healthy upstream in {}", cluster.config.name)
                    })?,
            ),
        };
        let addr = match (original, ep) {
            (Some(d), _) => d,
            (None, Some(ep)) => cluster.endpoint_target(ep).await.map_err(|e| {
                if matches!(e, crate::upstream::resolve::Unreached::Unresolved(_)) {
                    flags.add(ResponseFlag::NoHealthyUpstream);
                }
                e.to_string()
            })?,
            (None, None) => return Err("no endpoint".into()),
        };
        entry.upstream_host = Some(addr);
        let _permit = cluster.admit().await.ok_or_else(|| {
            flags.add(ResponseFlag::UpstreamOverflow);
            format!(
                "upstream overflow: {} is at its connection limit",
                cluster.config.name
            )
        })?;
        let dialed = match ep {
            Some(ep) => cluster.dial(ep).await,
            None => cluster.dial_original(addr).await,
        };
        let mut upstream = match dialed {
            Ok(s) => s,
            Err(e) => {
                if let Some(ep) = ep {
                    cluster.report(ep, crate::upstream::TryOutcome::LocalFailure);
                }
                flags.add(ResponseFlag::UpstreamConnectionFailure);
                return Err(format!("upstream connect error to {addr}: {e}"));
            }
        };
        if let Some(ep) = ep {
            cluster.report(ep, crate::upstream::TryOutcome::Status(200));
        }
        // Replay what was read to find the SNI.
        if !hello.is_empty() {
            tokio::io::AsyncWriteExt::write_all(&mut upstream, &hello)
                .await
                .map_err(|e| format!("upstream write failed: {e}"))?;
        }
        let labels = crate::telemetry::metrics::RequestLabels::new(
            "source",
            &snap.me,
            ep.and_then(|ep| cluster.peers.get(ep))
                .unwrap_or(&shared.metrics.unknown),
            &cluster.service,
            crate::telemetry::metrics::Outcome {
                protocol: "tcp",
                code: 0,
                flags: shared.metrics.no_flags.clone(),
                security: "unknown",
            },
        );
        let series = shared.metrics.tcp(&labels);
        series.opened.fetch_add(1, Ordering::Relaxed);
        // Bytes are counted as they pass (see l4::counted).
        let mut counted = crate::l4::counted::Counted::new(&mut client, series.clone());
        let copied = tokio::io::copy_bidirectional(&mut counted, &mut upstream).await;
        series.closed.fetch_add(1, Ordering::Relaxed);
        copied.map_err(|e| {
            flags.add(ResponseFlag::UpstreamConnectionTermination);
            format!("connection ended: {e}")
        })
    }
    .await;
    match outcome {
        Ok((sent, received)) => {
            entry.reason = format!("bytes_received={sent} bytes_sent={received}")
        }
        Err(reason) => entry.reason = reason,
    }
    entry.response_flags = flags;
    entry.duration = start.elapsed().as_millis() as u64;
    shared.log_access(entry);
}
