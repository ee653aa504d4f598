//! A route's retry conditions (Envoy's `retry_on`), compiled once per push
//! into a set of flags, so judging a try costs a few bit tests: with
//! Istio's default policy on every route, every request is judged.

use http::{HeaderMap, HeaderName};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// Which outcomes a policy retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn(u32);

impl RetryOn {
    pub const FIVE_XX: u32 = 1;
    pub const GATEWAY_ERROR: u32 = 1 << 1;
    pub const RESET: u32 = 1 << 2;
    pub const CONNECT_FAILURE: u32 = 1 << 3;
    pub const REFUSED_STREAM: u32 = 1 << 4;
    pub const RETRIABLE_4XX: u32 = 1 << 5;
    pub const RETRIABLE_STATUS_CODES: u32 = 1 << 6;
    pub const CANCELLED: u32 = 1 << 7;
    pub const DEADLINE_EXCEEDED: u32 = 1 << 8;
    pub const RESOURCE_EXHAUSTED: u32 = 1 << 9;
    pub const INTERNAL: u32 = 1 << 10;
    pub const UNAVAILABLE: u32 = 1 << 11;
    const GRPC: u32 = Self::CANCELLED
        | Self::DEADLINE_EXCEEDED
        | Self::RESOURCE_EXHAUSTED
        | Self::INTERNAL
        | Self::UNAVAILABLE;

    /// Envoy's names; unknown ones retry nothing.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a String>) -> RetryOn {
        let mut bits = 0;
        for n in names {
            bits |= match n.as_str() {
                "5xx" => Self::FIVE_XX,
                "gateway-error" => Self::GATEWAY_ERROR,
                "reset" => Self::RESET,
                "connect-failure" => Self::CONNECT_FAILURE,
                "refused-stream" => Self::REFUSED_STREAM,
                "retriable-4xx" => Self::RETRIABLE_4XX,
                "retriable-status-codes" => Self::RETRIABLE_STATUS_CODES,
                "cancelled" => Self::CANCELLED,
                "deadline-exceeded" => Self::DEADLINE_EXCEEDED,
                "resource-exhausted" => Self::RESOURCE_EXHAUSTED,
                "internal" => Self::INTERNAL,
                "unavailable" => Self::UNAVAILABLE,
                _ => 0,
            };
        }
        RetryOn(bits)
    }

    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }

    /// Whether a response with `status` and `headers` is retried; `grpc`:
    /// the request was gRPC (only then is `grpc-status` looked at).
    pub fn response(self, codes: &[u16], status: u16, headers: &HeaderMap, grpc: bool) -> bool {
        if (self.has(Self::FIVE_XX) && status >= 500)
            || (self.has(Self::GATEWAY_ERROR) && matches!(status, 502..=504))
            || (self.has(Self::RETRIABLE_4XX) && status == 409)
            || (self.has(Self::RETRIABLE_STATUS_CODES) && codes.contains(&status))
        {
            return true;
        }
        // gRPC says how it failed in `grpc-status`: looked up only when a
        // gRPC condition is on.
        if !grpc || self.0 & Self::GRPC == 0 {
            return false;
        }
        let Some(code) = headers.get(&GRPC_STATUS).map(http::HeaderValue::as_bytes) else {
            return false;
        };
        let on = |bit, c: &[u8]| self.has(bit) && code == c;
        on(Self::CANCELLED, b"1")
            || on(Self::DEADLINE_EXCEEDED, b"4")
            || on(Self::RESOURCE_EXHAUSTED, b"8")
            || on(Self::INTERNAL, b"13")
            || on(Self::UNAVAILABLE, b"14")
    }
}

#[cfg(test)]
mod tests {
    use super::RetryOn;

    fn on(names: &[&str]) -> RetryOn {
        let owned: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        RetryOn::parse(&owned)
    }

    #[test]
    fn istios_default_retries_503_and_grpc_unavailable_only() {
        let default = on(&[
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ]);
        let none = http::HeaderMap::new();
        assert!(default.response(&[503], 503, &none, false));
        assert!(!default.response(&[503], 500, &none, false));
        assert!(!default.response(&[503], 200, &none, false));
        let mut grpc = http::HeaderMap::new();
        grpc.insert("grpc-status", http::HeaderValue::from_static("14"));
        assert!(default.response(&[503], 200, &grpc, true));
        assert!(!default.response(&[503], 200, &grpc, false));
        grpc.insert("grpc-status", http::HeaderValue::from_static("13"));
        assert!(!default.response(&[503], 200, &grpc, true));
        assert!(default.has(RetryOn::CONNECT_FAILURE));
        assert!(!default.has(RetryOn::RESET));
    }

    #[test]
    fn envoys_status_classes() {
        let none = http::HeaderMap::new();
        assert!(on(&["5xx"]).response(&[], 500, &none, false));
        assert!(on(&["gateway-error"]).response(&[], 504, &none, false));
        assert!(!on(&["gateway-error"]).response(&[], 500, &none, false));
        assert!(on(&["retriable-4xx"]).response(&[], 409, &none, false));
        assert!(!on(&["retriable-4xx", "no-such-condition"]).response(&[], 404, &none, false));
    }
}
