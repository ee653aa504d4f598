//! `weft-bench`: weft against the direct call and against nginx and
//! HAProxy under the same open-loop load, and the control plane at scale.
//! `bench/run` installs what it needs and runs it; see bench/README.md.

mod backend;
mod capture;
mod dataplane;
mod oha;
mod plot;
mod procstat;
mod report;
mod scale;
mod setup;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weft-bench", about = "weft's benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole benchmark; writes results.md, results.json and latency.svg.
    Run {
        /// Seconds-long version for CI: every system at one load, a tiny control-plane run.
        #[arg(long)]
        smoke: bool,
        /// Only the targets' load (HTTP/1.1, 1000 requests/s, 16
        /// connections) and no control plane: a change tried in two minutes.
        #[arg(long, conflicts_with = "smoke")]
        headline: bool,
        /// Leave out the control-plane scale run.
        #[arg(long)]
        no_scale: bool,
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// The weft binary under test.
        #[arg(long, default_value = "target/release/weft")]
        weft: PathBuf,
        /// Scratch space for configurations, run directories and logs.
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
    },
    /// Only the control-plane scale run; prints its numbers.
    Scale {
        /// 5000 services, 50 000 endpoints and 10 000 proxies, whole mesh
        /// only, instead of the default run's size.
        #[arg(long)]
        stretch: bool,
        #[arg(long, default_value = "target/release/weft")]
        weft: PathBuf,
        #[arg(long, default_value = "target/bench-work")]
        work: PathBuf,
    },
    /// The server every case talks to (1 KB responses, HTTP/1.1 and h2c).
    Backend {
        /// Defaults to WEFT_LISTEN, which `weft up` sets for a workload.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Backend { listen } => {
            let listen = match listen {
                Some(l) => l,
                None => std::env::var("WEFT_LISTEN")
                    .map_err(|_| anyhow::anyhow!("give --listen or set WEFT_LISTEN"))?
                    .parse()?,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(backend::serve(listen))
        }
        Cmd::Scale {
            stretch,
            weft,
            work,
        } => {
            std::fs::create_dir_all(&work)?;
            let (size, scopes) = if stretch {
                (scale::Size::stretch(), scale::Scopes::WholeOnly)
            } else {
                (scale::Size::full(), scale::Scopes::Both)
            };
            let results = scale::run(
                &std::fs::canonicalize(weft)?,
                &std::fs::canonicalize(work)?,
                size,
                scopes,
            )?;
            println!("{}", serde_json::to_string_pretty(&results)?);
            Ok(())
        }
        Cmd::Run {
            smoke,
            headline,
            no_scale,
            out,
            weft,
            work,
        } => {
            let mode = match (smoke, headline) {
                (true, _) => Mode::Smoke,
                (_, true) => Mode::Headline,
                _ => Mode::Full,
            };
            run(mode, no_scale || headline, out, weft, work)
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Full,
    Headline,
    Smoke,
}

impl Mode {
    fn plan(self) -> dataplane::Plan {
        match self {
            Mode::Full => dataplane::Plan::full(),
            Mode::Headline => dataplane::Plan::headline(),
            Mode::Smoke => dataplane::Plan::smoke(),
        }
    }

    /// The report's name for the run.
    fn name(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Headline => "headline",
            Mode::Smoke => "smoke",
        }
    }

    /// The command that makes this run, for the report.
    fn command(self) -> &'static str {
        match self {
            Mode::Full => "bench/run",
            Mode::Headline => "bench/run --headline",
            Mode::Smoke => "bench/run --smoke",
        }
    }
}

fn run(
    mode: Mode,
    no_scale: bool,
    out: PathBuf,
    weft: PathBuf,
    work: PathBuf,
) -> anyhow::Result<()> {
    let weft = std::fs::canonicalize(&weft).map_err(|e| {
        anyhow::anyhow!(
            "the weft binary {}: {e}; build it with `cargo build --release -p weft`",
            weft.display()
        )
    })?;
    let bench = std::env::current_exe()?;
    std::fs::create_dir_all(&work)?;
    let work = std::fs::canonicalize(&work)?;
    let plan = mode.plan();
    let started = std::time::Instant::now();
    let cases = dataplane::run(&plan, &weft, &bench, &work)?;
    let scale = if no_scale {
        None
    } else if mode == Mode::Smoke {
        let tiny = scale::Size {
            namespaces: 2,
            services_per_namespace: 3,
            replicas: 2,
            connected_per_workload: 2,
        };
        Some(scale::run(&weft, &work, tiny, scale::Scopes::Both)?)
    } else {
        Some(scale::run(
            &weft,
            &work,
            scale::Size::full(),
            scale::Scopes::Both,
        )?)
    };
    let report = report::Report {
        generated_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        mode: mode.name().into(),
        machine: report::Machine::read(),
        cases,
        scale,
    };
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("results.md"),
        report::markdown(&report, mode.command()),
    )?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    std::fs::write(out.join("latency.svg"), plot::svg(&report.cases))?;
    eprintln!(
        "weft-bench: done in {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    for (what, got, want, ok) in report::targets(&report) {
        eprintln!(
            "  {} {what}: {got} (target {want})",
            if ok { "holds " } else { "MISSED" }
        );
    }
    // A case where requests failed is a broken setup, not a slow one.
    let failed: u64 = report.cases.iter().map(|c| c.outcome.failed).sum();
    if failed > 0 {
        anyhow::bail!("{failed} requests failed; see the report");
    }
    Ok(())
}
