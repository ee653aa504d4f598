//! `envoyExtAuthzGrpc`: the check is a unary gRPC call of Envoy's
//! `Authorization/Check` over the authorizer's cluster (HTTP/2). It
//! carries the request's method, path, host, headers and both peers; the
//! answer's status code 0 allows, with the header edits it asks for, and
//! anything else denies with its `denied_response`. A call that fails
//! (transport, a gRPC status other than OK, an unreadable message) is
//! the authorizer being unavailable.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, Version};
use prost::Message;
use weft_model::ExtAuthzProvider;

use super::proto::{self, CheckRequest, CheckResponse, HeaderValueOption};
use super::{Allowed, CheckInput, Outcome};
use crate::upstream::{grpc_call, ClusterRt};

pub(super) async fn ask(
    cluster: &ClusterRt,
    provider: &ExtAuthzProvider,
    input: &CheckInput<'_>,
) -> Result<Outcome, String> {
    let answer = grpc_call::unary(
        cluster,
        &provider.authority,
        proto::CHECK_PATH,
        request(input).encode_to_vec(),
        &[],
        Duration::from_millis(provider.timeout_ms.max(1)),
    )
    .await?;
    let answer = CheckResponse::decode(answer)
        .map_err(|e| format!("the answer is not a CheckResponse: {e}"))?;
    Ok(outcome(provider, input, answer))
}

