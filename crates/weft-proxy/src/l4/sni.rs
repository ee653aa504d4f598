//! The server name a TLS client asks for, read from its ClientHello so
//! TLS routes can match `sniHosts` without terminating TLS.

use tokio::io::{AsyncRead, AsyncReadExt};

/// ClientHellos are small; a larger first record is not one we route.
const MAX_HELLO: usize = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Parse {
    NeedMore,
    NotTls,
    Hello(Option<String>),
}

/// Reads from `s` into `buf` until the first TLS record is complete (or is
/// clearly not a ClientHello) and returns the SNI. Whatever was read stays
/// in `buf` to be replayed to the upstream.
pub async fn read_sni<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limit: std::time::Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    loop {
        match parse(buf) {
            Parse::Hello(sni) => return sni,
            Parse::NotTls => return None,
            Parse::NeedMore if buf.len() >= MAX_HELLO => return None,
            Parse::NeedMore => {}
        }
        let n = match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses the start of a connection: `Some(sni)` once a complete
/// ClientHello is there (`sni` may be absent), `None` otherwise. For the
/// fuzzer and tests.
pub fn parse_hello(b: &[u8]) -> Option<Option<String>> {
    match parse(b) {
        Parse::Hello(sni) => Some(sni),
        _ => None,
    }
}

fn parse(b: &[u8]) -> Parse {
    if b.is_empty() {
        return Parse::NeedMore;
    }
    if b[0] != 0x16 {
        return Parse::NotTls;
    }
    if b.len() < 5 {
        return Parse::NeedMore;
    }
    let record_len = usize::from(u16::from_be_bytes([b[3], b[4]]));
    if b.len() < 5 + record_len {
        return Parse::NeedMore;
    }
    let hs = &b[5..5 + record_len];
    match client_hello_sni(hs) {
        Some(sni) => Parse::Hello(sni),
        None => Parse::NotTls,
    }
}

/// `Some(None)`: a ClientHello without SNI; `None`: not a ClientHello.
fn client_hello_sni(hs: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(hs);
    if r.u8()? != 0x01 {
        return None;
    }
    let len = r.u24()?;
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?; // version, random
    let sid = usize::from(r.u8()?);
    r.take(sid)?;
    let suites = usize::from(r.u16()?);
    r.take(suites)?;
    let comp = usize::from(r.u8()?);
    r.take(comp)?;
    if r.0.is_empty() {
        return Some(None);
    }
    let ext_len = usize::from(r.u16()?);
    let mut exts = Reader(r.take(ext_len)?);
    while !exts.0.is_empty() {
        let ty = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let body = exts.take(len)?;
        if ty == 0 {
            let mut list = Reader(body);
            let list_len = usize::from(list.u16()?);
            let mut names = Reader(list.take(list_len)?);
            while !names.0.is_empty() {
                let kind = names.u8()?;
                let n = usize::from(names.u16()?);
                let name = names.take(n)?;
                if kind == 0 {
                    // An empty or non-UTF-8 name is no name.
                    return Some(
                        std::str::from_utf8(name)
                            .ok()
                            .filter(|s| !s.is_empty())
                            .map(|s| s.to_ascii_lowercase()),
                    );
                }
            }
        }
    }
    Some(None)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

/// A minimal ClientHello carrying `sni`, for tests.
pub fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[b'A'; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sni_and_rejects_other_bytes() {
        let hello = client_hello("Api.Example.com");
        assert_eq!(parse(&hello), Parse::Hello(Some("api.example.com".into())));
        assert_eq!(parse(&hello[..hello.len() - 3]), Parse::NeedMore);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Parse::NotTls);
        // Found by the fuzzer: an SNI entry with an empty name.
        let empty = [
            22, 3, 1, 0, 71, 1, 0, 0, 67, 3, 3, 65, 65, 65, 65, 0, 0, 0, 0, 0, 0, 0, 76, 65, 65,
            65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 65, 0, 0, 2, 19, 1,
            1, 0, 0, 24, 0, 0, 0, 20, 0, 18, 0, 0, 0, 0, 0, 72, 231, 111, 115, 97, 77, 112, 108,
            101, 46, 99, 111, 109,
        ];
        assert_eq!(parse(&empty), Parse::Hello(None));
        let mut bad = hello.clone();
        bad[5] = 2;
        assert_eq!(parse(&bad), Parse::NotTls);
    }
}
