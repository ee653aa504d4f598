//! What a client may hold open or send, as Envoy bounds it.

use std::time::Duration;

/// Limits on what a client may hold open or send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection with no request in flight and no bytes either way for
    /// this long is closed (Envoy's `idle_timeout`, one hour).
    pub idle_timeout: Duration,
    /// An HTTP/1.1 request's headers must have arrived within this long of
    /// its first byte.
    pub request_headers_timeout: Duration,
    /// Bytes of request line and headers (Envoy's `max_request_headers_kb`).
    pub max_request_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(3600),
            request_headers_timeout: Duration::from_secs(10),
            max_request_headers: 60 * 1024,
        }
    }
}
