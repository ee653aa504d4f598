//! CUSTOM AuthorizationPolicy: ask an external HTTP authorizer
//! (`envoyExtAuthzHttp`) about a request, as Envoy's ext_authz filter
//! does. The check carries the request's method, path (after the
//! provider's prefix) and chosen headers, no body; a 2xx answer allows,
//! anything else denies with the authorizer's own status and body. When
//! the authorizer cannot be reached the request is denied
//! (`statusOnError`, 403 by default) unless the provider fails open.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use weft_model::ExtAuthzProvider;

use std::sync::Arc;

use crate::upstream::ClusterRt;

pub enum Outcome {
    /// Allowed; these headers go on to the upstream, and these back to
    /// the client with the response.
    Allow {
        upstream: Vec<(HeaderName, HeaderValue)>,
        downstream: Vec<(HeaderName, HeaderValue)>,
    },
    Deny {
        status: StatusCode,
        body: bytes::Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
        why: String,
    },
}

/// Headers Envoy always lets through to the authorizer.
const ALWAYS: [&str; 2] = ["authorization", "cookie"];
const MAX_BODY: usize = 64 * 1024;

fn pick(names: &[String], from: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    names
        .iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .flat_map(|n| {
            from.get_all(&n)
                .iter()
                .map(|v| (n.clone(), v.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Asks `provider`'s authorizer, reached through `cluster` (`None` when
/// the proxy's configuration has no such cluster).
pub async fn check(
    cluster: Option<&Arc<ClusterRt>>,
    provider: &ExtAuthzProvider,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Outcome {
    match ask(cluster, provider, method, path_and_query, headers).await {
        Ok(outcome) => outcome,
        Err(why) if provider.fail_open => {
            tracing::warn!(provider = %provider.name, %why, "authorizer unavailable; failing open as configured");
            Outcome::Allow {
                upstream: Vec::new(),
                downstream: Vec::new(),
            }
        }
        Err(why) => Outcome::Deny {
            status: StatusCode::from_u16(provider.status_on_error).unwrap_or(StatusCode::FORBIDDEN),
            body: bytes::Bytes::new(),
            headers: Vec::new(),
            why: format!("authorizer {} unavailable: {why}", provider.name),
        },
    }
}

async fn ask(
    cluster: Option<&Arc<ClusterRt>>,
    provider: &ExtAuthzProvider,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<Outcome, String> {
    let cluster = cluster.ok_or_else(|| {
        format!(
            "no cluster {} in this proxy's configuration",
            provider.cluster
        )
    })?;
    let endpoint = cluster
        .pick(None, None)
        .ok_or_else(|| format!("no healthy endpoint in {}", provider.cluster))?;
    let uri = format!(
        "http://{}{}{}",
        provider.authority, provider.path_prefix, path_and_query
    );
    let mut builder = http::Request::builder().method(method.clone()).uri(&uri);
    for name in ALWAYS
        .iter()
        .map(|s| s.to_string())
        .chain(provider.include_request_headers.iter().cloned())
    {
        if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
            for v in headers.get_all(&n) {
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
    let status = resp.status();
    let resp_headers = resp.headers().clone();
    if status.is_success() {
        return Ok(Outcome::Allow {
            upstream: pick(&provider.headers_to_upstream_on_allow, &resp_headers),
            downstream: pick(&provider.headers_to_downstream_on_allow, &resp_headers),
        });
    }
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
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
