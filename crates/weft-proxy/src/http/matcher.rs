//! String matchers compiled once per configuration push.

use regex::Regex;
use weft_model::StrMatch;

use crate::error::ProxyError;

#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Prefix(String),
    /// Anchored: Envoy's safe_regex (and so Istio's `regex`) matches the
    /// whole value.
    Regex(Regex),
    Present,
}

impl Matcher {
    pub fn compile(m: &StrMatch, ignore_case: bool) -> Result<Matcher, ProxyError> {
        Ok(match m {
            StrMatch::Exact(s) if ignore_case => Matcher::Exact(s.to_ascii_lowercase()),
            StrMatch::Exact(s) => Matcher::Exact(s.clone()),
            StrMatch::Prefix(s) if ignore_case => Matcher::Prefix(s.to_ascii_lowercase()),
            StrMatch::Prefix(s) => Matcher::Prefix(s.clone()),
            StrMatch::Regex(r) => {
                let pattern = if ignore_case {
                    format!("(?i)^(?:{r})$")
                } else {
                    format!("^(?:{r})$")
                };
                let re = regex::RegexBuilder::new(&pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| ProxyError::InvalidModel(format!("regex {r:?}: {e}")))?;
                Matcher::Regex(re)
            }
            StrMatch::Present => Matcher::Present,
        })
    }

    /// Matches `value`; `folded` is whether the matcher was compiled for
    /// case-insensitive comparison (the value is lowered here, not per
    /// matcher, only when needed).
    pub fn matches(&self, value: &str, folded: bool) -> bool {
        match self {
            Matcher::Exact(s) if folded => value.eq_ignore_ascii_case(s),
            Matcher::Exact(s) => value == s,
            Matcher::Prefix(p) if folded => {
                value.len() >= p.len()
                    && value.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            Matcher::Prefix(p) => value.starts_with(p.as_str()),
            Matcher::Regex(r) => r.is_match(value),
            Matcher::Present => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes_match_whole_values() {
        let m = Matcher::compile(&StrMatch::Regex("/api/[0-9]+".into()), false).unwrap();
        assert!(m.matches("/api/12", false));
        assert!(!m.matches("/api/12/x", false));
    }

    #[test]
    fn ignore_case() {
        let m = Matcher::compile(&StrMatch::Prefix("/Reviews".into()), true).unwrap();
        assert!(m.matches("/REVIEWS/1", true));
        let m = Matcher::compile(&StrMatch::Exact("/a".into()), false).unwrap();
        assert!(!m.matches("/A", false));
    }
}
