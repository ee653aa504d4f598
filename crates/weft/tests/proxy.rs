//! The data plane end to end: `weft proxy` runs a model compiled by
//! `weft proxy-config` from Istio YAML, httpbin sample apps stand in for
//! the bookinfo services, and curl is the client.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{curl, World};

/// Bookinfo's six workloads as httpbins at their compiled addresses
/// (127.N.0.1 … .6), some with extra flags.
fn bookinfo_apps(w: &mut World, app_flags: &[(&str, &[&str])]) {
    let names = [
        "details-v1",
        "productpage-v1",
        "ratings-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    ];
    for (i, n) in names.iter().enumerate() {
        let flags = app_flags
            .iter()
            .find(|(name, _)| name == n)
            .map_or(&[][..], |(_, f)| f);
        w.httpbin(n, w.addr(0, i as u8 + 1, 9080), flags);
    }
}

/// productpage's model from bookinfo's services and workloads only (not
/// its DestinationRules) plus the file `extra`.
fn productpage_model_without_rules(w: &World, extra: std::path::PathBuf) -> std::path::PathBuf {
    let ex = common::repo().join("examples/bookinfo");
    w.model(
        "productpage-v1",
        &[ex.join("services.yaml"), ex.join("workloads.yaml"), extra],
        "model.json",
    )
}

/// Bookinfo's apps (`bookinfo_apps`), and productpage's sidecar compiled
/// with `extra` YAML, its outbound proxy at 127.N.1.1:15001. Returns the
/// proxy address.
fn bookinfo(w: &mut World, extra: &str, app_flags: &[(&str, &[&str])]) -> String {
    bookinfo_apps(w, app_flags);
    let extra_file = w.write("extra.yaml", extra);
    let model = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), extra_file],
        "model.json",
    );
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
}

fn access_log(w: &World) -> Vec<serde_json::Value> {
    // The log is written by a background task; give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(w.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn served_by(proxy: &str, url: &str, n: usize, extra: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let mut args = vec!["-x", proxy, url];
        args.extend_from_slice(extra);
        let r = curl(&args);
        let who = if r.status == 200 {
            r.header("x-served-by").unwrap_or_default()
        } else {
            format!("status {}", r.status)
        };
        *counts.entry(who).or_default() += 1;
    }
    counts
}

/// `served_by` from `clients` threads at once, `each` requests apiece.
fn served_by_concurrently(
    proxy: &str,
    url: &str,
    clients: usize,
    each: usize,
) -> BTreeMap<String, usize> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (p, u) = (proxy.to_owned(), url.to_owned());
            std::thread::spawn(move || served_by(&p, &u, each, &[]))
        })
        .collect();
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for t in threads {
        for (who, n) in t.join().unwrap() {
            *total.entry(who).or_default() += n;
        }
    }
    total
}

