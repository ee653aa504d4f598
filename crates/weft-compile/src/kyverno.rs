//! The platform's Kyverno policies (`kyverno.io/v1` ClusterPolicy and
//! Policy) at admission: every resource a user wrote is judged as a
//! CREATE, as Kyverno's background scans and CLI judge it, and each
//! failing rule becomes a diagnostic like the Guardrails' (an error that
//! refuses the resource under Enforce, a warning under Audit), placed at
//! the field the rule failed on.

use serde_json::Value;
use weft_api::diag::{Diagnostic, Severity};
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, ResourceKind};
use weft_api::types::weft::FailureAction;
use weft_kyverno::engine::{self, Request, Response, Status};
use weft_kyverno::world::World;

use crate::guardrails::{made_by_weft, RuleResult, CODE};

fn is_policy(r: &Resource) -> bool {
    matches!(r.kind(), ResourceKind::ClusterPolicy | ResourceKind::Policy)
}

/// A policy as PolicyReports name it.
fn policy_name(p: &Resource) -> String {
    if p.namespace().is_empty() {
        p.name().to_owned()
    } else {
        format!("{}/{}", p.namespace(), p.name())
    }
}

/// Each policy's responses to each resource a user wrote.
fn judge_all(resources: &[Resource]) -> Vec<(&Resource, &Resource, Response)> {
    let policies: Vec<&Resource> = resources.iter().filter(|r| is_policy(r)).collect();
    if policies.is_empty() {
        return Vec::new();
    }
    let world = World::new(resources);
    let mut out = Vec::new();
    for r in resources.iter().filter(|r| !made_by_weft(r)) {
        let req = Request {
            object: r,
            operation: "CREATE",
            old: None,
        };
        for p in &policies {
            for response in engine::evaluate(p, &req, &world) {
                out.push((*p, r, response));
            }
        }
    }
    out
}

/// Applies the policies' mutate rules (`patchStrategicMerge`) to the
/// resources users wrote, before anything judges them, as Kyverno's
/// mutating webhook runs before its validating one. A mutated resource
/// is read again from its new object (its positions are then those of
/// that object, in a file named after the original and the policy); each
/// mutation is reported as information, each rule that cannot be applied
/// as a warning.
pub fn mutate(resources: &mut [Resource]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mutating: Vec<Resource> = resources
        .iter()
        .filter(|p| {
            engine::policy_spec(p).is_some_and(|(s, _)| s.rules.iter().any(|r| r.mutate.is_some()))
        })
        .cloned()
        .collect();
    if mutating.is_empty() {
        return out;
    }
    let snapshot: Vec<Resource> = resources.to_vec();
    let world = World::new(&snapshot);
    for (i, original) in snapshot.iter().enumerate() {
        if made_by_weft(original) || is_policy(original) {
            continue;
        }
        let mut object = world.json(original);
        let mut by = Vec::new();
        for p in &mutating {
            let (mutation, errors) = weft_kyverno::mutate::mutate(p, original, &object, &world);
            for e in errors {
                out.push(
                    Diagnostic::new(
                        Severity::Warning,
                        CODE,
                        original.origin(),
                        format!("{} {} could not mutate it: {e}", p.kind(), policy_name(p)),
                    )
                    .with_resource(original.display_name()),
                );
            }
            if let Some(m) = mutation {
                object = m.object;
                by.push(format!("{} {} (rule {})", p.kind(), policy_name(p), m.rule));
            }
        }
        if by.is_empty() {
            continue;
        }
        let file = format!("{} (mutated by {})", original.source.file, by.join(", "));
        let text = serde_json::to_string_pretty(&object).unwrap_or_default();
        let reloaded = weft_api::load::load_bytes(&file, text.as_bytes());
        match reloaded.resources.into_iter().next() {
            Some(mutated) => {
                out.push(
                    Diagnostic::new(
                        Severity::Info,
                        CODE,
                        original.origin(),
                        format!("mutated by {}", by.join(", ")),
                    )
                    .with_resource(original.display_name()),
                );
                resources[i] = mutated;
            }
            None => {
                let why: Vec<String> = reloaded
                    .diagnostics
                    .iter()
                    .map(|d| d.message.clone())
                    .collect();
                out.push(
                    Diagnostic::new(
                        Severity::Warning,
                        CODE,
                        original.origin(),
                        format!(
                            "the mutation by {} does not make a valid {}, so it is not applied: {}",
                            by.join(", "),
                            original.kind(),
                            why.join("; ")
                        ),
                    )
                    .with_resource(original.display_name()),
                );
            }
        }
    }
    out
}

/// Every failing or unevaluable rule, as diagnostics.
pub fn check(resources: &[Resource]) -> Vec<Diagnostic> {
    judge_all(resources)
        .into_iter()
        .filter_map(|(p, r, response)| diagnostic(p, r, &response))
        .collect()
}

/// Every rule's result on every resource it selects.
pub fn results(resources: &[Resource]) -> Vec<RuleResult> {
    judge_all(resources)
        .into_iter()
        .map(|(p, r, response)| RuleResult {
            policy: policy_name(p),
            rule: response.rule.clone(),
            kind: r.kind(),
            namespace: r.namespace().to_owned(),
            name: r.name().to_owned(),
            result: response.status.as_str(),
            message: response.message.clone(),
            failure: diagnostic(p, r, &response),
            source: "kyverno",
        })
        .collect()
}

