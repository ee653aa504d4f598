//! Istio's protocol sniffing: whether a connection on a port whose
//! protocol is not declared speaks HTTP, with the bytes read to decide it
//! put back in front of the stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

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
