//! `weft sample-app NAME`: the sample services built into the binary.

use std::process::ExitCode;

use crate::sample::{self, Common};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    app: App,
}

#[derive(clap::Subcommand)]
enum App {
    /// An httpbin-like service: /headers, /status/N, /delay/N, /ip, /anything, /get.
    Httpbin(Common),
    /// A TCP echo server: each line comes back prefixed with the instance name.
    TcpEcho(Common),
    /// A gRPC echo service (h2c): Echo and Chat echo every message, Fail answers UNAVAILABLE.
    GrpcEcho(Common),
    /// An external authorizer like Istio's ext-authz sample: allows
    /// requests with `x-ext-authz: allow`, over HTTP and gRPC.
    ExtAuthz(sample::ext_authz::Args),
    /// Flagger's load tester: webhooks that run commands (`cmd`,
    /// `bash`) and manual gates (`/gate/…`, `/rollback/…`).
    Loadtester(sample::loadtester::Args),
    /// A curl-like client that goes through the sidecar (HTTP_PROXY).
    Curl(sample::curl::Args),
    /// Istio's bookinfo: productpage (calls details and reviews).
    Productpage(sample::bookinfo::Args),
    /// Istio's bookinfo: details.
    Details(sample::bookinfo::Args),
    /// Istio's bookinfo: reviews (--version v1 no stars, v2 black, v3 red; v2/v3 call ratings).
    Reviews(sample::bookinfo::Args),
    /// Istio's bookinfo: ratings.
    Ratings(sample::bookinfo::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match args.app {
            App::Httpbin(c) => sample::httpbin::run(c).await,
            App::TcpEcho(c) => sample::tcp_echo::run(c).await,
            App::GrpcEcho(c) => sample::grpc_echo::run(c).await,
            App::Curl(a) => sample::curl::run(a).await,
            App::Loadtester(a) => sample::loadtester::run(a).await,
            App::ExtAuthz(c) => sample::ext_authz::run(c).await,
            App::Productpage(a) => {
                sample::bookinfo::run(sample::bookinfo::Service::Productpage, a).await
            }
            App::Details(a) => sample::bookinfo::run(sample::bookinfo::Service::Details, a).await,
            App::Reviews(a) => sample::bookinfo::run(sample::bookinfo::Service::Reviews, a).await,
            App::Ratings(a) => sample::bookinfo::run(sample::bookinfo::Service::Ratings, a).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
