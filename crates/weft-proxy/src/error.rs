//! How a proxy fails to take a model or open what the model asks for.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("invalid model: {0}")]
    InvalidModel(String),
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub what: String,
    pub source: std::io::Error,
}
