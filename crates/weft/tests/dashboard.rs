//! The dashboard in a real browser: headless Chromium (Debian's), driven
//! by Playwright, against `weft up` while bookinfo serves pages. The graph
//! must show productpage → reviews → ratings with traffic and a lock on
//! mTLS edges; clicking a node opens its detail page. A screenshot is
//! kept in target/test-artifacts/dashboard.png.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::curl;

#[test]
fn the_service_graph_in_a_browser() {
    let m = common::mesh::up(112);
    let url = format!("http://{}/productpage", m.ingress);
    let started = Instant::now();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    // Steady traffic until the browser is done, bounded: 50 s or 1500 pages.
    let traffic = std::thread::spawn(move || {
        let mut n = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed)
            && started.elapsed() < Duration::from_secs(50)
            && n < 1500
        {
            curl(&[&url]);
            n += 1;
            std::thread::sleep(Duration::from_millis(30));
        }
        n
    });
    let artifacts = common::repo().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("dashboard.png");
    // A Guardrail that audits TLS turned off, and one DestinationRule
    // that turns it off (for a host bookinfo does not call): the Policies
    // tab shows the report, bookinfo's own rules passing.
    std::fs::write(
        m.cfg.join("guardrail.yaml"),
        "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: platform, namespace: istio-system}\nspec:\n  rules: {noTlsDisable: true}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain}\nspec:\n  host: nowhere.example.com\n  trafficPolicy: {tls: {mode: DISABLE}}\n",
    )
    .unwrap();
    let report = common::browser::run(
        "dashboard.mjs",
        &[
            ("WEFT_DASHBOARD", &format!("http://{}/", m.admin)),
            ("WEFT_SCREENSHOT", &shot.display().to_string()),
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(report["error"].is_null(), "{report}");
    assert!(report["pageErrors"].is_null(), "{report}");
    let polr = report["policyReports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[1] == "polr-ns-default")
        .unwrap_or_else(|| panic!("no polr-ns-default: {report}"));
    assert_eq!(polr[3], "1", "one fails: {polr}");
    assert_eq!(polr[2], "4", "bookinfo's own DestinationRules pass: {polr}");
    // The policies in force, each with its hits: the Guardrail audits,
    // four pass and one fails (no data-plane rule: nothing counted).
    let policy = report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p[1] == "istio-system/platform")
        .unwrap_or_else(|| panic!("no Guardrail in the policies: {report}"));
    assert_eq!(
        policy,
        &serde_json::json!([
            "Guardrail",
            "istio-system/platform",
            "Audit",
            "4",
            "1",
            "-",
            "-",
            "-"
        ])
    );
    let failure = &report["policyFailures"][0];
    assert_eq!(failure[0], "istio-system/platform");
    assert_eq!(failure[1], "noTlsDisable");
    assert_eq!(failure[2], "DestinationRule default/plain");
    assert!(
        failure[3].as_str().unwrap().contains("guardrail.yaml:"),
        "{failure}"
    );
    let edges = report["edges"].as_array().unwrap();
    let edge = |s: &str, t: &str| {
        edges
            .iter()
            .find(|e| {
                e["source"].as_str().unwrap().contains(s)
                    && e["target"].as_str().unwrap().contains(t)
            })
            .unwrap_or_else(|| panic!("no edge {s} → {t}: {report}"))
    };
    for (s, t) in [
        ("istio-ingressgateway", "svc:productpage"),
        ("productpage/v1", "svc:reviews"),
        ("svc:reviews", "reviews/v2"),
        ("reviews/v2", "svc:ratings"),
        ("svc:ratings", "ratings/v1"),
    ] {
        let e = edge(s, t);
        assert!(e["rps"].as_f64().unwrap() > 0.0, "{e}");
        assert_eq!(e["mtls"], true, "{e}");
        assert!(e["label"].as_str().unwrap().starts_with("mTLS "), "{e}");
    }
    let nodes = report["nodes"].as_array().unwrap();
    assert!(nodes
        .iter()
        .any(|n| n["id"] == "vapp:default/reviews/v3" && n["health"] == "healthy"));
    assert_eq!(report["detailTitle"], "reviews");
    assert!(report["detailResources"]
        .as_str()
        .unwrap()
        .contains("DestinationRule default/reviews"));
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "no screenshot"
    );
    assert!(traffic.join().unwrap() > 50);

    // 200 services: every node drawn, updates keep the layout, a click
    // still opens a page. The timings are reported, not asserted.
    let scale = &report["scale"];
    std::fs::write(
        artifacts.join("dashboard-200-services.json"),
        scale.to_string(),
    )
    .unwrap();
    eprintln!("dashboard with 200 services: {scale}");
    assert!(scale["pageErrors"].is_null(), "{scale}");
    assert_eq!(scale["serviceNodes"], 200, "{scale}");
    assert_eq!(scale["nodes"], 600, "{scale}");
    assert!(scale["updatesSeen"].as_u64().unwrap() >= 2, "{scale}");
    assert_eq!(
        scale["positionsKept"], true,
        "an update moved the nodes: {scale}"
    );
    assert_eq!(scale["detailTitle"], "svc-0", "{scale}");

    // The JSON API by resource name, as documented in ARCHITECTURE.md.
    let api = |path: &str| -> serde_json::Value {
        let r = curl(&[&format!("http://{}{path}", m.admin)]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    };
    let svc = api("/api/services/reviews.default.svc.cluster.local?window=120");
    assert_eq!(svc["id"], "svc:reviews.default.svc.cluster.local");
    assert!(
        svc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["kind"] == "DestinationRule" && r["name"] == "reviews"),
        "{svc}"
    );
    assert!(
        svc["series"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["inboundRps"].as_f64().unwrap_or(0.0) > 0.0),
        "{svc}"
    );
    let wl = api("/api/workloads/default/reviews-v2");
    assert_eq!(wl["id"], "wl:default/reviews-v2");
    assert!(!wl["proxies"].as_array().unwrap().is_empty(), "{wl}");
    let v = api("/api/validations");
    assert!(v.is_object() || v.is_array(), "{v}");
    let bad = curl(&[&format!("http://{}/api/workloads/default", m.admin)]);
    assert_eq!(bad.status, 400);
}
