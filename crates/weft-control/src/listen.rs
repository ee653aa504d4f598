//! Opening the control plane's ports (admin API, model stream, CA).

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Binds `addr`, explaining a port that is taken.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, crate::ControlError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| crate::ControlError::Bind {
            addr,
            what: what.to_owned(),
            reason: e.to_string(),
        })
}
