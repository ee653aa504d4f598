//! `weft validate -f PATH`: every resource checked on its own, with the
//! warnings Istio's validation webhook gives.

use std::path::PathBuf;
use std::process::ExitCode;

use weft_api::load::load_paths;

use crate::output::{check_paths, report, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories to read (recursively); `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    check_paths(&args.files)?;
    let mut loaded = load_paths(&args.files);
    // Istio's webhook also warns of VirtualService rules that can never
    // match; so does validate (analyze calls them IST0130 and IST0131).
    let warnings = weft_compile::analyze::webhook_warnings(&loaded.resources);
    loaded.diagnostics.extend(warnings);
    // The platform's Kyverno policies mutate what they mutate first, then
    // the Guardrails and policies among the files judge the rest, as the
    // control plane would at admission.
    let mutated = weft_compile::kyverno::mutate(&mut loaded.resources);
    loaded.diagnostics.extend(mutated);
    let root = weft_compile::registry::MeshConfig::default().root_namespace;
    loaded
        .diagnostics
        .extend(weft_compile::guardrails::check(&loaded.resources, &root));
    report(&loaded, args.output)
}
