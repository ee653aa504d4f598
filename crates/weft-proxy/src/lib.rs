//! weft's data plane: a proxy that executes one compiled
//! [`weft_model::ProxyModel`].
//!
//! It never reads Istio resources. A new model is compiled into a
//! [`snapshot::Snapshot`] and swapped in atomically; requests in flight
//! keep the snapshot they started with, so a configuration change drops
//! nothing. A model that does not compile is refused (the old one keeps
//! serving) and the error is returned to the caller, who NACKs it.
//!
//! Where things live: `listen/` (binding, the accept loop, the drain, the
//! HTTP server per connection), `http/` (the request stages), `policy/`
//! (authentication and authorization), `upstream/` (clusters, pools,
//! connections, TLS origination), `l4/` (TCP routes, SNI, sniffing),
//! `identity/` (the workload certificate, the mTLS tunnel, credentials),
//! `telemetry/` (metrics, access log, traces) and `roles/` (sidecar and
//! gateway, each an assembly of those parts).

pub mod admin;
pub mod body;
pub mod control;
pub mod dns;
pub mod error;
pub mod facts;
pub mod held;
pub mod http;
pub mod identity;
pub mod l4;
pub mod listen;
pub mod policy;
pub mod proxy;
pub mod reconfigure;
pub mod roles;
pub mod shared;
pub mod snapshot;
pub mod sockets;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;

pub use error::ProxyError;
pub use proxy::Proxy;
pub use shared::RuntimeConfig;
