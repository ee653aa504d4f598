//! The forward stage: the request sent to an endpoint of its cluster,
//! within the route's timeouts, tried again as its retry policy allows
//! (with the body kept for replay where Envoy keeps it), copied to
//! mirrors, and spliced through when it upgrades.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};

use super::context::{Ctx, RequestSize};
use super::error::{Error, ErrorKind, Side};
use super::local_reply::full;
use super::request_body::{DownstreamFault, RequestBody};
use super::retry::RetryOn;
use crate::body::{Body, BoxError};
use crate::telemetry::flags::ResponseFlag;
use crate::upstream::error::SendError;
use crate::upstream::ClusterRt;

/// A request body as the forward stage takes it: hyper's, or any other in
/// tests.
pub trait ClientBody:
    hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + Unpin + 'static
{
}

impl<B> ClientBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Sync + Unpin + 'static
{
}

/// Retries buffer the request body so it can be sent again; larger bodies
/// are refused rather than silently not retried.
const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;

/// Request bodies up to this size, with a declared length, are kept so a
/// retry can send them again (Envoy's default buffer limit, which Istio
/// keeps). Longer or unframed ones (gRPC streams, chunked uploads) stream,
/// and are sent again only when no try sent them.
const REPLAY_BUFFER: u64 = 1024 * 1024;

/// The request body across tries.
enum Replay {
    /// Whole, for every try (empty, buffered for retries or mirrors).
    Bytes(Bytes),
    /// Streaming from the client: a try takes it; it is back only when
    /// that try did not send it.
    Stream(Option<Body>),
}

impl Replay {
    fn available(&self) -> bool {
        !matches!(self, Replay::Stream(None))
    }
}

/// What one try produced.
enum Try {
    Response(Response<crate::upstream::pool::UpstreamBody>),
    Failed(Error),
}

impl Try {
    /// What the retry decision looks at.
    fn tried(&self) -> Tried<'_> {
        match self {
            Try::Response(r) => Tried::Answered {
                status: r.status().as_u16(),
                headers: r.headers(),
            },
            Try::Failed(e) => Tried::Failed(e),
        }
    }
}

/// A try as the retry decision sees it: a response's status and headers,
/// or why it failed.
enum Tried<'a> {
    Answered {
        status: u16,
        headers: &'a http::HeaderMap,
    },
    Failed(&'a Error),
}

/// Whether `policy` (its conditions compiled as `on`) retries what a try
/// produced.
fn retriable(policy: &weft_model::RetryPolicy, on: RetryOn, grpc: bool, t: &Try) -> bool {
    retries(policy, on, grpc, t.tried())
}

fn retries(policy: &weft_model::RetryPolicy, on: RetryOn, grpc: bool, t: Tried<'_>) -> bool {
    match t {
        Tried::Answered { status, headers } => {
            on.response(&policy.retriable_status_codes, status, headers, grpc)
        }
        Tried::Failed(e) => e.retriable(on),
    }
}

