//! `weft exec-child -- CMD ARGS…` (hidden): runs a workload command for
//! `weft up` so that it dies with `weft up`, even if `weft up` itself is
//! killed with SIGKILL. The kernel sends this wrapper SIGTERM when its
//! parent dies (PR_SET_PDEATHSIG); the wrapper passes SIGTERM and SIGINT
//! on to the command and exits with its status.

use std::process::ExitCode;

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (program, rest) = args.command.split_first().context("no command")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        loop {
            tokio::select! {
                status = child.wait() => {
                    let code = status?.code().unwrap_or(1);
                    return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                }
                _ = term.recv() => { if let Some(p) = pid { let _ = kill(p, Signal::SIGTERM); } }
                _ = int.recv() => { if let Some(p) = pid { let _ = kill(p, Signal::SIGINT); } }
            }
        }
    })
}