/// What Envoy tells the authorizer of a request.
fn request(input: &CheckInput<'_>) -> CheckRequest {
    let mut headers = std::collections::HashMap::new();
    for (name, value) in input.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v: &mut String| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let host = input
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(input.authority)
        .unwrap_or("")
        .to_owned();
    headers.insert(":authority".into(), host.clone());
    headers.insert(":method".into(), input.method.as_str().to_owned());
    headers.insert(":path".into(), input.path_and_query.to_owned());
    headers.insert(":scheme".into(), input.scheme.to_owned());
    let size = input
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(-1);
    let peer = |addr: Option<std::net::SocketAddr>, principal: Option<&str>| proto::Peer {
        address: addr.map(|a| proto::Address {
            socket_address: Some(proto::SocketAddress {
                protocol: 0,
                address: a.ip().to_string(),
                port_value: u32::from(a.port()),
            }),
        }),
        principal: principal.unwrap_or("").to_owned(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(proto::AttributeContext {
            source: Some(peer(Some(input.source), input.source_principal)),
            destination: Some(peer(input.destination, input.destination_principal)),
            request: Some(proto::Request {
                http: Some(proto::HttpRequest {
                    id: input
                        .headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned(),
                    method: input.method.as_str().to_owned(),
                    headers,
                    path: input.path_and_query.to_owned(),
                    host,
                    scheme: input.scheme.to_owned(),
                    size,
                    protocol: match input.version {
                        Version::HTTP_10 => "HTTP/1.0",
                        Version::HTTP_2 => "HTTP/2",
                        Version::HTTP_3 => "HTTP/3",
                        _ => "HTTP/1.1",
                    }
                    .to_owned(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
    }
}

fn outcome(provider: &ExtAuthzProvider, input: &CheckInput<'_>, answer: CheckResponse) -> Outcome {
    let code = answer.status.as_ref().map_or(0, |s| s.code);
    if code == 0 {
        let mut allowed = Allowed::default();
        if let Some(ok) = answer.ok_response {
            for option in &ok.headers {
                edit(option, input, &mut allowed);
            }
            allowed.remove = ok
                .headers_to_remove
                .iter()
                .filter(|n| !n.starts_with(':') && !n.eq_ignore_ascii_case("host"))
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect();
            allowed.downstream = ok
                .response_headers_to_add
                .iter()
                .filter_map(header)
                .collect();
        }
        return Outcome::Allow(allowed);
    }
    let denied = answer.denied_response.unwrap_or_default();
    let status = denied
        .status
        .and_then(|s| u16::try_from(s.code).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| *s != StatusCode::OK)
        .unwrap_or(StatusCode::FORBIDDEN);
    let message = answer.status.map(|s| s.message).unwrap_or_default();
    Outcome::Deny {
        status,
        body: Bytes::from(denied.body),
        headers: denied.headers.iter().filter_map(header).collect(),
        why: if message.is_empty() {
            format!("authorizer {} denied (gRPC code {code})", provider.name)
        } else {
            format!(
                "authorizer {} denied (gRPC code {code}): {message}",
                provider.name
            )
        },
    }
}

fn header(option: &HeaderValueOption) -> Option<(HeaderName, HeaderValue)> {
    let h = option.header.as_ref()?;
    Some((
        HeaderName::from_bytes(h.key.as_bytes()).ok()?,
        HeaderValue::from_bytes(proto::header_value(h)).ok()?,
    ))
}

/// One of an allowing answer's header edits on the upstream request. As
/// Envoy's ext_authz reads them: `append: true` appends, an unset
/// `append` replaces, and the append actions that depend on the header
/// being there are resolved against the request as it is now.
fn edit(option: &HeaderValueOption, input: &CheckInput<'_>, allowed: &mut Allowed) {
    let Some((name, value)) = header(option) else {
        return;
    };
    let present = input.headers.contains_key(&name);
    match (
        option.append.as_ref().map(|a| a.value),
        option.append_action,
    ) {
        (Some(true), _) => allowed.append.push((name, value)),
        (None, 1) if present => {}
        (None, 3) if !present => {}
        _ => allowed.set.push((name, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(headers: &'a http::HeaderMap, method: &'a http::Method) -> CheckInput<'a> {
        CheckInput {
            method,
            path_and_query: "/a?b=c",
            headers,
            version: Version::HTTP_11,
            authority: Some("productpage:9080"),
            scheme: "http",
            source: "127.0.0.7:4000".parse().unwrap(),
            source_principal: Some("spiffe://cluster.local/ns/default/sa/sleep"),
            destination: None,
            destination_principal: None,
        }
    }

    #[test]
    fn the_request_carries_what_envoy_sends() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        let method = http::Method::POST;
        let sent = request(&input(&headers, &method));
        let decoded = CheckRequest::decode(sent.encode_to_vec().as_slice()).unwrap();
        let attrs = decoded.attributes.unwrap();
        let http = attrs.request.unwrap().http.unwrap();
        assert_eq!(http.headers["x-a"], "1,2");
        assert_eq!(http.headers[":authority"], "productpage:9080");
        assert_eq!(http.headers[":path"], "/a?b=c");
        assert_eq!(http.method, "POST");
        assert_eq!(http.size, 5);
        assert_eq!(http.protocol, "HTTP/1.1");
        let source = attrs.source.unwrap();
        assert_eq!(
            source.principal,
            "spiffe://cluster.local/ns/default/sa/sleep"
        );
        let addr = source.address.unwrap().socket_address.unwrap();
        assert_eq!(
            (addr.address.as_str(), addr.port_value),
            ("127.0.0.7", 4000)
        );
    }

    fn option(key: &str, value: &str, append: Option<bool>, action: i32) -> HeaderValueOption {
        HeaderValueOption {
            header: Some(proto::HeaderValue {
                key: key.into(),
                value: value.into(),
                raw_value: Vec::new(),
            }),
            append: append.map(|value| proto::BoolValue { value }),
            append_action: action,
        }
    }

    #[test]
    fn an_ok_answer_edits_the_request_and_the_response() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-present", HeaderValue::from_static("old"));
        let method = http::Method::GET;
        let answer = CheckResponse {
            status: Some(proto::RpcStatus::default()),
            ok_response: Some(proto::OkHttpResponse {
                headers: vec![
                    option("x-set", "1", None, 0),
                    option("x-more", "2", Some(true), 0),
                    option("x-present", "kept", None, 1),
                    option("x-absent", "skipped", None, 3),
                ],
                headers_to_remove: vec!["authorization".into(), ":path".into(), "host".into()],
                response_headers_to_add: vec![option("x-to-client", "3", None, 0)],
            }),
            ..Default::default()
        };
        let answer = CheckResponse::decode(answer.encode_to_vec().as_slice()).unwrap();
        let provider = ExtAuthzProvider::default();
        let Outcome::Allow(a) = outcome(&provider, &input(&headers, &method), answer) else {
            panic!("denied");
        };
        let names = |v: &[(HeaderName, HeaderValue)]| {
            v.iter()
                .map(|(n, v)| format!("{n}={}", v.to_str().unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a.set), ["x-set=1"]);
        assert_eq!(names(&a.append), ["x-more=2"]);
        assert_eq!(a.remove, [HeaderName::from_static("authorization")]);
        assert_eq!(names(&a.downstream), ["x-to-client=3"]);
    }

    #[test]
    fn a_denial_carries_its_status_headers_and_body() {
        let request_headers = http::HeaderMap::new();
        let method = http::Method::GET;
        let answer = CheckResponse {
            status: Some(proto::RpcStatus {
                code: 7,
                message: "no".into(),
            }),
            denied_response: Some(proto::DeniedHttpResponse {
                status: Some(proto::HttpStatus { code: 401 }),
                headers: vec![option("x-why", "token", None, 0)],
                body: "denied\n".into(),
            }),
            ..Default::default()
        };
        let provider = ExtAuthzProvider::default();
        let Outcome::Deny {
            status,
            body,
            headers,
            why,
        } = outcome(&provider, &input(&request_headers, &method), answer)
        else {
            panic!("allowed");
        };
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, "denied\n");
        assert_eq!(headers.len(), 1);
        assert!(why.contains("gRPC code 7"), "{why}");
        // No denied_response: 403, as Envoy answers.
        let bare = CheckResponse {
            status: Some(proto::RpcStatus {
                code: 7,
                message: String::new(),
            }),
            ..Default::default()
        };
        let Outcome::Deny { status, .. } =
            outcome(&provider, &input(&request_headers, &method), bare)
        else {
            panic!("allowed");
        };
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
