//! Inbound connections, whether they arrive in plain text on a workload
//! port or as a stream inside the mTLS tunnel: sniffed when the port's
//! protocol is not declared, then served as HTTP through the handler or
//! spliced to the application.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use weft_model::{MtlsMode, Protocol};

use crate::handler::Entrypoint;
use crate::metrics::Peer;
use crate::Shared;

/// A stream with bytes already read from it put back in front.
pub struct Prefixed<T> {
    prefix: Vec<u8>,
    offset: usize,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Vec<u8>, inner: T) -> Self {
        Prefixed {
            prefix,
            offset: 0,
            inner,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.offset < this.prefix.len() {
            let rest = &this.prefix[this.offset..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

const HTTP_STARTS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"PRI * HTTP/2",
];

/// Istio's protocol sniffing for a port whose protocol is not declared:
/// HTTP when the first bytes are an HTTP/1 method or the HTTP/2 preface;
/// opaque TCP otherwise, or when the client sends nothing for 100 ms (a
/// server-first protocol). Returns the stream with what was read put back.
pub async fn sniff<T: AsyncRead + Unpin>(mut io: T) -> (Prefixed<T>, bool) {
    let mut seen = Vec::with_capacity(16);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
    let is_http = loop {
        let mut buf = [0u8; 16];
        let want = 16 - seen.len();
        let n = match tokio::time::timeout_at(deadline, io.read(&mut buf[..want])).await {
            Ok(Ok(n)) => n,
            _ => break false,
        };
        if n == 0 {
            break false;
        }
        seen.extend_from_slice(&buf[..n]);
        if HTTP_STARTS.iter().any(|s| seen.starts_with(s)) {
            break true;
        }
        if !HTTP_STARTS.iter().any(|s| s.starts_with(&seen)) || seen.len() == 16 {
            break false;
        }
    };
    (Prefixed::new(seen, io), is_http)
}

/// The mTLS mode PeerAuthentication sets for an inbound port.
pub fn mtls_mode(shared: &Shared, port: u32) -> MtlsMode {
    let snap = shared.snapshot.load();
    let policy = &snap.model.security.inbound_mtls;
    policy.ports.get(&port).copied().unwrap_or(policy.mode)
}

/// Serves one inbound connection for workload `port`.
pub async fn serve<T>(
    shared: Arc<Shared>,
    io: T,
    port: u32,
    protocol: Protocol,
    remote: SocketAddr,
    peer: Option<Arc<Peer>>,
    watcher: Option<hyper_util::server::graceful::Watcher>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (io, opaque) = match protocol {
        Protocol::Tcp | Protocol::Tls | Protocol::Https => (Prefixed::new(Vec::new(), io), true),
        Protocol::Unknown => {
            let (io, is_http) = sniff(io).await;
            (io, !is_http)
        }
        _ => (Prefixed::new(Vec::new(), io), false),
    };
    if opaque {
        if let Some(why) = tcp_denied(&shared, port, remote, peer.as_deref()) {
            // Closing is the only answer TCP has.
            let mut entry = crate::access_log::Entry::starting_now(remote);
            entry.route_name = Some(format!("inbound|{port}").into());
            entry
                .response_flags
                .add(crate::flags::ResponseFlag::RbacDenied);
            entry.reason = why;
            shared.log_access(entry);
            return;
        }
        splice_to_app(&shared, port, io).await;
        return;
    }
    let entry = Entrypoint::Inbound {
        port,
        protocol,
        peer,
    };
    crate::downstream::serve(
        &shared,
        io,
        remote,
        &format!("inbound|{port}"),
        entry,
        watcher,
    )
    .await;
}

/// AuthorizationPolicy on a TCP connection: only L4 attributes exist, and
/// rules that need more fail closed.
fn tcp_denied(
    shared: &Shared,
    port: u32,
    remote: SocketAddr,
    peer: Option<&Peer>,
) -> Option<String> {
    let snap = shared.snapshot.load();
    if snap.authz.is_empty() {
        return None;
    }
    let principal = peer.map(|p| p.principal.as_str());
    let source_ip = snap.authz.source_ip(remote.ip(), principal);
    let attrs = crate::authz::Attributes {
        principal,
        source_ip,
        remote_ip: source_ip,
        destination_ip: shared.config.inbound_ip,
        destination_port: port as u16,
        ..Default::default()
    };
    match snap.authz.check(&attrs).decision {
        Some(crate::authz::Decision::Allow) => None,
        Some(crate::authz::Decision::Deny { policy, why }) => {
            Some(format!("connection denied by {policy} ({why})"))
        }
        None => Some("authorization could not be evaluated".into()),
    }
}

/// Splices an opaque inbound connection to the application.
pub async fn splice_to_app<T: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    port: u32,
    mut client: T,
) {
    let Some((app, _)) = shared.apps.get(&port) else {
        return;
    };
    let Some(addr) = app.endpoint_addr(0) else {
        return;
    };
    match tokio::net::TcpStream::connect(addr).await {
        Ok(mut upstream) => {
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(e) => {
            tracing::warn!(%addr, error = %e, "the application refused an inbound connection")
        }
    }
}
