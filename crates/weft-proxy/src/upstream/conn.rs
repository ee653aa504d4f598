//! One connection to an upstream endpoint, however it is carried: plain
//! TCP, or a stream inside an mTLS tunnel to the endpoint's proxy. HTTP
//! clients and TCP splicing use it alike.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::identity::mesh::{Mesh, MeshError};

pub enum Conn {
    Tcp(TcpStream),
    Tunnel(crate::identity::mesh::TunnelStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// How to reach one endpoint.
#[derive(Clone)]
pub enum Route {
    /// A plain TCP connection; to a mesh workload, it leaves from this
    /// proxy's own address (`source`); `transparent`: from a client's
    /// (TPROXY).
    Plain {
        source: Option<std::net::IpAddr>,
        transparent: bool,
    },
    /// Through the peer proxy's tunnel port, verifying it is one of
    /// `expected`.
    Tunnel {
        mesh: Arc<Mesh>,
        tunnel: SocketAddr,
        expected: Arc<[String]>,
        baggage: http::HeaderValue,
        /// This proxy's own address, which the tunnel leaves from.
        source: Option<std::net::IpAddr>,
    },
    /// TLS the proxy originates (DestinationRule SIMPLE / MUTUAL).
    Tls(Arc<crate::upstream::origination::TlsOrigin>),
    /// Cannot be reached, and why (a configuration that does not build).
    Unavailable(Arc<str>),
}

impl Route {
    /// A plain connection from no particular address.
    pub const PLAIN: Route = Route::Plain {
        source: None,
        transparent: false,
    };
}

/// How upstream connections are opened: the connect timeout, and TCP
/// keep-alive probes where the DestinationRule asks for them.
#[derive(Debug, Clone, Copy)]
pub struct DialOptions {
    pub timeout: Duration,
    pub keepalive: Option<weft_model::TcpKeepalive>,
    /// How long a refused connection is dialed again (the pool's
    /// `refused_patience_ms`).
    pub refused_patience: Option<Duration>,
}

impl DialOptions {
    pub fn within(timeout: Duration) -> DialOptions {
        DialOptions {
            timeout,
            keepalive: None,
            refused_patience: None,
        }
    }

    /// The options a cluster's connection pool sets.
    pub fn of(pool: &weft_model::ConnectionPool) -> DialOptions {
        DialOptions {
            timeout: Duration::from_millis(pool.connect_timeout_ms.max(1)),
            keepalive: pool.tcp_keepalive,
            refused_patience: pool.refused_patience_ms.map(Duration::from_millis),
        }
    }
}

/// Turns on keep-alive probes as `k` says; a value it leaves out keeps the
/// OS's.
fn set_keepalive(stream: &TcpStream, k: &weft_model::TcpKeepalive) -> io::Result<()> {
    let mut ka = socket2::TcpKeepalive::new();
    if let Some(t) = k.time_ms {
        ka = ka.with_time(Duration::from_millis(t));
    }
    if let Some(i) = k.interval_ms {
        ka = ka.with_interval(Duration::from_millis(i));
    }
    if let Some(p) = k.probes {
        ka = ka.with_retries(p);
    }
    let sock = socket2::SockRef::from(stream);
    sock.set_keepalive(true)?;
    sock.set_tcp_keepalive(&ka)
}

/// Dials `addr` by `route`, within `opts`' timeout.
async fn tcp(
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    transparent: bool,
    opts: &DialOptions,
) -> io::Result<TcpStream> {
    let timeout = opts.timeout;
    let connecting = crate::sockets::connect_patiently(
        addr,
        source,
        transparent,
        opts.refused_patience.unwrap_or_default(),
    );
    let stream = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timeout after {} ms", timeout.as_millis()),
            )
        })??;
    stream.set_nodelay(true)?;
    if let Some(k) = &opts.keepalive {
        set_keepalive(&stream, k)?;
    }
    Ok(stream)
}

pub async fn dial(addr: SocketAddr, route: &Route, opts: &DialOptions) -> io::Result<Conn> {
    let timeout = opts.timeout;
    match route {
        Route::Plain {
            source,
            transparent,
        } => Ok(Conn::Tcp(tcp(addr, *source, *transparent, opts).await?)),
        Route::Unavailable(why) => Err(io::Error::other(why.to_string())),
        Route::Tls(origin) => {
            let config = origin.config()?;
            let stream = tcp(addr, None, false, opts).await?;
            let tls = tokio::time::timeout(
                timeout,
                tokio_rustls::TlsConnector::from(config)
                    .connect(origin.server_name.clone(), stream),
            )
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"))?
            .map_err(|e| io::Error::other(format!("TLS to {addr}: {e}")))?;
            Ok(Conn::Tls(Box::new(tls)))
        }
        Route::Tunnel {
            mesh,
            tunnel,
            expected,
            baggage,
            source,
        } => {
            let up = mesh
                .open(*tunnel, addr, expected, baggage, *source, timeout)
                .await
                .map_err(|e| match e {
                    MeshError::Connect { .. } => {
                        io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string())
                    }
                    other => io::Error::other(other.to_string()),
                })?;
            Ok(Conn::Tunnel(up))
        }
    }
}

impl Route {
    pub fn is_mtls(&self) -> bool {
        matches!(self, Route::Tunnel { .. })
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tunnel(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tunnel(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tunnel(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Tunnel(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Tunnel(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tunnel(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keepalive_probes_are_set_as_the_destination_rule_says() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let opts = DialOptions {
            timeout: Duration::from_secs(1),
            keepalive: Some(weft_model::TcpKeepalive {
                time_ms: Some(7_000),
                interval_ms: Some(3_000),
                probes: Some(4),
            }),
            refused_patience: None,
        };
        let Conn::Tcp(stream) = dial(addr, &Route::PLAIN, &opts).await.unwrap() else {
            panic!("a plain route gives a TCP connection");
        };
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
        // Without the setting, the socket is left as the OS opens it.
        let Conn::Tcp(plain) = dial(
            addr,
            &Route::PLAIN,
            &DialOptions::within(Duration::from_secs(1)),
        )
        .await
        .unwrap() else {
            panic!("a plain route gives a TCP connection");
        };
        assert!(!socket2::SockRef::from(&plain).keepalive().unwrap());
    }
}
