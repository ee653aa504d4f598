//! As istioctl's `conditions.ConditionAnalyzer`: a resource whose
//! `status.conditions` (written by Istio's controllers, and present in
//! YAML read back from a cluster) holds a negative condition (IST0171).
//! Gateway API kinds join when weft reads them.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, ResourceKind};
use weft_api::yaml::Kind;

use super::{Findings, Input};

/// The condition types, per kind, whose `False` status istioctl reports.
fn negative_when_false(kind: ResourceKind, condition: &str) -> bool {
    match kind {
        ResourceKind::Service | ResourceKind::ServiceEntry | ResourceKind::WorkloadEntry => {
            condition == "istio.io/WaypointBound"
        }
        ResourceKind::AuthorizationPolicy => {
            matches!(condition, "ZtunnelAccepted" | "WaypointAccepted")
        }
        _ => false,
    }
}

/// One condition as written: its type, status, reason and message.
struct Condition<'a> {
    kind: &'a str,
    status: &'a str,
    reason: &'a str,
    message: &'a str,
}

fn conditions(r: &Resource) -> Vec<Condition<'_>> {
    let tree = &r.source.tree;
    let Some(list) = tree
        .get(r.source.node, "status")
        .and_then(|s| tree.get(s, "conditions"))
    else {
        return Vec::new();
    };
    let Kind::Seq(items) = &tree.node(list).kind else {
        return Vec::new();
    };
    let field = |item, key| {
        tree.get(item, key)
            .and_then(|n| tree.scalar(n))
            .unwrap_or("")
    };
    items
        .iter()
        .map(|item| Condition {
            kind: field(*item, "type"),
            status: field(*item, "status"),
            reason: field(*item, "reason"),
            message: field(*item, "message"),
        })
        .collect()
}

pub fn negative_conditions(input: &Input<'_>, out: &mut Findings) {
    for r in input.resources {
        for (i, c) in conditions(r).iter().enumerate() {
            let negative = (c.status == "False" && negative_when_false(r.kind(), c.kind))
                // Accepted, but only in part: istioctl reports it too.
                || (r.kind() == ResourceKind::AuthorizationPolicy
                    && c.kind == "WaypointAccepted"
                    && c.reason == "PartiallyInvalid");
            if negative {
                out.add(
                    Severity::Warning,
                    "IST0171",
                    r,
                    &FieldPath::root().key("status").key("conditions").index(i),
                    format!(
                        "A condition with a negative status is present: type={}, reason={}, message={}.",
                        c.kind, c.reason, c.message
                    ),
                    "read the condition's message: the controller that wrote it says what it could not do",
                );
            }
        }
    }
}