/// Sends the request to `cluster` as `route` says: its retries, timeouts
/// and mirrors.
#[allow(clippy::too_many_arguments)]
pub async fn forward<B: ClientBody>(
    cluster: Arc<ClusterRt>,
    parts: http::request::Parts,
    body: B,
    path_q: PathAndQuery,
    hash: Option<Vec<u8>>,
    route: &weft_model::Route,
    retry_on: RetryOn,
    mirrors: &[Arc<ClusterRt>],
    ctx: &mut Ctx,
) -> Response<Body> {
    let _in_flight = cluster.start_request();
    let retry = route.retry.as_ref().filter(|p| p.attempts > 0);
    // Mirrors need the body whole; retries keep a small one.
    let keep = !mirrors.is_empty()
        || (retry.is_some()
            && hyper::body::Body::size_hint(&body)
                .exact()
                .is_some_and(|n| n <= REPLAY_BUFFER));
    let mut replay = if hyper::body::Body::is_end_stream(&body) {
        // Nothing to count (a GET, say): no counter, no boxed stream.
        Replay::Bytes(Bytes::new())
    } else if keep {
        match Limited::new(body, MAX_BUFFERED_BODY).collect().await {
            Ok(b) => Replay::Bytes(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return ctx.fail(Error::new(
                    ErrorKind::BodyTooLarge,
                    format!(
                        "request body over {MAX_BUFFERED_BODY} bytes cannot be buffered for retries"
                    ),
                ))
            }
            Err(e) => {
                let fault = e
                    .downcast_ref::<hyper::Error>()
                    .map_or(DownstreamFault::Malformed, super::request_body::classify);
                return ctx.fail(downstream_failed(fault, &e.to_string()));
            }
        }
    } else {
        let (body, tally) = RequestBody::new(body);
        ctx.request_bytes = RequestSize::Streaming(tally);
        Replay::Stream(Some(body.boxed()))
    };
    if let Replay::Bytes(bytes) = &replay {
        ctx.request_bytes = RequestSize::Known(bytes.len() as u64);
        for m in mirrors {
            mirror(m.clone(), &parts, &path_q, bytes.clone());
        }
    }
    let attempts = 1 + retry.map_or(0, |p| p.attempts);
    let per_try = retry
        .and_then(|p| p.per_try_timeout_ms)
        .map(Duration::from_millis);
    let deadline = route
        .timeout_ms
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_millis(t));
    let mut last_endpoint = None;
    let mut last: Option<Try> = None;
    // Parsed once for every try.
    let host_authority = host_authority(&parts.headers);
    // WebSocket and other HTTP/1.1 upgrades: keep the client's side of the
    // upgrade to splice onto the upstream's once it answers 101.
    let mut parts = parts;
    let downstream_upgrade = if parts.headers.contains_key(http::header::UPGRADE)
        && parts.version == http::Version::HTTP_11
    {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            let Some(policy) = retry else { break };
            if !last
                .as_ref()
                .is_some_and(|t| retriable(policy, retry_on, ctx.grpc, t))
                || !replay.available()
            {
                break;
            }
            let Some(_budget) = cluster.try_retry() else {
                ctx.entry.reason = "retry budget exhausted".into();
                break;
            };
            // Jittered exponential backoff: Envoy's 25 ms base (or the
            // route's `backoff`), capped at ten times the base.
            let base = policy.backoff_ms.unwrap_or(25);
            let cap = base
                .saturating_mul(1 << attempt.min(4))
                .min(base.saturating_mul(10));
            tokio::time::sleep(Duration::from_millis(fastrand::u64(0..=cap))).await;
        }
        ctx.entry.attempts = attempt + 1;
        let avoid = crate::upstream::Avoid::after(last_endpoint, retry);
        let Some(ep) = cluster.pick_avoiding(hash.as_deref(), avoid) else {
            return ctx.fail(Error::new(
                ErrorKind::NoHealthyUpstream,
                format!("no healthy upstream in {}", cluster.config.name),
            ));
        };
        last_endpoint = Some(ep);
        if let Some(peer) = cluster.peers.get(ep) {
            ctx.dest = Some((peer.clone(), cluster.service.clone()));
        }
        let addr = match cluster.endpoint_target(ep).await {
            Ok(a) => a,
            Err(crate::upstream::resolve::Unreached::Unresolved(why)) => {
                return ctx.fail(Error::new(ErrorKind::NoHealthyUpstream, why));
            }
            Err(crate::upstream::resolve::Unreached::Denied(why)) => {
                return ctx.fail(Error::new(ErrorKind::ConnectFailure, why));
            }
        };
        ctx.entry.upstream_host = Some(addr);
        let Some(_permit) = cluster.admit().await else {
            return ctx.fail(Error::new(
                ErrorKind::Overflow,
                format!(
                    "upstream overflow: {} is at its connection-pool limit (DestinationRule connectionPool)",
                    cluster.config.name
                ),
            ));
        };
        let body: Body = match &mut replay {
            Replay::Bytes(b) if b.is_empty() => super::local_reply::empty(),
            Replay::Bytes(b) => full(b.clone()),
            Replay::Stream(s) => s.take().unwrap_or_else(super::local_reply::empty),
        };
        // The last try takes the request's head; earlier ones copy it.
        let head = if attempt + 1 == attempts {
            upstream_head(
                std::mem::replace(&mut parts, Request::new(()).into_parts().0),
                downstream_upgrade.is_some(),
            )
        } else {
            clone_parts(&parts, downstream_upgrade.is_some())
        };
        let mut upstream = Request::from_parts(head, body);
        match Uri::builder()
            .scheme("http")
            .authority(
                host_authority
                    .clone()
                    .unwrap_or_else(|| addr_authority(addr)),
            )
            .path_and_query(path_q.clone())
            .build()
        {
            Ok(u) => *upstream.uri_mut() = u,
            Err(e) => {
                return ctx.fail(Error::new(
                    ErrorKind::InvalidRequest,
                    format!("invalid request path: {e}"),
                ))
            }
        }
        // The pool speaks the cluster's protocol; with `useClientProtocol`
        // the request keeps the client's version, which picks the pool.
        if !cluster.config.pool.use_client_protocol {
            *upstream.version_mut() = http::Version::HTTP_11;
        }
        let sent = Instant::now();
        // Boxed: the send future is kilobytes, and every future that holds
        // it inline is copied whole when a task is spawned or moved.
        let send = Box::pin(cluster.send(ep, upstream));
        let limit = match (per_try, deadline) {
            (Some(p), Some(d)) => Some(p.min(d.saturating_duration_since(Instant::now()))),
            (Some(p), None) => Some(p),
            (None, Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            (None, None) => None,
        };
        let outcome = match limit {
            Some(l) => tokio::time::timeout(l, send)
                .await
                .unwrap_or_else(|_| Err((SendError::Reset("timeout".into()), None))),
            None => send.await,
        };
        // A request that never left keeps its body for the next try.
        let outcome = outcome.map_err(|(e, unsent)| {
            let was_unsent = unsent.is_some();
            if let (Some(req), Replay::Stream(slot)) = (unsent, &mut replay) {
                *slot = Some(req.into_body());
            }
            (e, was_unsent)
        });
        // A timeout is told apart from a reset by the elapsed time.
        let timed_out = limit.is_some_and(|l| sent.elapsed() >= l);
        // The client failed its own body: the upstream did nothing wrong,
        // and another try would fail the same way.
        if let (Err((e, _)), Some(fault)) = (&outcome, ctx.request_bytes.fault()) {
            let failed = downstream_failed(fault, &e.to_string());
            debug_assert_eq!(failed.side(), Side::Downstream);
            return ctx.fail(failed);
        }
        cluster.report(
            ep,
            match &outcome {
                Ok(r) => crate::upstream::TryOutcome::Status(r.status().as_u16()),
                Err(_) => crate::upstream::TryOutcome::LocalFailure,
            },
        );
        last = Some(match outcome {
            Ok(resp) => {
                ctx.entry.upstream_service_time = Some(sent.elapsed().as_millis() as u64);
                Try::Response(resp)
            }
            Err(_) if timed_out => {
                let configured = match (per_try, route.timeout_ms) {
                    (Some(p), Some(t)) if p.as_millis() < u128::from(t) => {
                        format!("per-try timeout {} ms", p.as_millis())
                    }
                    (Some(p), None) => format!("per-try timeout {} ms", p.as_millis()),
                    (_, Some(t)) => format!("timeout {t} ms"),
                    (None, None) => "timeout".to_owned(),
                };
                Try::Failed(Error::new(
                    ErrorKind::Timeout,
                    format!("upstream request {configured} exceeded ({})", route.origin),
                ))
            }
            Err((SendError::Connect(e), _)) => Try::Failed(Error::new(
                ErrorKind::ConnectFailure,
                format!(
                    "upstream connect error to {addr} in {}: {e}",
                    cluster.config.name
                ),
            )),
            Err((SendError::Reset(e), unsent)) => Try::Failed(Error::new(
                ErrorKind::Reset { unsent },
                format!("upstream reset by {addr} before response headers: {e}"),
            )),
        });
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if let (Some(p), Some(t)) = (retry, &last) {
            if !retriable(p, retry_on, ctx.grpc, t) {
                break;
            }
        }
    }
    let retried_out = retry.is_some()
        && ctx.entry.attempts > 1
        && replay.available()
        && last
            .as_ref()
            .is_some_and(|t| retry.is_some_and(|p| retriable(p, retry_on, ctx.grpc, t)));
    if retried_out {
        ctx.entry
            .response_flags
            .add(ResponseFlag::UpstreamRetryLimitExceeded);
    }
    match last {
        Some(Try::Response(mut resp))
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS && downstream_upgrade.is_some() =>
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            if let Some(down) = downstream_upgrade {
                tokio::spawn(splice(down, upstream_upgrade));
            }
            let (parts, _) = resp.into_parts();
            Response::from_parts(parts, super::local_reply::empty())
        }
        Some(Try::Response(resp)) => resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()),
        Some(Try::Failed(e)) => ctx.fail(e),
        None => ctx.fail(Error::new(
            ErrorKind::NoHealthyUpstream,
            format!("no endpoint of {} has an address", cluster.config.name),
        )),
    }
}

