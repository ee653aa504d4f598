//! Diagnostics: what `weft validate` and `weft analyze` print.
//!
//! Every diagnostic names the file, line and column, the resource, the field
//! path, what is wrong and how to fix it, so that a user never has to guess.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::path::FieldPath;
use crate::yaml::tree::Mark;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        })
    }
}

/// Where something came from: a file (or `<stdin>`) and a position in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Origin {
    pub fn new(file: &Arc<str>, mark: Mark) -> Self {
        Origin {
            file: file.clone(),
            line: mark.line,
            column: mark.column,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code: Istio's `IST0101`-style codes for analysis, `WEFT…`
    /// for weft's own checks.
    pub code: String,
    #[serde(flatten)]
    pub origin: Origin,
    /// `Kind namespace/name`, when the problem belongs to one resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Field path inside the resource, e.g. `spec.http[1].route[0].weight`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// The analyzer that found it (`weft analyze --list-analyzers`); none
    /// for what loading and validation found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyzer: Option<&'static str>,
}

impl Diagnostic {
    pub fn new(severity: Severity, code: &str, origin: Origin, message: impl Into<String>) -> Self {
        Diagnostic {
            severity,
            code: code.to_owned(),
            origin,
            resource: None,
            field: String::new(),
            message: message.into(),
            fix: None,
            analyzer: None,
        }
    }

    pub fn with_field(mut self, field: &FieldPath) -> Self {
        self.field = field.to_string();
        self
    }

    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}[{}]: ", self.origin, self.severity, self.code)?;
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n    fix: {fix}")?;
        }
        Ok(())
    }
}

/// Codes for weft's own (non-Istio) checks.
pub mod codes {
    /// The file could not be read or is not UTF-8.
    pub const READ: &str = "WEFT0001";
    /// YAML/JSON syntax, or a limit on size, depth or aliases.
    pub const SYNTAX: &str = "WEFT0002";
    /// A document without apiVersion/kind, or of a kind weft does not know.
    pub const UNKNOWN_KIND: &str = "WEFT0003";
    /// A field of the wrong type, an unknown field, or a missing one.
    pub const SCHEMA: &str = "WEFT0004";
    /// A value that breaks one of Istio's validation rules.
    pub const INVALID: &str = "WEFT0005";
    /// A valid Istio field that weft does not implement yet.
    pub const UNIMPLEMENTED: &str = "WEFT0006";
    /// Two documents define the same resource.
    pub const DUPLICATE: &str = "WEFT0007";
    /// A resource of the user's is replaced, while a controller needs it,
    /// by the one the controller manages (a Canary's VirtualService).
    pub const TAKEN_OVER: &str = "WEFT0008";
}

/// Sorts diagnostics by file, position and code so output is deterministic.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.origin, &a.code, &a.field, &a.message).cmp(&(&b.origin, &b.code, &b.field, &b.message))
    });
}

/// The closest of `candidates` to `word`, if any is close enough to be what
/// the user meant (typos, wrong case, snake_case for camelCase).
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let folded = |s: &str| s.replace(['_', '-'], "").to_ascii_lowercase();
    let w = folded(word);
    if let Some(exact) = candidates.iter().find(|c| folded(c) == w) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(&w, &folded(c)), *c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let fields = ["hosts", "gateways", "http", "tls", "tcp", "exportTo"];
        assert_eq!(did_you_mean("host", &fields), Some("hosts"));
        assert_eq!(did_you_mean("export_to", &fields), Some("exportTo"));
        assert_eq!(did_you_mean("gatway", &fields), Some("gateways"));
        assert_eq!(did_you_mean("HTTP", &fields), Some("http"));
        assert_eq!(did_you_mean("zzzzzz", &fields), None);
    }
}
