//! Kyverno's `mutate` rules with `patchStrategicMerge`: the patch is laid
//! over the resource as a strategic merge (maps merged key by key, lists
//! of maps merged by `name`, other lists and scalars replaced, `null`
//! removing a key), with Kyverno's anchors: `+(key)` adds only what is
//! absent; `(key)` and `<(key)` are conditions on the resource (a
//! condition that fails leaves the resource as it was; in a list, it
//! skips that element). Mutations run before validation, as Kyverno's
//! mutating webhook runs before its validating one.

use serde_json::{Map, Value};
use weft_api::resource::Resource;

use crate::engine::{self, policy_spec, Request};
use crate::pattern::{self, parse_anchor, Anchor, Outcome};
use crate::vars;
use crate::world::World;

/// One rule's mutation of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    pub rule: String,
    /// The resource's object after the patch.
    pub object: Value,
}

/// Why a patch did not apply.
#[derive(Debug, Clone, PartialEq)]
enum NotApplied {
    /// A condition anchor did not hold.
    Condition,
}

/// What `policy`'s mutate rules make of `target` (its object as `object`,
/// which earlier mutations may have changed), in rule order; the errors
/// name the rule that could not be applied.
pub fn mutate(
    policy: &Resource,
    target: &Resource,
    object: &Value,
    world: &World<'_>,
) -> (Option<Mutation>, Vec<String>) {
    let mut errors = Vec::new();
    let Some((spec, _)) = policy_spec(policy) else {
        return (None, errors);
    };
    let mut current = object.clone();
    let mut applied: Vec<String> = Vec::new();
    for rule in spec.rules.iter() {
        let Some(m) = &rule.mutate else { continue };
        let Some(patch) = m.get("patchStrategicMerge") else {
            continue;
        };
        let req = Request {
            object: target,
            operation: "CREATE",
            old: None,
        };
        let Some(mut data) = engine::selected_data(policy, rule, &req, world) else {
            continue;
        };
        // Variables read the object as mutated so far.
        data["request"]["object"] = current.clone();
        let patch = match vars::substitute(patch, &data) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("rule {}: {e}", rule.name));
                continue;
            }
        };
        let mut next = current.clone();
        match merge(&mut next, &patch) {
            Ok(()) if next != current => {
                current = next;
                applied.push(rule.name.clone());
            }
            Ok(()) | Err(NotApplied::Condition) => {}
        }
    }
    let mutation = (!applied.is_empty()).then(|| Mutation {
        rule: applied.join(", "),
        object: current,
    });
    (mutation, errors)
}

/// Whether `key` is a condition on the resource (`(key)`, `<(key)`).
fn is_condition(key: &str) -> bool {
    matches!(
        parse_anchor(key),
        Some((Anchor::Condition | Anchor::Global, _))
    )
}

/// The patch with its anchors taken out: what is written when a key is
/// absent.
fn plain(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter_map(|(k, v)| match parse_anchor(k) {
                    Some((Anchor::AddIfNotPresent, name)) => Some((name.to_owned(), plain(v))),
                    Some(_) => None,
                    None => Some((k.clone(), plain(v))),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(plain).collect()),
        other => other.clone(),
    }
}

fn holds(resource: Option<&Value>, pattern: &Value) -> bool {
    resource.is_some_and(|r| pattern::validate(r, pattern) == Outcome::Pass)
}

