//! The proxy's admin port: `/ready`, `/config_dump`, `/metrics` (and
//! `/stats/prometheus`, `/stats/json`) and `/certs`.

use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::local_reply;
use crate::shared::Shared;

/// The proxy admin port: `/ready`, `/config_dump`, `/metrics` and `/certs`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let snap = shared.snapshot.load();
                        // Under capture, the pod's guard counts what tried
                        // to go around the mesh (read from nftables).
                        let guard = if shared.config.captured_outbound.is_some()
                            && matches!(req.uri().path(), "/metrics" | "/stats/prometheus")
                        {
                            guard_metrics().await
                        } else {
                            String::new()
                        };
                        let (status, body) = match req.uri().path() {
                            "/ready" | "/healthz/ready" => match &shared.mesh {
                                Some(m) if !m.ready() => (503, "waiting for the workload certificate\n".to_owned()),
                                _ => (200, "ready\n".to_owned()),
                            },
                            "/config_dump" => (200, serde_json::to_string_pretty(&serde_json::json!({"version": snap.version, "model": &*snap.model})).unwrap_or_default()),
                            "/metrics" | "/stats/prometheus" => (200, format!(
                                "{}# HELP weft_access_log_dropped_total Access log entries dropped because the writer fell behind.\n# TYPE weft_access_log_dropped_total counter\nweft_access_log_dropped_total {}\n{guard}",
                                shared.metrics.render(&snap.tags),
                                shared.access_log.dropped()
                            )),
                            "/stats/json" => (200, shared.metrics.snapshot().to_string()),
                            "/certs" => match &shared.mesh {
                                Some(m) => (200, serde_json::to_string_pretty(&m.describe()).unwrap_or_default()),
                                None => (404, "this proxy runs without a workload identity (--no-mtls)\n".to_owned()),
                            },
                            _ => (404, "not found: try /ready, /config_dump, /metrics or /certs\n".to_owned()),
                        };
                        let metrics = matches!(req.uri().path(), "/metrics" | "/stats/prometheus");
                        let mut resp = http::Response::new(local_reply::full(body));
                        if metrics {
                            resp.headers_mut().insert("content-type", http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                        }
                        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                tokio::spawn(conn);
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// The pod guard's counters (Guardrail `noBypass`) as metrics: packets
/// dropped under Enforce, or let through and counted under Audit.
async fn guard_metrics() -> String {
    let counters = tokio::task::spawn_blocking(|| weft_capture::guard::counters(None))
        .await
        .unwrap_or_default();
    weft_capture::guard::render(&counters, "noBypass")
}
