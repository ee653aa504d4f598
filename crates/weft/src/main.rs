//! `weft`: one binary for the whole mesh. Each subcommand lives in its own
//! module under `cmd/`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod output;
mod sample;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "A service mesh that speaks the Istio YAML you already have"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check resources one by one: syntax, schema and Istio's validation rules.
    Validate(cmd::validate::Args),
    /// Check resources together: references, conflicts and scoping, with
    /// Istio's analyzer codes.
    Analyze(cmd::analyze::Args),
    /// Print the model a proxy receives (offline, from files).
    #[command(name = "proxy-config", alias = "pc")]
    ProxyConfig(cmd::proxy_config::Args),
    /// Run one proxy from a compiled model file.
    Proxy(cmd::proxy::Args),
    /// Run a sample application built into weft.
    #[command(name = "sample-app")]
    SampleApp(cmd::sample_app::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Analyze(args) => cmd::analyze::run(&args),
        Command::ProxyConfig(args) => cmd::proxy_config::run(&args),
        Command::Proxy(args) => cmd::proxy::run(&args),
        Command::SampleApp(args) => cmd::sample_app::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
