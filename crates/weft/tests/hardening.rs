//! What hostile testing broke, kept broken-proof: a path-based
//! AuthorizationPolicy bypassed with dot segments, checked on every
//! listener kind with real clients (curl `--path-as-is`, HTTP/2 with prior
//! knowledge) against a real application that resolves `..` itself
//! (Python's `http.server`) and an echo app that reports the path it got.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use common::curl;
use common::mesh::{up_with, Mesh};

/// A files app (Python's http.server, which resolves `..`) and an echo app,
/// each behind an ALLOW policy with an exact, a prefix and a suffix path,
/// both routed from the ingress by host.
fn guarded_apps(files_dir: &std::path::Path) -> String {
    let mut yaml = String::new();
    for (app, command, args) in [
        (
            "files",
            "sh",
            format!(
                "[-c, 'cd {} && exec python3 -m http.server --bind \"$HOST\" \"$PORT\"']",
                files_dir.display()
            ),
        ),
        (
            "echo",
            "weft",
            "[sample-app, httpbin, --name, echo-v1]".to_owned(),
        ),
    ] {
        yaml += &format!(
            r#"
apiVersion: weft.dev/v1
kind: Workload
metadata: {{name: {app}-v1, labels: {{app: {app}, version: v1}}}}
spec:
  command: {command}
  args: {args}
  ports: [{{name: http, port: 8000}}]
  serviceAccount: {app}
---
apiVersion: v1
kind: Service
metadata: {{name: {app}}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {app}-public}}
spec:
  selector: {{matchLabels: {{app: {app}}}}}
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: [GET]
        paths: ["/public/*", "/exact.txt", "*.pub"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {app}-ingress}}
spec:
  hosts: [{app}.test]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {{host: {app}, port: {{number: 8000}}}}
---
"#
        );
    }
    yaml
}

fn files_tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.txt"), "public index\n").unwrap();
    std::fs::write(dir.join("exact.txt"), "exact\n").unwrap();
    std::fs::write(dir.join("notes.pub"), "suffix\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP SECRET\n").unwrap();
}

/// The ways a client may write a path that leaves `/public/` (or ends in
/// `.pub`, or names `/exact.txt`), with the path the policy, the router and
/// the application must all see under Istio's default normalization.
const VARIANTS: &[(&str, &str)] = &[
    ("/public/../secret.txt", "/secret.txt"),
    ("/public/%2e%2e/secret.txt", "/secret.txt"),
    ("/public/%2E%2E/secret.txt", "/secret.txt"),
    ("/public/.%2e/secret.txt", "/secret.txt"),
    ("/public/./../secret.txt", "/secret.txt"),
    ("/public/..\\secret.txt", "/secret.txt"),
    ("/public//../secret.txt", "/public/secret.txt"),
    ("//public/../secret.txt", "//secret.txt"),
    ("/exact.txt/../secret.txt", "/secret.txt"),
    ("/notes.pub/../secret.txt", "/secret.txt"),
    ("/secret.txt/../notes.pub", "/notes.pub"),
    ("/public/%69ndex.txt", "/public/index.txt"),
    ("/public/index.txt;x=1", "/public/index.txt;x=1"),
    ("/PUBLIC/../public/index.txt", "/public/index.txt"),
    ("/secret.txt.", "/secret.txt."),
    ("/public/..;/secret.txt", "/public/..;/secret.txt"),
];

/// What the ALLOW policy says of a normalized path.
fn allowed(path: &str) -> bool {
    path.starts_with("/public/") || path == "/exact.txt" || path.ends_with(".pub")
}

/// Every way a request reaches the guarded apps: through a sidecar's
/// outbound proxy, straight to the app's sidecar inbound port, and through
/// the ingress, over HTTP/1.1 and HTTP/2.
fn entries(m: &Mesh, app: &str) -> Vec<(String, Vec<String>)> {
    let outbound = m.outbound_of("default/productpage-v1-0");
    let inbound_ip = m.proxy(&format!("default/{app}-v1-0"))["outbound"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_owned();
    let host = format!("{app}.test");
    vec![
        (
            "outbound HTTP/1.1".into(),
            vec!["-x".into(), outbound.clone(), format!("http://{app}:8000")],
        ),
        (
            "outbound HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                "-H".into(),
                format!("host: {app}:8000"),
                outbound,
            ],
        ),
        (
            "inbound HTTP/1.1".into(),
            vec![format!("http://{inbound_ip}:8000")],
        ),
        (
            "inbound HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                format!("http://{inbound_ip}:8000"),
            ],
        ),
        (
            "ingress HTTP/1.1".into(),
            vec![
                "-H".into(),
                format!("host: {host}"),
                format!("http://{}", m.ingress),
            ],
        ),
        (
            "ingress HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                "-H".into(),
                format!("host: {host}"),
                format!("http://{}", m.ingress),
            ],
        ),
    ]
}

