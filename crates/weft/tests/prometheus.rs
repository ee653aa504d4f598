//! `weft up --prometheus`: a real Prometheus (Debian's) scrapes every
//! proxy, found through the file-based service discovery weft keeps, and
//! a PromQL query on istio_requests_total returns the traffic sent.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::curl;

fn query(prom: &str, q: &str) -> serde_json::Value {
    let r = curl(&[
        "-G",
        &format!("http://{prom}/api/v1/query"),
        "--data-urlencode",
        &format!("query={q}"),
    ]);
    serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null)
}

#[test]
fn prometheus_scrapes_every_proxy() {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "Debian's prometheus is missing: scripts/test installs it (apt-get install prometheus)"
    );
    let prom = "127.113.0.250:9090";
    let m = common::mesh::up_with_args(113, "", &["--prometheus", "--prometheus-listen", prom]);
    for _ in 0..40 {
        assert_eq!(m.page(None).0, 200);
    }
    let q = r#"sum(istio_requests_total{reporter="destination",destination_workload="productpage-v1",response_code="200"})"#;
    let started = Instant::now();
    let total = loop {
        let v = query(prom, q);
        let n = v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
        if n >= 40.0 {
            break n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Prometheus saw {n} of 40 requests: {v}\n{}",
            std::fs::read_to_string(m.w.dir.join("run/logs/prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(total >= 40.0);
    // Every proxy is a target, up (targets are scraped at staggered
    // offsets; give each its first scrape).
    let started = Instant::now();
    loop {
        let up = query(prom, "count(up == 1)");
        let n: f64 = up["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        if n == 7.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{n} of 7 proxies up: {}",
            query(prom, "up")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Istio's labels arrive intact: an mTLS edge from the gateway.
    let v = query(
        prom,
        r#"sum by (source_workload, connection_security_policy) (istio_requests_total{reporter="destination",destination_workload="productpage-v1"})"#,
    );
    let metric = &v["data"]["result"][0]["metric"];
    assert_eq!(metric["source_workload"], "istio-ingressgateway", "{v}");
    assert_eq!(metric["connection_security_policy"], "mutual_tls", "{v}");
}
