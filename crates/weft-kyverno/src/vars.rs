//! Kyverno's variables: `{{ expr }}` in a string is a JMESPath query over
//! the rule's context. A string that is one variable becomes the query's
//! value (a list stays a list); a variable inside text is printed into it
//! (strings as they are, anything else as JSON). Innermost variables
//! resolve first, so `{{ a.{{ b }} }}` works; `\{{` is left alone.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::jmes;

/// Why a variable could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VarError {
    #[error("variable substitution failed: {0}")]
    Query(#[from] jmes::JmesError),
    /// Kyverno's JMESPath raises this where a field is absent from a map.
    #[error("variable substitution failed: Unknown key \"{key}\" in path")]
    UnknownKey { key: String },
    #[error("variable substitution failed: too many nested variables in {0:?}")]
    TooDeep(String),
}

fn variable() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(^|[^\\])(\{\{(?:\{[^{}]*\}|[^{}])*\}\})").expect("a valid pattern")
    })
}

/// Resolves one expression: the query's value, or Kyverno's error for a
/// plain path that names a field the data does not have.
pub fn query(expression: &str, data: &Value) -> Result<Value, VarError> {
    let found = jmes::search(expression, data)?;
    if found.is_null() {
        if let Some(key) = unknown_key(expression, data) {
            return Err(VarError::UnknownKey { key });
        }
    }
    Ok(found)
}

/// For a plain dotted path (`request.object.metadata.labels.app`), the
/// first key absent from a map on the way; `None` for anything else, where
/// JMESPath's null stands (a pipe, `||`, a function, a projection).
fn unknown_key(expression: &str, data: &Value) -> Option<String> {
    let plain = expression
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if !plain {
        return None;
    }
    let mut at = data;
    for key in expression.split('.') {
        match at {
            Value::Object(m) => match m.get(key) {
                Some(v) => at = v,
                None => return Some(key.to_owned()),
            },
            _ => return None,
        }
    }
    None
}

/// Substitutes every variable in `text`.
pub fn substitute_str(text: &str, data: &Value) -> Result<Value, VarError> {
    let mut current = Value::String(text.to_owned());
    // Each pass resolves the innermost variables; a bound stops a
    // result that keeps producing variables.
    for _ in 0..16 {
        let Value::String(s) = &current else {
            return Ok(current);
        };
        let Some(found) = variable().captures(s) else {
            return Ok(Value::String(s.replace("\\{{", "{{")));
        };
        let whole = found.get(2).expect("group 2 is the variable");
        let inner = &whole.as_str()[2..whole.as_str().len() - 2];
        let (shallow, expression) = match inner.trim().strip_prefix('-') {
            Some(rest) => (true, rest.trim()),
            None => (false, inner.trim()),
        };
        let value = query(expression, data)?;
        if whole.start() == 0 && whole.end() == s.len() {
            if shallow {
                if let Value::String(v) = &value {
                    return Ok(Value::String(v.replace("{{", "\\{{")));
                }
            }
            current = value;
            continue;
        }
        let printed = match &value {
            Value::String(v) if shallow => v.replace("{{", "\\{{"),
            Value::String(v) => v.clone(),
            other => other.to_string(),
        };
        let mut next = String::with_capacity(s.len());
        next.push_str(&s[..whole.start()]);
        next.push_str(&printed);
        next.push_str(&s[whole.end()..]);
        current = Value::String(next);
    }
    Err(VarError::TooDeep(text.to_owned()))
}

/// Substitutes variables in every string and every map key of `v`.
pub fn substitute(v: &Value, data: &Value) -> Result<Value, VarError> {
    Ok(match v {
        Value::String(s) if s.contains("{{") => substitute_str(s, data)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute(i, data))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = if k.contains("{{") {
                    match substitute_str(k, data)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    }
                } else {
                    k.clone()
                };
                out.insert(key, substitute(v, data)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "request": {"operation": "CREATE", "object": {"metadata": {"name": "bookinfo", "labels": {}}}},
            "allowed": ["a", "b"],
            "element": "*.example.com",
        })
    }

    #[test]
    fn whole_strings_keep_their_type_and_embedded_ones_print() {
        let d = data();
        assert_eq!(
            substitute_str("{{allowed}}", &d).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            substitute_str("ns {{ request.object.metadata.name }} has {{allowed}}", &d).unwrap(),
            json!("ns bookinfo has [\"a\",\"b\"]")
        );
        assert_eq!(
            substitute_str("{{ contains(element, '*') }}", &d).unwrap(),
            json!(true)
        );
        assert_eq!(
            substitute_str("{{ request.operation || 'BACKGROUND' }}", &d).unwrap(),
            json!("CREATE")
        );
        assert_eq!(
            substitute_str("\\{{ kept }}", &d).unwrap(),
            json!("{{ kept }}")
        );
    }

    #[test]
    fn absent_fields_are_errors_unless_defaulted() {
        let d = data();
        assert!(matches!(
            substitute_str("{{ request.object.metadata.labels.app }}", &d),
            Err(VarError::UnknownKey { key }) if key == "app"
        ));
        assert_eq!(
            substitute_str("{{ request.object.metadata.labels.app || 'none' }}", &d).unwrap(),
            json!("none")
        );
    }

    #[test]
    fn nested_variables_resolve_inside_out() {
        let d = json!({"which": "name", "meta": {"name": "x"}});
        assert_eq!(
            substitute_str("{{ meta.{{ which }} }}", &d).unwrap(),
            json!("x")
        );
    }
}
