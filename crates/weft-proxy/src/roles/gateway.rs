//! A gateway (ingress or egress): Gateway servers on its ports, TLS
//! terminated where they say, requests routed by each port's table and
//! judged by the gateway's own policies, at the mesh's edge.

use std::net::SocketAddr;
use std::sync::Arc;

use weft_model::{Direction, ServerTls};

use crate::http::listener::{Edge, HttpListener, PolicyPoint, Reporter, Routing};
use crate::identity::gateway_tls;
use crate::listen::OnConnection;
use crate::shared::Shared;
use crate::telemetry::access_log::Entry;

/// Gateway port `port`'s HTTP, routed by `table`.
pub fn listener(table: &str, port: u32) -> Arc<HttpListener> {
    Arc::new(HttpListener {
        name: format!("gateway|{port}").into(),
        routing: Routing::Table {
            table: table.into(),
            port,
        },
        edge: Edge::Ingress { port },
        policy: Some(PolicyPoint {
            port,
            destination_ip: None,
            vouched_sources: false,
        }),
        reporter: Reporter::Source { server_span: true },
        peer: None,
        tunnels: None,
        app: None,
        passthrough: None,
        registry_only: false,
    })
}

/// Connections on gateway port `port`: TLS terminated first when a
/// server there terminates it.
pub fn on_connection(shared: Arc<Shared>, listener: Arc<HttpListener>, port: u32) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let (shared, listener) = (shared.clone(), listener.clone());
        Box::pin(async move {
            // Held for the handshake only: the servers are read in place.
            let snap = shared.snapshot.load_full();
            let servers = tls_servers(&snap, port);
            let name = listener.name.clone();
            if servers.iter().any(gateway_tls::terminates) {
                let tls = match gateway_tls::accept(stream, servers, &shared.credentials).await {
                    Ok(tls) => tls,
                    Err(why) => {
                        refuse_tls(&shared, port, remote, why);
                        return;
                    }
                };
                crate::listen::downstream::serve(&shared, tls, remote, &name, listener, drain)
                    .await;
                return;
            }
            crate::listen::downstream::serve(&shared, stream, remote, &name, listener, drain).await;
        })
    })
}

/// The TLS settings of the gateway servers on `port` in `snap`.
fn tls_servers(snap: &crate::snapshot::Snapshot, port: u32) -> &[ServerTls] {
    snap.model
        .listeners
        .iter()
        .find(|l| l.direction == Direction::Gateway && l.port == port)
        .map_or(&[], |l| l.tls.as_slice())
}

/// Logs a TLS connection the gateway could not accept.
fn refuse_tls(shared: &Shared, port: u32, remote: SocketAddr, why: String) {
    shared.log_access(Entry {
        route_name: Some(format!("gateway|{port}").into()),
        reason: why,
        ..Entry::starting_now(remote)
    });
}
