//! The probes weft already withstood, kept so it goes on withstanding
//! them: request smuggling over HTTP/1.1, and HTTP/2 rapid reset and
//! SETTINGS, PING and CONTINUATION floods. After each, the proxy still
//! serves everyone else, and the upstream never saw a request the client
//! hid inside another.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{self, curl};

fn start(net: u8) -> (common::World, SocketAddr) {
    let mut w = common::World::new(net);
    let (outbound, eps) = crate::sidecar(&mut w, &crate::web(1, ""), "web", &[]);
    w.httpbin("web", eps[0], &[]);
    (w, outbound)
}

/// A normal request still works, and the proxy process is alive.
fn still_serving(w: &common::World, outbound: SocketAddr, after: &str) {
    let r = curl(&["-x", &format!("http://{outbound}"), "http://web:8000/get"]);
    assert_eq!(r.status, 200, "after {after}: {} {}", r.headers, r.body);
    let pid = w.proc("proxy").child.id();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the proxy died after {after}"
    );
}

fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn request_smuggling_is_refused() {
    let (w, outbound) = start(144);
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: web:8000\r\n\r\n";
    for (what, head) in [
        ("CL.TE", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE.CL", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n{smuggled}")),
        ("two lengths", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n{smuggled}")),
        ("TE obfuscated", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE not last", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}")),
        ("obs-fold", format!("POST http://web:8000/post HTTP/1.1\r\nHost: web:8000\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n{smuggled}")),
    ] {
        let reply = exchange(outbound, head.as_bytes());
        // Refused, or (both framings: RFC 9112's way, which hyper takes)
        // read as chunked alone with the connection closed after the
        // answer: either way the hidden request is never read.
        let refused = reply.starts_with("HTTP/1.1 400");
        let chunked_then_closed = what.contains("CL")
            && reply.starts_with("HTTP/1.1 200")
            && reply.to_ascii_lowercase().contains("connection: close");
        assert!(refused || chunked_then_closed, "{what}: {reply}");
        assert_eq!(reply.matches("HTTP/1.1 ").count(), 1, "{what}: {reply}");
    }
    still_serving(&w, outbound, "smuggling");
    assert!(
        !w.log("web").contains("/smuggled"),
        "a hidden request reached the upstream:\n{}",
        w.log("web")
    );
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![(n >> 16) as u8, (n >> 8) as u8, n as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 1;
const END_HEADERS: u8 = 4;

/// A GET for `/get` of `web:8000`, HPACK-encoded from the static table and
/// literals (no Huffman).
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    b.extend([0x04, 4]); // :path, literal
    b.extend(b"/get");
    b.extend([0x01, 8]); // :authority, literal
    b.extend(b"web:8000");
    b
}

/// An HTTP/2 connection with its preface and an empty SETTINGS sent.
fn h2(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&frame(SETTINGS, 0, 0, &[])).unwrap();
    s
}

/// Sends `batches` batches of frames, draining what the proxy sends back,
/// until all are sent or the proxy closes; returns whether it closed
/// (waiting up to `linger` after the last batch).
fn flood(
    s: &mut TcpStream,
    batches: usize,
    linger: Duration,
    batch: impl Fn(usize) -> Vec<u8>,
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..batches {
        if s.write_all(&batch(i)).is_err() {
            return true;
        }
        if let Ok(0) = s.read(&mut buf) {
            return true;
        }
    }
    let deadline = Instant::now() + linger;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            _ => {}
        }
    }
    false
}

#[test]
fn http2_floods_and_rapid_reset_do_not_take_the_proxy_down() {
    let (w, outbound) = start(145);
    still_serving(&w, outbound, "start");

    // Rapid reset (CVE-2023-44487): open and cancel streams as fast as
    // possible. The proxy closes the connection.
    let mut s = h2(outbound);
    let block = get_block();
    let closed = flood(&mut s, 200, Duration::from_secs(5), |i| {
        let mut out = Vec::new();
        for j in 0..50u32 {
            let id = 1 + 2 * (i as u32 * 50 + j);
            out.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
            out.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes()));
        }
        out
    });
    assert!(closed, "a rapid-reset connection was kept open");
    still_serving(&w, outbound, "rapid reset");

    // CONTINUATION flood (CVE-2024-27316): one header block that never
    // ends. The proxy closes the connection well before a megabyte.
    let mut s = h2(outbound);
    s.write_all(&frame(HEADERS, 0, 1, &block)).unwrap();
    let literal = {
        let mut l = vec![0x00, 7];
        l.extend(b"x-flood");
        l.extend([0x7f, 0x81, 0x7f]); // a 16 510-byte value follows
        l.extend(std::iter::repeat_n(b'a', 16_510));
        l
    };
    let closed = flood(&mut s, 64, Duration::from_secs(5), |_| {
        frame(CONTINUATION, 0, 1, &literal)
    });
    assert!(closed, "an endless header block was kept open");
    still_serving(&w, outbound, "a CONTINUATION flood");

    // SETTINGS and PING floods (CVE-2019-9515, -9512), the replies never
    // read: whatever the proxy does with the connection, it serves others.
    for (what, kind, payload) in [
        ("SETTINGS", SETTINGS, Vec::new()),
        ("PING", PING, vec![0u8; 8]),
    ] {
        let mut s = h2(outbound);
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        let one = frame(kind, 0, 0, &payload);
        let _ = flood(&mut s, 100, Duration::ZERO, |_| one.repeat(500));
        drop(s);
        still_serving(&w, outbound, &format!("a {what} flood"));
    }
}
