//! Resilience: faults, timeouts, retries, connection failures, circuit breaking, outlier detection and connection recycling.

use super::*;

#[test]
fn fault_injection_aborts_and_delays() {
    let mut w = World::any();
    let vs = std::fs::read_to_string(common::repo().join("examples/bookinfo-tasks/virtual-service-ratings-test-abort.yaml")).unwrap()
        + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: details}\nspec:\n  hosts: [details]\n  http:\n  - fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}\n    route: [{destination: {host: details}}]\n";
    let p = bookinfo(&mut w, &vs, &[]);
    let r = curl(&["-x", &p, "-H", "end-user: jason", "http://ratings:9080/get"]);
    assert_eq!(r.status, 500);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("FI: fault filter abort (VirtualService default/ratings http[0])"),
        "{}",
        r.headers
    );
    assert_eq!(curl(&["-x", &p, "http://ratings:9080/get"]).status, 200);
    let started = Instant::now();
    let r = curl(&["-x", &p, "http://details:9080/get"]);
    let took = started.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        took >= Duration::from_millis(400),
        "delay not applied: {took:?}"
    );
    let log = access_log(&w);
    assert!(
        log.iter()
            .any(|e| e["response_flags"] == "FI" && e["response_code"] == 500),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|e| e["response_flags"] == "DI" && e["response_code"] == 200),
        "{log:?}"
    );
}

#[test]
fn route_timeout_answers_504_ut() {
    let mut w = World::any();
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: 0.5s\n    route: [{destination: {host: reviews, subset: v1}}]\n";
    let p = bookinfo(&mut w, vs, &[]);
    let started = Instant::now();
    let r = curl(&["-x", &p, "http://reviews:9080/delay/3"]);
    let took = started.elapsed();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(
        r.header("x-weft-reason").unwrap_or_default().starts_with(
            "UT: upstream request timeout 500 ms exceeded (VirtualService default/reviews http[0])"
        ),
        "{}",
        r.headers
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "took {took:?}"
    );
    assert_eq!(
        curl(&["-x", &p, "http://reviews:9080/delay/0.1"]).status,
        200
    );
    // A client that gives up first: logged as Envoy does, code 0, flag DC.
    let r = curl(&["-x", &p, "-m", "0.5", "http://details:9080/delay/2"]);
    assert_ne!(r.status, 200);
    let deadline = Instant::now() + Duration::from_secs(3);
    let dc = loop {
        let found = access_log(&w).into_iter().find(|e| e["path"] == "/delay/2");
        if found.is_some() || Instant::now() > deadline {
            break found;
        }
    };
    let dc = dc.expect("the abandoned request is logged");
    assert_eq!(dc["response_code"], 0, "{dc}");
    assert_eq!(dc["response_flags"], "DC", "{dc}");
}

/// A service failing half its requests: without retries about half fail;
/// with `attempts: 5, retryOn: 5xx` nearly all succeed.
#[test]
fn retries_mask_a_flaky_upstream() {
    let mut w = World::any();
    // details turns Istio's default retries (which retry a 503) off.
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec:\n  hosts: [ratings]\n  http:\n  - retries: {attempts: 5, retryOn: 5xx}\n    route: [{destination: {host: ratings}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: details}\nspec:\n  hosts: [details]\n  http:\n  - retries: {attempts: 0}\n    route: [{destination: {host: details}}]\n";
    let p = bookinfo(
        &mut w,
        vs,
        &[
            ("ratings-v1", &["--fail-fraction", "0.5"]),
            ("details-v1", &["--fail-fraction", "0.5"]),
        ],
    );
    let with = served_by(&p, "http://ratings:9080/get", 100, &[]);
    let without = served_by(&p, "http://details:9080/get", 100, &[]);
    let ok_with = with.get("ratings-v1").copied().unwrap_or(0);
    let ok_without = without.get("details-v1").copied().unwrap_or(0);
    // P(6 failures in a row) = 1.6 %: expect ~98; P(< 90) is negligible.
    assert!(ok_with >= 90, "with retries: {with:?}");
    assert!(
        (25..=75).contains(&ok_without),
        "without retries: {without:?}"
    );
    let log = access_log(&w);
    assert!(
        log.iter()
            .any(|e| e["authority"] == "ratings:9080" && e["attempts"].as_u64() > Some(1)),
        "no retried request logged"
    );
}

#[test]
fn connection_failure_is_uf_and_exhausted_retries_are_urx() {
    let mut w = World::any();
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec:\n  hosts: [ratings]\n  http:\n  - retries: {attempts: 2, retryOn: connect-failure}\n    route: [{destination: {host: ratings}}]\n";
    let p = bookinfo(&mut w, vs, &[]);
    // Kill the two upstreams so connections are refused.
    w.procs
        .retain(|p| p.name != "details-v1" && p.name != "ratings-v1");
    let r = curl(&["-x", &p, "http://details:9080/get"]);
    assert_eq!(r.status, 503);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("UF: upstream connect error"),
        "{}",
        r.headers
    );
    let r = curl(&["-x", &p, "http://ratings:9080/get"]);
    assert_eq!(r.status, 503);
    let log = access_log(&w);
    let e = log
        .iter()
        .find(|e| e["authority"] == "ratings:9080")
        .expect("entry");
    assert_eq!(e["response_flags"], "UF,URX", "{e}");
    assert_eq!(e["attempts"], 3);
}

