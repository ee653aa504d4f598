//! Kyverno's condition operators over substituted keys and values, with
//! its typing rules: a null key holds for no operator; strings compare
//! as durations, then quantities, then wildcards; the set operators
//! compare elements as strings, wildcards on either side.

use serde_json::Value;
use weft_api::types::kyverno::Operator;

use crate::scalar::{parse_duration, parse_quantity};
use crate::wildcard;

/// Whether `key <op> value` holds.
pub fn holds(op: Operator, key: &Value, value: &Value) -> bool {
    if key.is_null() {
        return false;
    }
    match op {
        Operator::Equals | Operator::Equal => equals(key, value),
        Operator::NotEquals | Operator::NotEqual => !equals(key, value),
        Operator::AnyIn => set(key, value, SetOp::AnyIn),
        Operator::AllIn => set(key, value, SetOp::AllIn),
        Operator::AnyNotIn => set(key, value, SetOp::AnyNotIn),
        Operator::AllNotIn => set(key, value, SetOp::AllNotIn),
        Operator::In => legacy_in(key, value, true),
        Operator::NotIn => legacy_in(key, value, false),
        Operator::GreaterThan => ordered(key, value).is_some_and(|o| o.is_gt()),
        Operator::GreaterThanOrEquals => ordered(key, value).is_some_and(|o| o.is_ge()),
        Operator::LessThan => ordered(key, value).is_some_and(|o| o.is_lt()),
        Operator::LessThanOrEquals => ordered(key, value).is_some_and(|o| o.is_le()),
        Operator::DurationGreaterThan => durations(key, value).is_some_and(|o| o.is_gt()),
        Operator::DurationGreaterThanOrEquals => durations(key, value).is_some_and(|o| o.is_ge()),
        Operator::DurationLessThan => durations(key, value).is_some_and(|o| o.is_lt()),
        Operator::DurationLessThanOrEquals => durations(key, value).is_some_and(|o| o.is_le()),
    }
}

fn is_duration(s: &str) -> bool {
    s != "0" && parse_duration(s).is_some()
}

fn equals(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => {
            let k = n.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64() == Some(k),
                Value::String(s) if n.is_i64() => s.parse::<i64>().ok() == n.as_i64(),
                Value::String(s) => s.parse::<f64>().ok() == Some(k),
                _ => false,
            }
        }
        Value::String(k) => {
            let v_str = value.as_str();
            if is_duration(k) || v_str.is_some_and(is_duration) {
                let kd = parse_duration(k);
                let vd = match value {
                    Value::String(s) => parse_duration(s),
                    Value::Number(n) => n.as_f64(),
                    _ => None,
                };
                return kd.is_some() && kd == vd;
            }
            if let (Some(kq), Some(v)) = (parse_quantity(k), v_str) {
                return parse_quantity(v) == Some(kq);
            }
            v_str.is_some_and(|v| wildcard::matches(v, k))
        }
        Value::Array(_) | Value::Object(_) => key == value,
        Value::Null => false,
    }
}

/// Kyverno's names for the set operators.
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum SetOp {
    AnyIn,
    AllIn,
    AnyNotIn,
    AllNotIn,
}

/// Go's `fmt.Sprint` of a value, as Kyverno stringifies set elements.
fn sprint(v: &Value) -> String {
    crate::pattern::go_value(v)
}

fn either_way(a: &str, b: &str) -> bool {
    wildcard::matches(a, b) || wildcard::matches(b, a)
}

fn set(key: &Value, value: &Value, op: SetOp) -> bool {
    let values: Vec<String> = match value {
        Value::Array(items) => items.iter().map(sprint).collect(),
        Value::String(s) => {
            if let Some(k) = key.as_str() {
                if wildcard::matches(s, k) {
                    return matches!(op, SetOp::AnyIn | SetOp::AllIn);
                }
            }
            if let Some((lo, hi)) = numeric_range(s) {
                let in_range = |k: &Value| {
                    k.as_f64()
                        .or_else(|| k.as_str().and_then(|s| s.parse().ok()))
                        .is_some_and(|x| x >= lo && x <= hi)
                };
                let keys: Vec<&Value> = match key {
                    Value::Array(items) => items.iter().collect(),
                    k => vec![k],
                };
                return match op {
                    SetOp::AnyIn => keys.iter().any(|k| in_range(k)),
                    SetOp::AllIn => keys.iter().all(|k| in_range(k)),
                    SetOp::AnyNotIn => keys.iter().any(|k| !in_range(k)),
                    SetOp::AllNotIn => keys.iter().all(|k| !in_range(k)),
                };
            }
            match serde_json::from_str::<Vec<String>>(s) {
                Ok(list) => list,
                Err(_) => vec![s.clone()],
            }
        }
        Value::Number(_) | Value::Bool(_)
            if key.is_array() && matches!(op, SetOp::AnyIn | SetOp::AnyNotIn) =>
        {
            vec![sprint(value)]
        }
        _ => return false,
    };
    let found = |k: &str| values.iter().any(|v| either_way(k, v));
    match key {
        Value::Array(items) => {
            let keys: Vec<String> = items.iter().map(sprint).collect();
            match op {
                SetOp::AnyIn => keys.iter().any(|k| found(k)),
                SetOp::AllIn => keys.iter().all(|k| found(k)),
                SetOp::AnyNotIn => keys.iter().any(|k| !found(k)),
                SetOp::AllNotIn => keys.iter().all(|k| !found(k)),
            }
        }
        Value::Object(_) => false,
        scalar => {
            let hit = found(&sprint(scalar));
            match op {
                SetOp::AnyIn | SetOp::AllIn => hit,
                SetOp::AnyNotIn | SetOp::AllNotIn => !hit,
            }
        }
    }
}

