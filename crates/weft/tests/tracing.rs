//! Distributed tracing under `weft up`: the proxies report spans over OTLP
//! HTTP/protobuf or gRPC to a collector named in Istio's MeshConfig, and
//! the spans of one page follow the request: gateway → productpage →
//! reviews → ratings, each hop a child of the one before.
//!
//! The HTTP collector is an OTLP receiver started by the test: it speaks
//! HTTP/1.1 and decodes each export with the OpenTelemetry protobuf
//! types. The gRPC collector is gRPC core (python3-grpcio), which keeps
//! what it receives for the test to decode.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::curl;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// A span as the test looks at it.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace: String,
    id: String,
    parent: String,
    /// 2 = server, 3 = client (OTLP's SpanKind).
    kind: i32,
    attrs: Vec<(String, String)>,
}

impl Span {
    fn attr(&self, k: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn value(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Serves OTLP exports on `addr` until the test ends, keeping every span.
fn receiver(addr: &str) -> Arc<Mutex<Vec<Span>>> {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let listener = TcpListener::bind(addr).unwrap();
    let store = spans.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || serve(conn, &store));
        }
    });
    spans
}

/// One keep-alive connection: requests with a Content-Length body.
fn serve(conn: TcpStream, store: &Mutex<Vec<Span>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line.trim().to_ascii_lowercase());
        }
        let len: usize = head
            .iter()
            .find_map(|h| h.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        let ok = head[0].starts_with("post /v1/traces ")
            && head
                .iter()
                .any(|h| h == "content-type: application/x-protobuf");
        let status = match ExportTraceServiceRequest::decode(body.as_slice()) {
            Ok(req) if ok => {
                store.lock().unwrap().extend(spans_of(req));
                "200 OK"
            }
            _ => "400 Bad Request",
        };
        let _ = write!(
            out,
            "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        );
    }
}

fn spans_of(req: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .map(|a| value(&a.value))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for sp in ss.spans {
                out.push(Span {
                    service: service.clone(),
                    trace: hex(&sp.trace_id),
                    id: hex(&sp.span_id),
                    parent: hex(&sp.parent_span_id),
                    kind: sp.kind,
                    attrs: sp
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), value(&a.value)))
                        .collect(),
                });
            }
        }
    }
    out
}

