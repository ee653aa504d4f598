//! A pattern's leaf values: booleans and numbers compare as such; a
//! string is alternatives (`a | b`), each all of (`a & b`), each an
//! operator (`!`, `>`, `<`, `>=`, `<=`, ranges `1-10` and `1!-10`) over
//! a wildcard string, a Kubernetes quantity or a Go duration.

use serde_json::Value;

use crate::wildcard;

/// Whether `value` (from the resource; `Null` when absent) matches the
/// leaf `pattern`.
pub fn matches(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(b) => value.as_bool() == Some(*b),
        Value::Number(n) => match (n.as_i64(), value) {
            (Some(p), _) => int_matches(value, p),
            (None, _) => float_matches(value, n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Null => match value {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Array(_) | Value::Object(_) => false,
        },
        Value::String(p) => string_patterns(value, p),
        // A map leaf only asks for a map; a list never matches a leaf.
        Value::Object(_) => value.is_object(),
        Value::Array(_) => false,
    }
}

fn int_matches(value: &Value, pattern: i64) -> bool {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => i == pattern,
            None => n
                .as_f64()
                .is_some_and(|f| f == f.trunc() && f as i64 == pattern),
        },
        Value::String(s) => s.parse::<i64>().is_ok_and(|i| i == pattern),
        _ => false,
    }
}

fn float_matches(value: &Value, pattern: f64) -> bool {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(i) => pattern == pattern.trunc() && pattern as i64 == i,
            None => n.as_f64() == Some(pattern),
        },
        Value::String(s) => s.parse::<f64>().is_ok_and(|f| f == pattern),
        _ => false,
    }
}

fn string_patterns(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|alternative| {
        alternative
            .trim_matches(' ')
            .split('&')
            .all(|part| string_pattern(value, part.trim_matches(' ')))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    More,
    Less,
    MoreEqual,
    LessEqual,
}

fn string_pattern(value: &Value, pattern: &str) -> bool {
    if let Some((lo, hi)) = range(pattern, "!-") {
        return string_pattern(value, &format!("< {lo}"))
            || string_pattern(value, &format!("> {hi}"));
    }
    let op = if pattern.len() < 2 {
        Op::Equal
    } else if pattern.starts_with(">=") {
        Op::MoreEqual
    } else if pattern.starts_with("<=") {
        Op::LessEqual
    } else if pattern.starts_with('>') {
        Op::More
    } else if pattern.starts_with('<') {
        Op::Less
    } else if pattern.starts_with('!') {
        Op::NotEqual
    } else if let Some((lo, hi)) = range(pattern, "-") {
        return string_pattern(value, &format!(">= {lo}"))
            && string_pattern(value, &format!("<= {hi}"));
    } else {
        Op::Equal
    };
    let operand = match op {
        Op::Equal => pattern,
        Op::NotEqual | Op::More | Op::Less => &pattern[1..],
        Op::MoreEqual | Op::LessEqual => &pattern[2..],
    }
    .trim();
    if let Some(ordering) = compare_as(value, operand, parse_duration) {
        return holds(op, ordering);
    }
    if let Some(ordering) = compare_as(value, operand, parse_quantity) {
        return holds(op, ordering);
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => go_exponent(n.as_f64().unwrap_or(0.0)),
        },
        _ => return false,
    };
    match op {
        Op::Equal => wildcard::matches(operand, &text),
        Op::NotEqual => !wildcard::matches(operand, &text),
        _ => false,
    }
}

fn holds(op: Op, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        Op::Equal => ordering == Equal,
        Op::NotEqual => ordering != Equal,
        Op::More => ordering == Greater,
        Op::Less => ordering == Less,
        Op::MoreEqual => ordering != Less,
        Op::LessEqual => ordering != Greater,
    }
}

