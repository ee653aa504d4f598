//! Replies the proxy makes itself. Each carries a response flag for the
//! access log and, when the operator asks, an `x-weft-reason` header that
//! says in words what decided it.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::body::Body;
use crate::telemetry::flags::ResponseFlag;

pub const REASON_HEADER: &str = "x-weft-reason";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// gRPC status for an HTTP status the proxy chose, as Envoy maps them.
fn grpc_status(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// A local reply. `grpc` answers a gRPC client with a trailers-only
/// response carrying `grpc-status`, since gRPC clients ignore HTTP status.
pub fn reply(
    status: StatusCode,
    flag: Option<ResponseFlag>,
    reason: &str,
    explain: bool,
    grpc: bool,
) -> Response<Body> {
    let mut resp = if grpc {
        let mut r = Response::new(empty());
        *r.status_mut() = StatusCode::OK;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/grpc"));
        r.headers_mut().insert(
            "grpc-status",
            HeaderValue::from(u16::from(grpc_status(status))),
        );
        if let Ok(v) = HeaderValue::from_str(reason) {
            r.headers_mut().insert("grpc-message", v);
        }
        r
    } else {
        let mut r = Response::new(full(format!("{reason}\n")));
        *r.status_mut() = status;
        r.headers_mut()
            .insert("content-type", HeaderValue::from_static("text/plain"));
        r
    };
    if explain {
        let text = match flag {
            Some(f) => format!("{}: {reason}", f.code()),
            None => reason.to_owned(),
        };
        set_reason(&mut resp, &text);
    }
    resp
}

/// Names why weft made this reply (`--explain`); a reason that is not a
/// valid header value is left out rather than sent mangled.
pub fn set_reason(resp: &mut Response<Body>, text: &str) {
    if let Ok(v) = HeaderValue::from_str(text) {
        resp.headers_mut().insert(REASON_HEADER, v);
    }
}