fn mesh_config(collector: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry:
        service: otel-collector.observability.local
        port: 4318
        http:
          path: /v1/traces
          timeout: 5s
    defaultProviders:
      tracing: [otel]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: otel-collector
  namespace: istio-system
spec:
  hosts: [otel-collector.observability.local]
  location: MESH_EXTERNAL
  ports:
  - {{number: 4318, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
  - address: {collector}
    ports: {{http: 4318}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  tracing:
  - randomSamplingPercentage: 100
    customTags:
      environment:
        literal: {{value: test}}
      tenant:
        header: {{name: x-tenant, defaultValue: none}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v3}}
"#
    )
}

fn wait_for(spans: &Mutex<Vec<Span>>, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let started = Instant::now();
    loop {
        let now = spans.lock().unwrap().clone();
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: {} spans arrived: {now:#?}",
            now.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_page_is_one_trace_from_gateway_to_ratings() {
    let collector_ip = "127.114.0.200";
    let spans = receiver(&format!("{collector_ip}:4318"));
    let m = common::mesh::up_with(114, &mesh_config(collector_ip));
    let url = format!("http://{}/productpage", m.ingress);

    // A client that already traces (W3C, sampled) is joined.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let r = curl(&[
        "-H",
        &format!("traceparent: 00-{trace}-{client_span}-01"),
        "-H",
        "x-tenant: acme",
        &url,
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    // The gateway's span ends last, with the page's last byte.
    let all = wait_for(&spans, "the W3C trace", |s| {
        let t = || s.iter().filter(|x| x.trace == trace);
        t().any(|x| x.service.starts_with("ratings")) && t().any(|x| x.parent == client_span)
    });
    let t: Vec<&Span> = all.iter().filter(|s| s.trace == trace).collect();
    let child_of = |parent: &str, service: &str, kind: i32| -> &Span {
        t.iter()
            .find(|s| s.parent == parent && s.service == service && s.kind == kind)
            .unwrap_or_else(|| {
                panic!("no {service} span (kind {kind}) with parent {parent}: {t:#?}")
            })
    };
    let gateway = child_of(client_span, "istio-ingressgateway.istio-system", 2);
    let pp_in = child_of(&gateway.id, "productpage.default", 2);
    let pp_out = t
        .iter()
        .find(|s| {
            s.parent == pp_in.id
                && s.kind == 3
                && s.attr("upstream_cluster")
                    .is_some_and(|c| c.contains("reviews"))
        })
        .unwrap_or_else(|| panic!("no productpage → reviews client span: {t:#?}"));
    assert_eq!(pp_out.service, "productpage.default");
    let reviews_in = child_of(&pp_out.id, "reviews.default", 2);
    let reviews_out = child_of(&reviews_in.id, "reviews.default", 3);
    let ratings_in = child_of(&reviews_out.id, "ratings.default", 2);

    // Istio's attributes.
    assert_eq!(
        reviews_out.attr("upstream_cluster"),
        Some("outbound|9080||ratings.default.svc.cluster.local"),
        "{reviews_out:#?}"
    );
    assert_eq!(ratings_in.attr("http.status_code"), Some("200"));
    assert_eq!(ratings_in.attr("response_flags"), Some("-"));
    assert_eq!(ratings_in.attr("istio.canonical_service"), Some("ratings"));
    assert_eq!(ratings_in.attr("istio.canonical_revision"), Some("v1"));
    assert_eq!(
        ratings_in.attr("source.principal"),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-reviews"),
        "the caller's verified identity: {ratings_in:#?}"
    );
    assert_eq!(
        reviews_out.attr("destination.principal"),
        Some("spiffe://cluster.local/ns/default/sa/bookinfo-ratings"),
        "{reviews_out:#?}"
    );
    assert_eq!(gateway.attr("environment"), Some("test"));
    assert_eq!(gateway.attr("tenant"), Some("acme"));
    // bookinfo does not forward x-tenant: the default applies there.
    assert_eq!(ratings_in.attr("tenant"), Some("none"));
    let request_id = gateway.attr("guid:x-request-id").unwrap();
    assert!(
        t.iter()
            .all(|s| s.attr("guid:x-request-id") == Some(request_id)),
        "one request id along the trace: {t:#?}"
    );

    // B3, single header: joined the same way.
    let b3_trace = "a3ce929d0e0e47364bf92f3577b34da6";
    let r = curl(&["-H", &format!("b3: {b3_trace}-1111111111111111-1"), &url]);
    assert_eq!(r.status, 200);
    let all = wait_for(&spans, "the B3 trace", |s| {
        s.iter()
            .any(|x| x.trace == b3_trace && x.parent == "1111111111111111")
    });
    assert!(all
        .iter()
        .any(|s| s.trace == b3_trace && s.parent == "1111111111111111"));

    // B3 multi-header with a "not sampled" decision: honoured, no spans.
    let r = curl(&[
        "-H",
        "x-b3-traceid: 1234567890abcdef1234567890abcdef",
        "-H",
        "x-b3-spanid: 2222222222222222",
        "-H",
        "x-b3-sampled: 0",
        "-H",
        "x-request-id: not-sampled-1",
        &url,
    ]);
    assert_eq!(r.status, 200);
    // A request with no context starts a sampled trace (100 %) whose
    // gateway span is a root.
    let r = curl(&["-H", "x-request-id: fresh-1", &url]);
    assert_eq!(r.status, 200);
    let all = wait_for(&spans, "the fresh trace", |s| {
        s.iter().any(|x| {
            x.attr("guid:x-request-id") == Some("fresh-1")
                && x.service == "istio-ingressgateway.istio-system"
        })
    });
    let root = all
        .iter()
        .find(|s| {
            s.attr("guid:x-request-id") == Some("fresh-1")
                && s.service == "istio-ingressgateway.istio-system"
        })
        .unwrap();
    assert!(
        root.parent.is_empty() || root.parent == "0000000000000000",
        "{root:#?}"
    );
    assert!(
        !all.iter()
            .any(|s| s.trace == "1234567890abcdef1234567890abcdef"
                || s.attr("guid:x-request-id") == Some("not-sampled-1")),
        "an unsampled trace was reported"
    );
}

/// Istio's default OTLP transport: a provider with no `http` block
/// exports over gRPC, with the `grpc` block's timeout and metadata, to a
/// collector declared with a GRPC port.
#[test]
fn spans_reach_a_grpc_collector() {
    let w = common::World::any();
    let collector = w.addr(0, 200, 4317);
    let received = w.dir.join("otlp");
    std::fs::create_dir_all(&received).unwrap();
    let child = std::process::Command::new("/usr/bin/python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/otlp_grpc_collector.py"
        ))
        .arg(collector.to_string())
        .arg(&received)
        .stdout(std::fs::File::create(w.dir.join("collector.log")).unwrap())
        .stderr(std::fs::File::create(w.dir.join("collector.err")).unwrap())
        .spawn()
        .expect("python3 runs");
    let _collector = common::Proc {
        child,
        name: "otlp-collector".into(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&collector, Duration::from_millis(200)).is_err() {
        let err = std::fs::read_to_string(w.dir.join("collector.err")).unwrap_or_default();
        assert!(
            !err.contains("No module named 'grpc'"),
            "python3-grpcio is missing: scripts/test installs it (apt-get install python3-grpcio)"
        );
        assert!(
            Instant::now() < deadline,
            "the collector did not start: {err}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let config = format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: istio, namespace: istio-system}}
data:
  mesh: |
    extensionProviders:
    - name: otel
      opentelemetry:
        service: otel-collector.observability.local
        port: 4317
        grpc:
          timeout: 5s
          initialMetadata: [{{name: x-tenant-token, value: t0k3n}}]
    defaultProviders:
      tracing: [otel]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: otel-collector, namespace: istio-system}}
spec:
  hosts: [otel-collector.observability.local]
  location: MESH_EXTERNAL
  ports: [{{number: 4317, name: grpc, protocol: GRPC}}]
  resolution: STATIC
  endpoints: [{{address: "{ip}"}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing: [{{randomSamplingPercentage: 100}}]
"#,
        ip = collector.ip()
    );
    let m = common::mesh::up_in(w, &config, &[], &[]);
    let r = curl(&[
        "-H",
        "x-request-id: grpc-otlp-1",
        &format!("http://{}/productpage", m.ingress),
    ]);
    assert_eq!(r.status, 200, "{}", r.body);
    let started = Instant::now();
    loop {
        let mut spans = Vec::new();
        let mut metadata = Vec::new();
        for entry in std::fs::read_dir(&received).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "bin") {
                let bytes = std::fs::read(&path).unwrap();
                spans.extend(spans_of(
                    ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap(),
                ));
                let meta: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(path.with_extension("json")).unwrap(),
                )
                .unwrap();
                metadata.push(meta);
            }
        }
        let page: Vec<&Span> = spans
            .iter()
            .filter(|s| s.attr("guid:x-request-id") == Some("grpc-otlp-1"))
            .collect();
        let services = |name: &str| page.iter().any(|s| s.service == name);
        if services("istio-ingressgateway.istio-system") && services("productpage.default") {
            assert!(
                metadata.iter().all(|m| m["x-tenant-token"] == "t0k3n"),
                "initialMetadata on every export: {metadata:?}"
            );
            let trace = &page[0].trace;
            assert!(
                page.iter().all(|s| &s.trace == trace),
                "one trace: {page:#?}"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the page's spans did not arrive over gRPC: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
