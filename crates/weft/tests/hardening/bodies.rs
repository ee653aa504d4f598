//! A client's broken request body is the client's fault.

use crate::common::{self, curl};

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
    let web = crate::web(
        2,
        r#"apiVersion: networking.istio.io/v1
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
"#,
    );
    let (outbound, eps) = crate::sidecar(&mut w, &web, "web", &[]);
    w.httpbin("web-a", eps[0], &[]);
    w.httpbin("web-b", eps[1], &[]);
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

    let entries = crate::access_log(&w);
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
