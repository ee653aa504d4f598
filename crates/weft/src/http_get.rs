//! Blocking HTTP for operator commands talking to the local admin API; no
//! async runtime needed for one request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

/// Where a request goes: an address, reached from this machine's network
/// namespace or from another one (a proxy on a `weft up --capture`
/// mesh's network is reached from its node's).
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub netns: Option<PathBuf>,
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target { addr, netns: None }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.netns {
            Some(ns) => write!(f, "{} (in network namespace {})", self.addr, ns.display()),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Sends one request; returns the status code and body.
pub fn request(
    to: impl Into<Target>,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, String)> {
    let Target { addr, netns } = to.into();
    let mut s = weft_proxy::sockets::in_namespace(netns.as_deref(), || {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
    })?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Large documents come chunked; undo that.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        return Ok((status, out));
    }
    Ok((status, body.to_owned()))
}

/// GET that must answer 200.
pub fn get(to: impl Into<Target>, path: &str) -> anyhow::Result<String> {
    let (status, body) = request(to, "GET", path, b"")?;
    if status != 200 {
        anyhow::bail!("{path}: HTTP {status}: {body}");
    }
    Ok(body)
}
