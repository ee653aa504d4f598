//! An external authorizer like Istio's ext-authz sample: a request that
//! carries `x-ext-authz: allow` is allowed (and the upstream is told so in
//! `x-ext-authz-check-result`); anything else is denied with 403.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
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
        "ext-authz {} listening on {}",
        common.name,
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(check))
                .await;
        });
    }
}

async fn check(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let allowed = req
        .headers()
        .get("x-ext-authz")
        .is_some_and(|v| v.as_bytes() == b"allow");
    eprintln!(
        "ext-authz: {} {} -> {}",
        req.method(),
        req.uri(),
        if allowed { "allowed" } else { "denied" }
    );
    let (status, result, body) = if allowed {
        (StatusCode::OK, "allowed", String::new())
    } else {
        (
            StatusCode::FORBIDDEN,
            "denied",
            "denied by ext_authz for not found header `x-ext-authz: allow` in the request\n"
                .to_owned(),
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "x-ext-authz-check-result",
        http::HeaderValue::from_static(result),
    );
    Ok(r)
}