fn get(entry: &[String], path: &str) -> common::Reply {
    let (base, flags) = entry.split_last().unwrap();
    let url = format!("{base}{path}");
    let mut args: Vec<&str> = vec!["--path-as-is"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&url);
    curl(&args)
}

#[test]
fn dot_segments_cannot_bypass_a_path_policy_on_any_listener() {
    let files = std::env::temp_dir().join(format!("weft-files-{}", std::process::id()));
    files_tree(&files);
    let m = up_with(130, &guarded_apps(&files));

    let mut failures = Vec::new();
    // The echo app says which path it was given: the one the policy saw.
    for (entry, args) in entries(&m, "echo") {
        for (sent, normalized) in VARIANTS {
            let r = get(&args, sent);
            let want = if allowed(normalized) { 200 } else { 403 };
            let got_path = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["path"].as_str().map(str::to_owned));
            let ok = r.status == want && (want == 403 || got_path.as_deref() == Some(*normalized));
            if !ok {
                failures.push(format!(
                    "{entry} {sent}: {} (want {want}, path {normalized}), app got {got_path:?}",
                    r.status
                ));
            }
        }
    }
    // The files app resolves dot segments itself: the secret never leaks.
    for (entry, args) in entries(&m, "files") {
        for (sent, _) in VARIANTS {
            let r = get(&args, sent);
            if r.body.contains("TOP SECRET") {
                failures.push(format!("{entry} {sent}: the secret leaked ({})", r.status));
            }
        }
        let r = get(&args, "/public/index.txt");
        if (r.status, r.body.as_str()) != (200, "public index\n") {
            failures.push(format!("{entry}: the public file: {} {}", r.status, r.body));
        }
    }
    // A NUL is refused at the edge, with the flag and reason.
    for (entry, args) in entries(&m, "echo") {
        let r = get(&args, "/public/a%00b");
        let reason = r.header("x-weft-reason").unwrap_or_default();
        if r.status != 400 || !reason.starts_with("DPE") {
            failures.push(format!("{entry} %00: {} {reason:?}", r.status));
        }
    }
    let _ = std::fs::remove_dir_all(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The access log records the normalized path.
    let log = std::fs::read_to_string(m.w.dir.join("run/logs/echo-v1-0.access.log")).unwrap();
    assert!(log.contains("\"/public/index.txt\""), "{log}");
    assert!(!log.contains("%2e%2e"), "{log}");
}

