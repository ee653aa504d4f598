//! Access logs as JSON lines with Envoy's field names, written by a
//! background task so a slow disk never stalls a request.

use std::io::Write;

use serde::Serialize;
use tokio::sync::mpsc;

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

/// Where entries go: a bounded queue to a writer task. When the queue is
/// full the entry is dropped and counted, never waited for.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<Entry>>,
}

impl AccessLog {
    pub fn off() -> Self {
        AccessLog { tx: None }
    }

    /// Writes JSON lines to `out` (stdout, a file) from a background task.
    pub fn spawn(mut out: Box<dyn Write + Send>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Entry>(8192);
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                if let Ok(line) = serde_json::to_string(&e) {
                    let _ = writeln!(out, "{line}");
                }
                if rx.is_empty() {
                    let _ = out.flush();
                }
            }
        });
        AccessLog { tx: Some(tx) }
    }

    /// Whether entries are written at all (so a request need not format
    /// one when they are not).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, e: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(e);
        }
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
