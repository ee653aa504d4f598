//! How every HTTP listener serves a client's connection: hyper with
//! Envoy's limits (60 KiB of request headers on HTTP/1.1 and HTTP/2 alike,
//! 100 headers), a watchdog that closes a connection idle for the idle
//! timeout (Envoy's one hour by default) or an HTTP/1.1 request whose
//! headers take longer than the headers timeout (a slowloris), and the
//! requests hyper's parser refuses (400, 431) logged like any other.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::drain::Watch;
use super::limits::Limits;
use super::OnConnection;
use crate::http::listener::HttpListener;
use crate::shared::Shared;
use crate::telemetry::access_log::Entry;
use crate::telemetry::flags::ResponseFlag;

/// hyper's server, set up with `limits`.
pub fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper's minimum read buffer is 8 KiB; headers beyond it are 431.
    // (hyper's default of 100 headers is Envoy's; naming it makes hyper
    // fill a 100-entry array for every request it parses.)
    b.http1().max_buf_size(limits.max_request_headers.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_request_headers).unwrap_or(u32::MAX));
    b
}

/// What the watchdog knows of a connection. The request path only counts
/// and flags (relaxed atomics, no clock read); the watchdog, waking every
/// few seconds, turns that into time.
#[derive(Default)]
pub struct Activity {
    /// Reads and writes that moved bytes, either way.
    io: AtomicU64,
    /// Requests the handler is working on.
    in_flight: AtomicU32,
    /// The first byte of a request head arrived while none was in flight,
    /// and its request has not reached the handler yet. HTTP/1.1 only.
    head: AtomicBool,
    /// The client spoke HTTP/2 (its frames between requests are not a
    /// request head).
    h2: AtomicBool,
    seen_first_bytes: AtomicBool,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity::default())
    }

    fn read(&self, bytes: &[u8]) {
        self.io.fetch_add(1, Ordering::Relaxed);
        if !self.seen_first_bytes.load(Ordering::Relaxed) {
            self.seen_first_bytes.store(true, Ordering::Relaxed);
            if bytes.starts_with(b"PRI *") {
                self.h2.store(true, Ordering::Relaxed);
            }
        }
        if !self.h2.load(Ordering::Relaxed) && self.in_flight.load(Ordering::Acquire) == 0 {
            self.head.store(true, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.io.fetch_add(1, Ordering::Relaxed);
    }

    /// A request reached the handler: its head is complete.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head.store(false, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// A request the handler is working on; its connection is not idle.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.io.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A client's stream, reporting its activity.
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why the watchdog closed a connection.
#[derive(Debug, PartialEq, Eq)]
enum Expired {
    Idle,
    Headers,
}

/// Waits until `activity` says the connection should close. It looks
/// every half of the shorter timeout, so a connection is closed within
/// half a timeout after it expired.
async fn watchdog(activity: &Activity, limits: &Limits) -> Expired {
    let tick = (limits.idle_timeout.min(limits.request_headers_timeout) / 2)
        .clamp(Duration::from_millis(10), Duration::from_secs(5));
    let mut seen_io = activity.io.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    let mut head_since: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        let now = Instant::now();
        let io = activity.io.load(Ordering::Relaxed);
        let busy = activity.in_flight.load(Ordering::Acquire) > 0;
        if io != seen_io || busy {
            seen_io = io;
            quiet_since = now;
        }
        if activity.head.load(Ordering::Relaxed) && !busy {
            let since = *head_since.get_or_insert(now);
            if now.duration_since(since) >= limits.request_headers_timeout {
                return Expired::Headers;
            }
        } else {
            head_since = None;
        }
        if !busy && now.duration_since(quiet_since) >= limits.idle_timeout {
            return Expired::Idle;
        }
    }
}

/// Client connections accepted on an HTTP listener.
pub fn on_connection(shared: Arc<Shared>, http: Arc<HttpListener>) -> OnConnection {
    Arc::new(move |stream, remote, drain| {
        let (shared, http) = (shared.clone(), http.clone());
        Box::pin(async move {
            let name = http.name.clone();
            serve(&shared, stream, remote, &name, http, drain).await;
        })
    })
}

/// Serves one client connection, named `listener` in the access log, as
/// requests arriving at `http`, under the proxy's limits; when `drain`
/// says so it finishes the requests in flight and closes.
pub async fn serve<T>(
    shared: &Arc<Shared>,
    io: T,
    remote: SocketAddr,
    listener: &str,
    http: Arc<HttpListener>,
    mut drain: Watch,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.config.limits;
    let activity = Activity::new();
    let io = Watched {
        inner: io,
        activity: activity.clone(),
    };
    let builder = builder(&limits);
    let serving = shared.clone();
    let busy = activity.clone();
    let service = hyper::service::service_fn(move |req| {
        // The connection is not idle until the response is ready.
        let started = busy.request_started();
        let handling = crate::http::handle(serving.clone(), http.clone(), remote, req);
        async move {
            let resp = handling.await;
            drop(started);
            resp
        }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let result = tokio::select! {
        r = async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => r,
                _ = drain.signaled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        } => r,
        why = watchdog(&activity, &limits) => {
            if why == Expired::Headers {
                shared.log_access(Entry {
                    response_code: 408,
                    route_name: Some(listener.into()),
                    reason: format!(
                        "the request headers did not arrive within {} ms; connection closed",
                        limits.request_headers_timeout.as_millis()
                    ),
                    ..Entry::starting_now(remote)
                });
            }
            tracing::debug!(%remote, ?why, "closing a client connection");
            return;
        }
    };
    if let Err(e) = result {
        refused(shared, remote, listener, &*e);
    }
}

/// Logs a request hyper's parser refused (it answered 400 or 431 itself).
fn refused(
    shared: &Shared,
    remote: SocketAddr,
    listener: &str,
    e: &(dyn std::error::Error + Send + Sync + 'static),
) {
    let Some(h) = e.downcast_ref::<hyper::Error>() else {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
        return;
    };
    if !h.is_parse() && !h.is_parse_too_large() && !h.is_parse_status() {
        tracing::debug!(%remote, error = %e, "connection ended with an error");
        return;
    }
    let mut entry = Entry::starting_now(remote);
    entry.response_code = if h.is_parse_too_large() { 431 } else { 400 };
    entry
        .response_flags
        .add(ResponseFlag::DownstreamProtocolError);
    entry.route_name = Some(listener.into());
    entry.reason = format!("the request was refused by the HTTP parser: {h}");
    shared.log_access(entry);
}

#[cfg(test)]
mod tests {
    use super::{watchdog, Activity, Expired, Limits};
    use std::time::Duration;

    fn limits(idle_ms: u64, headers_ms: u64) -> Limits {
        Limits {
            idle_timeout: Duration::from_millis(idle_ms),
            request_headers_timeout: Duration::from_millis(headers_ms),
            max_request_headers: 60 * 1024,
        }
    }

    #[tokio::test]
    async fn a_silent_connection_expires_as_idle() {
        let a = Activity::new();
        let why = tokio::time::timeout(Duration::from_secs(2), watchdog(&a, &limits(100, 50)))
            .await
            .expect("expires");
        assert_eq!(why, Expired::Idle);
    }

    #[tokio::test]
    async fn a_head_that_trickles_expires_and_a_request_in_flight_does_not() {
        let a = Activity::new();
        a.read(b"GET / HTTP/1.1\r\n");
        let why = tokio::time::timeout(Duration::from_secs(2), watchdog(&a, &limits(10_000, 100)))
            .await
            .expect("expires");
        assert_eq!(why, Expired::Headers);

        let a = Activity::new();
        a.read(b"GET / HTTP/1.1\r\n\r\n");
        let _req = a.request_started();
        // Body bytes while the request is in flight start no head.
        a.read(b"body");
        let still =
            tokio::time::timeout(Duration::from_millis(300), watchdog(&a, &limits(100, 100))).await;
        assert!(
            still.is_err(),
            "a connection with a request in flight expired"
        );
    }

    #[tokio::test]
    async fn http2_frames_between_requests_are_not_a_head() {
        let a = Activity::new();
        a.read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        a.read(b"ping frame");
        let still = tokio::time::timeout(
            Duration::from_millis(300),
            watchdog(&a, &limits(10_000, 100)),
        )
        .await;
        assert!(still.is_err());
    }
}
