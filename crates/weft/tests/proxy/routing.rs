//! Routing: virtual hosts, matches, weights, redirects, rewrites, header operations, mirrors, CORS, inbound delivery and gateways.

use super::*;

#[test]
fn default_route_reaches_the_service() {
    let mut w = World::any();
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
    let mut w = World::any();
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
    let mut w = World::any();
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
fn redirect_direct_response_rewrite_and_headers() {
    let mut w = World::any();
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

/// Istio's mirroring task: all traffic to v1, copies to v2 with the Host
/// `reviews-shadow:9080`; the client only ever sees v1.
#[test]
fn mirroring_sends_copies_to_the_shadow() {
    let mut w = World::any();
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
    let mut w = World::any();
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
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details}
spec:
  hosts: [details]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}]
      allowMethods: [GET]
      unmatchedPreflights: IGNORE
    route: [{destination: {host: details}}]
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
    // A preflight from an origin the policy does not allow goes to the
    // application by default (FORWARD); with unmatchedPreflights: IGNORE
    // the proxy answers it, without CORS headers.
    let preflight = |host: &str| {
        curl(&[
            "-x",
            &p,
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://evil.example",
            "-H",
            "Access-Control-Request-Method: GET",
            &format!("http://{host}:9080/get"),
        ])
    };
    let forwarded = preflight("ratings");
    assert!(
        forwarded.header("x-served-by").is_some(),
        "{}",
        forwarded.headers
    );
    let ignored = preflight("details");
    assert_eq!(ignored.status, 200, "{}", ignored.headers);
    assert!(
        ignored.header("x-served-by").is_none(),
        "{}",
        ignored.headers
    );
    assert!(ignored.header("access-control-allow-origin").is_none());
}

#[test]
fn inbound_listener_delivers_to_the_app_and_gateway_routes_bookinfo() {
    let mut w = World::any();
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

/// gRPC through the ingress gateway with a real gRPC client (gRPC core via
/// python3-grpcio): unary, full-duplex streaming, trailers-only errors,
/// and a VirtualService fault abort with a gRPC status.
#[test]
fn grpc_unary_streaming_and_statuses_through_the_gateway() {
    let mut w = World::any();
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

/// A ServiceEntry with `resolution: DNS` sends to a name the proxy looks
/// up itself (here `localhost`, which every resolver answers from
/// `/etc/hosts`), as Istio's egress tasks rely on; a name that does not
/// resolve is 503 UH with the lookup's failure as the reason.
#[test]
fn a_dns_service_entry_is_reached_by_its_name() {
    let mut w = World::any();
    // A free port on 127.0.0.1, where `localhost` resolves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    w.httpbin(
        "outside",
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &[],
    );
    let entries = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: outside}}
spec:
  hosts: [outside.example.test]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_EXTERNAL
  resolution: DNS
  endpoints: [{{address: localhost, ports: {{http: {port}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: nowhere}}
spec:
  hosts: [nowhere.invalid]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  location: MESH_EXTERNAL
  resolution: DNS
"
    );
    let p = bookinfo(&mut w, &entries, &[]);
    let r = curl(&["-x", &p, "http://outside.example.test/get"]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-served-by").as_deref(), Some("outside"));
    let r = curl(&["-x", &p, "http://nowhere.invalid/get"]);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.header("x-weft-reason")
            .is_some_and(|why| why.starts_with("UH: DNS: nowhere.invalid did not resolve")),
        "{:?}",
        r.headers
    );
    let log = access_log(&w);
    let e = log
        .iter()
        .find(|e| e["authority"] == "outside.example.test")
        .expect("access log entry");
    assert_eq!(e["upstream_host"], format!("127.0.0.1:{port}"));
    assert_eq!(e["upstream_cluster"], "outbound|80||outside.example.test");
    let e = log
        .iter()
        .find(|e| e["authority"] == "nowhere.invalid")
        .expect("access log entry");
    assert_eq!(e["response_flags"], "UH");
}
