//! Istio's default retry policy.

use crate::common::{self, curl};

/// Istio's default retry policy on routes that set none: an endpoint that
/// refuses connections (a restarting sidecar) or answers 503 is retried on
/// another, so clients see neither; `retries: {attempts: 0}` turns it off.
#[test]
fn istios_default_retries_hide_a_restarting_endpoint() {
    let mut w = common::World::new(134);
    let web = crate::web(
        3,
        r#"apiVersion: networking.istio.io/v1
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
"#,
    );
    let (outbound, eps) = crate::sidecar(&mut w, &web, "web", &[]);
    assert_eq!(eps.len(), 3);
    // One endpoint is down (nothing listens), one answers 503 to everything.
    w.httpbin("web-ok", eps[0], &[]);
    w.httpbin("web-503", eps[1], &["--fail-fraction", "1.0"]);
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
