//! Why the proxy could not serve a request itself, typed. The response
//! status, the response flag, the side to blame and whether another try
//! may help are all derived here, in one place, from the kind.

use http::StatusCode;

use super::retry::RetryOn;
use crate::telemetry::flags::ResponseFlag;

/// Which party a failure belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something wrong or went away.
    Downstream,
    /// The upstream could not be reached, reset or took too long.
    Upstream,
    /// This proxy's configuration has no answer for the request.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A request head HTTP forbids (no or several Host headers, two
    /// Transfer-Encodings, a path that does not normalize).
    MalformedRequest,
    /// A request the proxy cannot turn into an upstream one (a rewritten
    /// path that is not a path, a CONNECT without host:port).
    InvalidRequest,
    /// The client's body was not valid HTTP.
    MalformedBody,
    /// The client ended its body early (closed or reset).
    AbortedBody,
    /// A body too large to keep for retries or mirrors.
    BodyTooLarge,
    /// No route table, virtual host or route matches.
    NoRoute,
    /// The route names no destination, or one this proxy does not know.
    NoCluster,
    NoHealthyUpstream,
    /// The cluster is at its connection-pool limits.
    Overflow,
    /// The connection to the endpoint could not be made; the request was
    /// never sent.
    ConnectFailure,
    /// The connection broke or the stream was reset before the response
    /// headers. `unsent`: it broke before the request left (as with an
    /// HTTP/2 refused stream), so sending again is safe.
    Reset {
        unsent: bool,
    },
    /// The route's timeout or per-try timeout passed.
    Timeout,
    /// The proxy is stopping.
    ShuttingDown,
    /// `outboundTrafficPolicy: REGISTRY_ONLY` and a host the registry
    /// does not know (Istio's `block_all` virtual host: 502).
    NotInRegistry,
}

/// A failure with the words that explain it.
#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub reason: String,
}

impl Error {
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Error {
        Error {
            kind,
            reason: reason.into(),
        }
    }

