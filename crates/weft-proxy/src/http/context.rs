//! What the stages of one request share: when it started, what it has
//! sent, where it went, and the access log entry whose response flags are
//! the request's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Response, StatusCode};

use super::error::Error;
use super::local_reply::reply;
use super::request_body::{BodyTally, DownstreamFault};
use crate::body::Body;
use crate::telemetry::access_log::Entry;
use crate::telemetry::flags::ResponseFlag;
use crate::telemetry::metrics::{Peer, ServiceNames};
use crate::telemetry::{trace, Text};

pub struct Ctx {
    pub start: Instant,
    /// Request body bytes sent upstream (counted as they stream).
    pub request_bytes: RequestSize,
    /// The endpoint and service the request went to, for metrics.
    pub dest: Option<(Peer, ServiceNames)>,
    /// The access log entry; its response flags are the request's.
    pub entry: Entry,
    /// The downstream peer's address (for source-IP hashing).
    pub remote: SocketAddr,
    pub explain: bool,
    pub grpc: bool,
    /// This proxy's part of the request's trace, when a tracer is set.
    pub hop: Option<trace::Hop>,
    /// What metric tag overrides read from the request, when any does.
    pub request_tags: Option<Arc<[Text]>>,
    /// Headers the policy stage adds to the response, whatever it is (an
    /// external authorizer's `headersToDownstreamOnAllow`).
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Ctx {
    /// A reply the proxy makes itself, with its flag and reason recorded.
    pub fn local(
        &mut self,
        status: StatusCode,
        flag: Option<ResponseFlag>,
        reason: String,
    ) -> Response<Body> {
        if let Some(f) = flag {
            self.entry.response_flags.add(f);
        }
        let resp = reply(status, flag, &reason, self.explain, self.grpc);
        self.entry.reason = reason;
        resp
    }

    /// The reply to a request the proxy could not serve.
    pub fn fail(&mut self, e: Error) -> Response<Body> {
        let (status, flag) = (e.status(), e.flag());
        self.local(status, flag, e.reason)
    }

    /// As [`Ctx::fail`], closing the connection after the reply: what
    /// follows on it cannot be trusted to be framed as the client meant.
    pub fn fail_and_close(&mut self, e: Error) -> Response<Body> {
        let mut resp = self.fail(e);
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// The request body's size: known when it was buffered or empty, counted
/// as it streams upstream otherwise.
pub enum RequestSize {
    Known(u64),
    Streaming(Arc<BodyTally>),
}

impl RequestSize {
    pub fn get(&self) -> u64 {
        match self {
            RequestSize::Known(n) => *n,
            RequestSize::Streaming(t) => t.bytes(),
        }
    }

    /// How the client failed its streaming body, if it did.
    pub fn fault(&self) -> Option<DownstreamFault> {
        match self {
            RequestSize::Known(_) => None,
            RequestSize::Streaming(t) => t.fault(),
        }
    }
}