fn diagnostic(policy: &Resource, r: &Resource, response: &Response) -> Option<Diagnostic> {
    if !matches!(response.status, Status::Fail | Status::Error) {
        return None;
    }
    let (severity, action) = match response.action {
        FailureAction::Enforce => (Severity::Error, "refused"),
        FailureAction::Audit => (Severity::Warning, "audited"),
    };
    let field = response
        .path
        .as_deref()
        .map(|p| field_of(&r.to_json(), p))
        .unwrap_or_else(FieldPath::root);
    let by = format!("{} {}", policy.kind(), policy_name(policy));
    let fix = match (response.status, &response.wanted) {
        (Status::Error, _) => format!(
            "the rule could not be evaluated, so it counts as broken; fix {by} (rule {}) or exclude this resource from it",
            response.rule
        ),
        (_, Some(wanted)) => format!(
            "make {} match {} as {by} requires, or ask the platform team to exclude this resource",
            shown(&field),
            quoted(wanted)
        ),
        (_, None) => format!(
            "change the resource to meet rule {} of {by}, or ask the platform team to exclude it",
            response.rule
        ),
    };
    Some(
        Diagnostic::new(
            severity,
            CODE,
            r.locate(&field),
            format!(
                "{} ({action} by {by}, rule {})",
                response.message, response.rule
            ),
        )
        .with_field(&field)
        .with_resource(r.display_name())
        .with_fix(fix),
    )
}

fn shown(field: &FieldPath) -> String {
    let s = field.to_string();
    if s.is_empty() {
        "the resource".into()
    } else {
        s
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Kyverno's `/spec/a/b/` as a field path, reading the object to tell a
/// key that holds `/` (an annotation's) from two keys.
fn field_of(object: &Value, path: &str) -> FieldPath {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut field = FieldPath::root();
    let mut at = Some(object);
    let mut i = 0;
    while i < segments.len() {
        match at {
            Some(Value::Array(items)) => {
                let Ok(n) = segments[i].parse::<usize>() else {
                    break;
                };
                field = field.index(n);
                at = items.get(n);
                i += 1;
            }
            Some(Value::Object(m)) => {
                let end = (i + 1..=segments.len())
                    .rev()
                    .find(|end| m.contains_key(&segments[i..*end].join("/")))
                    .unwrap_or(segments.len());
                let key = segments[i..end].join("/");
                at = m.get(&key);
                field = field.key(&key);
                i = end;
            }
            // Past what the resource has: the rest names what is missing.
            _ => {
                let key = segments[i..].join("/");
                field = field.key(&key);
                break;
            }
        }
    }
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Vec<Resource> {
        let loaded = weft_api::load::load_bytes("policies.yaml", text.as_bytes());
        assert!(
            !loaded.diagnostics.iter().any(|d| d.is_error()),
            "{:#?}",
            loaded.diagnostics
        );
        loaded.resources
    }

    const STRICT: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: enforce-strict-mtls}\nspec:\n  validationFailureAction: ACTION\n  rules:\n  - name: validate-mtls\n    match: {any: [{resources: {kinds: [PeerAuthentication]}}]}\n    validate:\n      message: mTLS must be STRICT\n      pattern:\n        =(spec):\n          =(mtls):\n            =(mode): \"UNSET | STRICT\"\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: open, namespace: shop}\nspec:\n  mtls:\n    mode: PERMISSIVE\n";

    #[test]
    fn an_enforced_failure_is_an_error_at_the_field() {
        let resources = load(&STRICT.replace("ACTION", "Enforce"));
        let found = check(&resources);
        assert_eq!(found.len(), 1, "{found:#?}");
        let d = &found[0];
        assert_eq!(d.severity, Severity::Error);
        assert_eq!((d.origin.line, d.origin.column), (21, 11), "{d:#?}");
        assert_eq!(d.field, "spec.mtls.mode");
        assert_eq!(
            d.message,
            "validation error: mTLS must be STRICT. rule validate-mtls failed at path /spec/mtls/mode/ (refused by ClusterPolicy enforce-strict-mtls, rule validate-mtls)"
        );
        assert!(
            d.fix.as_deref().unwrap().contains("\"UNSET | STRICT\""),
            "{d:#?}"
        );
        assert_eq!(d.resource.as_deref(), Some("PeerAuthentication shop/open"));
    }

    #[test]
    fn an_audited_failure_is_a_warning_and_a_failed_result() {
        let resources = load(&STRICT.replace("ACTION", "Audit"));
        assert_eq!(check(&resources)[0].severity, Severity::Warning);
        let results = results(&resources);
        assert_eq!(results.len(), 1);
        assert_eq!(
            (
                results[0].policy.as_str(),
                results[0].rule.as_str(),
                results[0].result,
                results[0].source
            ),
            ("enforce-strict-mtls", "validate-mtls", "fail", "kyverno")
        );
    }

    #[test]
    fn annotation_keys_with_slashes_are_one_field() {
        let object =
            serde_json::json!({"metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}});
        assert_eq!(
            field_of(&object, "/metadata/annotations/sidecar.istio.io/inject/").to_string(),
            FieldPath::root()
                .key("metadata")
                .key("annotations")
                .key("sidecar.istio.io/inject")
                .to_string()
        );
        assert_eq!(
            field_of(&object, "/metadata/labels/").to_string(),
            "metadata.labels"
        );
    }
}
