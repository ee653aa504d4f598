//! The policy stage as a request meets it: who the caller is, from the
//! listener and the connection; the one policy stage of `crate::policy`;
//! and a refusal turned into the reply Envoy gives (401 for a token, 403
//! from RBAC, the authorizer's own answer from CUSTOM).

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};

use super::context::Ctx;
use super::edge::external_address;
use super::listener::{HttpListener, PolicyPoint};
use super::local_reply::{full, reply, set_reason};
use crate::body::Body;
use crate::policy::authz::{Attributes, DryRun, Jwt};
use crate::policy::Denial;
use crate::snapshot::Snapshot;
use crate::telemetry::metrics::Metrics;

/// Judges the request where the listener says policies apply: `Ok` with
/// the token it validated (if any), `Err` with the reply that refuses it.
#[allow(clippy::too_many_arguments)]
pub async fn check<B>(
    snap: &Snapshot,
    metrics: &Metrics,
    listener: &HttpListener,
    point: &PolicyPoint,
    remote: SocketAddr,
    req: &mut Request<B>,
    ctx: &mut Ctx,
) -> Result<Option<Jwt>, Response<Body>> {
    if snap.policy.is_empty() {
        return Ok(None);
    }
    let principal = listener.peer.as_deref().map(|p| p.principal.as_str());
    let source_ip = if point.vouched_sources {
        snap.policy.believed_source(remote.ip(), principal)
    } else {
        Some(remote.ip())
    };
    // The client's address as the gateway saw it, trusted only from a mesh
    // peer.
    let external = principal.and_then(|_| external_address(req.headers()));
    let caller = Attributes {
        principal,
        source_ip,
        remote_ip: external.or(source_ip),
        destination_ip: point.destination_ip,
        destination_port: point.port as u16,
        ..Attributes::default()
    };
    let checked = snap
        .policy
        .check_request(&snap.clusters, &caller, req, remote)
        .await;
    if let Some(audit) = checked.audited_by {
        ctx.entry.audited_by = audit;
    }
    record_dry_run(metrics, &checked.dry_run, ctx);
    ctx.response_headers = checked.response_headers;
    let jwt = checked.jwt;
    checked
        .outcome
        .map(|()| jwt)
        .map_err(|denial| refuse(ctx, denial))
}

/// What the dry-run policies would have decided, in the access log entry
/// and the shadow-rule counters; the request itself is not touched.
fn record_dry_run(metrics: &Metrics, dry_run: &DryRun, ctx: &mut Ctx) {
    use std::sync::atomic::Ordering;
    for (engine, shadow, field) in [
        (0, &dry_run.allow, &mut ctx.entry.dry_run_allow),
        (1, &dry_run.deny, &mut ctx.entry.dry_run_deny),
    ] {
        if let Some(s) = shadow {
            metrics.dry_run[engine][usize::from(!s.allowed)].fetch_add(1, Ordering::Relaxed);
            *field = s.to_string();
        }
    }
    if let Some(p) = &dry_run.custom {
        ctx.entry.dry_run_custom = format!("would ask the authorizer of {p}");
    }
}

/// The reply to a refused request, its flag and reason recorded (and
/// said in `x-weft-reason` when explaining).
fn refuse(ctx: &mut Ctx, denial: Denial) -> Response<Body> {
    ctx.entry.response_flags.add(denial.flag());
    let (mut resp, explained, detail) = match denial {
        Denial::Unauthenticated { why } => (
            reply(
                StatusCode::UNAUTHORIZED,
                Some(crate::telemetry::flags::ResponseFlag::JwtRejected),
                "Jwt verification fails",
                false,
                ctx.grpc,
            ),
            format!("JWT: {why}"),
            why,
        ),
        Denial::Forbidden { policy, why } => {
            let detail = match policy {
                Some(policy) => format!("denied by {policy} ({why})"),
                None => why,
            };
            (
                reply(
                    StatusCode::FORBIDDEN,
                    Some(crate::telemetry::flags::ResponseFlag::RbacDenied),
                    "RBAC: access denied",
                    false,
                    ctx.grpc,
                ),
                format!("RBAC: {detail}"),
                detail,
            )
        }
        Denial::External {
            status,
            body,
            headers,
            why,
        } => {
            let mut resp = Response::new(full(body));
            *resp.status_mut() = status;
            for (k, v) in headers {
                resp.headers_mut().append(k, v);
            }
            (resp, format!("UAEX: {why}"), why)
        }
    };
    if ctx.explain {
        set_reason(&mut resp, &explained);
    }
    ctx.entry.reason = detail;
    resp
}
