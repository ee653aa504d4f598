//! Rules on an Istio resource's annotations that Istio's webhook checks
//! before the kind's own rules: `istio.io/dry-run` belongs to
//! AuthorizationPolicy alone, and the `internal.istio.io` annotations
//! Istio sets on what it generates may not be written by users.

use crate::annotations::{dry_run, DRY_RUN};
use crate::path::FieldPath;
use crate::resource::{ResourceKind, Spec};
use crate::types::security::AuthzAction;

use super::Ctx;

/// Annotations Istio keeps for itself: one makes its webhook refuse the
/// object (a test hook), two name the parent of a generated object and
/// would let a user borrow that parent's rights.
const INTERNAL: &[&str] = &[
    "internal.istio.io/webhook-always-reject",
    "internal.istio.io/parents",
    "internal.istio.io/parent-namespace",
];

/// Whether Istio's webhook sees this kind. Kubernetes, Flagger and
/// weft.dev kinds never reach it, so its annotation rules do not apply.
fn is_istio_kind(kind: ResourceKind) -> bool {
    kind.api_versions().iter().any(|v| {
        v.split('/')
            .next()
            .is_some_and(|g| g.ends_with(".istio.io"))
    })
}

pub fn check(ctx: &mut Ctx<'_>) {
    let r = ctx.resource;
    if !is_istio_kind(r.kind()) {
        return;
    }
    let annotations = &r.meta.annotations;
    let at = FieldPath::root().key("metadata").key("annotations");
    for name in INTERNAL {
        if annotations.contains_key(*name) {
            ctx.error(
                &at.key(name),
                format!("annotation {name} is internal to Istio and may not be set by users"),
                "remove the annotation; Istio adds it only to objects it generates",
            );
        }
    }
    if !annotations.contains_key(DRY_RUN) {
        return;
    }
    let Spec::AuthorizationPolicy(ap) = &r.spec else {
        ctx.error(
            &at.key(DRY_RUN),
            format!(
                "{DRY_RUN} is only supported on AuthorizationPolicy, not on {}",
                r.kind().name()
            ),
            "remove the annotation",
        );
        return;
    };
    let action = ap.action.unwrap_or_default();
    if !matches!(action, AuthzAction::Allow | AuthzAction::Deny) {
        ctx.error(
            &at.key(DRY_RUN),
            format!(
                "{DRY_RUN} works with action ALLOW or DENY only, not {}",
                action.name()
            ),
            "remove the annotation, or make the policy an ALLOW or DENY policy",
        );
    } else if let Err(why) = dry_run(annotations) {
        ctx.error(
            &at.key(DRY_RUN),
            why,
            "write \"true\" to judge the policy without enforcing it, or \"false\" (or remove the annotation) to enforce it",
        );
    }
}
