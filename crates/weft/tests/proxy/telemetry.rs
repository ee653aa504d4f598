//! Istio's metrics as the proxy reports them.

use super::*;

/// `/metrics` on the admin port carries Istio's standard metrics with
/// Istio's labels for the traffic that went through.
#[test]
fn metrics_use_istio_names_and_labels() {
    let mut w = World::any();
    let vs = std::fs::read_to_string(
        common::repo().join("examples/bookinfo-tasks/virtual-service-all-v1.yaml"),
    )
    .unwrap();
    bookinfo_apps(&mut w, &[]);
    let f = w.write("vs.yaml", &vs);
    let model = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let (outbound, admin) = (w.addr(1, 1, 15001), w.addr(1, 1, 15020));
    let (m, o, a) = (
        model.display().to_string(),
        outbound.to_string(),
        admin.to_string(),
    );
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--admin",
            &a,
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    for _ in 0..5 {
        assert_eq!(curl(&["-x", &p, "http://reviews:9080/get"]).status, 200);
    }
    // One request with a body, which streams upstream and is counted as
    // it goes (the GETs have none).
    let upload = "u".repeat(1234);
    assert_eq!(
        curl(&[
            "-x",
            &p,
            "--data-binary",
            &upload,
            "http://reviews:9080/anything"
        ])
        .status,
        200
    );
    assert_eq!(
        curl(&["-x", &p, "http://reviews:9080/status/503"]).status,
        503
    );
    assert_eq!(curl(&["-x", &p, "http://nothing:9080/"]).status, 404);
    let r = curl(&[&format!("http://{admin}/metrics")]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        r.headers
    );
    let line = |needles: &[&str]| {
        r.body
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
    };
    let ok = line(&[
        "istio_requests_total{",
        "response_code=\"200\"",
        "destination_workload=\"reviews-v1\"",
    ])
    .unwrap_or_else(|| panic!("no 200 series:\n{}", r.body));
    for label in [
        "reporter=\"source\"",
        "source_workload=\"productpage-v1\"",
        "source_workload_namespace=\"default\"",
        "source_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-productpage\"",
        "source_app=\"productpage\"",
        "destination_version=\"v1\"",
        "destination_app=\"reviews\"",
        "destination_principal=\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\"",
        "destination_service=\"reviews.default.svc.cluster.local\"",
        "destination_service_name=\"reviews\"",
        "destination_service_namespace=\"default\"",
        "request_protocol=\"http\"",
        "response_flags=\"-\"",
    ] {
        assert!(ok.contains(label), "missing {label} in {ok}");
    }
    assert!(ok.ends_with(" 6"), "{ok}");
    assert!(
        line(&[
            "istio_requests_total{",
            "response_code=\"503\"",
            "destination_workload=\"reviews-v1\""
        ])
        .is_some_and(|l| l.ends_with(" 1")),
        "{}",
        r.body
    );
    assert!(
        line(&[
            "istio_requests_total{",
            "response_code=\"404\"",
            "response_flags=\"NR\""
        ])
        .is_some(),
        "{}",
        r.body
    );
    assert!(
        line(&[
            "istio_request_duration_milliseconds_bucket{",
            "destination_workload=\"reviews-v1\"",
            "le=\"+Inf\""
        ])
        .is_some(),
        "{}",
        r.body
    );
    // Sizes: the response bodies are a few hundred bytes, counted as they
    // stream; the requests carried 1234 bytes in all.
    let sum = line(&[
        "istio_response_bytes_sum{",
        "response_code=\"200\"",
        "destination_workload=\"reviews-v1\"",
    ])
    .unwrap_or_else(|| panic!("no response sizes:\n{}", r.body));
    let bytes: f64 = sum.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes > 6.0 * 100.0, "{sum}");
    assert!(
        line(&[
            "istio_request_bytes_count{",
            "response_code=\"200\"",
            "destination_workload=\"reviews-v1\""
        ])
        .is_some_and(|l| l.ends_with(" 6")),
        "{}",
        r.body
    );
    assert!(
        line(&[
            "istio_request_bytes_sum{",
            "response_code=\"200\"",
            "destination_workload=\"reviews-v1\""
        ])
        .is_some_and(|l| l.ends_with(" 1234")),
        "{}",
        r.body
    );
}
