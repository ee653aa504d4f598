//! Sample applications built into the binary (`weft sample-app NAME`), so
//! the bundled examples and the tests need nothing but weft itself.

pub mod bookinfo;
mod client;
pub mod curl;
pub mod ext_authz;
pub mod grpc_echo;
pub mod httpbin;
pub mod loadtester;
pub mod tcp_echo;

use std::net::SocketAddr;

/// Knobs every sample app shares, by flag or environment.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Where to listen; defaults to `$WEFT_LISTEN`, else 127.0.0.1:9080.
    #[arg(long, env = "WEFT_LISTEN", default_value = "127.0.0.1:9080")]
    pub listen: SocketAddr,
    /// The name this instance reports in `x-served-by` (e.g. reviews-v2).
    #[arg(long, env = "WEFT_INSTANCE", default_value = "httpbin")]
    pub name: String,
    /// Fraction of requests (0..1) answered with 503, for resilience tests.
    #[arg(long, env = "WEFT_FAIL_FRACTION", default_value_t = 0.0)]
    pub fail_fraction: f64,
    /// Latency added to every request, in milliseconds.
    #[arg(long, env = "WEFT_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
}
