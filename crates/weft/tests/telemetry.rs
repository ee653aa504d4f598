//! The Telemetry resource under `weft up`, applied live: metric tag
//! overrides (a label removed, one added from a request header), a metric
//! disabled for one workload, and access logging turned off mesh-wide but
//! kept for one workload, with the most specific resource winning, then
//! narrowed there by a CEL filter.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{curl, metric_lines, metric_sum};

const TELEMETRY: &str = r#"
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
  - disabled: true
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT}
      tagOverrides:
        request_protocol: {operation: REMOVE}
        user: {value: "request.headers['end-user'] | 'anonymous'"}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: ratings
  namespace: default
spec:
  selector:
    matchLabels: {app: ratings}
  accessLogging:
  - disabled: false
  metrics:
  - overrides:
    - match: {metric: REQUEST_DURATION}
      disabled: true
"#;

/// The admin address of a proxy whose name starts with `prefix` (the
/// supervisor's part of the status may lag "ready" by a moment).
fn proxy_admin(m: &common::mesh::Mesh, prefix: &str) -> String {
    let started = Instant::now();
    loop {
        let r = curl(&[&format!("http://{}/api/status", m.admin)]);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
        let found = v["proxies"].as_array().and_then(|ps| {
            ps.iter()
                .find(|p| {
                    p["name"]
                        .as_str()
                        .is_some_and(|n| n.rsplit('/').next().unwrap_or(n).starts_with(prefix))
                })
                .and_then(|p| p["admin"].as_str())
                .map(str::to_owned)
        });
        if let Some(a) = found {
            return a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no proxy {prefix} with an admin address in status: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn access_lines(m: &common::mesh::Mesh, prefix: &str) -> usize {
    std::fs::read_dir(m.w.dir.join("run/logs"))
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(prefix) && n.ends_with(".access.log")
        })
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .count()
        })
        .sum()
}

#[test]
fn telemetry_overrides_apply_live_per_mesh_and_workload() {
    let m = common::mesh::up(115);
    let reviews = proxy_admin(&m, "reviews-v2");
    let ratings = proxy_admin(&m, "ratings");
    // reviews is round robin over three versions, so reviews-v2 sees a
    // page within a few. The server proxy records a request when its
    // response ends, which can trail the page by a moment: poll, bounded.
    let mut pages = 0;
    let total = loop {
        assert_eq!(m.page(None).0, 200);
        pages += 1;
        let before = curl(&[&format!("http://{reviews}/metrics")]).body;
        let total = metric_lines(&before, "istio_requests_total", "reporter=\"destination\"");
        if !total.is_empty() {
            break total;
        }
        assert!(
            pages < 20,
            "reviews-v2 recorded no request in {pages} pages; its metrics:\n{before}\nstatus: {}",
            curl(&[&format!("http://{}/api/status", m.admin)]).body
        );
    };

    // Before: Istio's labels as they are.
    assert!(total
        .iter()
        .all(|l| l.contains("request_protocol=\"http\"")));
    assert!(total.iter().all(|l| !l.contains("user=")));

    // Apply the Telemetry resources to the running mesh.
    m.write_config("telemetry.yaml", TELEMETRY);
    std::thread::sleep(Duration::from_millis(200));
    let logs_before = (access_lines(&m, "productpage"), access_lines(&m, "ratings"));

    // jason's pages carry end-user: jason from productpage onwards. The
    // default balancer is least-request over three versions, so which
    // pages reach reviews-v2 is chance (no anonymous one in 12 happens
    // about once in 130 runs): page until both kinds have, bounded.
    let mut after = String::new();
    for _ in 0..60 {
        assert_eq!(m.page(Some("jason")).0, 200);
        assert_eq!(m.page(None).0, 200);
        after = curl(&[&format!("http://{reviews}/metrics")]).body;
        if after.contains("user=\"jason\"") && after.contains("user=\"anonymous\"") {
            break;
        }
    }
    let total = metric_lines(&after, "istio_requests_total", "reporter=\"destination\"");
    assert!(
        total.iter().all(|l| !l.contains("request_protocol=")),
        "request_protocol removed: {total:#?}"
    );
    assert!(
        total.iter().any(|l| l.contains("user=\"jason\"")),
        "user from end-user: {total:#?}"
    );
    assert!(
        total.iter().any(|l| l.contains("user=\"anonymous\"")),
        "the default when the header is absent: {total:#?}"
    );
    // Other metrics keep Istio's labels.
    let duration = metric_lines(
        &after,
        "istio_request_duration_milliseconds_count",
        "reporter=\"destination\"",
    );
    assert!(duration
        .iter()
        .all(|l| l.contains("request_protocol=\"http\"") && !l.contains("user=")));
    // Series that became equal are one line: no duplicate label sets.
    let mut keys: Vec<&str> = total
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "{total:#?}");

    // ratings: its own Telemetry turns the duration metric off there only.
    let r = curl(&[&format!("http://{ratings}/metrics")]).body;
    let ratings_before = metric_sum(
        &r,
        "istio_request_duration_milliseconds_count",
        "reporter=\"destination\"",
    );
    for _ in 0..5 {
        assert_eq!(m.page(Some("jason")).0, 200);
    }
    let r2 = curl(&[&format!("http://{ratings}/metrics")]).body;
    let ratings_after = metric_sum(
        &r2,
        "istio_request_duration_milliseconds_count",
        "reporter=\"destination\"",
    );
    assert_eq!(ratings_before, ratings_after, "duration is off on ratings");

    // Access logs: off mesh-wide, on for ratings.
    std::thread::sleep(Duration::from_millis(500));
    let logs_after = (access_lines(&m, "productpage"), access_lines(&m, "ratings"));
    assert_eq!(
        logs_after.0, logs_before.0,
        "productpage logged with access logging disabled"
    );
    assert!(
        logs_after.1 > logs_before.1,
        "ratings stopped logging: {logs_before:?} → {logs_after:?}"
    );

    // An accessLogging filter (CEL) on ratings: a request it is false for
    // is not logged, one it is true for is.
    let filtered = |expression: &str| {
        let doc = TELEMETRY.replace(
            "  - disabled: false\n",
            &format!("  - disabled: false\n    filter: {{expression: \"{expression}\"}}\n"),
        );
        m.write_config("telemetry.yaml", &doc);
        std::thread::sleep(Duration::from_millis(300));
        let before = access_lines(&m, "ratings");
        // Pages reach ratings through reviews v2 and v3 only: page until
        // ratings has had three requests (its metrics count them), bounded.
        let served = || {
            let r = curl(&[&format!("http://{ratings}/metrics")]).body;
            metric_sum(&r, "istio_requests_total", "reporter=\"destination\"")
        };
        let start = served();
        for _ in 0..30 {
            assert_eq!(m.page(Some("jason")).0, 200);
            if served() >= start + 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        access_lines(&m, "ratings") - before
    };
    assert_eq!(
        filtered("response.code >= 400 || request.url_path == '/never'"),
        0,
        "ratings logged requests its filter is false for"
    );
    assert!(
        filtered("request.url_path.startsWith('/ratings') && response.code == 200") >= 3,
        "ratings did not log the requests its filter admits"
    );
}
