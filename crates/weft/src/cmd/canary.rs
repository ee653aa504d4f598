//! `weft canary`: a canary's state and decisions, and manual control
//! (promote, abort, retry, pause, resume) through the control plane's
//! admin API. The actions are mapped onto Flagger's gates by the
//! controller, so the Canary's YAML stays Flagger's.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::http_get::{get, request};
use crate::output::Format;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Args)]
struct Target {
    /// The Canary's name.
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Phase, weights, checks, and each recent tick's decision with the
    /// metrics it judged.
    Status {
        #[command(flatten)]
        target: Target,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Open the confirm gates the canary waits at (rollout, traffic
    /// increase, promotion) for this run; resumes a paused one.
    Promote(Target),
    /// Roll the run back now, as a rollback webhook would.
    Abort(Target),
    /// Run a failed revision again, its spec untouched.
    Retry(Target),
    /// Hold traffic where it is: no increase and no promotion.
    Pause(Target),
    /// Let a paused canary go on.
    Resume(Target),
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (target, verb) = match &args.action {
        Action::Status { target, output } => return status(target, *output),
        Action::Promote(t) => (t, "promote"),
        Action::Abort(t) => (t, "abort"),
        Action::Retry(t) => (t, "retry"),
        Action::Pause(t) => (t, "pause"),
        Action::Resume(t) => (t, "resume"),
    };
    let path = format!("/api/canaries/{}/{}/{verb}", target.namespace, target.name);
    let (code, body) = request(target.admin, "POST", &path, b"").with_context(|| {
        format!(
            "cannot reach the control plane's admin API at {}",
            target.admin
        )
    })?;
    if code != 202 {
        let why: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        bail!(
            "{}",
            why["error"].as_str().map(str::to_owned).unwrap_or(body)
        );
    }
    println!(
        "canary {}.{}: {verb} asked; it takes effect at its next tick",
        target.name, target.namespace
    );
    Ok(ExitCode::SUCCESS)
}

fn status(t: &Target, output: Format) -> anyhow::Result<ExitCode> {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&get(t.admin, "/api/canaries").with_context(|| {
            format!("cannot reach the control plane's admin API at {}", t.admin)
        })?)?;
    let Some(c) = all
        .iter()
        .find(|c| c["name"] == t.name.as_str() && c["namespace"] == t.namespace.as_str())
    else {
        bail!("no Canary {}/{}", t.namespace, t.name);
    };
    match output {
        Format::Json => {
            println!("{}", serde_json::to_string_pretty(c)?);
            return Ok(ExitCode::SUCCESS);
        }
        Format::Yaml => {
            print!("{}", weft_api::yaml::emit::to_yaml_string(c)?);
            return Ok(ExitCode::SUCCESS);
        }
        Format::Text | Format::Wide => {}
    }
    let st = &c["status"];
    let analysis = &c["spec"]["analysis"];
    println!(
        "Canary {}.{}: {}, canary weight {}, failed checks {} of {}{}",
        t.name,
        t.namespace,
        st["phase"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or("not started"),
        st["canaryWeight"].as_u64().unwrap_or(0),
        st["failedChecks"].as_u64().unwrap_or(0),
        analysis["threshold"].as_u64().unwrap_or(1),
        match st["providerErrors"].as_u64() {
            Some(n) if n > 0 => format!(", metrics provider errors {n}"),
            _ => String::new(),
        },
    );
    if let Some(m) = st["conditions"][0]["message"].as_str() {
        println!("  {m}");
    }
    if c["manual"]["paused"] == true {
        println!(
            "  Paused (weft canary pause): it waits before each traffic increase and before promotion; `weft canary resume {}` lets it go on",
            t.name
        );
    }
    let decisions = c["decisions"].as_array().cloned().unwrap_or_default();
    if decisions.is_empty() {
        println!("No decisions yet.");
    } else {
        println!("Decisions (newest last):");
    }
    for d in decisions.iter().rev().take(10).rev() {
        let metrics: Vec<String> = d["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .map(judged)
            .collect();
        println!(
            "  {}  {:<16} weight {:>3}  failed {}{}{}",
            d["time"].as_str().unwrap_or(""),
            d["phase"].as_str().unwrap_or(""),
            d["canaryWeight"],
            d["failedChecks"],
            match d["providerErrors"].as_u64() {
                Some(n) if n > 0 => format!("  provider errors {n}"),
                _ => String::new(),
            },
            if metrics.is_empty() {
                String::new()
            } else {
                format!("  {}", metrics.join(", "))
            }
        );
        for said in d["said"].as_array().into_iter().flatten() {
            println!("      {}", said.as_str().unwrap_or(""));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One judged metric of a decision: `request-success-rate 69.17 (min 99)
/// failed`.
fn judged(m: &serde_json::Value) -> String {
    let name = m["name"].as_str().unwrap_or("?");
    let value = m["value"]
        .as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let limits = match (m["min"].as_f64(), m["max"].as_f64()) {
        (Some(lo), Some(hi)) => format!(" (between {lo} and {hi})"),
        (Some(lo), None) => format!(" (min {lo})"),
        (None, Some(hi)) => format!(" (max {hi})"),
        (None, None) => String::new(),
    };
    let limits = match (m["compared"].as_str(), m["primary"].as_f64()) {
        (Some(rule), Some(p)) => format!("{limits} ({rule}, the primary {p:.2})"),
        (Some(rule), None) => format!("{limits} ({rule}, the primary had no traffic)"),
        _ => limits,
    };
    let verdict = match m["verdict"].as_str() {
        Some("passed") | None => "",
        Some("failed") => " FAILED",
        Some("held") => " held",
        Some("providerError") => " PROVIDER ERROR",
        Some(other) => return format!("{name} {value}{limits} {other}"),
    };
    format!("{name} {value}{limits}{verdict}")
}
