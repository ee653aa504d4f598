//! weft's control plane: configuration sources, compile and push, the
//! local mode that runs a whole mesh on one machine, and the admin API.

pub mod addresses;
pub mod admin;
pub mod ca;
pub mod canary;
pub mod dashboard;
pub mod guardrails;
pub mod jwks;
pub mod listen;
mod parallel;
pub mod push;
pub mod registration;
pub mod served;
pub mod server;
pub mod source;
pub mod store;
pub mod telemetry;

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the control plane did not start (its log says why)")]
    ControlPlaneDidNotStart,
    #[error("cannot listen on {addr} for {what}: {reason}; is another weft (or something else) using it? choose another address with --ingress/--admin")]
    Bind {
        addr: SocketAddr,
        what: String,
        reason: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the CA: {0}")]
    Identity(#[from] weft_identity::IdentityError),
}
