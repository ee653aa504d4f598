//! Where connections come in: binding listeners, the one accept loop every
//! listener runs, the drain that lets connections finish at shutdown, the
//! HTTP server each client connection gets, and the worker threads
//! connections are served on.

pub mod downstream;
pub mod drain;
pub mod limits;
pub mod set;
pub mod workers;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::error::BindError;

/// Binds a listener through the socket factory, naming it in the error.
pub async fn bind(addr: SocketAddr, what: &str) -> Result<(TcpListener, SocketAddr), BindError> {
    bind_with(addr, what, &crate::sockets::SocketOptions::default()).await
}

/// [`bind`], the socket opened as `opts` say.
pub async fn bind_with(
    addr: SocketAddr,
    what: &str,
    opts: &crate::sockets::SocketOptions,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let err = |source| BindError {
        addr,
        what: what.to_owned(),
        source,
    };
    let socket = crate::sockets::listen(addr, opts).map_err(err)?;
    let listener = TcpListener::from_std(socket).map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}

/// Serves one accepted connection, which holds the watch on its
/// listener's drain until it ends; a role decides what serving means.
pub type OnConnection = Arc<
    dyn Fn(TcpStream, SocketAddr, drain::Watch) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Accepts connections on `listener` until `stop` says so, handing each
/// to `on_connection` on one of `workers`. Connections keep running after
/// the loop ends, watched by `drain`. Returns the listening socket, which
/// another loop may go on accepting on.
pub async fn accept_loop(
    listener: TcpListener,
    workers: Arc<workers::Workers>,
    on_connection: OnConnection,
    drain: Arc<drain::Drain>,
    mut stop: watch::Receiver<bool>,
) -> TcpListener {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let serve = on_connection.clone();
                let watch = drain.watch();
                workers.spawn_connection(stream, move |stream| serve(stream, remote, watch));
            }
            _ = stop.changed() => break,
        }
    }
    listener
}