    pub fn side(&self) -> Side {
        use ErrorKind::*;
        match self.kind {
            MalformedRequest | InvalidRequest | MalformedBody | AbortedBody | BodyTooLarge => {
                Side::Downstream
            }
            ConnectFailure | Reset { .. } | Timeout => Side::Upstream,
            NoRoute | NoCluster | NoHealthyUpstream | Overflow | ShuttingDown | NotInRegistry => {
                Side::Internal
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        use ErrorKind::*;
        match self.kind {
            MalformedRequest | InvalidRequest | MalformedBody | AbortedBody => {
                StatusCode::BAD_REQUEST
            }
            BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NoRoute => StatusCode::NOT_FOUND,
            NotInRegistry => StatusCode::BAD_GATEWAY,
            Timeout => StatusCode::GATEWAY_TIMEOUT,
            NoCluster
            | NoHealthyUpstream
            | Overflow
            | ConnectFailure
            | Reset { .. }
            | ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Envoy's response flag for it, when Envoy gives one.
    pub fn flag(&self) -> Option<ResponseFlag> {
        use ErrorKind::*;
        Some(match self.kind {
            MalformedRequest | MalformedBody => ResponseFlag::DownstreamProtocolError,
            AbortedBody => ResponseFlag::DownstreamConnectionTermination,
            NoRoute | NoCluster | NotInRegistry => ResponseFlag::NoRoute,
            NoHealthyUpstream => ResponseFlag::NoHealthyUpstream,
            Overflow => ResponseFlag::UpstreamOverflow,
            ConnectFailure => ResponseFlag::UpstreamConnectionFailure,
            Reset { .. } => ResponseFlag::UpstreamConnectionTermination,
            Timeout => ResponseFlag::UpstreamRequestTimeout,
            InvalidRequest | BodyTooLarge | ShuttingDown => return None,
        })
    }

    /// Whether a retry policy with conditions `on` tries again after this,
    /// as Envoy's `retryOn` conditions read: `connect-failure`, `reset`,
    /// `refused-stream`, `5xx` and `gateway-error` each cover some of
    /// these. The client's own faults and the proxy's are never retried.
    pub fn retriable(&self, on: RetryOn) -> bool {
        match self.kind {
            ErrorKind::ConnectFailure => on.has(
                RetryOn::CONNECT_FAILURE
                    | RetryOn::FIVE_XX
                    | RetryOn::GATEWAY_ERROR
                    | RetryOn::RESET,
            ),
            ErrorKind::Reset { unsent } => {
                on.has(RetryOn::RESET | RetryOn::FIVE_XX)
                    || (unsent && on.has(RetryOn::REFUSED_STREAM))
            }
            ErrorKind::Timeout => {
                on.has(RetryOn::FIVE_XX | RetryOn::GATEWAY_ERROR | RetryOn::RESET)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Error, ErrorKind, Side};
    use crate::http::retry::RetryOn;
    use crate::telemetry::flags::ResponseFlag;

    fn on(conditions: &str) -> RetryOn {
        let names: Vec<String> = conditions.split(',').map(String::from).collect();
        RetryOn::parse(&names)
    }

    #[test]
    fn each_kind_has_its_status_flag_and_side() {
        let cases = [
            (
                ErrorKind::MalformedRequest,
                400,
                Some(ResponseFlag::DownstreamProtocolError),
                Side::Downstream,
            ),
            (
                ErrorKind::AbortedBody,
                400,
                Some(ResponseFlag::DownstreamConnectionTermination),
                Side::Downstream,
            ),
            (ErrorKind::BodyTooLarge, 413, None, Side::Downstream),
            (
                ErrorKind::NoRoute,
                404,
                Some(ResponseFlag::NoRoute),
                Side::Internal,
            ),
            (
                ErrorKind::NotInRegistry,
                502,
                Some(ResponseFlag::NoRoute),
                Side::Internal,
            ),
            (
                ErrorKind::NoCluster,
                503,
                Some(ResponseFlag::NoRoute),
                Side::Internal,
            ),
            (
                ErrorKind::Overflow,
                503,
                Some(ResponseFlag::UpstreamOverflow),
                Side::Internal,
            ),
            (
                ErrorKind::ConnectFailure,
                503,
                Some(ResponseFlag::UpstreamConnectionFailure),
                Side::Upstream,
            ),
            (
                ErrorKind::Reset { unsent: false },
                503,
                Some(ResponseFlag::UpstreamConnectionTermination),
                Side::Upstream,
            ),
            (
                ErrorKind::Timeout,
                504,
                Some(ResponseFlag::UpstreamRequestTimeout),
                Side::Upstream,
            ),
        ];
        for (kind, status, flag, side) in cases {
            let e = Error::new(kind, "why");
            assert_eq!(
                (e.status().as_u16(), e.flag(), e.side()),
                (status, flag, side),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn retry_conditions_cover_what_envoy_says() {
        let connect = Error::new(ErrorKind::ConnectFailure, "");
        let reset = Error::new(ErrorKind::Reset { unsent: false }, "");
        let refused = Error::new(ErrorKind::Reset { unsent: true }, "");
        let timeout = Error::new(ErrorKind::Timeout, "");
        assert!(connect.retriable(on("connect-failure")));
        assert!(!reset.retriable(on("connect-failure")));
        assert!(reset.retriable(on("reset")));
        assert!(refused.retriable(on("refused-stream")));
        assert!(!reset.retriable(on("refused-stream")));
        assert!(timeout.retriable(on("gateway-error")));
        assert!(!timeout.retriable(on("retriable-4xx")));
        // Istio's default policy.
        let default =
            on("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes");
        assert!(connect.retriable(default) && refused.retriable(default));
        assert!(!reset.retriable(default) && !timeout.retriable(default));
        for kind in [
            ErrorKind::MalformedBody,
            ErrorKind::AbortedBody,
            ErrorKind::NoRoute,
            ErrorKind::Overflow,
        ] {
            assert!(!Error::new(kind, "").retriable(on("5xx,reset,connect-failure,gateway-error")));
        }
    }
}
