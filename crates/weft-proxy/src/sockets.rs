//! Outgoing TCP connections, made from the proxy's own address when it
//! has one: a mesh peer then sees the calling workload's address as the
//! connection's source (what `source.ip` and `ipBlocks` match), as a pod's
//! traffic leaves from the pod's IP. On one host every proxy shares
//! loopback, and an unbound socket would leave from 127.0.0.1.

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr`, from `source` when given (and of the same family).
pub async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source.filter(|s| s.is_ipv4() == addr.is_ipv4()) else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // The port is chosen at connect time, per destination, as an unbound
    // socket's is: a socket bound to port 0 takes a port of the source
    // address for itself alone, and thousands of connections would run
    // the address out of ports.
    let _ = nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    );
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_bound_connection_leaves_from_its_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let source: std::net::IpAddr = "127.0.99.7".parse().unwrap();
        let (_client, accepted) =
            tokio::join!(super::connect(addr, Some(source)), listener.accept());
        assert_eq!(accepted.unwrap().1.ip(), source);
    }
}
