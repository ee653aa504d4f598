//! `weft analyze -f PATH`: validation plus cross-resource analysis.

use std::path::PathBuf;
use std::process::ExitCode;

use weft_api::load::load_paths;
use weft_compile::{MeshConfig, Registry};

use crate::output::{check_paths, report, Format};

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories to read (recursively); `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    check_paths(&args.files)?;
    let mut loaded = load_paths(&args.files);
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    // As `weft up` looks for them: `secrets/` in the first directory.
    let secrets = args
        .files
        .first()
        .filter(|f| f.is_dir())
        .map(|f| f.join("secrets"));
    loaded
        .diagnostics
        .extend(weft_compile::analyze::analyze_with_secrets(
            &loaded.resources,
            &registry,
            &mesh,
            secrets.as_deref(),
        ));
    weft_api::diag::sort(&mut loaded.diagnostics);
    report(&loaded, args.output)
}
