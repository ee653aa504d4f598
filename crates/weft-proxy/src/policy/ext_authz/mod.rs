//! CUSTOM AuthorizationPolicy: ask an external authorizer about a
//! request, as Envoy's ext_authz filter does, over HTTP
//! (`envoyExtAuthzHttp`) or gRPC (`envoyExtAuthzGrpc`, Envoy's
//! `envoy.service.auth.v3.Authorization/Check`). When the authorizer
//! cannot be reached, or answers with something that is not an answer,
//! the request is denied (`statusOnError`, 403 by default) unless the
//! provider fails open.

mod grpc;
mod http;
pub mod proto;

use std::net::SocketAddr;
use std::sync::Arc;

use ::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use weft_model::{ExtAuthzApi, ExtAuthzProvider};

use crate::upstream::ClusterRt;

pub enum Outcome {
    Allow(Allowed),
    Deny {
        status: StatusCode,
        body: bytes::Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
        why: String,
    },
}

/// What an allowing authorizer asks of the request and its response.
#[derive(Debug, Default)]
pub struct Allowed {
    /// Set on the request to the upstream, replacing any of that name.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Added to the request beside any of that name.
    pub append: Vec<(HeaderName, HeaderValue)>,
    /// Removed from the request (never pseudo-headers or `host`).
    pub remove: Vec<HeaderName>,
    /// Added to the response the client receives.
    pub downstream: Vec<(HeaderName, HeaderValue)>,
}

/// The request being judged, as the authorizer is told of it.
pub struct CheckInput<'a> {
    pub method: &'a Method,
    /// After path normalization; with the query.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub version: Version,
    /// The request URI's authority, where it has one (HTTP/2).
    pub authority: Option<&'a str>,
    pub scheme: &'a str,
    /// The downstream peer's address and verified SPIFFE ID.
    pub source: SocketAddr,
    pub source_principal: Option<&'a str>,
    /// This proxy's side of the connection, and its own SPIFFE ID.
    pub destination: Option<SocketAddr>,
    pub destination_principal: Option<&'a str>,
}

/// Asks `provider`'s authorizer, reached through `cluster` (`None` when
/// the proxy's configuration has no such cluster).
pub async fn check(
    cluster: Option<&Arc<ClusterRt>>,
    provider: &ExtAuthzProvider,
    input: &CheckInput<'_>,
) -> Outcome {
    let asked = match cluster {
        None => Err(format!(
            "no cluster {} in this proxy's configuration",
            provider.cluster
        )),
        Some(cluster) => match provider.api {
            ExtAuthzApi::Http => http::ask(cluster, provider, input).await,
            ExtAuthzApi::Grpc => grpc::ask(cluster, provider, input).await,
        },
    };
    match asked {
        Ok(outcome) => outcome,
        Err(why) if provider.fail_open => {
            tracing::warn!(provider = %provider.name, %why, "authorizer unavailable; failing open as configured");
            Outcome::Allow(Allowed::default())
        }
        Err(why) => Outcome::Deny {
            status: StatusCode::from_u16(provider.status_on_error).unwrap_or(StatusCode::FORBIDDEN),
            body: bytes::Bytes::new(),
            headers: Vec::new(),
            why: format!("authorizer {} unavailable: {why}", provider.name),
        },
    }
}

/// The first endpoint the cluster's balancer offers.
fn endpoint(cluster: &ClusterRt, provider: &ExtAuthzProvider) -> Result<usize, String> {
    cluster
        .pick(None, None)
        .ok_or_else(|| format!("no healthy endpoint in {}", provider.cluster))
}
