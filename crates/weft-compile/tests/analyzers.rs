//! Analyzer tests, written as YAML: each fixture lists the findings it
//! must produce as `# expect: CODE Kind ns/name field: message` lines and
//! produces nothing else. `# include: PATH` adds more configuration;
//! `# secrets-dir: PATH` sets where credentialName secrets live.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use weft_compile::analyze::{analyze_with, Input, ANALYZERS};
use weft_compile::compile::Index;
use weft_compile::{MeshConfig, Registry};

fn render(d: &weft_api::diag::Diagnostic) -> String {
    let mut s = d.code.clone();
    if let Some(r) = &d.resource {
        s.push(' ');
        s.push_str(r);
    }
    if !d.field.is_empty() {
        s.push(' ');
        s.push_str(&d.field);
    }
    s.push_str(": ");
    s.push_str(&d.message);
    // Directives are read trimmed; a message may end in a space (Istio's
    // IST0127 for a policy without a selector lists no labels).
    s.trim_end().to_owned()
}

/// A stand-in for the identity crate's check (this crate does not read
/// X.509): a credential whose tls.crt says `invalid` cannot serve.
fn fixture_credential(dir: &Path, name: &str) -> Result<(), String> {
    match std::fs::read_to_string(dir.join(name).join("tls.crt")) {
        Ok(text) if text.contains("invalid") => Err("tls.crt does not parse".into()),
        _ => Ok(()),
    }
}

/// The same stand-in for a Secret resource's certificate and key.
fn fixture_pem(_name: &str, cert: &str, key: &str) -> Result<(), String> {
    if cert.trim().is_empty() || key.trim().is_empty() {
        Err("no certificate and key".into())
    } else if cert.contains("invalid") {
        Err("tls.crt does not parse".into())
    } else {
        Ok(())
    }
}

fn analyzer(path: &Path, text: String) -> datatest_stable::Result<()> {
    let ds = common::directives(&text);
    let mut loaded = common::load_fixture(path, &ds);
    let mesh = MeshConfig::default();
    // As `weft analyze`: refused resources are analyzed too.
    let analyzed = loaded.analyzed();
    let registry = Registry::build(&analyzed, &mesh);
    let secrets_dir = common::directive(&ds, "secrets-dir")
        .map(|d| path.parent().unwrap_or(Path::new(".")).join(d));
    let input = Input {
        resources: &analyzed,
        registry: &registry,
        mesh: &mesh,
        index: Index::new(&analyzed),
        secrets_dir,
        credential_check: Some(fixture_credential),
        pem_check: Some(fixture_pem),
        refused: weft_compile::analyze::refused_by(&loaded.diagnostics),
        secret_resources_served: true,
        guardrails_judged: false,
    };
    loaded.diagnostics.extend(analyze_with(&input));
    let actual: BTreeSet<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.code.starts_with("IST") || d.code.starts_with("WEFT01") || d.is_error())
        .map(render)
        .collect();
    let expected: BTreeSet<String> = ds
        .iter()
        .filter(|(k, _)| k == "expect")
        .map(|(_, v)| v.clone())
        .collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    if !missing.is_empty() || !extra.is_empty() {
        return Err(format!(
            "{}:\nmissing:\n  {}\nunexpected:\n  {}",
            path.display(),
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  "),
            extra
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        )
        .into());
    }
    Ok(())
}

/// Every analyzer code has at least one fixture that expects it.
fn every_code_is_tested(_: &Path, _: String) -> datatest_stable::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/analyzers");
    let mut all = String::new();
    for e in std::fs::read_dir(&dir)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "yaml") {
            all.push_str(&std::fs::read_to_string(path)?);
        }
    }
    let untested: Vec<String> = ANALYZERS
        .iter()
        .flat_map(|a| a.codes.iter().map(move |c| (a.name, *c)))
        .filter(|(_, c)| !all.contains(&format!("# expect: {c} ")))
        .map(|(n, c)| format!("{n} ({c})"))
        .collect();
    if untested.is_empty() {
        Ok(())
    } else {
        Err(format!("analyzers without a fixture: {}", untested.join(", ")).into())
    }
}

datatest_stable::harness! {
    { test = analyzer, root = "tests/analyzers", pattern = r"\.yaml$" },
    { test = every_code_is_tested, root = "tests/analyzers", pattern = r"^clean-bookinfo\.yaml$" },
}
