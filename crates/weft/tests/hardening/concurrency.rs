//! Thousands of concurrent requests between two sidecars.

use crate::common::mesh::up_with;

/// A slow service for concurrency: every request waits 300 ms.
const SLOW_WEB: &str = r#"
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-v1, labels: {app: web, version: v1}}
spec:
  command: weft
  args: [sample-app, httpbin, --name, web-v1, --latency-ms, "300"]
  ports: [{name: http, port: 8000}]
  serviceAccount: web
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
"#;

/// h2load's summary of one run: (succeeded, failed (errors and
/// timeouts among them), 2xx).
fn h2load(
    outbound: &str,
    authority: &str,
    total: u32,
    conns: u32,
    streams: u32,
) -> (u64, u64, u64, String) {
    let out = std::process::Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "180",
            "h2load",
            "-n",
            &total.to_string(),
            "-c",
            &conns.to_string(),
            "-m",
            &streams.to_string(),
            "-T",
            "60",
            "-H",
            &format!(":authority: {authority}"),
            &format!("http://{outbound}/get"),
        ])
        .output()
        .expect("h2load runs (Debian's nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let number_before = |line: &str, word: &str| -> u64 {
        line.split(',')
            .find(|p| p.trim().ends_with(word))
            .and_then(|p| p.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let requests = text
        .lines()
        .find(|l| l.starts_with("requests:"))
        .unwrap_or("");
    let statuses = text
        .lines()
        .find(|l| l.starts_with("status codes:"))
        .unwrap_or("");
    let ok = number_before(requests, "succeeded");
    let bad = number_before(requests, "failed");
    let two = statuses
        .trim_start_matches("status codes:")
        .split(',')
        .find(|p| p.trim().ends_with("2xx"))
        .and_then(|p| p.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ok, bad, two, text)
}

/// Thousands of requests at once between two sidecars: every one is
/// answered, none hangs, and the next burst after a pause works too.
#[test]
fn thousands_of_concurrent_streams_between_two_sidecars() {
    let m = up_with(133, SLOW_WEB);
    let outbound = m.outbound_of("default/productpage-v1-0");
    let outbound = outbound.trim_start_matches("http://").to_owned();
    for (total, conns, streams) in [(2000, 10, 200), (10_000, 50, 200), (2000, 10, 200)] {
        let (ok, bad, two, text) = h2load(&outbound, "web:8000", total, conns, streams);
        assert_eq!(
            (ok, bad, two),
            (u64::from(total), 0, u64::from(total)),
            "{total} requests over {conns}x{streams} streams:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}