/// `lo<sep>hi` where both ends are numbers, optionally with a unit.
fn range<'a>(pattern: &'a str, sep: &str) -> Option<(&'a str, &'a str)> {
    let bound = |s: &str| {
        let s = s.strip_prefix(['-', '+', '|']).unwrap_or(s);
        let digits_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(digits_end);
        !num.is_empty()
            && num.parse::<f64>().is_ok()
            && !num.ends_with('.')
            && unit.chars().all(|c| c.is_ascii_alphabetic())
    };
    // The separator after the first bound (which may carry a sign).
    let start = usize::from(pattern.starts_with(['-', '+']));
    let at = pattern[start..].find(sep)? + start;
    let (lo, hi) = (&pattern[..at], &pattern[at + sep.len()..]);
    if sep == "-" && lo.ends_with('!') {
        return None;
    }
    (bound(lo) && bound(hi)).then_some((lo, hi))
}

/// Both sides read by `parse` (an absent value reads as `0`), compared.
fn compare_as(
    value: &Value,
    operand: &str,
    parse: fn(&str) -> Option<f64>,
) -> Option<std::cmp::Ordering> {
    let pattern = parse(operand)?;
    let text = match value {
        Value::Null => "0".to_owned(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{:.6}", n.as_f64().unwrap_or(0.0)),
        },
        _ => return None,
    };
    parse(&text)?.partial_cmp(&pattern)
}

/// A Kubernetes quantity (`500m`, `1Gi`, `1e3`) as a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    if num.is_empty() || num == "+" || num == "-" {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    Some(n * scale)
}

/// A Go duration (`1h30m`, `250ms`, `0`) in seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let (sign, mut rest) = match s.strip_prefix('-') {
        Some(r) => (-1.0, r),
        None => (1.0, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|i| *i > 0)?;
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * unit;
        rest = &rest[unit_end..];
    }
    Some(sign * total)
}

/// How Go prints a float with `%E`-style shortest digits (`1.5E+00`).
fn go_exponent(f: f64) -> String {
    let s = format!("{f:E}");
    match s.split_once('E') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}E{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_istio_policies_leaves() {
        let p = json!("UNSET | STRICT");
        assert!(matches(&json!("STRICT"), &p));
        assert!(matches(&json!("UNSET"), &p));
        assert!(!matches(&json!("PERMISSIVE"), &p));
        assert!(matches(&json!("ISTIO_MUTUAL"), &json!("!DISABLE")));
        assert!(!matches(&json!("DISABLE"), &json!("!DISABLE")));
        // An absent value never matches a negated string.
        assert!(!matches(&Value::Null, &json!("!DISABLE")));
        assert!(!matches(&json!("false"), &json!("!false")));
        assert!(matches(&json!("true"), &json!("!false")));
        assert!(matches(
            &json!("docker.io/app:1"),
            &json!("!*istio/proxyv2*")
        ));
        assert!(!matches(
            &json!("docker.io/istio/proxyv2:1.24"),
            &json!("!*istio/proxyv2*")
        ));
        assert!(matches(&json!(true), &json!(true)));
        assert!(!matches(&json!("true"), &json!(true)));
    }

    #[test]
    fn numbers_quantities_durations_and_ranges() {
        assert!(matches(&json!(3), &json!(">2")));
        assert!(!matches(&json!(2), &json!(">2")));
        assert!(matches(&json!("512Mi"), &json!("<1Gi")));
        assert!(matches(&json!("90m"), &json!(">1h")));
        assert!(matches(&json!(5), &json!("1-10")));
        assert!(!matches(&json!(11), &json!("1-10")));
        assert!(matches(&json!(11), &json!("1!-10")));
        assert!(matches(&json!("7"), &json!(7)));
        assert!(matches(&json!(7.0), &json!(7)));
        assert!(matches(&Value::Null, &Value::Null));
        assert!(matches(&json!(""), &Value::Null));
        assert!(!matches(&json!("x"), &Value::Null));
        assert!(matches(&json!(8080), &json!("80* | 90*")));
        assert!(matches(&json!(3), &json!(">1 & <5")));
        assert!(!matches(&json!(7), &json!(">1 & <5")));
    }
}
