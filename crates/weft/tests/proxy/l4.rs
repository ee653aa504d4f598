//! Connections not read as HTTP: TCP and TLS routes, sniffing, and upgrades spliced through.

use super::*;

/// Opaque TCP: a listener for the echo service, weighted 80/20 between two
/// versions; 200 connections, v1 between 65 % and 95 %.
#[test]
fn tcp_routes_split_connections_by_weight() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = World::any();
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
    let admin = w.addr(1, 2, 15020);
    let (m, b, a) = (
        model_path.display().to_string(),
        format!("{listener}={bind}"),
        admin.to_string(),
    );
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--bind",
            &b,
            "--admin",
            &a,
            "--access-log",
            "off",
        ],
        Some(bind),
    );
    // Bytes are in the metrics while the connection is still open (what
    // Telemetry's reportingInterval asks for long connections).
    let tcp_bytes = |metric: &str| {
        common::metric_sum(
            &curl(&[&format!("http://{admin}/metrics")]).body,
            metric,
            "",
        )
    };
    let mut open = std::net::TcpStream::connect(bind).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    open.write_all(b"still open\n").unwrap();
    let mut line = String::new();
    BufReader::new(&open).read_line(&mut line).unwrap();
    assert_eq!(tcp_bytes("istio_tcp_received_bytes_total"), 11);
    assert_eq!(tcp_bytes("istio_tcp_sent_bytes_total"), line.len() as u64);
    drop(open);
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

/// TLS routes by SNI without terminating TLS: a ClientHello for
/// a.example.com goes to v1, for b.example.com to v2, and the bytes read
/// to find the name reach the upstream intact.
#[test]
fn tls_routes_match_sni() {
    use std::io::{Read, Write};
    let mut w = World::any();
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
  hosts: [secure, a.example.com, "*.b.example.com"]
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

/// Inbound listeners by protocol: a `tcp-` port is spliced, an undeclared
/// port carrying HTTP is served as HTTP, and an undeclared port carrying
/// anything else is spliced (protocol sniffing, as Istio does).
#[test]
fn inbound_tcp_and_protocol_sniffing() {
    use std::io::{BufRead, BufReader, Write};
    let mut w = World::any();
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

/// An HTTP/1.1 upgrade (a WebSocket handshake) goes through the sidecar,
/// and bytes then flow both ways on the upgraded connection.
#[test]
fn upgrades_are_spliced_both_ways() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut w = World::any();
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