/// The reply to a request whose client failed its body: 400 DPE for a
/// malformed one; for one cut short, DC (the client is gone, so nobody
/// reads the 400).
fn downstream_failed(fault: DownstreamFault, detail: &str) -> Error {
    match fault {
        DownstreamFault::Malformed => Error::new(
            ErrorKind::MalformedBody,
            format!("the client's request body is malformed: {detail}"),
        ),
        DownstreamFault::Aborted => Error::new(
            ErrorKind::AbortedBody,
            format!("the client ended its request body early: {detail}"),
        ),
    }
}

/// A copy of the request head for one try. Hop-by-hop headers are
/// dropped, except that an upgrade keeps `connection: upgrade`.
fn clone_parts(p: &http::request::Parts, upgrade: bool) -> http::request::Parts {
    // Field by field: a builder would check again what is valid already.
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = p.method.clone();
    parts.uri = p.uri.clone();
    parts.version = p.version;
    parts.headers = p.headers.clone();
    upstream_head(parts, upgrade)
}

/// The head sent upstream: hop-by-hop headers dropped, the downstream
/// connection's extensions left behind.
fn upstream_head(mut parts: http::request::Parts, upgrade: bool) -> http::request::Parts {
    parts.extensions.clear();
    parts.headers.remove(http::header::CONNECTION);
    if upgrade {
        parts.headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    parts.headers.remove("proxy-connection");
    parts.headers.remove("keep-alive");
    parts
}

/// Copies bytes both ways between an upgraded client and upstream
/// connection until either side closes.
async fn splice(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (Ok(down), Ok(up)) = (down.await, up.await) else {
        tracing::debug!("upgrade failed on one side");
        return;
    };
    let mut down = hyper_util::rt::TokioIo::new(down);
    let mut up = hyper_util::rt::TokioIo::new(up);
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        tracing::debug!(error = %e, "upgraded connection ended");
    }
}

