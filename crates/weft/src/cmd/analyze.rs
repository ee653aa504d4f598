//! `weft analyze -f PATH`: validation plus cross-resource analysis, with
//! istioctl analyze's flags, output formats and exit codes.
//!
//! As istioctl: exit 79 when a message is at or above `--failure-threshold`
//! (error by default), else 65 when a file could not be parsed, else 0;
//! only the default (log) format sets them, so `-o json` and `-o yaml`
//! exit 0 whatever they report, which is what CI jobs written for istioctl
//! expect. Usage errors exit 2 as every weft command does (istioctl: 64).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use weft_api::diag::{codes, Diagnostic, Severity};
use weft_api::load::load_paths;
use weft_compile::analyze::ANALYZERS;
use weft_compile::{MeshConfig, Registry};

use crate::output::{check_paths, print_diagnostics};

/// istioctl analyze's exit code when it found issues at the threshold.
const EXIT_FOUND_ISSUES: u8 = 79;
/// istioctl's exit code for input that could not be parsed.
const EXIT_DATA_ERROR: u8 = 65;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// One message a line with its position and fix (istioctl: `log`).
    #[default]
    #[value(alias = "text")]
    Log,
    /// istioctl's JSON: a list of messages (code, level, origin, reference,
    /// message, documentationUrl), with weft's field, fix and analyzer.
    Json,
    Yaml,
}

/// A message level, as istioctl's thresholds name them (any case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "PascalCase")]
pub enum Level {
    #[value(alias = "info", alias = "INFO")]
    Info,
    #[value(alias = "warning", alias = "WARNING")]
    Warning,
    #[value(alias = "error", alias = "ERROR")]
    Error,
}

impl Level {
    /// Whether `s` is at this level or worse (`Severity` orders the worst
    /// first).
    fn admits(self, s: Severity) -> bool {
        let own = match self {
            Level::Info => Severity::Info,
            Level::Warning => Severity::Warning,
            Level::Error => Severity::Error,
        };
        s <= own
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories to read (recursively); `-` reads stdin.
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "list_analyzers"
    )]
    files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    /// List the analyzers, with the istioctl analyzer each stands for.
    #[arg(short = 'L', long = "list-analyzers")]
    list_analyzers: bool,
    /// Run only these analyzers (weft's name or istioctl's); repeatable.
    #[arg(long = "analyzer")]
    analyzers: Vec<String>,
    /// Messages at or above this level make the exit code 79.
    #[arg(long = "failure-threshold", value_enum, default_value = "Error")]
    failure_threshold: Level,
    /// Messages below this level are not printed.
    #[arg(long = "output-threshold", value_enum, default_value = "Info")]
    output_threshold: Level,
    /// Leave out a code on a resource: `CODE=Kind namespace/name`, with `*`
    /// for any run of characters (`IST0101=VirtualService default/*`);
    /// repeatable. Resources can also carry the annotation
    /// `galley.istio.io/analyze-suppress: "IST0101,IST0118"` (or `*`).
    #[arg(short = 'S', long = "suppress")]
    suppress: Vec<String>,
    /// A MeshConfig (YAML, as in the `istio` ConfigMap's `mesh` key) that
    /// replaces the one in the files.
    #[arg(long = "meshConfigFile", alias = "mesh-config-file")]
    mesh_config_file: Option<PathBuf>,
    /// Leave out documents of unknown kinds: no message, and no exit 65.
    #[arg(long = "ignore-unknown")]
    ignore_unknown: bool,
}

/// `CODE=resource glob`, as istioctl's `--suppress`.
struct Suppression {
    code: String,
    resource: String,
}

fn suppressions(args: &[String]) -> anyhow::Result<Vec<Suppression>> {
    args.iter()
        .map(|s| {
            let Some((code, resource)) = s.split_once('=') else {
                anyhow::bail!(
                    "{s} is not a valid suppression value: use CODE=Kind namespace/name"
                );
            };
            if !code.starts_with("IST") && !code.starts_with("WEFT") {
                eprintln!("Warning: Supplied message code '{code}' is an unknown message code and will not have any effect.");
            }
            Ok(Suppression {
                code: code.to_owned(),
                resource: resource.to_owned(),
            })
        })
        .collect()
}

/// Glob with `*` only, as istioctl's suppressions match.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn suppressed(d: &Diagnostic, rules: &[Suppression]) -> bool {
    let resource = d.resource.as_deref().unwrap_or("");
    rules
        .iter()
        .any(|s| s.code == d.code && glob(&s.resource, resource))
}

fn list(format: Format) -> anyhow::Result<ExitCode> {
    match format {
        Format::Log => {
            for a in ANALYZERS {
                println!(
                    "{:<45} {:<55} {}",
                    a.name,
                    a.istio.unwrap_or("-"),
                    a.codes.join(", ")
                );
            }
        }
        Format::Json | Format::Yaml => {
            let list: Vec<_> = ANALYZERS
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "name": a.name,
                        "istio": a.istio,
                        "codes": a.codes,
                    })
                })
                .collect();
            print_structured(&serde_json::Value::Array(list), format)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_structured(v: &serde_json::Value, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Yaml => print!("{}", weft_api::yaml::emit::to_yaml_string(v)?),
        _ => println!("{}", serde_json::to_string_pretty(v)?),
    }
    Ok(())
}

