//! The control plane's admin API on 15014: `/api/status` (components,
//! ports, each proxy's config version and sync state) and
//! `/api/validations` (what `weft analyze` would say of the live config).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;

/// The documents the API serves, refreshed by the control loop.
#[derive(Default)]
pub struct Docs {
    pub status: Value,
    pub validations: Value,
}

pub type Shared = Arc<Mutex<Docs>>;

pub async fn serve(listener: TcpListener, docs: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let docs = docs.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let docs = docs.clone();
                async move {
                    let (status, body) = {
                        let d = docs.lock().map_err(|_| ()).ok();
                        match (req.uri().path(), d) {
                            ("/api/status", Some(d)) => (200, d.status.to_string()),
                            ("/api/validations", Some(d)) => (200, d.validations.to_string()),
                            ("/ready", _) => (200, "ready".to_owned()),
                            _ => (
                                404,
                                "{\"error\": \"not found: try /api/status or /api/validations\"}"
                                    .to_owned(),
                            ),
                        }
                    };
                    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                    *resp.status_mut() =
                        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
                    resp.headers_mut().insert(
                        "content-type",
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Binds `addr`, explaining a port that is taken.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, crate::ControlError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::ControlError::Bind {
            addr,
            what: what.to_owned(),
            reason: e.to_string(),
        })
}
