//! Connections the mesh has no route for, sent on to where the client was
//! going (Istio's `PassthroughCluster` outbound, with
//! `outboundTrafficPolicy: ALLOW_ANY`, and `InboundPassthroughCluster` for
//! a workload port no Service declares), spliced and logged.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::shared::Shared;
use crate::telemetry::access_log::Entry;
use crate::telemetry::flags::{Flags, ResponseFlag};

pub const OUTBOUND: &str = "PassthroughCluster";
pub const INBOUND: &str = "InboundPassthroughCluster";
/// Where `outboundTrafficPolicy: REGISTRY_ONLY` sends what the registry
/// does not know: nowhere.
pub const BLACK_HOLE: &str = "BlackHoleCluster";

/// Closes a connection REGISTRY_ONLY does not let out, logged against
/// `BlackHoleCluster` as Istio's is.
pub fn black_hole(shared: &Shared, remote: SocketAddr, destination: SocketAddr) {
    let mut flags = Flags::default();
    flags.add(ResponseFlag::NoRoute);
    // Counted as a connection to `BlackHoleCluster`, opened and closed.
    let labels = crate::telemetry::metrics::RequestLabels::new(
        "source",
        &shared.snapshot.load().me,
        &shared.metrics.unknown,
        &crate::telemetry::metrics::ServiceNames::of(BLACK_HOLE),
        crate::telemetry::metrics::Outcome {
            protocol: "tcp",
            code: 0,
            flags: std::sync::Arc::new(flags.to_string()),
            security: "unknown",
        },
    );
    let series = shared.metrics.tcp(&labels);
    series
        .opened
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    series
        .closed
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let entry = Entry {
        protocol: "TCP",
        route_name: Some(BLACK_HOLE.into()),
        upstream_cluster: Some(BLACK_HOLE.into()),
        upstream_host: Some(destination),
        response_flags: flags,
        reason: format!(
            "outboundTrafficPolicy REGISTRY_ONLY: {destination} is not in the mesh's registry; a ServiceEntry for it lets it through"
        ),
        ..Entry::starting_now(remote)
    };
    shared.log_access(entry);
}

/// Closes a connection the workload's egress NetworkPolicies do not let
/// out, logged with the policy (flag RBAC).
pub fn denied(shared: &Shared, remote: SocketAddr, destination: SocketAddr, why: String) {
    let mut flags = Flags::default();
    flags.add(ResponseFlag::RbacDenied);
    tracing::info!(%remote, %destination, %why, "connection refused by network policy");
    shared.log_access(Entry {
        protocol: "TCP",
        route_name: Some(OUTBOUND.into()),
        upstream_cluster: Some(OUTBOUND.into()),
        upstream_host: Some(destination),
        response_flags: flags,
        reason: why,
        ..Entry::starting_now(remote)
    });
}

/// Splices `client` to `destination`, leaving from `source` when given
/// (`transparent`: a client's own address, under TPROXY); `cluster` names
/// the passthrough in the access log.
pub async fn splice<S>(
    shared: &Shared,
    mut client: S,
    remote: SocketAddr,
    destination: SocketAddr,
    (source, transparent): (Option<IpAddr>, bool),
    cluster: &'static str,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut entry = Entry {
        protocol: "TCP",
        route_name: Some(cluster.into()),
        upstream_cluster: Some(cluster.into()),
        upstream_host: Some(destination),
        ..Entry::starting_now(remote)
    };
    let mut flags = Flags::default();
    match crate::sockets::connect_from(destination, source, transparent).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                Ok((sent, received)) => {
                    entry.reason = format!("bytes_received={sent} bytes_sent={received}")
                }
                Err(e) => {
                    flags.add(ResponseFlag::UpstreamConnectionTermination);
                    entry.reason = format!("connection ended: {e}");
                }
            }
        }
        Err(e) => {
            flags.add(ResponseFlag::UpstreamConnectionFailure);
            entry.reason = format!("upstream connect error to {destination}: {e}");
        }
    }
    entry.response_flags = flags;
    entry.duration = start.elapsed().as_millis() as u64;
    shared.log_access(entry);
}
