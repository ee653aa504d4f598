//! Access logs as JSON lines with Envoy's field names, buffered and
//! written by a thread of their own so a slow disk never stalls a request.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::header::HeaderValue;
use http::uri::PathAndQuery;
use http::{Method, Version};
use serde::{Serialize, Serializer};

use crate::telemetry::flags::Flags;

/// One request or connection, as the access log prints it. Its fields are
/// what the request path already holds (shared header bytes, addresses,
/// the snapshot's names), so filling one in costs no allocation; the
/// text is made only when the line is written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub start: SystemTime,
    pub method: Option<Method>,
    pub path: Option<PathAndQuery>,
    pub protocol: &'static str,
    pub response_code: u16,
    pub response_flags: Flags,
    pub duration: u64,
    pub upstream_service_time: Option<u64>,
    pub authority: Option<HeaderValue>,
    pub downstream_remote_address: Option<SocketAddr>,
    pub upstream_host: Option<SocketAddr>,
    pub upstream_cluster: Option<Arc<str>>,
    pub route_name: Option<Arc<str>>,
    pub request_id: Option<HeaderValue>,
    pub user_agent: Option<HeaderValue>,
    pub attempts: u32,
    pub reason: String,
    /// The AUDIT AuthorizationPolicy that matched.
    pub audited_by: String,
    /// What `istio.io/dry-run` policies would have decided: `allowed`,
    /// `denied`, with `by <policy>` where one decided.
    pub dry_run_allow: String,
    pub dry_run_deny: String,
    /// A dry-run CUSTOM policy whose authorizer would have been asked.
    pub dry_run_custom: String,
}

impl Default for Entry {
    /// An entry with no start time: for a request whose entry is never
    /// written (the access log is off), so it need not read the clock.
    fn default() -> Self {
        Entry {
            start: SystemTime::UNIX_EPOCH,
            method: None,
            path: None,
            protocol: "",
            response_code: 0,
            response_flags: Flags::default(),
            duration: 0,
            upstream_service_time: None,
            authority: None,
            downstream_remote_address: None,
            upstream_host: None,
            upstream_cluster: None,
            route_name: None,
            request_id: None,
            user_agent: None,
            attempts: 0,
            reason: String::new(),
            audited_by: String::new(),
            dry_run_allow: String::new(),
            dry_run_deny: String::new(),
            dry_run_custom: String::new(),
        }
    }
}

impl Entry {
    /// An entry starting now, from `remote`.
    pub fn starting_now(remote: SocketAddr) -> Self {
        Entry {
            start: SystemTime::now(),
            downstream_remote_address: Some(remote),
            ..Entry::default()
        }
    }

    /// The authority as text (empty when absent or not visible ASCII).
    pub fn authority_str(&self) -> &str {
        header_text(self.authority.as_ref())
    }

    pub fn request_id_str(&self) -> &str {
        header_text(self.request_id.as_ref())
    }

    pub fn upstream_cluster_str(&self) -> &str {
        self.upstream_cluster.as_deref().unwrap_or("")
    }

    /// The line's fields, with Envoy's names, borrowed from the entry.
    fn line(&self) -> Line<'_> {
        Line {
            start_time: Shown(Rfc3339(self.start)),
            method: self.method.as_ref().map_or("", Method::as_str),
            path: self.path.as_ref().map_or("", PathAndQuery::as_str),
            protocol: self.protocol,
            response_code: self.response_code,
            response_flags: Shown(&self.response_flags),
            duration: self.duration,
            upstream_service_time: self.upstream_service_time,
            authority: self.authority_str(),
            downstream_remote_address: OrEmpty(self.downstream_remote_address),
            upstream_host: self.upstream_host.map(Shown),
            upstream_cluster: self.upstream_cluster_str(),
            route_name: self.route_name.as_deref().unwrap_or(""),
            request_id: self.request_id_str(),
            user_agent: header_text(self.user_agent.as_ref()),
            attempts: self.attempts,
            reason: &self.reason,
            audited_by: &self.audited_by,
            dry_run_allow: &self.dry_run_allow,
            dry_run_deny: &self.dry_run_deny,
            dry_run_custom: &self.dry_run_custom,
        }
    }
}

/// How Envoy prints a request's protocol.
pub fn protocol_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_text(v: Option<&HeaderValue>) -> &str {
    v.and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[derive(Serialize)]
struct Line<'a> {
    start_time: Shown<Rfc3339>,
    method: &'a str,
    path: &'a str,
    protocol: &'a str,
    response_code: u16,
    response_flags: Shown<&'a Flags>,
    duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_service_time: Option<u64>,
    authority: &'a str,
    downstream_remote_address: OrEmpty<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_host: Option<Shown<SocketAddr>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    upstream_cluster: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    route_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    request_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    user_agent: &'a str,
    attempts: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    audited_by: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    dry_run_allow: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    dry_run_deny: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    dry_run_custom: &'a str,
}

/// A value written as a JSON string through its `Display`, straight into
/// the output (serde_json escapes as it goes; no String in between).
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// An optional value written as a string, empty when absent.
struct OrEmpty<T>(Option<T>);

