//! The sample apps' outgoing HTTP: through the sidecar named by
//! `HTTP_PROXY` when set (as any workload in local mode), else straight to
//! the host. Requests carry `Host: service:port`, which the sidecar's
//! outbound listener routes on.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Headers a service must pass on for tracing and routing, as Istio's
/// bookinfo does.
pub const PROPAGATED: &[&str] = &[
    "end-user",
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "x-cloud-trace-context",
    "grpc-trace-bin",
    "sw8",
    "user-agent",
];

pub struct Reply {
    pub status: StatusCode,
    /// The `x-served-by` header, when the service names itself.
    pub served_by: Option<String>,
    pub body: Bytes,
}

fn proxy() -> Option<String> {
    std::env::var("HTTP_PROXY")
        .or_else(|_| std::env::var("http_proxy"))
        .ok()
        .filter(|s| !s.is_empty())
}

/// `GET http://{authority}{path}` with `headers` copied from the incoming
/// request, within `timeout`.
pub async fn get(
    authority: &str,
    path: &str,
    incoming: &HeaderMap,
    timeout: Duration,
) -> Result<Reply, String> {
    tokio::time::timeout(timeout, get_inner(authority, path, incoming, false))
        .await
        .map_err(|_| format!("timeout after {} ms", timeout.as_millis()))?
}

/// As [`get`], sending every header of `headers` (a client's own, as
/// `curl -H` gives them) rather than only the propagated ones.
pub async fn get_with_headers(
    authority: &str,
    path: &str,
    headers: &HeaderMap,
    timeout: Duration,
) -> Result<Reply, String> {
    tokio::time::timeout(timeout, get_inner(authority, path, headers, true))
        .await
        .map_err(|_| format!("timeout after {} ms", timeout.as_millis()))?
}

async fn get_inner(
    authority: &str,
    path: &str,
    incoming: &HeaderMap,
    all: bool,
) -> Result<Reply, String> {
    let target = match proxy() {
        Some(p) => p
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        None => authority.to_owned(),
    };
    let addr: SocketAddr = match target.parse() {
        Ok(a) => a,
        Err(_) => tokio::net::lookup_host(&target)
            .await
            .map_err(|e| format!("{target}: {e}"))?
            .next()
            .ok_or_else(|| format!("{target}: no address"))?,
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", authority);
    if all {
        for (name, v) in incoming {
            req = req.header(name, v.clone());
        }
    } else {
        for name in PROPAGATED {
            if let Some(v) = incoming.get(*name) {
                req = req.header(*name, v.clone());
            }
        }
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        served_by: parts
            .headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    })
}
