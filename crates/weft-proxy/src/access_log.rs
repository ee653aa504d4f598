//! Access logs as JSON lines with Envoy's field names, buffered and
//! written by a thread of their own so a slow disk never stalls a request.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Entry {
    pub start_time: String,
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub response_code: u16,
    pub response_flags: String,
    pub duration: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_service_time: Option<u64>,
    pub authority: String,
    pub downstream_remote_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upstream_host: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub upstream_cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    pub attempts: u32,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The AUDIT AuthorizationPolicy that matched.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub audited_by: String,
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

    pub fn log(&self, e: Entry) {
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
        match serde_json::to_writer(&mut *b, &e) {
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
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let millis = now.subsec_millis();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
    #[test]
    fn dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_782), (2026, 11, 25));
    }
}
