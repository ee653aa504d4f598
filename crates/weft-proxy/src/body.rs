//! The body type every part of the proxy hands on: a boxed stream of
//! bytes whose errors are boxed too, so the request path, the upstream
//! pools and local replies agree on one type without depending on each
//! other.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;
