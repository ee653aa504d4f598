//! A downstream connection that counts its bytes into its TCP series as
//! they pass, so `istio_tcp_received_bytes_total` and
//! `istio_tcp_sent_bytes_total` are current while a long connection
//! lasts (what Telemetry's `reportingInterval` asks of Envoy, for any
//! interval), not only when it closes.

use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::telemetry::metrics::TcpSeries;

pub struct Counted<S> {
    inner: S,
    series: Arc<TcpSeries>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, series: Arc<TcpSeries>) -> Self {
        Counted { inner, series }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = (buf.filled().len() - before) as u64;
            self.series.received.fetch_add(n, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.series.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Bytes count while the connection is open, in both directions.
    #[tokio::test]
    async fn bytes_count_as_they_pass() {
        let series = Arc::new(TcpSeries::default());
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut counted = Counted::new(ours, series.clone());
        theirs.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        counted.read_exact(&mut buf).await.unwrap();
        counted.write_all(b"hi").await.unwrap();
        assert_eq!(series.received.load(Ordering::Relaxed), 5);
        assert_eq!(series.sent.load(Ordering::Relaxed), 2);
    }
}
