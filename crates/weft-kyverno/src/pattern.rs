//! Kyverno's validation patterns: a pattern is laid over the resource,
//! maps key by key, lists element by element, leaves by `scalar`. The
//! anchors change what a key asks: `(k)` a condition (when it fails the
//! enclosing map is skipped, not failed), `=(k)` only if present, `X(k)`
//! never present, `^(k)` some element of a list matches, `<(k)` a
//! condition on the whole rule. The order of evaluation, the skip rules
//! and the reported paths (`/spec/mtls/mode/`) are Kyverno's, so a policy
//! passes, fails or skips here exactly where it does there.

use std::collections::VecDeque;

use serde_json::{Map, Value};

use crate::{scalar, wildcard};

/// What a pattern says of a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    /// A condition did not hold: the rule does not apply.
    Skip(String),
    /// The resource breaks the pattern at `path`.
    Fail {
        path: String,
        reason: String,
    },
}

/// Lays `pattern` over `resource`.
pub fn validate(resource: &Value, pattern: &Value) -> Outcome {
    match element(resource, pattern, "/") {
        Ok(()) => Outcome::Pass,
        Err(e) if e.is(AnchorError::Conditional) || e.is(AnchorError::Global) => {
            Outcome::Skip(e.message)
        }
        Err(e) => Outcome::Fail {
            path: e.path,
            reason: e.message,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AnchorError {
    Conditional,
    Global,
    Negation,
}

impl AnchorError {
    fn prefix(self) -> &'static str {
        match self {
            AnchorError::Conditional => "conditional anchor mismatch",
            AnchorError::Global => "global anchor mismatch",
            AnchorError::Negation => "negation anchor matched in resource",
        }
    }
}

#[derive(Debug, Clone)]
struct Error {
    path: String,
    message: String,
    /// Raised by an anchor itself; otherwise an error is classed by what
    /// its message says, as Kyverno classes wrapped errors.
    anchor: Option<AnchorError>,
    /// A map or list skipped whole (Kyverno's `PatternError` with Skip).
    skipped_whole: bool,
}

impl Error {
    fn plain(path: &str, message: String) -> Error {
        Error {
            path: path.to_owned(),
            message,
            anchor: None,
            skipped_whole: false,
        }
    }

    fn anchored(kind: AnchorError, path: &str, message: &str) -> Error {
        Error {
            path: path.to_owned(),
            message: format!("{}: {message}", kind.prefix()),
            anchor: Some(kind),
            skipped_whole: false,
        }
    }

    fn is(&self, kind: AnchorError) -> bool {
        match self.anchor {
            Some(k) => k == kind,
            None => self.message.contains(kind.prefix()),
        }
    }

    fn skips(&self) -> bool {
        self.is(AnchorError::Conditional) || self.is(AnchorError::Global)
    }

    fn skipped(path: &str, errors: &[Error]) -> Error {
        Error {
            path: path.to_owned(),
            message: errors
                .iter()
                .map(|e| e.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            anchor: None,
            skipped_whole: true,
        }
    }
}

type Checked = Result<(), Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    Condition,
    Global,
    Negation,
    AddIfNotPresent,
    Equality,
    Existence,
}

/// `(k)`, `<(k)`, `X(k)`, `+(k)`, `=(k)`, `^(k)`.
pub(crate) fn parse_anchor(key: &str) -> Option<(Anchor, &str)> {
    let key = key.trim();
    let (kind, rest) = match key.chars().next()? {
        '<' => (Anchor::Global, &key[1..]),
        'X' => (Anchor::Negation, &key[1..]),
        '+' => (Anchor::AddIfNotPresent, &key[1..]),
        '=' => (Anchor::Equality, &key[1..]),
        '^' => (Anchor::Existence, &key[1..]),
        _ => (Anchor::Condition, key),
    };
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    (!inner.is_empty()).then_some((kind, inner))
}

fn element(resource: &Value, pattern: &Value, path: &str) -> Checked {
    match pattern {
        Value::Object(p) => match resource {
            Value::Object(r) => map(r, p, path),
            other => Err(Error::plain(
                path,
                format!(
                    "pattern and resource have different structures. Path: {path}. Expected map[string]interface {{}}, found {}",
                    go_type(other)
                ),
            )),
        },
        Value::Array(p) => match resource {
            Value::Array(r) => array(r, p, path),
            _ => Err(Error::plain(
                path,
                format!("validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"),
            )),
        },
        leaf => {
            let holds = match resource {
                Value::Array(items) => items.iter().all(|v| scalar::matches(v, leaf)),
                v => scalar::matches(v, leaf),
            };
            if holds {
                Ok(())
            } else {
                Err(Error::plain(
                    path,
                    format!(
                        "resource value '{}' does not match '{}' at path {path}",
                        go_value(resource),
                        go_value(leaf)
                    ),
                ))
            }
        }
    }
}

fn map(resource: &Map<String, Value>, pattern: &Map<String, Value>, path: &str) -> Checked {
    let expanded;
    let pattern = if path == "/" || pattern.contains_key("metadata") {
        expanded = expand_metadata_wildcards(pattern, resource);
        &expanded
    } else {
        pattern
    };
    let mut anchors: Vec<(&String, &Value)> = Vec::new();
    let mut plain: Vec<(&String, &Value)> = Vec::new();
    for (k, v) in pattern {
        match parse_anchor(k) {
            Some((
                Anchor::Condition | Anchor::Existence | Anchor::Equality | Anchor::Negation,
                _,
            )) => anchors.push((k, v)),
            _ => plain.push((k, v)),
        }
    }
    anchors.sort_by(|a, b| a.0.cmp(b.0));

    let mut skips: Vec<Error> = Vec::new();
    let mut applied = 0;
    for (key, value) in anchors {
        match handle(key, value, resource, path) {
            Ok(()) => applied += 1,
            Err(e) if e.skips() => skips.push(e),
            Err(e) => {
                if !skips.iter().any(|s| !s.skipped_whole) {
                    return Err(e);
                }
            }
        }
    }
    if !skips.is_empty() && (applied == 0 || skips.iter().any(|s| !s.skipped_whole)) {
        return Err(Error::skipped(path, &skips));
    }

    // Keys whose values hold anchors (and global anchors) first, as
    // Kyverno orders them: pushed to the front in key order.
    plain.sort_by(|a, b| a.0.cmp(b.0));
    let mut ordered: VecDeque<(&String, &Value)> = VecDeque::new();
    for (k, v) in plain {
        if matches!(parse_anchor(k), Some((Anchor::Global, _))) || has_nested_anchors(v) {
            ordered.push_front((k, v));
        } else {
            ordered.push_back((k, v));
        }
    }
    for (key, value) in ordered {
        handle(key, value, resource, path)?;
    }
    Ok(())
}

fn has_nested_anchors(v: &Value) -> bool {
    match v {
        Value::Object(m) => {
            m.keys().any(|k| {
                matches!(
                    parse_anchor(k),
                    Some((
                        Anchor::Condition
                            | Anchor::Existence
                            | Anchor::Equality
                            | Anchor::Negation
                            | Anchor::Global,
                        _
                    ))
                )
            }) || m.values().any(has_nested_anchors)
        }
        Value::Array(items) => items.iter().any(has_nested_anchors),
        _ => false,
    }
}

/// One key of a map pattern, by its anchor.
fn handle(key: &str, pattern: &Value, resource: &Map<String, Value>, path: &str) -> Checked {
    let anchor = parse_anchor(key).filter(|(a, _)| *a != Anchor::AddIfNotPresent);
    let Some((anchor, name)) = anchor else {
        let here = format!("{path}{key}/");
        let found = resource.get(key).unwrap_or(&Value::Null);
        if pattern.as_str() == Some("*") {
            return if found.is_null() {
                Err(Error::plain(path, format!("{path}/{key} not found")))
            } else {
                Ok(())
            };
        }
        return element(found, pattern, &here);
    };
    let here = format!("{path}{name}/");
    let found = resource.get(name);
    match anchor {
        Anchor::Negation => match found {
            Some(_) => Err(Error::anchored(
                AnchorError::Negation,
                &here,
                &format!("{here} is not allowed"),
            )),
            None => Ok(()),
        },
        Anchor::Equality => match found {
            Some(v) => element(v, pattern, &here),
            None => Ok(()),
        },
        Anchor::Condition => match found {
            Some(v) => element(v, pattern, &here).map_err(|e| Error {
                anchor: Some(AnchorError::Conditional),
                message: format!("{}: {}", AnchorError::Conditional.prefix(), e.message),
                path: e.path,
                skipped_whole: false,
            }),
            None => Err(Error::anchored(
                AnchorError::Conditional,
                &here,
                "conditional anchor key doesn't exist in the resource",
            )),
        },
        Anchor::Global => match found {
            Some(v) => element(v, pattern, &here).map_err(|e| Error {
                anchor: Some(AnchorError::Global),
                message: format!("{}: {}", AnchorError::Global.prefix(), e.message),
                path: e.path,
                skipped_whole: false,
            }),
            None => Ok(()),
        },
        Anchor::Existence => match found {
            None => Ok(()),
            Some(Value::Array(items)) => {
                let Value::Array(patterns) = pattern else {
                    return Err(Error::plain(
                        &here,
                        format!("invalid pattern type {}: Pattern has to be of list to compare against resource", go_type(pattern)),
                    ));
                };
                for p in patterns {
                    if !p.is_object() {
                        return Err(Error::plain(
                            &here,
                            format!("invalid pattern type {}: Pattern has to be of type map to compare against items in resource", go_type(pattern)),
                        ));
                    }
                    let any = items.iter().enumerate().any(|(i, item)| {
                        element(item, p, &format!("{here}{i}/")).is_ok()
                    });
                    if !any {
                        return Err(Error::plain(
                            &here,
                            format!("existence anchor validation failed at path {here}"),
                        ));
                    }
                }
                Ok(())
            }
            Some(other) => Err(Error::plain(
                &here,
                format!(
                    "invalid resource type {}: Existence ^ () anchor can be used only on list/array type resource",
                    go_type(other)
                ),
            )),
        },
        Anchor::AddIfNotPresent => Ok(()),
    }
}

fn array(resource: &[Value], pattern: &[Value], path: &str) -> Checked {
    let Some(first) = pattern.first() else {
        return Err(Error::plain(path, "pattern Array empty".into()));
    };
    match first {
        // Every element against the first pattern.
        Value::Object(_) => each(resource.iter().map(|item| (item, first)), path),
        Value::Array(_) => {
            if resource.len() < pattern.len() {
                return Err(Error::plain(
                    "",
                    format!(
                        "validate Array failed, array length mismatch, resource Array len is {} and pattern Array len is {}",
                        resource.len(),
                        pattern.len()
                    ),
                ));
            }
            // Element by element.
            each(resource.iter().zip(pattern), path)
        }
        leaf => element(&Value::Array(resource.to_vec()), leaf, path),
    }
}

/// Each `(element, pattern)` of a list at `path`: the first failure
/// fails it; skipped elements are passed over, and a list whose every
/// element was skipped is skipped.
fn each<'a>(pairs: impl Iterator<Item = (&'a Value, &'a Value)>, path: &str) -> Checked {
    let mut skips = Vec::new();
    let mut applied = 0;
    for (i, (item, p)) in pairs.enumerate() {
        match element(item, p, &format!("{path}{i}/")) {
            Ok(()) => applied += 1,
            Err(e) if e.skips() => skips.push(e),
            Err(e) => return Err(e),
        }
    }
    if applied == 0 && !skips.is_empty() {
        return Err(Error::skipped(path, &skips));
    }
    Ok(())
}

/// Wildcard keys under `metadata.labels` and `metadata.annotations` name
/// the resource's key they match (or none that exists).
fn expand_metadata_wildcards(
    pattern: &Map<String, Value>,
    resource: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = pattern.clone();
    let Some((meta_key, Value::Object(meta))) = pattern
        .iter()
        .find(|(k, _)| {
            k.as_str() == "metadata" || parse_anchor(k).is_some_and(|(_, n)| n == "metadata")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
    else {
        return out;
    };
    let Some(Value::Object(resource_meta)) = resource.get("metadata") else {
        return out;
    };
    let mut meta = meta.clone();
    for tag in ["labels", "annotations"] {
        let Some((tag_key, Value::Object(wanted))) = meta
            .iter()
            .find(|(k, _)| k.as_str() == tag || parse_anchor(k).is_some_and(|(_, n)| n == tag))
            .map(|(k, v)| (k.clone(), v.clone()))
        else {
            continue;
        };
        let have = resource_meta.get(tag).and_then(Value::as_object);
        let mut expanded = Map::new();
        for (k, v) in wanted {
            let (anchor, name) = match parse_anchor(&k) {
                Some((a, n)) => (Some((a, k.find('(').unwrap_or(0))), n.to_owned()),
                None => (None, k.clone()),
            };
            if !wildcard::has_wildcard(&name) {
                expanded.insert(k, v);
                continue;
            }
            let actual = have
                .and_then(|h| h.keys().find(|rk| wildcard::matches(&name, rk)).cloned())
                .unwrap_or_else(|| name.replace(['*', '?'], "0"));
            let key = match anchor {
                Some((_, open)) => format!("{}({actual})", &k[..open]),
                None => actual,
            };
            expanded.insert(key, v);
        }
        meta.insert(tag_key, Value::Object(expanded));
    }
    out.insert(meta_key, Value::Object(meta));
    out
}

/// A value as Go's `%v` prints it, for messages that quote Kyverno's.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_value(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fail_path(resource: Value, pattern: Value) -> String {
        match validate(&resource, &pattern) {
            Outcome::Fail { path, .. } => path,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn equality_anchors_judge_only_what_is_there() {
        let pattern = json!({"=(spec)": {"=(mtls)": {"=(mode)": "UNSET | STRICT"}}});
        assert_eq!(validate(&json!({"spec": {}}), &pattern), Outcome::Pass);
        assert_eq!(
            validate(&json!({"spec": {"mtls": {"mode": "STRICT"}}}), &pattern),
            Outcome::Pass
        );
        assert_eq!(
            fail_path(json!({"spec": {"mtls": {"mode": "PERMISSIVE"}}}), pattern),
            "/spec/mtls/mode/"
        );
    }

    #[test]
    fn plain_keys_must_be_there() {
        let pattern = json!({"metadata": {"labels": {"istio-injection": "enabled"}}});
        assert_eq!(
            fail_path(json!({"metadata": {"name": "a"}}), pattern.clone()),
            "/metadata/labels/"
        );
        assert_eq!(
            validate(
                &json!({"metadata": {"labels": {"istio-injection": "enabled"}}}),
                &pattern
            ),
            Outcome::Pass
        );
    }

    #[test]
    fn conditions_skip_list_elements_and_whole_maps() {
        let pattern = json!({"spec": {"containers": [{"(image)": "*istio*", "securityContext": {"runAsNonRoot": true}}]}});
        // No element meets the condition: the whole rule is skipped.
        assert!(matches!(
            validate(
                &json!({"spec": {"containers": [{"image": "app"}]}}),
                &pattern
            ),
            Outcome::Skip(_)
        ));
        // One does, and keeps to the rest: a pass.
        let r = json!({"spec": {"containers": [{"image": "app"}, {"image": "istio", "securityContext": {"runAsNonRoot": true}}]}});
        assert_eq!(validate(&r, &pattern), Outcome::Pass);
        // One does and breaks it: a failure at its path.
        let r = json!({"spec": {"containers": [{"image": "app"}, {"image": "istio"}]}});
        assert_eq!(fail_path(r, pattern), "/spec/containers/1/securityContext/");
    }

    #[test]
    fn negation_existence_and_global_anchors() {
        assert_eq!(
            fail_path(
                json!({"spec": {"hostNetwork": true}}),
                json!({"spec": {"X(hostNetwork)": "null"}})
            ),
            "/spec/hostNetwork/"
        );
        let exists = json!({"spec": {"^(containers)": [{"name": "istio-proxy"}]}});
        assert_eq!(
            validate(
                &json!({"spec": {"containers": [{"name": "a"}, {"name": "istio-proxy"}]}}),
                &exists
            ),
            Outcome::Pass
        );
        assert!(matches!(
            validate(&json!({"spec": {"containers": [{"name": "a"}]}}), &exists),
            Outcome::Fail { .. }
        ));
        let global = json!({"spec": {"<(kind)": "Deployment", "replicas": ">1"}});
        assert!(matches!(
            validate(&json!({"spec": {"kind": "Job", "replicas": 1}}), &global),
            Outcome::Skip(_)
        ));
        assert!(matches!(
            validate(
                &json!({"spec": {"kind": "Deployment", "replicas": 1}}),
                &global
            ),
            Outcome::Fail { .. }
        ));
    }

    #[test]
    fn wildcard_keys_in_metadata_name_the_resources_key() {
        let pattern = json!({"metadata": {"labels": {"app.kubernetes.io/*": "?*"}}});
        assert_eq!(
            validate(
                &json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}}),
                &pattern
            ),
            Outcome::Pass
        );
        assert!(matches!(
            validate(&json!({"metadata": {"labels": {"team": "x"}}}), &pattern),
            Outcome::Fail { .. }
        ));
    }
}