/// `lo-hi` with numbers on both ends.
fn numeric_range(s: &str) -> Option<(f64, f64)> {
    let start = usize::from(s.starts_with(['-', '+']));
    let at = s[start..].find('-')? + start;
    let lo = s[..at].parse().ok()?;
    let hi = s[at + 1..].parse().ok()?;
    Some((lo, hi))
}

/// The deprecated `In`/`NotIn`.
fn legacy_in(key: &Value, value: &Value, in_: bool) -> bool {
    match key {
        Value::Array(items) => {
            let Value::Array(values) = value else {
                return false;
            };
            let contains = |k: &Value| values.contains(k);
            if in_ {
                items.iter().all(contains)
            } else {
                items.iter().any(|k| !contains(k))
            }
        }
        Value::Object(_) => false,
        scalar => {
            let k = sprint(scalar);
            let hit = match value {
                Value::Array(values) => values.iter().any(|v| either_way(&k, &sprint(v))),
                Value::String(s) => {
                    if wildcard::matches(s, &k) {
                        true
                    } else {
                        match serde_json::from_str::<Vec<String>>(s) {
                            Ok(list) => list.contains(&k),
                            // Neither a match nor a list: invalid, so
                            // neither In nor NotIn holds.
                            Err(_) => return false,
                        }
                    }
                }
                _ => return false,
            };
            hit == in_
        }
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn ordered(key: &Value, value: &Value) -> Option<std::cmp::Ordering> {
    match key {
        Value::Number(n) => {
            let k = n.as_f64()?;
            let v = match value {
                Value::String(s) if is_duration(s) => parse_duration(s)?,
                other => number_of(other)?,
            };
            k.partial_cmp(&v)
        }
        Value::String(k) => {
            let v_str = value.as_str();
            if is_duration(k) || v_str.is_some_and(is_duration) {
                let kd = parse_duration(k).or_else(|| k.parse().ok())?;
                let vd = match value {
                    Value::String(s) => parse_duration(s).or_else(|| s.parse().ok())?,
                    other => number_of(other)?,
                };
                return kd.partial_cmp(&vd);
            }
            if let (Some(kq), Some(vq)) = (parse_quantity(k), v_str.and_then(parse_quantity)) {
                return kq.partial_cmp(&vq);
            }
            if let Ok(kn) = k.parse::<f64>() {
                return kn.partial_cmp(&number_of(value)?);
            }
            semver(k)?.partial_cmp(&semver(v_str?)?)
        }
        _ => None,
    }
}

fn semver(s: &str) -> Option<(u64, u64, u64)> {
    let core = s.trim_start_matches('v').split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>());
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = parts.next()?.ok()?;
    parts.next().is_none().then_some((major, minor, patch))
}

fn durations(key: &Value, value: &Value) -> Option<std::cmp::Ordering> {
    let seconds = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_duration(s),
        _ => None,
    };
    seconds(key)?.partial_cmp(&seconds(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use Operator::*;

    #[test]
    fn equals_by_the_keys_type() {
        assert!(holds(Equals, &json!(true), &json!(true)));
        assert!(holds(Equals, &json!(8080), &json!("8080")));
        assert!(!holds(Equals, &json!("8080"), &json!(8080)));
        assert!(holds(Equals, &json!("reviews-v1"), &json!("reviews-*")));
        assert!(holds(Equals, &json!("1h"), &json!("60m")));
        assert!(!holds(NotEquals, &Value::Null, &json!("x")));
        assert!(holds(NotEquals, &json!("a"), &json!(3)));
    }

    #[test]
    fn set_operators_as_the_istio_policies_use_them() {
        let allowed = json!(["AUDIT_WRITE", "CHOWN", "NET_BIND_SERVICE"]);
        assert!(holds(AnyNotIn, &json!(["SYS_ADMIN"]), &allowed));
        assert!(!holds(AnyNotIn, &json!(["CHOWN"]), &allowed));
        assert!(!holds(AnyNotIn, &json!([]), &allowed));
        assert!(holds(
            AnyIn,
            &json!("docker.io/istio/proxyv2:1.22.0"),
            &json!(["*/istio/proxyv2*", "*/linkerd/proxy-init*"])
        ));
        assert!(holds(
            AnyNotIn,
            &json!("busybox"),
            &json!(["*/istio/proxyv2*"])
        ));
        // A nested list in the value is one element, printed as Go does.
        assert!(holds(
            AnyNotIn,
            &json!(["CHOWN"]),
            &json!(["NET_ADMIN", ["CHOWN"]])
        ));
        assert!(holds(
            AnyNotIn,
            &json!("default"),
            &json!(["bookinfo", "istio-system"])
        ));
        assert!(!holds(
            AnyNotIn,
            &json!("bookinfo"),
            &json!(["bookinfo", "istio-system"])
        ));
        assert!(holds(AnyIn, &json!("CREATE"), &json!(["CREATE", "UPDATE"])));
        assert!(holds(AllIn, &json!(["a", "b"]), &json!(["*"])));
        assert!(holds(AnyIn, &json!(5), &json!("1-10")));
    }

    #[test]
    fn orderings_of_numbers_durations_quantities_and_versions() {
        assert!(holds(GreaterThan, &json!(3), &json!("2")));
        assert!(holds(LessThan, &json!("512Mi"), &json!("1Gi")));
        assert!(holds(GreaterThanOrEquals, &json!("1h"), &json!("60m")));
        assert!(holds(LessThan, &json!("1.24.0"), &json!("1.30.1")));
        assert!(holds(DurationGreaterThan, &json!("2h"), &json!(3600)));
        assert!(!holds(GreaterThan, &json!(true), &json!(false)));
    }
}
