//! A gRPC echo service over HTTP/2 cleartext, with no protobuf: gRPC
//! frames are length-prefixed bytes, so echoing each message back is valid
//! for any message type. Methods:
//! - `/weft.sample.Echo/Echo` and `/weft.sample.Echo/Chat`: every message
//!   is sent back as soon as it has arrived (unary and bidi streaming),
//!   then `grpc-status: 0`;
//! - `/weft.sample.Echo/Fail`: a trailers-only UNAVAILABLE.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::Common;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub async fn run(common: Common) -> anyhow::Result<()> {
    let listener = TcpListener::bind(common.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.listen))?;
    eprintln!(
        "grpc-echo {} listening on {}",
        common.name,
        listener.local_addr()?
    );
    let common = Arc::new(common);
    loop {
        let (stream, _) = listener.accept().await?;
        let common = common.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(common.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn headers(resp: &mut Response<Body>, name: &str) {
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Ok(v) = HeaderValue::from_str(name) {
        resp.headers_mut().insert("x-served-by", v);
    }
}

async fn handle(common: Arc<Common>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    eprintln!(
        "{} {} {} authority={}",
        common.name,
        req.method(),
        req.uri().path(),
        req.uri().authority().map(|a| a.as_str()).unwrap_or("")
    );
    let path = req.uri().path().to_owned();
    if path == "/weft.sample.Echo/Fail"
        || (common.fail_fraction > 0.0 && fastrand::f64() < common.fail_fraction)
    {
        let mut resp = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
        headers(&mut resp, &common.name);
        resp.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("14"));
        resp.headers_mut().insert(
            "grpc-message",
            HeaderValue::from_static("the echo service was told to fail"),
        );
        return Ok(resp);
    }
    if !matches!(
        path.as_str(),
        "/weft.sample.Echo/Echo" | "/weft.sample.Echo/Chat"
    ) {
        let mut resp = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
        headers(&mut resp, &common.name);
        resp.headers_mut()
            .insert("grpc-status", HeaderValue::from_static("12"));
        return Ok(resp);
    }
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(16);
    let mut incoming = req.into_body();
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(Ok(frame)) = incoming.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            // Send back every complete message (5-byte prefix + payload).
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 5 + len {
                    break;
                }
                let msg = buf.split_to(5 + len).freeze();
                if tx.send_data(msg).await.is_err() {
                    return;
                }
            }
        }
        let _ = buf.remaining();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let _ = tx.send_trailers(trailers).await;
    });
    let mut resp = Response::new(body.boxed());
    *resp.status_mut() = StatusCode::OK;
    headers(&mut resp, &common.name);
    Ok(resp)
}