/// One message as istioctl's `-o json` prints it, with weft's additions.
fn istioctl_message(d: &Diagnostic) -> serde_json::Value {
    let level = match d.severity {
        Severity::Error => "Error",
        Severity::Warning => "Warning",
        Severity::Info => "Info",
    };
    let mut m = serde_json::json!({
        "code": d.code,
        "level": level,
        "message": d.message,
        "reference": format!("{}:{}", d.origin.file, d.origin.line),
        "line": d.origin.line,
        "column": d.origin.column,
    });
    if let Some(r) = &d.resource {
        m["origin"] = r.clone().into();
    }
    if d.code.starts_with("IST") {
        m["documentationUrl"] = format!(
            "https://istio.io/latest/docs/reference/config/analysis/{}/?ref=istioctl-analyze",
            d.code.to_ascii_lowercase()
        )
        .into();
    }
    if !d.field.is_empty() {
        m["field"] = d.field.clone().into();
    }
    if let Some(fix) = &d.fix {
        m["fix"] = fix.clone().into();
    }
    if let Some(a) = d.analyzer {
        m["analyzer"] = a.into();
    }
    m
}

/// What the loader could not read as a resource at all: unreadable files,
/// YAML syntax and documents of a kind in a group weft reads that it does
/// not know. istioctl counts these as files it could not parse (exit 65),
/// not as analysis messages. Kubernetes kinds weft skips (a Namespace, a
/// Secret) are warnings, and parsed.
fn unparsed(d: &Diagnostic) -> bool {
    d.is_error() && [codes::READ, codes::SYNTAX, codes::UNKNOWN_KIND].contains(&d.code.as_str())
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.list_analyzers {
        return list(args.output);
    }
    let selected: Vec<&'static str> = args
        .analyzers
        .iter()
        .map(|want| {
            ANALYZERS
                .iter()
                .find(|a| a.name == want || a.istio == Some(want.as_str()))
                .map(|a| a.name)
                .ok_or_else(|| {
                    anyhow::anyhow!("unknown analyzer {want:?}; `weft analyze -L` lists them")
                })
        })
        .collect::<anyhow::Result<_>>()?;
    let rules = suppressions(&args.suppress)?;
    check_paths(&args.files)?;
    let mut loaded = load_paths(&args.files);
    let mesh = MeshConfig::default();
    // As istioctl analyze, the analyzers look at resources validation
    // refused too (their errors are reported as well); none is applied.
    let analyzed = loaded.analyzed();
    let registry = Registry::build(&analyzed, &mesh);
    // As `weft up` looks for them: `secrets/` in the first directory.
    let secrets = args
        .files
        .first()
        .filter(|f| f.is_dir())
        .map(|f| f.join("secrets"));
    let mesh_config = match &args.mesh_config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(weft_api::types::mesh::parse_text(&text).map_err(|e| {
                let at = e
                    .mark
                    .map_or(String::new(), |m| format!(":{}:{}", m.line, m.column));
                anyhow::anyhow!("{}{at}: {}", path.display(), e.message)
            })?)
        }
        None => None,
    };
    let found = weft_compile::analyze::analyze_with_options(
        &analyzed,
        &registry,
        &mesh,
        weft_compile::analyze::Options {
            secrets_dir: secrets.as_deref(),
            credential_check: Some(weft_identity::credential::check_serving),
            pem_check: Some(weft_identity::credential::check_serving_pem),
            refused: weft_compile::analyze::refused_by(&loaded.diagnostics),
            secret_resources_served: true,
            mesh_config,
            guardrails_judged: false,
        },
    );
    loaded.diagnostics.extend(
        found
            .into_iter()
            .filter(|d| selected.is_empty() || d.analyzer.is_some_and(|a| selected.contains(&a))),
    );
    loaded.diagnostics.retain(|d| {
        let unknown_left_out = args.ignore_unknown && d.code == codes::UNKNOWN_KIND;
        !(suppressed(d, &rules) || unknown_left_out)
    });
    weft_api::diag::sort(&mut loaded.diagnostics);

    let shown: Vec<&Diagnostic> = loaded
        .diagnostics
        .iter()
        .filter(|d| args.output_threshold.admits(d.severity))
        .collect();
    match args.output {
        Format::Log => {
            let shown: Vec<Diagnostic> = shown.into_iter().cloned().collect();
            let summary = format!(
                "{} files, {} resources",
                loaded.files,
                loaded.resources.len()
            );
            print_diagnostics(&shown, &summary);
        }
        Format::Json | Format::Yaml => {
            let list = shown.iter().map(|d| istioctl_message(d)).collect();
            print_structured(&serde_json::Value::Array(list), args.output)?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let issues = loaded
        .diagnostics
        .iter()
        .any(|d| !unparsed(d) && args.failure_threshold.admits(d.severity));
    let unreadable = loaded.diagnostics.iter().any(unparsed);
    Ok(if issues {
        ExitCode::from(EXIT_FOUND_ISSUES)
    } else if unreadable {
        ExitCode::from(EXIT_DATA_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_globs_match_as_istioctl_does() {
        assert!(glob(
            "VirtualService default/*",
            "VirtualService default/reviews"
        ));
        assert!(glob("*", "Gateway istio-system/gw"));
        assert!(glob("* */reviews", "VirtualService default/reviews"));
        assert!(!glob(
            "VirtualService default/*",
            "VirtualService prod/reviews"
        ));
        assert!(glob("Service default/a", "Service default/a"));
        assert!(!glob("Service default/a", "Service default/ab"));
        assert!(!glob("a*a", "a"));
    }

    #[test]
    fn thresholds_admit_their_level_and_worse() {
        assert!(Level::Warning.admits(Severity::Error));
        assert!(Level::Warning.admits(Severity::Warning));
        assert!(!Level::Warning.admits(Severity::Info));
        assert!(Level::Info.admits(Severity::Info));
        assert!(!Level::Error.admits(Severity::Warning));
    }
}