#[test]
fn default_route_reaches_the_service() {
    let mut w = World::new(61);
    let p = bookinfo(&mut w, "", &[]);
    let r = curl(&["-x", &p, "http://details:9080/headers"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-served-by").as_deref(), Some("details-v1"));
    // The app sees the Host the client used and a request id.
    assert!(r.body.contains("\"host\": \"details:9080\""), "{}", r.body);
    assert!(r.body.contains("x-request-id"), "{}", r.body);
    // The fully qualified name works too.
    let r = curl(&[
        "-x",
        &p,
        "http://details.default.svc.cluster.local:9080/get",
    ]);
    assert_eq!(r.status, 200);
    let log = access_log(&w);
    let e = log
        .iter()
        .find(|e| e["authority"] == "details:9080")
        .expect("access log entry");
    assert_eq!(e["response_code"], 200);
    assert_eq!(e["response_flags"], "-");
    assert_eq!(
        e["upstream_cluster"],
        "outbound|9080||details.default.svc.cluster.local"
    );
    assert_eq!(e["upstream_host"], w.addr(0, 1, 9080).to_string());
}

/// Istio's reviews-50-v3: 400 requests, each version within 50 % ± 12 %
/// (the 95 % binomial interval is ± 5 %; the margin keeps CI steady).
#[test]
fn weighted_split_follows_the_weights() {
    let mut w = World::new(62);
    let vs = std::fs::read_to_string(
        common::repo().join("examples/bookinfo-tasks/virtual-service-reviews-50-v3.yaml"),
    )
    .unwrap();
    let p = bookinfo(&mut w, &vs, &[]);
    let counts = served_by(&p, "http://reviews:9080/get", 400, &[]);
    let v1 = counts.get("reviews-v1").copied().unwrap_or(0);
    let v3 = counts.get("reviews-v3").copied().unwrap_or(0);
    assert_eq!(v1 + v3, 400, "{counts:?}");
    assert!((152..=248).contains(&v1), "v1 got {v1} of 400: {counts:?}");
}

/// Istio's reviews-test-v2: jason goes to v2, everyone else to v1.
#[test]
fn header_match_routes_jason_to_v2() {
    let mut w = World::new(63);
    let vs = std::fs::read_to_string(
        common::repo().join("examples/bookinfo-tasks/virtual-service-reviews-test-v2.yaml"),
    )
    .unwrap();
    let p = bookinfo(&mut w, &vs, &[]);
    assert_eq!(
        served_by(
            &p,
            "http://reviews:9080/get",
            20,
            &["-H", "end-user: jason"]
        ),
        BTreeMap::from([("reviews-v2".to_owned(), 20)])
    );
    assert_eq!(
        served_by(&p, "http://reviews:9080/get", 20, &[]),
        BTreeMap::from([("reviews-v1".to_owned(), 20)])
    );
    assert_eq!(
        served_by(&p, "http://reviews:9080/get", 10, &["-H", "end-user: bob"]),
        BTreeMap::from([("reviews-v1".to_owned(), 10)])
    );
}

#[test]
fn fault_injection_aborts_and_delays() {
    let mut w = World::new(64);
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
    let mut w = World::new(65);
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
    let mut w = World::new(66);
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
    let mut w = World::new(67);
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

#[test]
fn redirect_direct_response_rewrite_and_headers() {
    let mut w = World::new(68);
    let vs = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: details.example.com, redirectCode: 308}
  - match: [{uri: {exact: /gone}}]
    directResponse: {status: 410, body: {string: "gone for good"}}
  - match: [{uri: {prefix: /v1/}}]
    rewrite: {uri: /anything/}
    headers:
      request: {set: {x-mesh: weft}, remove: [x-internal]}
      response: {add: {x-route: rewritten}}
    route: [{destination: {host: details}}]
  - match: [{uri: {prefix: /re/}}]
    rewrite: {uriRegexRewrite: {match: "^/re/(.*)$", rewrite: "/anything/regex/\\1"}}
    route: [{destination: {host: details}}]
"#;
    let p = bookinfo(&mut w, vs, &[]);
    let r = curl(&["-x", &p, "http://details:9080/old/page"]);
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location").as_deref(),
        Some("http://details.example.com/new")
    );
    let r = curl(&["-x", &p, "http://details:9080/gone"]);
    assert_eq!((r.status, r.body.as_str()), (410, "gone for good"));
    let r = curl(&[
        "-x",
        &p,
        "-H",
        "x-internal: secret",
        "http://details:9080/v1/books?id=7",
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("\"path\": \"/anything/books\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("\"x-mesh\": \"weft\""), "{}", r.body);
    assert!(!r.body.contains("secret"), "{}", r.body);
    assert_eq!(r.header("x-route").as_deref(), Some("rewritten"));
    let r = curl(&["-x", &p, "http://details:9080/re/x/y"]);
    assert!(
        r.body.contains("\"path\": \"/anything/regex/x/y\""),
        "{}",
        r.body
    );
}

/// DestinationRule maxConnections 1, http1MaxPendingRequests 1: under 10
/// concurrent slow requests some overflow with 503 UO.
#[test]
fn circuit_breaker_overflows_with_uo() {
    let mut w = World::new(69);
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

#[test]
fn inbound_listener_delivers_to_the_app_and_gateway_routes_bookinfo() {
    let mut w = World::new(71);
    // reviews-v1's sidecar: inbound 127.N.0.4:9080 → app at 127.N.2.4:9080.
    w.httpbin("reviews-app", w.addr(2, 4, 9080), &[]);
    let model = w.model(
        "reviews-v1",
        &[common::repo().join("examples/bookinfo")],
        "reviews.json",
    );
    let (m, ip, app) = (
        model.display().to_string(),
        w.ip(0, 4),
        format!("9080={}", w.addr(2, 4, 9080)),
    );
    w.spawn(
        "sidecar",
        &[
            "proxy",
            "--model",
            &m,
            "--inbound-ip",
            &ip,
            "--app",
            &app,
            "--access-log",
            "off",
        ],
        Some(w.addr(0, 4, 9080)),
    );
    let r = curl(&[&format!("http://{}/headers", w.addr(0, 4, 9080))]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by").as_deref(), Some("reviews-app"));

    // The ingress gateway for Istio's bookinfo-gateway, on 127.N.3.1:8080.
    w.httpbin("productpage", w.addr(0, 2, 9080), &[]);
    let gw = w.model(
        "istio-ingressgateway",
        &[common::repo().join("examples/bookinfo")],
        "gw.json",
    );
    let (m, listen) = (
        gw.display().to_string(),
        format!("8080={}", w.addr(3, 1, 8080)),
    );
    w.spawn(
        "gateway",
        &[
            "proxy",
            "--model",
            &m,
            "--listen",
            &listen,
            "--explain",
            "--access-log",
            "off",
        ],
        Some(w.addr(3, 1, 8080)),
    );
    let base = format!("http://{}", w.addr(3, 1, 8080));
    let r = curl(&[&format!("{base}/productpage")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-served-by").as_deref(), Some("productpage"));
    // HTTP/2 with prior knowledge (h2c) on the same listener.
    let r = curl(&["--http2-prior-knowledge", &format!("{base}/productpage")]);
    assert!(r.headers.starts_with("HTTP/2 200"), "{}", r.headers);
    let r = curl(&[&format!("{base}/admin")]);
    assert_eq!(r.status, 404);
    assert!(
        r.header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("NR: no route"),
        "{}",
        r.headers
    );
}

/// Swapping the model under steady load (four clients, 600 requests)
/// loses no request: in-flight requests finish on the old snapshot.
#[test]
fn config_swap_under_load_loses_no_request() {
    let mut w = World::new(72);
    let v1 = std::fs::read_to_string(
        common::repo().join("examples/bookinfo-tasks/virtual-service-all-v1.yaml"),
    )
    .unwrap();
    let p = bookinfo(&mut w, &v1, &[]);
    let v3_file = w.write(
        "v3.yaml",
        &std::fs::read_to_string(
            common::repo().join("examples/bookinfo-tasks/virtual-service-reviews-v3.yaml"),
        )
        .unwrap(),
    );
    let model_v3 = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), v3_file],
        "model-v3.json",
    );
    let model_v1 = std::fs::read(w.dir.join("model.json")).unwrap();
    let model_v3 = std::fs::read(model_v3).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                (0..150)
                    .map(|_| {
                        let r = curl(&["-x", &p, "http://reviews:9080/delay/0.01"]);
                        (r.status, r.header("x-served-by").unwrap_or_default())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(
            w.dir.join("model.json"),
            if i % 2 == 0 { &model_v3 } else { &model_v1 },
        )
        .unwrap();
        w.proc("proxy").signal("HUP");
    }
    let results: Vec<(u16, String)> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    let versions: std::collections::BTreeSet<_> = results.iter().map(|(_, v)| v.as_str()).collect();
    assert!(
        versions.contains("reviews-v1") && versions.contains("reviews-v3"),
        "the swap never took effect: {versions:?}"
    );
    assert!(
        w.log("proxy").contains("model version 11 applied"),
        "{}",
        w.log("proxy")
    );
}

#[test]
fn a_bad_model_is_refused_and_the_old_one_keeps_serving() {
    let mut w = World::new(73);
    let p = bookinfo(&mut w, "", &[]);
    std::fs::write(w.dir.join("model.json"), "{\"not\": \"a model\"}").unwrap();
    w.proc("proxy").signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        w.log("proxy")
            .contains("model refused, version 1 keeps serving"),
        "{}",
        w.log("proxy")
    );
    assert_eq!(curl(&["-x", &p, "http://details:9080/get"]).status, 200);
}

/// A push that removes a cluster lets the requests already on it finish;
/// requests after the push no longer find the service (404 NR).
#[test]
fn a_removed_cluster_drains_its_requests_in_flight() {
    let mut w = World::new(88);
    let p = bookinfo(&mut w, "", &[]);
    let mut model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.dir.join("model.json")).unwrap()).unwrap();
    let is_reviews = |v: &serde_json::Value| v["name"].as_str().unwrap_or("").contains("reviews.");
    model["clusters"]
        .as_array_mut()
        .unwrap()
        .retain(|c| !is_reviews(c));
    for t in model["routeTables"].as_array_mut().unwrap() {
        t["virtualHosts"]
            .as_array_mut()
            .unwrap()
            .retain(|v| !is_reviews(v));
    }
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || curl(&["-x", &p, "http://reviews:9080/delay/1.5"]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(w.dir.join("model.json"), model.to_string()).unwrap();
    w.proc("proxy").signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !w.log("proxy").contains("model version 2 applied") {
        assert!(Instant::now() < deadline, "{}", w.log("proxy"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = curl(&["-x", &p, "http://reviews:9080/get"]);
    assert_eq!(after.status, 404, "{}", after.headers);
    assert!(
        after
            .header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("NR"),
        "{}",
        after.headers
    );
    for h in in_flight {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "an in-flight request was cut: {}", r.body);
        assert!(r
            .header("x-served-by")
            .unwrap_or_default()
            .starts_with("reviews-v"));
    }
    assert_eq!(curl(&["-x", &p, "http://details:9080/get"]).status, 200);
}

/// An HTTP/1.1 upgrade (a WebSocket handshake) goes through the sidecar,
/// and bytes then flow both ways on the upgraded connection.
#[test]
fn upgrades_are_spliced_both_ways() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut w = World::new(74);
    let p = bookinfo(&mut w, "", &[]);
    let proxy_addr = p.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(proxy_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET http://details:9080/socket HTTP/1.1\r\nHost: details:9080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    for msg in ["hello\n", "over the mesh\n"] {
        s.write_all(msg.as_bytes()).unwrap();
        let mut buf = vec![0u8; msg.len()];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(String::from_utf8_lossy(&buf), msg);
    }
}

/// Opaque TCP: a listener for the echo service, weighted 80/20 between two
/// versions; 200 connections, v1 between 65 % and 95 %.
#[test]
fn tcp_routes_split_connections_by_weight() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = World::new(75);
    let echo = r#"apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: tcp-echo, port: 9000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: echo-v1, labels: {app: echo, version: v1}}
spec: {command: weft, args: [sample-app, tcp-echo], ports: [{name: tcp-echo, port: 9000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: echo-v2, labels: {app: echo, version: v2}}
spec: {command: weft, args: [sample-app, tcp-echo], ports: [{name: tcp-echo, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  tcp:
  - route:
    - destination: {host: echo, subset: v1}
      weight: 80
    - destination: {host: echo, subset: v2}
      weight: 20
"#;
    let f = w.write("echo.yaml", echo);
    let model_path = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    for c in model["clusters"].as_array().unwrap() {
        if c["service"] == "echo.default.svc.cluster.local" {
            let subset = c["subset"].as_str().unwrap_or("").to_owned();
            let addr: std::net::SocketAddr = c["endpoints"][0]["address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let a = addr.to_string();
            let name = format!("echo-{subset}");
            w.spawn(
                &name,
                &["sample-app", "tcp-echo", "--listen", &a, "--name", &name],
                Some(addr),
            );
        }
    }
    let listener = "outbound|9000||echo.default.svc.cluster.local";
    let bind = w.addr(1, 2, 9000);
    let (m, b) = (
        model_path.display().to_string(),
        format!("{listener}={bind}"),
    );
    w.spawn(
        "proxy",
        &["proxy", "--model", &m, "--bind", &b, "--access-log", "off"],
        Some(bind),
    );
    let mut counts = BTreeMap::<String, usize>::new();
    for i in 0..200 {
        let mut s = std::net::TcpStream::connect(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(format!("message {i}\n").as_bytes()).unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        let (who, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest.trim(), format!("message {i}"));
        *counts.entry(who.to_owned()).or_default() += 1;
    }
    let v1 = counts.get("echo-v1").copied().unwrap_or(0);
    assert_eq!(counts.values().sum::<usize>(), 200);
    assert!((130..=190).contains(&v1), "{counts:?}");
}

/// Istio's mirroring task: all traffic to v1, copies to v2 with the Host
/// `reviews-shadow:9080`; the client only ever sees v1.
#[test]
fn mirroring_sends_copies_to_the_shadow() {
    let mut w = World::new(76);
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n      weight: 100\n    mirror: {host: reviews, subset: v2}\n    mirrorPercentage: {value: 100.0}\n";
    let p = bookinfo(&mut w, vs, &[]);
    assert_eq!(
        served_by(&p, "http://reviews:9080/mirrored", 10, &[]),
        BTreeMap::from([("reviews-v1".to_owned(), 10)])
    );
    std::thread::sleep(Duration::from_millis(500));
    let copies = w
        .log("reviews-v2")
        .lines()
        .filter(|l| l.contains("GET /mirrored host=reviews-shadow:9080"))
        .count();
    assert_eq!(copies, 10, "{}", w.log("reviews-v2"));
    assert_eq!(
        w.log("reviews-v3")
            .lines()
            .filter(|l| l.contains("/mirrored"))
            .count(),
        0
    );
}

#[test]
fn cors_preflight_and_allowed_origins() {
    let mut w = World::new(77);
    let vs = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}, {regex: "https://.*\\.partner\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      exposeHeaders: [x-served-by]
      maxAge: 24h
      allowCredentials: true
    route: [{destination: {host: ratings}}]
"#;
    let p = bookinfo(&mut w, vs, &[]);
    let r = curl(&[
        "-x",
        &p,
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://a.partner.example",
        "-H",
        "Access-Control-Request-Method: POST",
        "http://ratings:9080/ratings/1",
    ]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://a.partner.example")
    );
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("GET,POST")
    );
    assert_eq!(r.header("access-control-max-age").as_deref(), Some("86400"));
    assert!(
        r.header("x-served-by").is_none(),
        "a preflight is answered by the proxy"
    );
    let r = curl(&[
        "-x",
        &p,
        "-H",
        "Origin: https://shop.example.com",
        "http://ratings:9080/get",
    ]);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://shop.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        r.header("access-control-expose-headers").as_deref(),
        Some("x-served-by")
    );
    let r = curl(&[
        "-x",
        &p,
        "-H",
        "Origin: https://evil.example",
        "http://ratings:9080/get",
    ]);
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
}

/// `/metrics` on the admin port carries Istio's standard metrics with
/// Istio's labels for the traffic that went through.
#[test]
fn metrics_use_istio_names_and_labels() {
    let mut w = World::new(78);
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

/// Two replicas, one always failing: with outlier detection
/// (consecutive5xxErrors 1) the bad one is ejected after its first error
/// and traffic goes to the good one; when both fail, both are ejected and
/// the proxy answers 503 UH.
#[test]
fn outlier_detection_ejects_failing_hosts() {
    let mut w = World::new(79);
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

/// gRPC through the ingress gateway with a real gRPC client (gRPC core via
/// python3-grpcio): unary, full-duplex streaming, trailers-only errors,
/// and a VirtualService fault abort with a gRPC status.
#[test]
fn grpc_unary_streaming_and_statuses_through_the_gateway() {
    let mut w = World::new(80);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: grpc-echo}
spec:
  selector: {app: grpc-echo}
  ports: [{name: grpc, port: 9000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: grpc-echo, labels: {app: grpc-echo}}
spec: {command: weft, args: [sample-app, grpc-echo], ports: [{name: grpc, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: grpc-gateway}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc-echo}
spec:
  hosts: ["*"]
  gateways: [grpc-gateway]
  http:
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route: [{destination: {host: grpc-echo}}]
  - route: [{destination: {host: grpc-echo}}]
"#;
    let f = w.write("grpc.yaml", cfg);
    let model_path = w.model("istio-ingressgateway", &[f], "gw.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "grpc-echo.default.svc.cluster.local")
        .unwrap();
    assert_eq!(cluster["protocol"], "grpc");
    let ep: std::net::SocketAddr = cluster["endpoints"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let a = ep.to_string();
    w.spawn(
        "grpc-echo",
        &[
            "sample-app",
            "grpc-echo",
            "--listen",
            &a,
            "--name",
            "grpc-echo-v1",
        ],
        Some(ep),
    );
    let gw = w.addr(3, 1, 8080);
    let (m, listen) = (model_path.display().to_string(), format!("8080={gw}"));
    w.spawn(
        "gateway",
        &[
            "proxy",
            "--model",
            &m,
            "--listen",
            &listen,
            "--access-log",
            "off",
        ],
        Some(gw),
    );
    let script = common::repo().join("crates/weft/tests/grpc_client.py");
    let o = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(gw.to_string())
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("No module named 'grpc'"),
        "python3-grpcio is missing: scripts/test installs it (apt-get install python3-grpcio)"
    );
    assert!(o.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("client JSON");
    assert_eq!(v["unary"], "hello");
    assert_eq!(v["served_by"], "grpc-echo-v1");
    assert_eq!(
        v["stream"],
        serde_json::json!(["m0", "m1", "m2", "m3", "m4"])
    );
    assert_eq!(v["/weft.sample.Echo/Fail()"], "UNAVAILABLE");
    assert_eq!(
        v["/weft.sample.Echo/Echo(('x-fault', 'abort'),)"],
        "UNAVAILABLE"
    );
}

/// Clients that use HTTP_PROXY for gRPC or TLS send CONNECT: gRPC core
/// (through `grpc_proxy`), curl --proxytunnel for HTTP, and a raw TCP
/// tunnel to a TCP service all work through the sidecar.
#[test]
fn connect_tunnels_carry_grpc_http_and_tcp() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = World::new(81);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: grpc-echo}
spec:
  selector: {app: grpc-echo}
  ports: [{name: grpc, port: 9000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: grpc-echo, labels: {app: grpc-echo}}
spec: {command: weft, args: [sample-app, grpc-echo], ports: [{name: grpc, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: tcp-echo, port: 9100}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: echo, labels: {app: echo}}
spec: {command: weft, args: [sample-app, tcp-echo], ports: [{name: tcp-echo, port: 9100}]}
"#;
    let f = w.write("svc.yaml", cfg);
    let model_path = productpage_model_without_rules(&w, f);
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let endpoint = |svc: &str| -> std::net::SocketAddr {
        let c = model["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["service"] == svc)
            .unwrap();
        c["endpoints"][0]["address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (g, e, d) = (
        endpoint("grpc-echo.default.svc.cluster.local"),
        endpoint("echo.default.svc.cluster.local"),
        endpoint("details.default.svc.cluster.local"),
    );
    let (gs, es) = (g.to_string(), e.to_string());
    w.spawn(
        "grpc-echo",
        &[
            "sample-app",
            "grpc-echo",
            "--listen",
            &gs,
            "--name",
            "grpc-echo-v1",
        ],
        Some(g),
    );
    w.spawn(
        "echo",
        &[
            "sample-app",
            "tcp-echo",
            "--listen",
            &es,
            "--name",
            "echo-v1",
        ],
        Some(e),
    );
    w.httpbin("details-v1", d, &[]);
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
            "--access-log",
            "off",
        ],
        Some(outbound),
    );

    let script = common::repo().join("crates/weft/tests/grpc_client.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .arg("grpc-echo:9000")
        .env("grpc_proxy", format!("http://{outbound}"))
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["unary"], "hello");
    assert_eq!(
        v["stream"],
        serde_json::json!(["m0", "m1", "m2", "m3", "m4"])
    );

    let r = curl(&[
        "-p",
        "-x",
        &format!("http://{outbound}"),
        "http://details:9080/get",
    ]);
    assert_eq!(r.status, 200, "{}{}", r.headers, r.body);
    assert_eq!(r.header("x-served-by").as_deref(), Some("details-v1"));

    let mut s = std::net::TcpStream::connect(outbound).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"CONNECT echo:9100 HTTP/1.1\r\nHost: echo:9100\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    s.write_all(b"through the tunnel\n").unwrap();
    let mut echoed = String::new();
    reader.read_line(&mut echoed).unwrap();
    assert_eq!(echoed, "echo-v1 through the tunnel\n");

    let r = curl(&[
        "-p",
        "-x",
        &format!("http://{outbound}"),
        "http://nowhere:1234/",
    ]);
    assert_ne!(r.status, 200);
}

/// Inbound listeners by protocol: a `tcp-` port is spliced, an undeclared
/// port carrying HTTP is served as HTTP, and an undeclared port carrying
/// anything else is spliced (protocol sniffing, as Istio does).
#[test]
fn inbound_tcp_and_protocol_sniffing() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = World::new(82);
    let cfg = r#"apiVersion: weft.dev/v1
kind: Workload
metadata: {name: multi, labels: {app: multi}}
spec:
  command: weft
  ports: [{name: tcp-echo, port: 9100}, {name: metrics, port: 9200}, {name: opaque, port: 9300}]
"#;
    let f = w.write("multi.yaml", cfg);
    let model = w.model("multi", &[f], "multi.json");
    let ip = w.ip(0, 1);
    let apps = [(9100, "tcp-echo"), (9200, "httpbin"), (9300, "tcp-echo")];
    let mut args: Vec<String> = vec![
        "proxy".into(),
        "--model".into(),
        model.display().to_string(),
        "--inbound-ip".into(),
        ip.clone(),
        "--access-log".into(),
        "off".into(),
    ];
    for (port, app) in apps {
        let addr = w.addr(2, 1, port);
        let a = addr.to_string();
        let name = format!("{app}-{port}");
        w.spawn(
            &name,
            &["sample-app", app, "--listen", &a, "--name", &name],
            Some(addr),
        );
        args.push("--app".into());
        args.push(format!("{port}={addr}"));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    w.spawn("sidecar", &argv, Some(w.addr(0, 1, 9300)));
    for port in [9100u16, 9300] {
        let mut s = std::net::TcpStream::connect(w.addr(0, 1, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"ping\n").unwrap();
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).unwrap();
        assert_eq!(line, format!("tcp-echo-{port} ping\n"));
    }
    let r = curl(&[&format!("http://{}/headers", w.addr(0, 1, 9200))]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by").as_deref(), Some("httpbin-9200"));
}

/// SIGTERM drains: a request in flight finishes with 200, new connections
/// are refused, and the proxy exits.
#[test]
fn shutdown_drains_requests_in_flight() {
    let mut w = World::new(83);
    let p = bookinfo(&mut w, "", &[]);
    let proxy = p.clone();
    let slow = std::thread::spawn(move || curl(&["-x", &proxy, "http://details:9080/delay/1"]));
    std::thread::sleep(Duration::from_millis(300));
    w.proc("proxy").signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    let refused = curl(&["-x", &p, "http://details:9080/get"]);
    assert_eq!(refused.status, 0, "a new request was accepted during drain");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the request in flight was dropped");
    let started = Instant::now();
    let idx = w.procs.iter().position(|p| p.name == "proxy").unwrap();
    loop {
        if let Ok(Some(status)) = w.procs[idx].child.try_wait() {
            assert!(status.success(), "proxy exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "proxy did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(w.log("proxy").contains("draining"));
}

/// Locality: a client in us-east/zone1 stays in its zone, fails over to
/// its region (not across the ocean) when its zone's host dies, and a
/// `distribute` rule splits traffic across regions by weight.
#[test]
fn locality_preference_failover_and_distribute() {
    let mut w = World::new(84);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: web2}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, locality: us-east/zone1/a, ports: [{name: http, port: 9000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-a, labels: {app: web}}
spec: {command: weft, locality: us-east/zone1/a, ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-b, labels: {app: web}}
spec: {command: weft, locality: us-east/zone2/a, ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-c, labels: {app: web}}
spec: {command: weft, locality: eu-west/zone1/a, ports: [{name: http, port: 8000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web2}
spec:
  host: web2
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-east/zone1/*
          to: {"us-east/zone1/*": 80, "eu-west/*": 20}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap();
    for e in cluster["endpoints"].as_array().unwrap() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        let name = e["workload"].as_str().unwrap().to_owned();
        w.httpbin(&name, addr, &[]);
    }
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
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    assert_eq!(
        served_by(&p, "http://web:8000/get", 20, &[]),
        BTreeMap::from([("web-a".to_owned(), 20)])
    );
    let split = served_by(&p, "http://web2:8000/get", 200, &[]);
    let a = split.get("web-a").copied().unwrap_or(0);
    let c = split.get("web-c").copied().unwrap_or(0);
    assert_eq!(a + c, 200, "{split:?}");
    assert!((140..=185).contains(&a), "{split:?}");
    // web-a dies: one failed request ejects it, then its region takes over.
    w.procs.retain(|p| p.name != "web-a");
    let after = served_by(&p, "http://web:8000/get", 20, &[]);
    assert!(after.get("web-b").copied().unwrap_or(0) >= 19, "{after:?}");
    assert!(
        !after.contains_key("web-c"),
        "failed over across regions: {after:?}"
    );
}

/// TLS routes by SNI without terminating TLS: a ClientHello for
/// a.example.com goes to v1, for b.example.com to v2, and the bytes read
/// to find the name reach the upstream intact.
#[test]
fn tls_routes_match_sni() {
    use std::io::{Read, Write};
    let mut w = World::new(85);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: secure}
spec:
  selector: {app: secure}
  ports: [{name: tls, port: 9443}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: secure-v1, labels: {app: secure, version: v1}}
spec: {command: weft, ports: [{name: tls, port: 9443}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: secure-v2, labels: {app: secure, version: v2}}
spec: {command: weft, ports: [{name: tls, port: 9443}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, ports: [{name: http, port: 8000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure}
spec:
  host: secure
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: secure}
spec:
  hosts: [secure]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: secure, subset: v1}}]
  - match: [{sniHosts: ["*.b.example.com"]}]
    route: [{destination: {host: secure, subset: v2}}]
"#;
    let f = w.write("secure.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    for c in model["clusters"].as_array().unwrap() {
        if c["service"] == "secure.default.svc.cluster.local" && !c["subset"].is_null() {
            let addr: std::net::SocketAddr = c["endpoints"][0]["address"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap();
            let name = format!("secure-{}", c["subset"].as_str().unwrap());
            let a = addr.to_string();
            w.spawn(
                &name,
                &["sample-app", "tcp-echo", "--listen", &a, "--name", &name],
                Some(addr),
            );
        }
    }
    let bind = w.addr(1, 2, 9443);
    let (m, b) = (
        model_path.display().to_string(),
        format!("outbound|9443||secure.default.svc.cluster.local={bind}"),
    );
    w.spawn(
        "proxy",
        &["proxy", "--model", &m, "--bind", &b, "--access-log", "off"],
        Some(bind),
    );
    for (sni, expect) in [
        ("a.example.com", "secure-v1"),
        ("api.b.example.com", "secure-v2"),
    ] {
        let mut s = std::net::TcpStream::connect(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hello = weft_proxy::l4::sni::client_hello(sni);
        hello.push(b'\n');
        s.write_all(&hello).unwrap();
        let mut got = vec![0u8; expect.len() + 1];
        s.read_exact(&mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            format!("{expect} "),
            "sni {sni}"
        );
    }
    // No route for an unknown name: the connection is closed.
    let mut s = std::net::TcpStream::connect(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&weft_proxy::l4::sni::client_hello("other.example.com"))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
}

/// maxRequestsPerConnection 1: every request to the upstream uses a new
/// connection; without it connections are reused.
#[test]
fn max_requests_per_connection_recycles_connections() {
    let mut w = World::new(86);
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

/// Consistent hashing: a user (header) always reaches the same replica and
/// users spread over replicas; with a cookie policy and no cookie, the
/// proxy sets one and the client then sticks to a replica.
#[test]
fn consistent_hash_by_header_and_generated_cookie() {
    let mut w = World::new(87);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: weft, ports: [{name: http, port: 8000}], replicas: 3}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, ports: [{name: http, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: affinity, ttl: 3600s}}}}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap();
    for e in cluster["endpoints"].as_array().unwrap() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        w.httpbin(e["instance"].as_str().unwrap(), addr, &[]);
    }
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
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    let mut chosen = std::collections::BTreeSet::new();
    for user in ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"] {
        let header = format!("x-user: {user}");
        let replicas = served_by(&p, "http://web:8000/get", 6, &["-H", &header]);
        assert_eq!(
            replicas.len(),
            1,
            "{user} moved between replicas: {replicas:?}"
        );
        chosen.extend(replicas.into_keys());
    }
    assert!(chosen.len() >= 2, "eight users all hashed to {chosen:?}");
    // Cookie affinity.
    let first = curl(&["-x", &p, "http://shop:8000/get"]);
    let cookie = first
        .header("set-cookie")
        .expect("a generated affinity cookie");
    assert!(
        cookie.starts_with("affinity=") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let who = first.header("x-served-by").unwrap();
    let again = served_by(&p, "http://shop:8000/get", 6, &["-b", &pair]);
    assert_eq!(
        again,
        BTreeMap::from([(who, 6)]),
        "the cookie did not stick"
    );
}

/// LEAST_REQUEST (two random choices) steers concurrent requests away from
/// a slow replica that round robin would give a third; RANDOM spreads
/// requests over every replica.
#[test]
fn least_request_avoids_a_slow_replica_and_random_spreads() {
    let mut w = World::new(89);
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: lr}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: rnd}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: weft, ports: [{name: http, port: 8000}], replicas: 3}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, ports: [{name: http, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lr}
spec:
  host: lr
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rnd}
spec:
  host: rnd
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "lr.default.svc.cluster.local")
        .unwrap();
    let mut slow = String::new();
    for (i, e) in cluster["endpoints"].as_array().unwrap().iter().enumerate() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        let name = e["instance"].as_str().unwrap();
        let flags: &[&str] = if i == 0 {
            slow = name.to_owned();
            &["--latency-ms", "100"]
        } else {
            &[]
        };
        w.httpbin(name, addr, flags);
    }
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
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    // Six clients, 25 requests each, all at once.
    let lr = served_by_concurrently(&p, "http://lr:8000/get", 6, 25);
    let total: usize = lr.values().sum();
    assert_eq!(total, 150, "{lr:?}");
    let to_slow = lr.get(&slow).copied().unwrap_or(0);
    // Round robin would send it 50; least request sends it few.
    assert!(
        to_slow <= 35,
        "the slow replica got {to_slow} of 150: {lr:?}"
    );
    assert_eq!(lr.len(), 3, "{lr:?}");
    eprintln!("least request: {lr:?}");
    let rnd = served_by_concurrently(&p, "http://rnd:8000/get", 6, 25);
    assert_eq!(rnd.len(), 3, "{rnd:?}");
    for (who, n) in &rnd {
        // Binomial(150, 1/3): mean 50, sd 5.8; 25..75 is over 4 sd.
        assert!((25..=75).contains(n), "{who} got {n} of 150: {rnd:?}");
    }
}

/// `--cpu-policy normal` keeps the kernel's default scheduling for every
/// thread of the proxy; without it they run under SCHED_BATCH
/// (crates/weft/src/sched.rs).
#[test]
fn cpu_policy_is_batch_unless_asked_otherwise() {
    let mut w = World::new(118);
    let f = w.write("none.yaml", "");
    let model = productpage_model_without_rules(&w, f).display().to_string();
    for (i, policy) in [(1, None), (2, Some("normal"))] {
        let outbound = w.addr(1, i, 15001);
        let o = outbound.to_string();
        let mut args = vec!["proxy", "--model", &model, "--outbound", &o];
        if let Some(p) = policy {
            args.extend(["--cpu-policy", p]);
        }
        w.spawn(&format!("proxy-{i}"), &args, Some(outbound));
    }
    let batch = common::proxy_thread_policies(&w.addr(1, 1, 15001).to_string());
    assert!(
        !batch.is_empty() && batch.iter().all(|p| *p == 3),
        "{batch:?}"
    );
    let normal = common::proxy_thread_policies(&w.addr(1, 2, 15001).to_string());
    assert!(
        !normal.is_empty() && normal.iter().all(|p| *p == 0),
        "{normal:?}"
    );
}
