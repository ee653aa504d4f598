//! Resource and protocol limits as Envoy sets them: idle and slow-header
//! connections are closed, request headers up to 60 KiB pass on HTTP/1.1
//! and HTTP/2 alike and more are refused, heads HTTP/1.1 forbids are 400,
//! what the parser refuses is in the access log, and idle upstream
//! connections close on time even when nothing uses the pool again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{self, curl};

/// One `web` replica whose idle upstream connections expire after 1 s.
fn web() -> String {
    crate::web(
        1,
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    connectionPool: {http: {idleTimeout: 1s}}
",
    )
}

/// How long until the proxy closes `s` (reads until EOF), at most `within`.
fn closed_after(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed())
            }
            Err(_) => return None,
        }
    }
}

/// Sends `head` and returns the status line of the reply.
fn status_of(addr: &str, head: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(head).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn idle_and_slow_clients_are_cut_off() {
    let mut w = common::World::new(135);
    let (outbound, eps) = crate::sidecar(
        &mut w,
        &web(),
        "web",
        &["--idle-timeout", "1s", "--request-headers-timeout", "2s"],
    );
    w.httpbin("web", eps[0], &[]);
    let addr = outbound.to_string();

    // A connection that sends nothing is closed at the idle timeout.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let after = closed_after(&mut silent, Duration::from_secs(5)).expect("closed");
    assert!(
        after < Duration::from_secs(3),
        "idle closed after {after:?}"
    );

    // A keep-alive connection between requests is idle too; one in use is not.
    let mut kept = TcpStream::connect(&addr).unwrap();
    kept.write_all(b"GET http://web:8000/delay/1.5 HTTP/1.1\r\nHost: web:8000\r\n\r\n")
        .unwrap();
    let after = closed_after(&mut kept, Duration::from_secs(6)).expect("closed");
    assert!(
        after > Duration::from_millis(2300) && after < Duration::from_secs(4),
        "a slow response (1.5 s) then 1 s idle: closed after {after:?}"
    );

    // A head sent one header every half second is cut at 2 s.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET http://web:8000/get HTTP/1.1\r\nHost: web:8000\r\n")
        .unwrap();
    let started = Instant::now();
    let mut cut = None;
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        if slow
            .write_all(format!("x-slow-{i}: {i}\r\n").as_bytes())
            .is_err()
        {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        slow.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        if matches!(slow.read(&mut probe), Ok(0)) {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("a slowloris was never cut off");
    assert!(cut < Duration::from_secs(4), "cut after {cut:?}");
    let log = crate::access_log(&w);
    assert!(
        log.iter().any(|e| e["response_code"] == 408
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("did not arrive")),
        "{log:#?}"
    );
}

#[test]
fn header_limits_and_heads_http_forbids() {
    let mut w = common::World::new(136);
    let (outbound, eps) = crate::sidecar(&mut w, &web(), "web", &[]);
    w.httpbin("web", eps[0], &[]);
    let addr = outbound.to_string();
    let big = |n: usize| format!("x-big: {}", "a".repeat(n));

    // 50 KiB of headers pass on both protocols; 70 KiB do not.
    for h2 in [false, true] {
        let mut args = vec!["-H", "host: web:8000"];
        if h2 {
            args.push("--http2-prior-knowledge");
        }
        let url = format!("http://{addr}/get");
        let fits = big(50 * 1024);
        let mut a = args.clone();
        a.extend(["-H", fits.as_str(), url.as_str()]);
        assert_eq!(curl(&a).status, 200, "50 KiB of headers (h2: {h2})");
        let over = big(70 * 1024);
        let mut a = args.clone();
        a.extend(["-H", over.as_str(), url.as_str()]);
        let r = curl(&a);
        assert_ne!(r.status, 200, "70 KiB of headers passed (h2: {h2})");
        if !h2 {
            assert_eq!(r.status, 431);
        }
    }

    // Heads HTTP/1.1 does not allow.
    for (head, what) in [
        ("GET /get HTTP/1.1\r\n\r\n", "no Host"),
        (
            "GET /get HTTP/1.1\r\nHost: web:8000\r\nHost: web:8000\r\n\r\n",
            "two Hosts",
        ),
        ("GET /get HTTP/1.1\r\nHost: we b:8000\r\n\r\n", "a Host with a space"),
        (
            "POST /post HTTP/1.1\r\nHost: web:8000\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "two Transfer-Encodings",
        ),
    ] {
        let status = status_of(&addr, head.as_bytes());
        assert!(status.starts_with("HTTP/1.1 400"), "{what}: {status}");
    }
    // What hyper's parser refuses itself is logged too.
    let status = status_of(&addr, b"GET /get HTTP/1.1\r\nHo st: web\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 400"), "{status}");

    let log = crate::access_log(&w);
    let refused: Vec<_> = log
        .iter()
        .filter(|e| e["response_flags"] == "DPE")
        .collect();
    assert!(refused.len() >= 5, "{log:#?}");
    assert!(
        refused.iter().any(|e| e["response_code"] == 431),
        "the 70 KiB head is not logged: {log:#?}"
    );
    assert!(
        refused
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("parser")),
        "{log:#?}"
    );
}

/// File descriptors the proxy process holds.
fn open_fds(w: &common::World) -> usize {
    let pid = w.proc("proxy").child.id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn idle_upstream_connections_close_without_another_request() {
    let mut w = common::World::new(137);
    let (outbound, eps) = crate::sidecar(&mut w, &web(), "web", &[]);
    w.httpbin("web", eps[0], &["--latency-ms", "200"]);
    let before = open_fds(&w);
    // 200 requests at once: 200 upstream connections. The peak is sampled
    // while h2load runs: on a busy machine the burst can outlast the 1 s
    // idle timeout, and connections from its start are gone by its end.
    let mut h2load = std::process::Command::new("timeout")
        .args([
            "-s", "KILL", "60", "h2load", "-n", "200", "-c", "4", "-m", "50",
        ])
        .args([
            "-H",
            ":authority: web:8000",
            &format!("http://{outbound}/get"),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("h2load runs");
    let mut busy = before;
    while h2load.try_wait().expect("h2load is waited on").is_none() {
        busy = busy.max(open_fds(&w));
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = h2load.wait_with_output().expect("h2load's output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("200 succeeded"), "{text}");
    assert!(
        busy > before + 100,
        "the burst held at most {busy} fds, {before} before"
    );
    // The DestinationRule's idleTimeout is 1 s and nothing uses the pool.
    std::thread::sleep(Duration::from_millis(2500));
    let after = open_fds(&w);
    assert!(
        after <= before + 5,
        "{after} fds 2.5 s after the burst ({busy} during, {before} before)"
    );
}
