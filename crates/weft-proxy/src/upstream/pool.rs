//! The connections to one endpoint, reused request after request.
//!
//! An HTTP/1.1 connection carries one request at a time: a request takes
//! an idle one (or dials), and the connection comes back when its response
//! body has been read to the end. An HTTP/2 connection (an `http2`/`grpc`
//! cluster, or TLS that negotiated h2) is shared by every request.
//!
//! hyper-util's pooled client does this for any number of hosts. A cluster
//! already keeps one pool per endpoint, so this one needs no key to hash
//! and lock per request, and no task per request to wait for the
//! connection to become idle again: the response body hands it back.
//!
//! Idle connections older than the idle timeout are closed when they
//! expire, by a task that runs while the pool has any, or by the next
//! request that finds them; an upstream that closes one first is noticed
//! by hyper and the pool skips it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::body::Body;
use crate::upstream::conn::{Conn, DialOptions, Route};
use crate::upstream::error::SendError;
use crate::upstream::streams::{Slot, StreamCount};

/// A send that failed, with the request when it was never sent (boxed:
/// the failure is the rare path, and a request head is hundreds of bytes).
pub type Unsent = (SendError, Option<Box<http::Request<Body>>>);

/// Where a pool's connections go: an address, or a name looked up when
/// a connection is made.
#[derive(Debug, Clone)]
pub enum Target {
    Addr(SocketAddr),
    Name(crate::upstream::resolve::Named),
}

impl Target {
    /// The address to connect to now.
    pub async fn addr(&self) -> Result<SocketAddr, crate::upstream::resolve::Unreached> {
        match self {
            Target::Addr(a) => Ok(*a),
            Target::Name(n) => n.resolve().await,
        }
    }
}

pub struct EndpointPool {
    target: Target,
    route: Route,
    dial: DialOptions,
    idle_timeout: Duration,
    /// A connection this old takes no new request (`maxConnectionDuration`).
    max_age: Option<Duration>,
    /// HTTP/2 with prior knowledge (`http2` and `grpc` clusters).
    h2_only: bool,
    /// Streams one HTTP/2 connection carries before another is opened
    /// (DestinationRule `maxConcurrentStreams`).
    h2_streams: usize,
    /// Idle HTTP/1.1 connections per worker thread (`workers.rs`), the
    /// most recently used last: a request reuses a connection whose task
    /// runs on its own thread.
    idle: Vec<Mutex<VecDeque<Idle>>>,
    /// The HTTP/2 connections, each shared by up to `h2_streams` requests.
    h2: Mutex<Vec<H2Conn>>,
    /// Held while an HTTP/2 connection is dialed, so a burst of requests
    /// opens one connection, not one each.
    h2_dialing: tokio::sync::Mutex<()>,
    /// Whether a task will close idle connections as they expire.
    sweeping: AtomicBool,
}

#[derive(Clone)]
struct H2Conn {
    sender: http2::SendRequest<Body>,
    streams: StreamCount,
    born: Instant,
}

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
    born: Instant,
}

/// A connection ready for one request.
enum Ready {
    /// With when the connection was opened.
    H1(http1::SendRequest<Body>, Instant),
    /// With the request's stream claimed on it.
    H2(http2::SendRequest<Body>, Slot),
}

impl EndpointPool {
    pub fn new(
        target: Target,
        route: Route,
        dial: DialOptions,
        idle_timeout: Duration,
        max_age: Option<Duration>,
        h2_only: bool,
        h2_streams: Option<u32>,
    ) -> Arc<EndpointPool> {
        Arc::new(EndpointPool {
            target,
            route,
            dial,
            idle_timeout,
            max_age,
            h2_only,
            h2_streams: h2_streams.map_or(usize::MAX, |n| n.max(1) as usize),
            idle: (0..=crate::listen::workers::started())
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
            h2: Mutex::new(Vec::new()),
            h2_dialing: tokio::sync::Mutex::new(()),
            sweeping: AtomicBool::new(false),
        })
    }

