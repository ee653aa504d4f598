//! A unary gRPC call the proxy makes itself (an external authorizer's
//! check, a span export), over one of its clusters: the collector or
//! authorizer is reached like any other service, with its endpoints,
//! load balancing and mTLS when it is in the mesh. The message is framed
//! by hand (a flag byte and a length before it); the answer's status is
//! read from its trailers, or from its headers when it has no message.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue, StatusCode, Version};
use http_body_util::BodyExt;
use weft_model::Protocol;

use super::ClusterRt;

/// An answer larger than this is not an answer.
const MAX_ANSWER: usize = 1024 * 1024;

/// One call: `message` (already encoded) to `path` on the cluster's
/// first healthy endpoint, with `metadata` as request headers. Returns
/// the answer's one message, undecoded; every failure is said in words.
pub async fn unary(
    cluster: &ClusterRt,
    authority: &str,
    path: &str,
    message: Vec<u8>,
    metadata: &[(HeaderName, HeaderValue)],
    timeout: Duration,
) -> Result<Bytes, String> {
    if !matches!(cluster.config.protocol, Protocol::Http2 | Protocol::Grpc) {
        return Err(format!(
            "{} is not HTTP/2 ({:?}): a gRPC service's port must be named grpc or http2, or have appProtocol grpc",
            cluster.name, cluster.config.protocol
        ));
    }
    let endpoint = cluster
        .pick(None, None)
        .ok_or_else(|| format!("no healthy endpoint in {}", cluster.name))?;
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .version(Version::HTTP_2)
        .uri(format!("http://{authority}{path}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
        .body(crate::http::local_reply::full(frame(&message)))
        .map_err(|e| e.to_string())?;
    for (name, value) in metadata {
        req.headers_mut().append(name.clone(), value.clone());
    }
    let call = async {
        let resp = cluster
            .send(endpoint, req)
            .await
            .map_err(|(e, _)| e.to_string())?;
        if resp.status() != StatusCode::OK {
            return Err(format!("the call was answered HTTP {}", resp.status()));
        }
        let (http::response::Parts { headers: head, .. }, body) = resp.into_parts();
        let collected = http_body_util::Limited::new(body, MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("the answer could not be read: {e}"))?;
        let trailers = collected.trailers().cloned().unwrap_or_default();
        // A trailers-only answer carries its status in the headers.
        let field = |name: &str| trailers.get(name).or_else(|| head.get(name)).cloned();
        match field("grpc-status").as_ref().map(|s| s.as_bytes()) {
            Some(b"0") => unframe(&collected.to_bytes()),
            Some(code) => Err(format!(
                "gRPC status {} {}",
                String::from_utf8_lossy(code),
                field("grpc-message")
                    .as_ref()
                    .and_then(|m| m.to_str().ok())
                    .unwrap_or("")
            )),
            None => Err("the answer has no grpc-status".into()),
        }
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
}

/// A message as gRPC sends it: uncompressed, its length before it.
pub fn frame(message: &[u8]) -> Bytes {
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0);
    framed.put_u32(message.len() as u32);
    framed.put_slice(message);
    framed.freeze()
}

/// The one message of a unary answer, from its length-prefixed frame.
pub fn unframe(body: &Bytes) -> Result<Bytes, String> {
    let Some((head, _)) = body.split_first_chunk::<5>() else {
        return Err("the answer has no message".into());
    };
    if head[0] != 0 {
        return Err("the answer is compressed, which was not offered".into());
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if body.len() < 5 + len {
        return Err("the answer's message is cut short".into());
    }
    Ok(body.slice(5..5 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_broken_ones_are_errors() {
        let framed = frame(b"abc");
        assert_eq!(&framed[..], b"\0\0\0\0\x03abc");
        assert_eq!(unframe(&framed).unwrap(), Bytes::from_static(b"abc"));
        assert!(unframe(&Bytes::from_static(b"\0\0")).is_err());
        assert!(unframe(&Bytes::from_static(b"\x01\0\0\0\0")).is_err());
        assert!(unframe(&Bytes::from_static(b"\0\0\0\0\x09abc")).is_err());
    }
}
