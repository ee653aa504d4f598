//! A request body streaming upstream from the client: its bytes counted as
//! they go, and, when the client's side of it fails (a malformed chunk, a
//! body cut short by a closed connection or a reset stream), the fault
//! recorded. A try that fails because the client's body failed is the
//! client's fault: it is answered as one (400 DPE, or DC when the client is
//! gone), never counted against the upstream's health and never retried.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::body::BoxError;

/// How a client's request body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownstreamFault {
    /// The body was not valid HTTP (a bad chunk size, say).
    Malformed,
    /// The client closed the connection or reset the stream before the
    /// body ended.
    Aborted,
}

const NO_FAULT: u8 = 0;
const MALFORMED: u8 = 1;
const ABORTED: u8 = 2;

/// What the handler reads back from a streaming body: its size so far and
/// whether the client failed it.
#[derive(Default)]
pub struct BodyTally {
    bytes: AtomicU64,
    fault: AtomicU8,
}

impl BodyTally {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn fault(&self) -> Option<DownstreamFault> {
        match self.fault.load(Ordering::Acquire) {
            MALFORMED => Some(DownstreamFault::Malformed),
            ABORTED => Some(DownstreamFault::Aborted),
            _ => None,
        }
    }
}

/// Classifies the error a client's body ended with. A peer that went away
/// (EOF before the declared length, a reset stream, a broken connection)
/// aborted it; anything else is a protocol error in what it sent.
pub fn classify(e: &hyper::Error) -> DownstreamFault {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return DownstreamFault::Aborted;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
            ) {
                return DownstreamFault::Aborted;
            }
        }
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            if h2.is_reset() || h2.is_go_away() || h2.is_io() {
                return DownstreamFault::Aborted;
            }
        }
        source = s.source();
    }
    DownstreamFault::Malformed
}

pub struct RequestBody<B> {
    inner: B,
    tally: Arc<BodyTally>,
}

impl<B> RequestBody<B> {
    pub fn new(inner: B) -> (RequestBody<B>, Arc<BodyTally>) {
        let tally = Arc::new(BodyTally::default());
        (
            RequestBody {
                inner,
                tally: tally.clone(),
            },
            tally,
        )
    }
}

impl<B> hyper::body::Body for RequestBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.tally
                        .bytes
                        .fetch_add(d.len() as u64, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                // Recorded before the client of this body (hyper, sending
                // upstream) sees the error, so the handler reading the
                // failed send finds it. What is not hyper's own error is
                // not a peer going away.
                let fault = match e
                    .downcast_ref::<hyper::Error>()
                    .map_or(DownstreamFault::Malformed, classify)
                {
                    DownstreamFault::Malformed => MALFORMED,
                    DownstreamFault::Aborted => ABORTED,
                };
                let _ = this.tally.fault.compare_exchange(
                    NO_FAULT,
                    fault,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