impl<T: fmt::Display> Serialize for OrEmpty<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(v) => s.collect_str(v),
            None => s.serialize_str(""),
        }
    }
}

/// Where entries go. A request formats its entry into a shared buffer;
/// a thread of the log's own writes the buffer out every
/// `FLUSH_INTERVAL` (as Envoy's access log flush interval), so a request
/// neither waits for the disk nor wakes a task, and a busy proxy makes one
/// write for many entries. When the buffer is full (the disk is slower
/// than the traffic) entries are dropped and counted, never waited for.
#[derive(Clone)]
pub struct AccessLog {
    sink: Option<Arc<Sink>>,
}

/// How often buffered entries are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Entries buffered beyond this are dropped.
const MAX_BUFFERED: usize = 8 << 20;

struct Sink {
    buffer: Mutex<Vec<u8>>,
    out: Mutex<Box<dyn Write + Send>>,
    dropped: AtomicU64,
}

impl Sink {
    fn flush(&self) {
        // The buffer keeps its capacity, so a steady load formats into
        // memory that is already there.
        let pending = match self.buffer.lock() {
            Ok(mut b) if !b.is_empty() => {
                let capacity = b.capacity();
                std::mem::replace(&mut *b, Vec::with_capacity(capacity))
            }
            _ => return,
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = out.write_all(&pending).and_then(|()| out.flush());
        }
    }
}

impl Drop for Sink {
    /// The last entries, when the proxy stops.
    fn drop(&mut self) {
        self.flush();
    }
}

impl AccessLog {
    pub fn off() -> Self {
        AccessLog { sink: None }
    }

    /// Writes JSON lines to `out` (stdout, a file) from a thread of its
    /// own, until the last handle is dropped.
    pub fn spawn(out: Box<dyn Write + Send>) -> Self {
        let sink = Arc::new(Sink {
            buffer: Mutex::new(Vec::new()),
            out: Mutex::new(out),
            dropped: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&sink);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_INTERVAL);
                let Some(sink) = weak.upgrade() else { return };
                sink.flush();
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the access log writer; access logging is off");
            return AccessLog::off();
        }
        AccessLog { sink: Some(sink) }
    }

    /// Whether entries are written at all (so a request need not format
    /// one when they are not).
    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    pub fn log(&self, e: &Entry) {
        let Some(sink) = &self.sink else { return };
        let Ok(mut b) = sink.buffer.lock() else {
            return;
        };
        if b.len() >= MAX_BUFFERED {
            sink.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Formatted straight into the buffer: no line of its own.
        let start = b.len();
        match serde_json::to_writer(&mut *b, &e.line()) {
            Ok(()) => b.push(b'\n'),
            Err(_) => b.truncate(start),
        }
    }

    /// Entries dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.sink
            .as_ref()
            .map_or(0, |s| s.dropped.load(Ordering::Relaxed))
    }
}

/// RFC 3339 UTC time without a date crate: good to the millisecond.
struct Rfc3339(SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = self
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let millis = since.subsec_millis();
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::{Entry, Rfc3339};
    use crate::telemetry::flags::{Flags, ResponseFlag};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_line_has_envoys_fields_and_skips_empty_ones() {
        let mut flags = Flags::default();
        flags.add(ResponseFlag::UpstreamRetryLimitExceeded);
        flags.add(ResponseFlag::UpstreamConnectionFailure);
        let e = Entry {
            start: UNIX_EPOCH + Duration::from_millis(1_795_608_000_123),
            method: Some(http::Method::GET),
            path: Some(http::uri::PathAndQuery::from_static("/a?b=c")),
            protocol: super::protocol_name(http::Version::HTTP_11),
            response_code: 503,
            response_flags: flags,
            duration: 7,
            authority: Some(http::HeaderValue::from_static("reviews:9080")),
            downstream_remote_address: Some("127.0.0.1:5000".parse().unwrap()),
            upstream_host: Some("127.0.0.2:9080".parse().unwrap()),
            upstream_cluster: Some("outbound|9080||reviews.default.svc.cluster.local".into()),
            request_id: Some(http::HeaderValue::from_static("abc")),
            user_agent: Some(http::HeaderValue::from_static("say \"hi\"")),
            attempts: 3,
            ..Entry::default()
        };
        let line = serde_json::to_string(&e.line()).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"start_time":"2026-11-25T12:00:00.123Z","method":"GET","path":"/a?b=c","#,
                r#""protocol":"HTTP/1.1","response_code":503,"response_flags":"UF,URX","duration":7,"#,
                r#""authority":"reviews:9080","downstream_remote_address":"127.0.0.1:5000","#,
                r#""upstream_host":"127.0.0.2:9080","#,
                r#""upstream_cluster":"outbound|9080||reviews.default.svc.cluster.local","#,
                r#""request_id":"abc","user_agent":"say \"hi\"","attempts":3}"#
            )
        );
        assert_eq!(Rfc3339(UNIX_EPOCH).to_string(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_782), (2026, 11, 25));
    }
}
