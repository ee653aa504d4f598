//! `envoyExtAuthzHttp`: the check is an HTTP request carrying the
//! request's method, path (after the provider's prefix) and chosen
//! headers, no body. A 2xx answer allows; anything else denies with the
//! authorizer's own status and body.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use weft_model::ExtAuthzProvider;

use super::{endpoint, Allowed, CheckInput, Outcome};
use crate::upstream::ClusterRt;

/// Headers Envoy always lets through to the authorizer.
const ALWAYS: [&str; 2] = ["authorization", "cookie"];
const MAX_BODY: usize = 64 * 1024;

fn pick(names: &[String], from: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    let mut picked = Vec::new();
    for n in names
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
    {
        picked.extend(from.get_all(&n).iter().map(|v| (n.clone(), v.clone())));
    }
    picked
}

pub(super) async fn ask(
    cluster: &ClusterRt,
    provider: &ExtAuthzProvider,
    input: &CheckInput<'_>,
) -> Result<Outcome, String> {
    let endpoint = endpoint(cluster, provider)?;
    let uri = format!(
        "http://{}{}{}",
        provider.authority, provider.path_prefix, input.path_and_query
    );
    let mut builder = http::Request::builder()
        .method(input.method.clone())
        .uri(&uri);
    for name in ALWAYS
        .into_iter()
        .chain(provider.include_request_headers.iter().map(String::as_str))
    {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            for v in input.headers.get_all(&n) {
                builder = builder.header(n.clone(), v.clone());
            }
        }
    }
    for (k, v) in &provider.additional_headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let req = builder
        .header(http::header::HOST, provider.authority.as_str())
        .header(http::header::CONTENT_LENGTH, "0")
        .body(crate::http::local_reply::empty())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(
        Duration::from_millis(provider.timeout_ms.max(1)),
        cluster.send(endpoint, req),
    )
    .await
    .map_err(|_| format!("no answer within {} ms", provider.timeout_ms))?
    .map_err(|(e, _)| e.to_string())?;
    let (head, body) = resp.into_parts();
    let (status, resp_headers) = (head.status, head.headers);
    if status.is_success() {
        return Ok(Outcome::Allow(Allowed {
            set: pick(&provider.headers_to_upstream_on_allow, &resp_headers),
            downstream: pick(&provider.headers_to_downstream_on_allow, &resp_headers),
            ..Allowed::default()
        }));
    }
    let body = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok(Outcome::Deny {
        status,
        body,
        headers: pick(&provider.headers_to_downstream_on_deny, &resp_headers),
        why: format!("authorizer {} answered {}", provider.name, status.as_u16()),
    })
}
