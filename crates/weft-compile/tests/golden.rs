//! Golden tests: a YAML configuration in, one proxy's model out.
//!
//! `tests/golden/NAME.yaml` starts with `# proxy: sidecar NS/NAME` (or
//! `gateway NS/NAME`), optionally `# section: routes|clusters|listeners|
//! security|telemetry|http` and `# include: PATH`. The expected model is
//! `NAME.golden.yaml`. Run with `UPDATE_GOLDEN=1` to rewrite the goldens
//! after an intended change, and review the diff.

mod common;

use std::path::Path;

use weft_compile::{Compiler, MeshConfig, ProxyRef, Registry};

fn golden(path: &Path, text: String) -> datatest_stable::Result<()> {
    let ds = common::directives(&text);
    let loaded = common::load_fixture(path, &ds);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(
        errors.is_empty(),
        "fixture does not load cleanly:\n{}",
        errors.join("\n")
    );
    let proxy =
        common::directive(&ds, "proxy").ok_or("fixture needs `# proxy: sidecar ns/name`")?;
    let (kind, who) = proxy
        .split_once(' ')
        .ok_or("`# proxy:` is `sidecar ns/name` or `gateway ns/name`")?;
    let (namespace, name) = who.split_once('/').ok_or("proxy is ns/name")?;
    let proxy = match kind {
        "sidecar" => ProxyRef::Sidecar {
            namespace: namespace.into(),
            name: name.into(),
        },
        "gateway" => ProxyRef::Gateway {
            namespace: namespace.into(),
            name: name.into(),
        },
        other => return Err(format!("unknown proxy kind {other}").into()),
    };
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let model = Compiler::new(&loaded.resources, &registry, &mesh).compile(&proxy)?;
    let value = match common::directive(&ds, "section").unwrap_or("all") {
        "all" => serde_json::to_value(&model)?,
        "routes" => serde_json::to_value(&model.route_tables)?,
        "clusters" => serde_json::to_value(&model.clusters)?,
        "listeners" => serde_json::to_value(&model.listeners)?,
        "security" => serde_json::to_value(&model.security)?,
        "telemetry" => serde_json::to_value(&model.telemetry)?,
        "http" => serde_json::to_value(model.http)?,
        other => return Err(format!("unknown section {other}").into()),
    };
    let actual = weft_api::yaml::emit::to_yaml_string(&value)?;
    // Compiling twice gives the same bytes: the model is deterministic.
    let again = Compiler::new(&loaded.resources, &registry, &mesh).compile(&proxy)?;
    assert_eq!(model, again, "compiling twice gave different models");
    let golden_path = path.with_extension("golden.yaml");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden_path, &actual)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&golden_path).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            golden_path.display()
        )
    })?;
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  expected: {a}\n  actual:   {b}", i + 1))
            .collect();
        return Err(format!(
            "{} differs from the compiled model ({} vs {} lines):\n{}\nrun with UPDATE_GOLDEN=1 to accept",
            golden_path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        )
        .into());
    }
    Ok(())
}

datatest_stable::harness! {
    { test = golden, root = "tests/golden", pattern = r"^[^.]+\.yaml$" },
}
