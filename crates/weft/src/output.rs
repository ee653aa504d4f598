//! How subcommands print: human text by default, JSON for tools.

use std::path::PathBuf;

use anyhow::bail;
use clap::ValueEnum;
use std::process::ExitCode;

use weft_api::diag::{Diagnostic, Severity};
use weft_api::load::Loaded;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
    Yaml,
    /// kubectl's wide table: more columns where a command has them
    /// (`weft get canaries`); text elsewhere.
    Wide,
}

/// Paths given with `-f`; a path that does not exist is a usage error.
pub fn check_paths(paths: &[PathBuf]) -> anyhow::Result<()> {
    if paths.is_empty() {
        bail!("no input: pass -f FILE, -f DIR or -f - (stdin)");
    }
    for p in paths {
        if p.as_os_str() != "-" && !p.exists() {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(())
}

/// Prints diagnostics for people, followed by a one-line summary.
pub fn print_diagnostics(diags: &[Diagnostic], summary: &str) {
    for d in diags {
        println!("{d}");
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    println!(
        "{summary}: {errors} error{}, {warnings} warning{}",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
}

/// Prints what a load (and any analysis added to it) found, in `format`,
/// and returns the exit code: 1 when there is an error, else 0.
pub fn report(loaded: &Loaded, format: Format) -> anyhow::Result<ExitCode> {
    match format {
        Format::Json | Format::Yaml => {
            let doc = serde_json::json!({
                "files": loaded.files,
                "resources": loaded.resources.len(),
                "diagnostics": loaded.diagnostics,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text | Format::Wide => {
            let summary = format!(
                "{} files, {} resources",
                loaded.files,
                loaded.resources.len()
            );
            print_diagnostics(&loaded.diagnostics, &summary);
        }
    }
    Ok(if loaded.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
