//! What loading one document must give, shared by the validation tests,
//! and the documents more than one of them writes.

// Each test binary uses what it needs of these.
#![allow(dead_code)]

use weft_api::diag::{codes, Severity};
use weft_api::load::load_bytes;

/// What loading one document must give.
#[derive(Clone)]
pub enum Want {
    /// No error and no warning.
    Clean,
    /// Accepted with no error or warning but WEFT0006 (a field weft does
    /// not act on).
    Accepted,
    /// Accepted, with a warning whose message holds this.
    Warns(&'static str),
    /// Accepted, with a WEFT0006 warning whose message holds this.
    Unimplemented(&'static str),
    /// Refused, with an error whose message holds this.
    Refused(&'static str),
}

/// An AuthorizationPolicy `p` whose spec is `spec` (indented lines).
pub fn authz(spec: &str) -> String {
    format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p}}\nspec:\n{spec}")
}

pub fn check(name: &str, doc: &str, want: Want) {
    let loaded = load_bytes(&format!("{name}.yaml"), doc.as_bytes());
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let warnings: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    let all = || {
        loaded
            .diagnostics
            .iter()
            .map(|d| format!("{d}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match want {
        Want::Clean => assert!(
            loaded.diagnostics.is_empty() && loaded.resources.len() == 1,
            "{name}: expected clean, got:\n{}",
            all()
        ),
        Want::Accepted => assert!(
            errors.is_empty()
                && loaded.resources.len() == 1
                && warnings.iter().all(|d| d.code == codes::UNIMPLEMENTED),
            "{name}: expected accepted, got:\n{}",
            all()
        ),
        Want::Warns(what) => {
            assert!(errors.is_empty(), "{name}: refused:\n{}", all());
            assert!(
                warnings.iter().any(|d| d.message.contains(what)),
                "{name}: expected a warning with {what:?}, got:\n{}",
                all()
            );
        }
        Want::Unimplemented(what) => {
            assert!(errors.is_empty(), "{name}: refused:\n{}", all());
            assert!(
                warnings
                    .iter()
                    .any(|d| d.code == codes::UNIMPLEMENTED && d.message.contains(what)),
                "{name}: expected WEFT0006 with {what:?}, got:\n{}",
                all()
            );
        }
        Want::Refused(what) => {
            assert!(loaded.resources.is_empty(), "{name}: accepted:\n{}", all());
            assert!(
                errors.iter().any(|d| d.message.contains(what)),
                "{name}: expected an error with {what:?}, got:\n{}",
                all()
            );
        }
    }
}
