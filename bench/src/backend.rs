//! The server every case talks to: a fixed 1 KB body over HTTP/1.1 or
//! HTTP/2 (prior knowledge), with no logging and no per-request work, so
//! the differences between cases are the proxies'.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// The response body size the issue fixes.
pub const BODY_BYTES: usize = 1024;

pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("weft-bench backend listening on {listen}");
    let body = Bytes::from(vec![b'x'; BODY_BYTES]);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .header("content-type", "application/octet-stream")
                            .body(Full::new(body))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