/// MeshConfig `pathNormalization: DECODE_AND_MERGE_SLASHES`: encoded
/// slashes are decoded and slashes merged before the policy sees the
/// path; with `NONE` nothing changes, as Istio's.
#[test]
fn mesh_config_selects_the_normalization() {
    let files = std::env::temp_dir().join(format!("weft-files-mc-{}", std::process::id()));
    files_tree(&files);
    let mesh_config = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    pathNormalization:\n      normalization: {mode}\n"
        )
    };
    let m = up_with(
        131,
        &(guarded_apps(&files) + &mesh_config("DECODE_AND_MERGE_SLASHES")),
    );
    let ingress = |path: &str| {
        curl(&[
            "--path-as-is",
            "-H",
            "host: echo.test",
            &format!("http://{}{path}", m.ingress),
        ])
    };
    let path_of = |r: &common::Reply| -> String {
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let r = ingress("/public//a%2Fb%5Cc");
    assert_eq!((r.status, path_of(&r)), (200, "/public/a/b/c".to_owned()));
    // Under BASE this would reach the app as `/public/..%2Fsecret.txt`,
    // which an app that decodes %2F resolves to /secret.txt.
    assert_eq!(ingress("/public/..%2Fsecret.txt").status, 403);
    let files_r = curl(&[
        "--path-as-is",
        "-H",
        "host: files.test",
        &format!("http://{}/public/..%2Fsecret.txt", m.ingress),
    ]);
    assert!(!files_r.body.contains("TOP SECRET"), "{}", files_r.body);

    m.write_config("extra.yaml", &(guarded_apps(&files) + &mesh_config("NONE")));
    let started = std::time::Instant::now();
    loop {
        let r = ingress("/public/x/../y");
        if r.status == 200 && path_of(&r) == "/public/x/../y" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "NONE did not take effect: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&files);
}

/// Sends `raw` on a fresh connection to `addr` and, when `close` says so,
/// closes its sending side; returns what came back until the proxy closed.
fn raw_exchange(addr: &str, raw: &[u8], close: bool) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(raw).unwrap();
    if close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A client's broken request body is the client's fault: a malformed
/// chunk is 400 DPE and a body cut short is DC, neither is counted by
/// outlier detection (three would eject the only endpoint) nor retried on
/// another endpoint.
#[test]
fn a_clients_broken_body_never_ejects_or_retries_the_upstream() {
    let mut w = common::World::new(132);
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
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-retried}
spec:
  hosts: [web-retried]
  http:
  - route: [{destination: {host: web}}]
    retries: {attempts: 3, retryOn: "5xx,reset,connect-failure"}
---
apiVersion: v1
kind: Service
metadata: {name: web-retried}
spec:
  ports: [{name: http, port: 8000}]
"#;
    let f = w.write("web.yaml", web);
    let model_path = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let eps: Vec<std::net::SocketAddr> = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap()["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().parse().unwrap())
        .collect();
    w.httpbin("web-a", eps[0], &[]);
    w.httpbin("web-b", eps[1], &[]);
    let outbound = w.addr(1, 1, 15001);
    let (m, o, log) = (
        model_path.display().to_string(),
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
    let proxy = outbound.to_string();
    let malformed = |host: &str| {
        format!("POST http://{host}:8000/post HTTP/1.1\r\nHost: {host}:8000\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n")
    };
    let truncated = |host: &str| {
        format!("POST http://{host}:8000/post HTTP/1.1\r\nHost: {host}:8000\r\nContent-Length: 100\r\n\r\nhello")
    };
    for host in ["web", "web-retried"] {
        for _ in 0..4 {
            let reply = raw_exchange(&proxy, malformed(host).as_bytes(), false);
            assert!(
                reply.starts_with("HTTP/1.1 400"),
                "{host}: a malformed body: {reply}"
            );
            assert!(!reply.contains("UC:"), "{reply}");
            let reply = raw_exchange(&proxy, truncated(host).as_bytes(), true);
            assert!(
                !reply.contains(" 503 "),
                "{host}: a body cut short: {reply}"
            );
        }
    }
    // Both endpoints still serve: none was ejected.
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = curl(&["-x", &format!("http://{proxy}"), "http://web:8000/get"]);
        assert_eq!(r.status, 200, "{} {}", r.headers, r.body);
        served.insert(r.header("x-served-by").unwrap());
    }
    assert_eq!(served.len(), 2, "{served:?}");

    std::thread::sleep(std::time::Duration::from_millis(300));
    let entries: Vec<serde_json::Value> = std::fs::read_to_string(w.dir.join("access.log"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let posts: Vec<&serde_json::Value> = entries.iter().filter(|e| e["method"] == "POST").collect();
    assert_eq!(posts.len(), 16, "{entries:#?}");
    for e in &posts {
        let flags = e["response_flags"].as_str().unwrap_or_default();
        assert!(
            flags == "DPE" || flags == "DC",
            "a client's fault flagged {flags}: {e}"
        );
        assert_ne!(e["response_code"], 503, "{e}");
        // Never a second try on another endpoint.
        assert!(e["attempts"].as_u64().unwrap_or(1) <= 1, "{e}");
    }
    assert!(posts.iter().any(|e| e["response_flags"] == "DPE"));
    assert!(posts.iter().any(|e| e["response_flags"] == "DC"));
}

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

/// Istio's default retry policy on routes that set none: an endpoint that
/// refuses connections (a restarting sidecar) or answers 503 is retried on
/// another, so clients see neither; `retries: {attempts: 0}` turns it off.
#[test]
fn istios_default_retries_hide_a_restarting_endpoint() {
    let mut w = common::World::new(134);
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
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}], replicas: 3}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: v1
kind: Service
metadata: {name: web-strict}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-strict}
spec:
  host: web-strict
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-strict}
spec:
  hosts: [web-strict]
  http:
  - retries: {attempts: 0}
    route: [{destination: {host: web-strict}}]
"#;
    let f = w.write("web.yaml", web);
    let model_path = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let eps: Vec<std::net::SocketAddr> = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap()["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(eps.len(), 3);
    // One endpoint is down (nothing listens), one answers 503 to everything.
    w.httpbin("web-ok", eps[0], &[]);
    w.httpbin("web-503", eps[1], &["--fail-fraction", "1.0"]);
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
    let proxy = format!("http://{outbound}");
    let count = |host: &str| {
        let mut ok = 0;
        for _ in 0..30 {
            let r = curl(&["-x", &proxy, &format!("http://{host}:8000/get")]);
            if r.status == 200 {
                ok += 1;
            }
        }
        ok
    };
    assert_eq!(count("web"), 30, "the default policy retries UF and 503");
    let strict = count("web-strict");
    assert!(
        strict <= 15,
        "without retries a third succeed, got {strict}/30"
    );
}
