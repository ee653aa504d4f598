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

/// How well SNI host pattern `host` names `sni`, as Envoy ranks server
/// names: an exact name above any wildcard, a longer wildcard suffix
/// above a shorter; `None` when it does not.
fn sni_rank(host: &str, sni: &str) -> Option<(bool, usize)> {
    match host.strip_prefix('*') {
        Some(suffix) => (sni.len() > suffix.len()
            && sni[sni.len() - suffix.len()..].eq_ignore_ascii_case(suffix))
        .then_some((false, suffix.len())),
        None => host.eq_ignore_ascii_case(sni).then_some((true, host.len())),
    }
}

/// The best rank of `routes`' SNI hosts for `sni`, and the route.
fn best_by_sni<'a>(routes: &'a [TcpRoute], sni: &str) -> Option<((bool, usize), &'a TcpRoute)> {
    routes
        .iter()
        .filter_map(|r| {
            let rank = r.sni_hosts.iter().filter_map(|h| sni_rank(h, sni)).max()?;
            Some((rank, r))
        })
        // The first of equals, as written.
        .rev()
        .max_by_key(|(rank, _)| *rank)
}

/// The route for a connection: the TLS route whose `sniHosts` name the
/// client's SNI best, else the first route without SNI hosts.
fn pick_route<'a>(routes: &'a [TcpRoute], sni: Option<&str>) -> Option<&'a TcpRoute> {
    sni.and_then(|name| best_by_sni(routes, name).map(|(_, r)| r))
        .or_else(|| routes.iter().find(|r| r.sni_hosts.is_empty()))
}

/// How well a TLS route of `routes` names `sni` (see [`sni_rank`]).
pub(crate) fn routes_sni(routes: &[TcpRoute], sni: &str) -> Option<(bool, usize)> {
    best_by_sni(routes, sni).map(|(rank, _)| rank)
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

#[cfg(test)]
mod sni_tests {
    use weft_model::TcpRoute;

    fn route(hosts: &[&str], origin: &str) -> TcpRoute {
        TcpRoute {
            sni_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            source_labels: Default::default(),
            destinations: Vec::new(),
            origin: origin.into(),
        }
    }

    #[test]
    fn the_most_specific_sni_host_wins() {
        let routes = [
            route(&["*.wikipedia.org"], "wildcard"),
            route(&["*.en.wikipedia.org"], "longer wildcard"),
            route(&["en.wikipedia.org"], "exact"),
            route(&[], "any"),
        ];
        let pick = |sni: &str| super::pick_route(&routes, Some(sni)).map(|r| r.origin.as_str());
        assert_eq!(pick("EN.Wikipedia.org"), Some("exact"));
        assert_eq!(pick("m.en.wikipedia.org"), Some("longer wildcard"));
        assert_eq!(pick("de.WIKIPEDIA.org"), Some("wildcard"));
        // A wildcard names subdomains only, not the bare suffix.
        assert_eq!(pick("wikipedia.org"), Some("any"));
        assert_eq!(
            super::pick_route(&routes, None).map(|r| r.origin.as_str()),
            Some("any")
        );
    }
}