/// DestinationRule maxConnections 1, http1MaxPendingRequests 1: under 10
/// concurrent slow requests some overflow with 503 UO.
#[test]
fn circuit_breaker_overflows_with_uo() {
    let mut w = World::any();
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: details}\nspec:\n  host: details\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n";
    // Replace bookinfo's details DestinationRule: the example defines one,
    // and a second for the same host would keep the first's policy.
    let p = {
        bookinfo_apps(&mut w, &[]);
        let extra = w.write("dr.yaml", dr);
        let model = productpage_model_without_rules(&w, extra);
        let outbound = w.addr(1, 1, 15001);
        let (m, o, log) = (
            model.display().to_string(),
            outbound.to_string(),
            w.dir.join("access.log").display().to_string(),
        );
        w.spawn(
            "proxy",
            &[
                "proxy",
                "--model",
                &m,
                "--outbound",
                &o,
                "--explain",
                "--access-log",
                &log,
            ],
            Some(outbound),
        );
        format!("http://{outbound}")
    };
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || curl(&["-x", &p, "http://details:9080/delay/0.5"]))
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let uo: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(ok >= 1, "nothing got through");
    assert!(
        uo.len() >= 5,
        "expected overflow, got {ok} ok and {} 503",
        uo.len()
    );
    assert!(
        uo.iter().all(|r| r
            .header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("UO: upstream overflow")),
        "{}",
        uo[0].headers
    );
}

/// Two replicas, one always failing: with outlier detection
/// (consecutive5xxErrors 1) the bad one is ejected after its first error
/// and traffic goes to the good one; when both fail, both are ejected and
/// the proxy answers 503 UH.
#[test]
fn outlier_detection_ejects_failing_hosts() {
    let mut w = World::any();
    let web = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}], replicas: 2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
"#;
    let f = w.write("web.yaml", web);
    let model_path = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap();
    let eps: Vec<std::net::SocketAddr> = cluster["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(eps.len(), 2);
    w.httpbin("web-good", eps[0], &[]);
    w.httpbin("web-bad", eps[1], &["--fail-fraction", "1.0"]);
    let outbound = w.addr(1, 1, 15001);
    let (m, o) = (model_path.display().to_string(), outbound.to_string());
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--explain",
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    let counts = served_by(&p, "http://web:8000/get", 20, &[]);
    assert!(
        counts.get("web-good").copied().unwrap_or(0) >= 19,
        "{counts:?}"
    );
    assert!(
        counts.get("status 503").copied().unwrap_or(0) <= 1,
        "{counts:?}"
    );
    // Now the good one fails too: it is ejected, and nothing is left.
    w.procs.retain(|p| p.name != "web-good");
    w.httpbin("web-good", eps[0], &["--fail-fraction", "1.0"]);
    let _ = curl(&["-x", &p, "http://web:8000/get"]);
    let r = curl(&["-x", &p, "http://web:8000/get"]);
    assert_eq!(r.status, 503);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("UH: no healthy upstream"),
        "{}",
        r.headers
    );
}

/// maxRequestsPerConnection 1: every request to the upstream uses a new
/// connection; without it connections are reused.
#[test]
fn max_requests_per_connection_recycles_connections() {
    let mut w = World::any();
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\nspec:\n  host: ratings\n  trafficPolicy:\n    connectionPool:\n      http: {maxRequestsPerConnection: 1}\n";
    bookinfo_apps(&mut w, &[]);
    let f = w.write("dr.yaml", dr);
    let model = productpage_model_without_rules(&w, f);
    let outbound = w.addr(1, 1, 15001);
    let (m, o) = (model.display().to_string(), outbound.to_string());
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    for _ in 0..5 {
        assert_eq!(curl(&["-x", &p, "http://ratings:9080/get"]).status, 200);
        assert_eq!(curl(&["-x", &p, "http://details:9080/get"]).status, 200);
    }
    let peers = |log: &str| -> std::collections::BTreeSet<String> {
        log.lines()
            .filter_map(|l| l.split("peer=").nth(1))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        peers(&w.log("ratings-v1")).len(),
        5,
        "{}",
        w.log("ratings-v1")
    );
    assert!(
        peers(&w.log("details-v1")).len() <= 2,
        "{}",
        w.log("details-v1")
    );
}