/// Sends a copy of the request to a mirror cluster and forgets it: the
/// answer is dropped and failures never reach the client. As Envoy does,
/// the copy's Host gets `-shadow` (`reviews:9080` → `reviews-shadow:9080`).
fn mirror(
    cluster: Arc<ClusterRt>,
    parts: &http::request::Parts,
    path_q: &PathAndQuery,
    body: Bytes,
) {
    let Some(ep) = cluster.pick(None, None) else {
        return;
    };
    // An endpoint known by name has no address yet: the copy's own Host
    // is its authority; the pool looks the name up.
    let addr = cluster.endpoint_addr(ep);
    let mut head = clone_parts(parts, false);
    if let Some(host) = head.headers.get(HOST).and_then(|h| h.to_str().ok()) {
        let shadow = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => format!("{h}-shadow:{p}"),
            _ => format!("{host}-shadow"),
        };
        if let Ok(v) = HeaderValue::from_str(&shadow) {
            head.headers.insert(HOST, v);
        }
    }
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(match (host_authority(&head.headers), addr) {
            (Some(a), _) => a,
            (None, Some(addr)) => addr_authority(addr),
            (None, None) => return,
        })
        .path_and_query(path_q.clone())
        .build()
    else {
        return;
    };
    head.uri = uri;
    head.version = http::Version::HTTP_11;
    let req = Request::from_parts(head, full(body));
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(30), cluster.send(ep, req)).await;
    });
}

