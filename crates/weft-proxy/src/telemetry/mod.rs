//! What the proxy tells about the traffic it serves: Istio's metrics and
//! their tag overrides, the access log, response flags and traces.

pub mod access_log;
pub mod flags;
pub mod log_filter;
pub mod metric_tags;
pub mod metrics;
pub mod trace;

use std::sync::Arc;

/// A label value, shared between the series that carry it.
pub type Text = Arc<String>;
