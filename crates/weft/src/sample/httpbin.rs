//! An httpbin-like service: `/headers`, `/status/N`, `/delay/N`, `/ip`,
//! `/anything`, `/get`, and podinfo's `/version` (`$PODINFO_VERSION`). Every response names the instance that served it
//! in `x-served-by`, so tests can measure traffic splits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::Common;

pub async fn run(common: Common) -> anyhow::Result<()> {
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.listen))?;
    eprintln!(
        "httpbin {} listening on {}",
        common.name,
        listener.local_addr()?
    );
    let common = Arc::new(common);
    let builder = auto::Builder::new(TokioExecutor::new());
    // As podinfo does: on SIGTERM, stop accepting, let the requests under
    // way finish (connections close after their response), then exit.
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = term.recv() => break,
        };
        let common = common.clone();
        let svc = service_fn(move |req| handle(common.clone(), remote, req));
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "httpbin {}: requests still under way after {} s; exiting",
            common.name,
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// How long requests under way may take once SIGTERM came.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

fn json(status: StatusCode, v: &serde_json::Value, name: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(
        serde_json::to_vec_pretty(v).unwrap_or_default(),
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(name) {
        r.headers_mut().insert("x-served-by", v);
    }
    r
}

async fn handle(
    common: Arc<Common>,
    remote: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(proto) = req.headers().get(http::header::UPGRADE).cloned() {
        // Any upgrade (WebSocket included): switch protocols and echo every
        // byte back, so proxies' upgrade paths can be tested.
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
        });
        let mut resp = Response::new(Full::new(Bytes::new()));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(http::header::UPGRADE, proto);
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        return Ok(resp);
    }
    // One line per request, like any web server's log; tests read it to
    // see what reached this instance (mirrored copies, headers).
    eprintln!(
        "{} {} {} host={} peer={remote}",
        common.name,
        req.method(),
        req.uri().path(),
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
    );
    if common.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(common.latency_ms)).await;
    }
    let name = common.name.as_str();
    if common.fail_fraction > 0.0 && fastrand::f64() < common.fail_fraction {
        return Ok(json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({"error": "injected failure", "served_by": name}),
            name,
        ));
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                serde_json::Value::String(v.to_str().unwrap_or("").to_owned()),
            )
        })
        .collect();
    let path = req.uri().path().to_owned();
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let resp = match segments.as_slice() {
        ["headers"] => json(
            StatusCode::OK,
            &serde_json::json!({"headers": headers, "served_by": name}),
            name,
        ),
        ["ip"] => json(
            StatusCode::OK,
            &serde_json::json!({"origin": remote.ip().to_string()}),
            name,
        ),
        // As podinfo's: the version its environment says.
        ["version"] => json(
            StatusCode::OK,
            &serde_json::json!({
                "version": std::env::var("PODINFO_VERSION").unwrap_or_else(|_| "unknown".into())
            }),
            name,
        ),
        ["status", code] => {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            json(
                status,
                &serde_json::json!({"status": status.as_u16(), "served_by": name}),
                name,
            )
        }
        ["delay", secs] => {
            let secs: f64 = secs.parse().unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 10.0))).await;
            json(
                StatusCode::OK,
                &serde_json::json!({"delayed": secs, "served_by": name}),
                name,
            )
        }
        _ => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            json(
                StatusCode::OK,
                &serde_json::json!({
                    "method": method,
                    "url": uri,
                    "path": path,
                    "headers": headers,
                    "data": String::from_utf8_lossy(&body),
                    "served_by": name,
                }),
                name,
            )
        }
    };
    Ok(resp)
}
