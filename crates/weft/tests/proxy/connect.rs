//! CONNECT on the outbound proxy: gRPC, HTTP and TCP through tunnels.

use super::*;

/// Clients that use HTTP_PROXY for gRPC or TLS send CONNECT: gRPC core
/// (through `grpc_proxy`), curl --proxytunnel for HTTP, and a raw TCP
/// tunnel to a TCP service all work through the sidecar.
#[test]
fn connect_tunnels_carry_grpc_http_and_tcp() {
    use std::io::{BufRead, BufReader, Write};
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