    /// Sends `req` on a pooled connection, or a new one. A request whose
    /// connection turns out to have closed while idle (the upstream's
    /// keep-alive ended) was never sent, and goes on the next connection.
    /// A request that was never sent (no connection could be made, or the
    /// connection closed before it left) comes back with the error, body
    /// untouched, so it can be tried elsewhere.
    pub async fn send(
        self: &Arc<Self>,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<UpstreamBody>, Unsent> {
        loop {
            let conn = match self.take_idle().await {
                Some(c) => c,
                None => match self.dial().await {
                    Ok(c) => c,
                    Err(e) => return Err((e, Some(Box::new(req)))),
                },
            };
            match conn {
                Ready::H2(mut sender, slot) => {
                    let resp = match sender.try_send_request(req).await {
                        Ok(resp) => resp,
                        Err(mut e) => {
                            let back = e.take_message().map(Box::new);
                            return Err((SendError::Reset(Box::new(e.into_error())), back));
                        }
                    };
                    // The stream is open until its response body ends.
                    return Ok(resp.map(|inner| UpstreamBody {
                        inner,
                        back: None,
                        slot: Some(slot),
                    }));
                }
                Ready::H1(mut sender, born) => {
                    to_origin_form(&mut req);
                    match sender.try_send_request(req).await {
                        Ok(resp) => return Ok(self.hand_back_after(sender, born, resp)),
                        Err(mut e) => match e.take_message() {
                            Some(back) => req = back,
                            None => return Err((SendError::Reset(Box::new(e.into_error())), None)),
                        },
                    }
                }
            }
        }
    }

    /// This thread's idle list.
    fn idle_here(&self) -> Option<&Mutex<VecDeque<Idle>>> {
        let i = crate::listen::workers::current().min(self.idle.len().saturating_sub(1));
        self.idle.get(i)
    }

    /// An open HTTP/2 connection with a stream to spare, else an idle
    /// HTTP/1.1 connection that is ready for a request.
    async fn take_idle(&self) -> Option<Ready> {
        if let Some(ready) = self.h2_with_room() {
            return Some(ready);
        }
        let here = self.idle_here()?;
        loop {
            let idle = {
                let mut idle = here.lock().ok()?;
                drop_expired(&mut idle, self.idle_timeout);
                idle.pop_back()?
            };
            if self.too_old(idle.born) {
                // Dropped: the connection closes.
                continue;
            }
            let mut sender = idle.sender;
            // Ready at once, or as soon as the connection's task has seen
            // the previous response through; an error means it closed.
            if sender.ready().await.is_ok() {
                return Some(Ready::H1(sender, idle.born));
            }
        }
    }

    /// Whether a connection opened at `born` has lived past its maximum
    /// duration.
    fn too_old(&self, born: Instant) -> bool {
        self.max_age.is_some_and(|max| born.elapsed() >= max)
    }

    /// A stream on an open HTTP/2 connection that has one to spare. A
    /// connection past its maximum duration is let go: the requests on it
    /// finish, and it closes when the last of them drops its sender.
    fn h2_with_room(&self) -> Option<Ready> {
        let mut conns = self.h2.lock().ok()?;
        conns.retain(|c| !c.sender.is_closed() && !self.too_old(c.born));
        conns.iter().find_map(|c| {
            let slot = c.streams.try_claim(self.h2_streams)?;
            Some(Ready::H2(c.sender.clone(), slot))
        })
    }

    async fn dial(&self) -> Result<Ready, SendError> {
        // An HTTP/2 pool dials one connection at a time; whoever waited
        // finds room on the one just opened.
        let _dialing = if self.h2_only {
            let guard = self.h2_dialing.lock().await;
            if let Some(ready) = self.h2_with_room() {
                return Ok(ready);
            }
            Some(guard)
        } else {
            None
        };
        let addr = self
            .target
            .addr()
            .await
            .map_err(|why| SendError::Connect(Box::new(why)))?;
        let conn = crate::upstream::conn::dial(addr, &self.route, &self.dial)
            .await
            .map_err(|e| SendError::Connect(Box::new(e)))?;
        let born = Instant::now();
        let negotiated_h2 =
            matches!(&conn, Conn::Tls(s) if s.get_ref().1.alpn_protocol() == Some(b"h2"));
        if self.h2_only || negotiated_h2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(conn))
                .await
                .map_err(|e| SendError::Connect(Box::new(e)))?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(%addr, error = %e, "upstream HTTP/2 connection ended");
                }
            });
            let (streams, slot) = StreamCount::first();
            if let Ok(mut conns) = self.h2.lock() {
                conns.push(H2Conn {
                    sender: sender.clone(),
                    streams,
                    born,
                });
            }
            return Ok(Ready::H2(sender, slot));
        }
        let (sender, connection) = http1::handshake(TokioIo::new(conn))
            .await
            .map_err(|e| SendError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%addr, error = %e, "upstream connection ended");
            }
        });
        Ok(Ready::H1(sender, born))
    }

    /// The response, with its body set to return `sender` to the pool
    /// once read to the end (at once when there is no body). A connection
    /// that switched protocols belongs to the upgrade, and one the
    /// upstream is closing is not kept.
    fn hand_back_after(
        self: &Arc<Self>,
        sender: http1::SendRequest<Body>,
        born: Instant,
        resp: http::Response<Incoming>,
    ) -> http::Response<UpstreamBody> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            return resp.map(UpstreamBody::unpooled);
        }
        if resp.body().is_end_stream() {
            self.put_back(sender, born);
            return resp.map(UpstreamBody::unpooled);
        }
        let pool = self.clone();
        resp.map(|inner| UpstreamBody {
            inner,
            back: Some((sender, pool, born)),
            slot: None,
        })
    }

    fn put_back(self: &Arc<Self>, sender: http1::SendRequest<Body>, born: Instant) {
        if sender.is_closed() || self.too_old(born) {
            return;
        }
        let Some(Ok(mut idle)) = self.idle_here().map(Mutex::lock) else {
            return;
        };
        drop_expired(&mut idle, self.idle_timeout);
        idle.push_back(Idle {
            sender,
            since: Instant::now(),
            born,
        });
        drop(idle);
        self.sweep_later();
    }

    /// Closes this pool's expired idle connections; returns when the next
    /// one expires, if any is left.
    fn sweep(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for list in &self.idle {
            let Ok(mut idle) = list.lock() else { continue };
            drop_expired(&mut idle, self.idle_timeout);
            if let Some(front) = idle.front() {
                let at = front.since + self.idle_timeout;
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Makes sure a task closes idle connections when they expire, even if
    /// the pool is never used again (a burst's thousand connections would
    /// otherwise stay open until the upstream closes them). One task per
    /// pool while it has idle connections; it holds the pool weakly.
    fn sweep_later(self: &Arc<Self>) {
        if self.sweeping.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(self);
        let first = Instant::now() + self.idle_timeout;
        tokio::spawn(async move {
            let mut at = first;
            loop {
                // A little after the expiry, so the connection has expired.
                tokio::time::sleep_until((at + Duration::from_millis(5)).into()).await;
                let Some(pool) = pool.upgrade() else { return };
                match pool.sweep() {
                    Some(next) => at = next,
                    None => {
                        pool.sweeping.store(false, Ordering::Release);
                        // A connection put back meanwhile saw the flag set
                        // and left it to this task.
                        match pool.sweep() {
                            Some(next) if !pool.sweeping.swap(true, Ordering::AcqRel) => at = next,
                            _ => return,
                        }
                    }
                }
            }
        });
    }
}

/// Closes the connections idle longer than `timeout` (the oldest are at
/// the front).
fn drop_expired(idle: &mut VecDeque<Idle>, timeout: Duration) {
    while idle.front().is_some_and(|i| i.since.elapsed() > timeout) {
        idle.pop_front();
    }
}

/// HTTP/1.1 sends origin-form (`/path?q`) to a server; the handler builds
/// absolute URIs so that HTTP/2 can send the authority. CONNECT keeps its
/// authority-form.
fn to_origin_form(req: &mut http::Request<Body>) {
    if req.method() == http::Method::CONNECT || req.uri().scheme().is_none() {
        return;
    }
    if req.headers().get(http::header::HOST).is_none() {
        if let Some(a) = req.uri().authority() {
            if let Ok(v) = http::HeaderValue::from_str(a.as_str()) {
                req.headers_mut().insert(http::header::HOST, v);
            }
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *req.uri_mut() = http::Uri::from(path);
}

/// A response body from an upstream. On HTTP/1.1 it carries the connection
/// it arrives on, back to the pool when the body has been read to its end
/// (a body dropped before its end leaves the connection to close).
pub struct UpstreamBody {
    inner: Incoming,
    back: Option<(http1::SendRequest<Body>, Arc<EndpointPool>, Instant)>,
    /// On HTTP/2, the stream's claim on its connection.
    slot: Option<Slot>,
}

impl UpstreamBody {
    fn unpooled(inner: Incoming) -> UpstreamBody {
        UpstreamBody {
            inner,
            back: None,
            slot: None,
        }
    }

    fn give_back(&mut self) {
        if let Some((sender, pool, born)) = self.back.take() {
            pool.put_back(sender, born);
        }
    }
}

impl hyper::body::Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                this.give_back();
                this.slot = None;
            }
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                this.give_back();
                this.slot = None;
            }
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::EndpointPool;
    use crate::upstream::conn::{DialOptions, Route};
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Connections an upstream accepted, and how many are open now.
    #[derive(Clone, Default)]
    struct Seen {
        accepted: Arc<AtomicUsize>,
        open: Arc<AtomicUsize>,
    }

    /// An upstream on loopback (HTTP/2 with `h2`, else HTTP/1.1) that
    /// answers "0123456789" after `delay`, counting its connections. A
    /// request to `/close` is answered with `connection: close`.
    async fn counting_upstream(h2: bool, delay: Duration) -> (std::net::SocketAddr, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Seen::default();
        let counted = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.accepted.fetch_add(1, Ordering::SeqCst);
                counted.open.fetch_add(1, Ordering::SeqCst);
                let open = counted.open.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| async move {
                            tokio::time::sleep(delay).await;
                            let mut resp = http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"0123456789"),
                            ));
                            if req.uri().path() == "/close" {
                                resp.headers_mut().insert(
                                    http::header::CONNECTION,
                                    http::HeaderValue::from_static("close"),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(resp)
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(io, svc)
                        .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await;
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (addr, seen)
    }

    async fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let (addr, seen) = counting_upstream(false, Duration::ZERO).await;
        (addr, seen.accepted)
    }

    fn get(addr: std::net::SocketAddr, path: &str) -> http::Request<crate::body::Body> {
        http::Request::builder()
            .uri(format!("http://{addr}{path}"))
            .body(crate::http::local_reply::empty())
            .unwrap()
    }

    fn plain_pool(addr: std::net::SocketAddr, idle: Duration) -> Arc<EndpointPool> {
        EndpointPool::new(
            super::Target::Addr(addr),
            Route::PLAIN,
            DialOptions::within(Duration::from_secs(1)),
            idle,
            None,
            false,
            None,
        )
    }

    async fn read(
        pool: &Arc<EndpointPool>,
        addr: std::net::SocketAddr,
        path: &str,
    ) -> bytes::Bytes {
        let resp = pool.send(get(addr, path)).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_serves_request_after_request() {
        let (addr, conns) = upstream().await;
        let pool = plain_pool(addr, Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(&read(&pool, addr, "/").await[..], b"0123456789");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        // Two at once need two connections; both are kept.
        let (a, b) = tokio::join!(read(&pool, addr, "/"), read(&pool, addr, "/"));
        assert_eq!((a.len(), b.len()), (10, 10));
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        for _ in 0..3 {
            read(&pool, addr, "/").await;
        }
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn http2_opens_another_connection_when_one_is_at_its_stream_limit() {
        let (addr, seen) = counting_upstream(true, Duration::from_millis(200)).await;
        let conns = seen.accepted;
        let pool = EndpointPool::new(
            super::Target::Addr(addr),
            Route::PLAIN,
            DialOptions::within(Duration::from_secs(1)),
            Duration::from_secs(60),
            None,
            true,
            Some(2),
        );
        let requests: Vec<_> = (0..5)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let resp = pool.send(get(addr, "/")).await.unwrap();
                    resp.into_body().collect().await.unwrap().to_bytes()
                })
            })
            .collect();
        for r in requests {
            assert_eq!(&r.await.unwrap()[..], b"0123456789");
        }
        // Two streams per connection: five at once need three.
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        // Finished streams free their connections for the next ones.
        for _ in 0..4 {
            let resp = pool.send(get(addr, "/")).await.unwrap();
            resp.into_body().collect().await.unwrap();
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn idle_connections_close_when_they_expire_without_another_request() {
        let (addr, seen) = counting_upstream(false, Duration::ZERO).await;
        let open = seen.open;
        let pool = plain_pool(addr, Duration::from_millis(200));
        let (a, b) = tokio::join!(read(&pool, addr, "/"), read(&pool, addr, "/"));
        assert_eq!((a.len(), b.len()), (10, 10));
        assert_eq!(open.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            open.load(Ordering::SeqCst),
            0,
            "idle connections outlived their timeout"
        );
    }

    #[tokio::test]
    async fn closed_unread_and_expired_connections_are_not_reused() {
        let (addr, conns) = upstream().await;
        let pool = plain_pool(addr, Duration::from_millis(200));
        // The upstream says close: the next request dials.
        read(&pool, addr, "/close").await;
        read(&pool, addr, "/").await;
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        // A body dropped unread leaves its connection to close.
        drop(pool.send(get(addr, "/")).await.unwrap());
        read(&pool, addr, "/").await;
        assert_eq!(conns.load(Ordering::SeqCst), 3);
        // Idle past the timeout: not used again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        read(&pool, addr, "/").await;
        assert_eq!(conns.load(Ordering::SeqCst), 4);
        // A connection refused is a connect error.
        let nobody = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let cold = plain_pool(nobody, Duration::from_secs(1));
        // It comes back unsent, for another endpoint to take.
        assert!(matches!(
            cold.send(get(nobody, "/")).await,
            Err((crate::upstream::error::SendError::Connect(_), Some(_)))
        ));
    }

    #[tokio::test]
    async fn connections_past_their_maximum_duration_take_no_new_request() {
        for h2 in [false, true] {
            let (addr, seen) = counting_upstream(h2, Duration::ZERO).await;
            let pool = EndpointPool::new(
                super::Target::Addr(addr),
                Route::PLAIN,
                DialOptions::within(Duration::from_secs(1)),
                Duration::from_secs(60),
                Some(Duration::from_millis(300)),
                h2,
                None,
            );
            read(&pool, addr, "/").await;
            read(&pool, addr, "/").await;
            assert_eq!(
                seen.accepted.load(Ordering::SeqCst),
                1,
                "h2={h2}: reused while young"
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
            read(&pool, addr, "/").await;
            assert_eq!(
                seen.accepted.load(Ordering::SeqCst),
                2,
                "h2={h2}: a new one once old"
            );
            // The old one is let go and closes.
            let started = std::time::Instant::now();
            while seen.open.load(Ordering::SeqCst) > 1 {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "h2={h2}: the old connection stays open"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
