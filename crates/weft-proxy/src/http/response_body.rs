//! The body of every response an HTTP listener sends: the handler's body,
//! counted as it goes when the response-size metric or a sampled span
//! wants its size. It is the outermost body type itself rather than a
//! boxed wrapper, so counting costs a request no allocation.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use opentelemetry_sdk::trace::SpanData;

use crate::body::{Body, BoxError};
use crate::telemetry::metrics::HttpSeries;

/// What is told the response's size once it has gone out (or the client
/// went away first).
pub struct Tally {
    pub series: Option<Arc<HttpSeries>>,
    pub span: Option<(Box<SpanData>, crate::telemetry::trace::Sink)>,
}

pub struct ResponseBody {
    inner: Body,
    bytes: u64,
    tally: Option<Tally>,
}

impl ResponseBody {
    /// A body nobody counts.
    pub fn plain(inner: Body) -> Self {
        ResponseBody {
            inner,
            bytes: 0,
            tally: None,
        }
    }

    pub fn counted(inner: Body, tally: Tally) -> Self {
        ResponseBody {
            inner,
            bytes: 0,
            tally: Some(tally),
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if this.tally.is_some() {
            if let Poll::Ready(Some(Ok(frame))) = &polled {
                if let Some(d) = frame.data_ref() {
                    this.bytes += d.len() as u64;
                }
            }
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

impl Drop for ResponseBody {
    fn drop(&mut self) {
        let Some(tally) = self.tally.take() else {
            return;
        };
        if let Some(series) = tally.series {
            series.response_bytes.observe(self.bytes as f64);
        }
        if let Some((span, sink)) = tally.span {
            sink.send(span, self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_size_is_recorded_once_the_body_is_dropped() {
        let metrics = crate::telemetry::metrics::Metrics::new();
        let p = crate::telemetry::metrics::Peer::unknown();
        let flags = metrics.no_flags.clone();
        let labels = crate::telemetry::metrics::RequestLabels::new(
            "source",
            &p,
            &p,
            &crate::telemetry::metrics::ServiceNames::of("reviews.default.svc.cluster.local"),
            crate::telemetry::metrics::Outcome {
                protocol: "http",
                code: 200,
                flags,
                security: "unknown",
            },
        );
        let series = metrics.http(&labels);
        let body = ResponseBody::counted(
            crate::http::local_reply::full(Bytes::from_static(&[7u8; 1500])),
            Tally {
                series: Some(series.clone()),
                span: None,
            },
        );
        let collected = body.collect().await.map(|c| c.to_bytes().len());
        assert_eq!(collected.ok(), Some(1500));
        let text = metrics.render(&crate::telemetry::metric_tags::TagPlan::default());
        assert!(
            text.contains("istio_response_bytes_sum{") && text.contains("} 1500"),
            "{text}"
        );
    }
}
