//! An external authorizer like Istio's ext-authz sample: a request that
//! carries `x-ext-authz: allow` is allowed (and the upstream and the
//! client are told so in `x-ext-authz-check-result`); anything else is
//! denied with 403. It answers Envoy's HTTP check on its listen address
//! (8000 in Istio's sample) and Envoy's gRPC `Authorization/Check` on
//! `--grpc-port` (9000); either port takes either kind of check.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tonic::server::{Grpc, UnaryService};
use weft_proxy::policy::ext_authz::proto;

use super::Common;

const DENIED: &str =
    "denied by ext_authz for not found header `x-ext-authz: allow` in the request\n";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: Common,
    /// Where the gRPC check is also served, on the listen address's IP;
    /// 0 serves none beyond the listen address.
    #[arg(long, default_value_t = 9000)]
    pub grpc_port: u16,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut addrs = vec![args.common.listen];
    if args.grpc_port != 0 && args.grpc_port != args.common.listen.port() {
        addrs.push(SocketAddr::new(args.common.listen.ip(), args.grpc_port));
    }
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        eprintln!(
            "ext-authz {} listening on {}",
            args.common.name,
            listener.local_addr()?
        );
        listeners.push(tokio::spawn(serve(listener)));
    }
    for l in listeners {
        l.await??;
    }
    Ok(())
}

async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(check))
                .await;
        });
    }
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, tonic::Status>;

async fn check(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let resp = if req.uri().path() == proto::CHECK_PATH {
            let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                proto::CheckResponse,
                proto::CheckRequest,
            >::default());
            grpc.unary(CheckSvc, req).await
        } else {
            tonic::Status::unimplemented(format!("no method {}", req.uri().path())).into_http()
        };
        return Ok(resp.map(|b| b.boxed_unsync()));
    }
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
        (StatusCode::OK, "allowed", "")
    } else {
        (StatusCode::FORBIDDEN, "denied", DENIED)
    };
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        "x-ext-authz-check-result",
        http::HeaderValue::from_static(result),
    );
    Ok(r)
}

struct CheckSvc;

fn header(key: &str, value: &str) -> proto::HeaderValueOption {
    proto::HeaderValueOption {
        header: Some(proto::HeaderValue {
            key: key.into(),
            value: value.into(),
            raw_value: Vec::new(),
        }),
        ..Default::default()
    }
}

impl UnaryService<proto::CheckRequest> for CheckSvc {
    type Response = proto::CheckResponse;
    type Future = std::future::Ready<Result<tonic::Response<proto::CheckResponse>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<proto::CheckRequest>) -> Self::Future {
        let http = req
            .get_ref()
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref());
        let allowed = http
            .and_then(|h| h.headers.get("x-ext-authz"))
            .is_some_and(|v| v == "allow");
        eprintln!(
            "ext-authz (gRPC): {} {} -> {}",
            http.map_or("", |h| h.method.as_str()),
            http.map_or("", |h| h.path.as_str()),
            if allowed { "allowed" } else { "denied" }
        );
        let answer = if allowed {
            proto::CheckResponse {
                status: Some(proto::RpcStatus::default()),
                ok_response: Some(proto::OkHttpResponse {
                    headers: vec![header("x-ext-authz-check-result", "allowed")],
                    // The sample consumes the credential it decided on.
                    headers_to_remove: vec!["x-ext-authz".into()],
                    response_headers_to_add: vec![header("x-ext-authz-check-result", "allowed")],
                }),
                ..Default::default()
            }
        } else {
            proto::CheckResponse {
                // PERMISSION_DENIED
                status: Some(proto::RpcStatus {
                    code: 7,
                    message: "x-ext-authz: allow is missing".into(),
                }),
                denied_response: Some(proto::DeniedHttpResponse {
                    status: Some(proto::HttpStatus { code: 403 }),
                    headers: vec![header("x-ext-authz-check-result", "denied")],
                    body: DENIED.into(),
                }),
                ..Default::default()
            }
        };
        std::future::ready(Ok(tonic::Response::new(answer)))
    }
}
