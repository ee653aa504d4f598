//! weft's comparison of the canary with the primary, beside Flagger's
//! absolute thresholds: a metric may be held to what the primary shows
//! over the same interval, so that a release is judged against the
//! version it replaces rather than against a fixed number. Flagger's YAML
//! has no place for it; it is the Canary's annotation
//! `weft.dev/canary-compare-to-primary`, one rule per metric, separated
//! by commas:
//!
//! ```text
//! request-success-rate >= primary - 1, request-duration <= primary * 1.2
//! ```
//!
//! A rule is `METRIC (<= | >=) primary [(+ | - | *) NUMBER]`.

use std::fmt;

/// The annotation that holds the rules.
pub const ANNOTATION: &str = "weft.dev/canary-compare-to-primary";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The canary's value may be at most the limit.
    AtMost,
    /// The canary's value must be at least the limit.
    AtLeast,
}

/// How the limit is made from the primary's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Offset {
    Same,
    Plus(f64),
    Minus(f64),
    Times(f64),
}

/// One metric held to the primary's value.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub metric: String,
    pub bound: Bound,
    pub offset: Offset,
}

impl Rule {
    /// The limit the canary's value is held to, given the primary's.
    pub fn limit(&self, primary: f64) -> f64 {
        match self.offset {
            Offset::Same => primary,
            Offset::Plus(n) => primary + n,
            Offset::Minus(n) => primary - n,
            Offset::Times(f) => primary * f,
        }
    }

    /// Whether `value` keeps to the limit the primary's value sets.
    pub fn admits(&self, value: f64, primary: f64) -> bool {
        let limit = self.limit(primary);
        match self.bound {
            Bound::AtMost => value <= limit,
            Bound::AtLeast => value >= limit,
        }
    }
}

impl fmt::Display for Rule {
    /// The rule as written, normalized: `<= primary * 1.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.bound {
            Bound::AtMost => "<=",
            Bound::AtLeast => ">=",
        };
        match self.offset {
            Offset::Same => write!(f, "{op} primary"),
            Offset::Plus(n) => write!(f, "{op} primary + {n}"),
            Offset::Minus(n) => write!(f, "{op} primary - {n}"),
            Offset::Times(n) => write!(f, "{op} primary * {n}"),
        }
    }
}

/// Reads the annotation's rules; the first one that does not parse is
/// the error, with what a rule looks like.
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules: Vec<Rule> = Vec::new();
    for part in text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let rule = parse_rule(part).map_err(|why| {
            format!("{part:?}: {why}; a rule is METRIC <= primary [+|-|* NUMBER] or METRIC >= primary [...]")
        })?;
        if rules.iter().any(|r| r.metric == rule.metric) {
            return Err(format!("{part:?}: {} has a rule already", rule.metric));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_rule(part: &str) -> Result<Rule, String> {
    let (metric, bound, rest) = if let Some((m, r)) = part.split_once("<=") {
        (m, Bound::AtMost, r)
    } else if let Some((m, r)) = part.split_once(">=") {
        (m, Bound::AtLeast, r)
    } else {
        return Err("no <= or >=".into());
    };
    let metric = metric.trim();
    if metric.is_empty() || metric.contains(char::is_whitespace) {
        return Err("the metric's name comes first".into());
    }
    let rest = rest
        .trim()
        .strip_prefix("primary")
        .ok_or("the limit is made from `primary`")?
        .trim();
    let number = |s: &str| -> Result<f64, String> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| format!("{:?} is not a number of 0 or more", s.trim()))
    };
    let offset = if rest.is_empty() {
        Offset::Same
    } else if let Some(n) = rest.strip_prefix('+') {
        Offset::Plus(number(n)?)
    } else if let Some(n) = rest.strip_prefix('-') {
        Offset::Minus(number(n)?)
    } else if let Some(n) = rest.strip_prefix('*') {
        Offset::Times(number(n)?)
    } else {
        return Err(format!("{rest:?} after primary: use + N, - N or * N"));
    };
    Ok(Rule {
        metric: metric.to_owned(),
        bound,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_written_and_bad_ones_say_why() {
        let rules =
            parse("request-success-rate >= primary - 1, request-duration <= primary * 1.2,\nerrors<=primary")
                .unwrap();
        assert_eq!(
            rules,
            [
                Rule {
                    metric: "request-success-rate".into(),
                    bound: Bound::AtLeast,
                    offset: Offset::Minus(1.0)
                },
                Rule {
                    metric: "request-duration".into(),
                    bound: Bound::AtMost,
                    offset: Offset::Times(1.2)
                },
                Rule {
                    metric: "errors".into(),
                    bound: Bound::AtMost,
                    offset: Offset::Same
                },
            ]
        );
        assert_eq!(rules[1].to_string(), "<= primary * 1.2");
        assert!(rules[0].admits(98.5, 99.4));
        assert!(!rules[0].admits(98.3, 99.4));
        assert!(rules[1].admits(120.0, 100.0));
        assert!(!rules[1].admits(121.0, 100.0));
        assert_eq!(parse("").unwrap(), []);
        for (bad, why) in [
            ("request-duration < primary", "no <= or >="),
            ("request-duration <= 500", "made from `primary`"),
            ("request-duration <= primary / 2", "use + N, - N or * N"),
            ("request-duration <= primary * x", "\"x\" is not a number"),
            (
                "request-duration <= primary * -2",
                "not a number of 0 or more",
            ),
            ("<= primary", "the metric's name comes first"),
            ("a <= primary, a >= primary", "a has a rule already"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