/// The authority an upstream request names: the (rewritten) Host the
/// client used, so HTTP/2 upstreams see it as `:authority`; the endpoint's
/// address (`addr_authority`) when there is no usable Host. The connection
/// itself always goes to the chosen endpoint.
fn host_authority(headers: &http::HeaderMap) -> Option<Authority> {
    headers
        .get(HOST)
        .filter(|h| !h.is_empty())
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
}

fn addr_authority(addr: SocketAddr) -> Authority {
    Authority::try_from(addr.to_string()).unwrap_or_else(|_| Authority::from_static("localhost"))
}

/// The request's path and query as an origin-form request names them
/// (shared bytes, not a copy).
pub fn origin_form(uri: &Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

#[cfg(test)]
mod tests {
    use super::{retries, Tried};
    use crate::http::error::{Error, ErrorKind};
    use crate::http::retry::RetryOn;

    fn policy(on: &str, codes: &[u16]) -> (weft_model::RetryPolicy, RetryOn) {
        let retry_on: Vec<String> = on.split(',').map(String::from).collect();
        let compiled = RetryOn::parse(&retry_on);
        (
            weft_model::RetryPolicy {
                attempts: 2,
                per_try_timeout_ms: None,
                retry_on,
                retriable_status_codes: codes.to_vec(),
                remote_localities: false,
                reuse_hosts: false,
                backoff_ms: None,
            },
            compiled,
        )
    }

    #[test]
    fn retries_follow_the_policy_for_answers_and_failures() {
        let none = http::HeaderMap::new();
        let answered = |status| Tried::Answered {
            status,
            headers: &none,
        };
        let (p, on) = policy("5xx", &[]);
        assert!(retries(&p, on, false, answered(503)));
        assert!(!retries(&p, on, false, answered(404)));
        let reset = Error::new(ErrorKind::Reset { unsent: false }, "");
        assert!(retries(&p, on, false, Tried::Failed(&reset)));
        let (p, on) = policy("retriable-status-codes", &[409]);
        assert!(retries(&p, on, false, answered(409)));
        assert!(!retries(&p, on, false, answered(503)));
        // gRPC: grpc-status on a 200 is what counts.
        let mut unavailable = http::HeaderMap::new();
        unavailable.insert("grpc-status", http::HeaderValue::from_static("14"));
        let (p, on) = policy("unavailable", &[]);
        let grpc = Tried::Answered {
            status: 200,
            headers: &unavailable,
        };
        assert!(retries(&p, on, true, grpc));
        let body = Error::new(ErrorKind::MalformedBody, "");
        assert!(!retries(&p, on, true, Tried::Failed(&body)));
    }
}