/// Lays `patch` over `resource`.
fn merge(resource: &mut Value, patch: &Value) -> Result<(), NotApplied> {
    let Value::Object(p) = patch else {
        *resource = plain(patch);
        return Ok(());
    };
    if !resource.is_object() {
        *resource = Value::Object(Map::new());
    }
    // Conditions first: a patch whose conditions fail changes nothing.
    for (k, v) in p {
        if let Some((Anchor::Condition | Anchor::Global, name)) = parse_anchor(k) {
            if !holds(resource.get(name), v) {
                return Err(NotApplied::Condition);
            }
        }
    }
    let Value::Object(r) = resource else {
        return Ok(());
    };
    for (k, v) in p {
        match parse_anchor(k) {
            Some((Anchor::AddIfNotPresent, name)) => {
                if !r.contains_key(name) {
                    r.insert(name.to_owned(), plain(v));
                }
            }
            // Conditions were checked; other anchors are validate's.
            Some(_) => {}
            None => {
                if v.is_null() {
                    r.remove(k);
                    continue;
                }
                let slot = r.entry(k.clone()).or_insert(Value::Null);
                match (slot, v) {
                    (slot @ Value::Object(_), Value::Object(_)) => merge(slot, v)?,
                    (slot @ Value::Array(_), Value::Array(patches)) => merge_list(slot, patches)?,
                    (slot, v) => {
                        let mut fresh = Value::Null;
                        merge(&mut fresh, v)?;
                        *slot = fresh;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Lists of maps merge element by element: a patch element with
/// conditions applies to each element that meets them, one with a `name`
/// to the element of that name (or is added), others are added; any other
/// list replaces the resource's.
fn merge_list(resource: &mut Value, patches: &[Value]) -> Result<(), NotApplied> {
    if !patches.iter().all(Value::is_object) {
        *resource = Value::Array(patches.iter().map(plain).collect());
        return Ok(());
    }
    let Value::Array(items) = resource else {
        return Ok(());
    };
    for p in patches {
        let conditional = p
            .as_object()
            .is_some_and(|m| m.keys().any(|k| is_condition(k)));
        if conditional {
            for item in items.iter_mut() {
                let mut next = item.clone();
                if merge(&mut next, p).is_ok() {
                    *item = next;
                }
            }
            continue;
        }
        let name = p.get("name");
        match name.and_then(|n| items.iter_mut().find(|i| i.get("name") == Some(n))) {
            Some(item) => merge(item, p)?,
            None => items.push(plain(p)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(resource: Value, patch: Value) -> Value {
        let mut r = resource;
        merge(&mut r, &patch).expect("applies");
        r
    }

    #[test]
    fn maps_merge_and_labels_are_added() {
        assert_eq!(
            merged(
                json!({"metadata": {"name": "a", "labels": {"team": "x"}}}),
                json!({"metadata": {"labels": {"istio-injection": "enabled"}}})
            ),
            json!({"metadata": {"name": "a", "labels": {"team": "x", "istio-injection": "enabled"}}})
        );
        // Onto a namespace with no labels at all.
        assert_eq!(
            merged(
                json!({"metadata": {"name": "a"}}),
                json!({"metadata": {"labels": {"k": "v"}}})
            ),
            json!({"metadata": {"name": "a", "labels": {"k": "v"}}})
        );
    }

    #[test]
    fn add_if_absent_null_removes_and_conditions_gate() {
        let r = json!({"metadata": {"labels": {"a": "1"}}});
        assert_eq!(
            merged(
                r.clone(),
                json!({"metadata": {"labels": {"+(a)": "2", "+(b)": "2"}}})
            ),
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}})
        );
        assert_eq!(
            merged(r.clone(), json!({"metadata": {"labels": {"a": null}}})),
            json!({"metadata": {"labels": {}}})
        );
        let mut kept = r.clone();
        assert!(merge(
            &mut kept,
            &json!({"metadata": {"labels": {"(a)": "9", "b": "2"}}})
        )
        .is_err());
        assert_eq!(kept, r);
    }

    #[test]
    fn lists_merge_by_name_and_by_condition() {
        let pod = json!({"spec": {"containers": [{"name": "app", "image": "nginx:latest"}, {"name": "side", "image": "busybox:1"}]}});
        assert_eq!(
            merged(
                pod.clone(),
                json!({"spec": {"containers": [{"(image)": "*:latest", "imagePullPolicy": "Always"}]}})
            ),
            json!({"spec": {"containers": [{"name": "app", "image": "nginx:latest", "imagePullPolicy": "Always"}, {"name": "side", "image": "busybox:1"}]}})
        );
        assert_eq!(
            merged(
                pod,
                json!({"spec": {"containers": [{"name": "side", "image": "busybox:2"}, {"name": "new", "image": "x"}]}})
            )["spec"]["containers"],
            json!([{"name": "app", "image": "nginx:latest"}, {"name": "side", "image": "busybox:2"}, {"name": "new", "image": "x"}])
        );
    }
}
