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

/// How long a command has to exit after SIGTERM before it is killed; a
/// little longer than `weft up`'s own grace, so that while `weft up` lives
/// it decides.
const GRACE: std::time::Duration = std::time::Duration::from_secs(8);

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (program, rest) = args.command.split_first().context("no command")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // However this wrapper leaves (an error included), the command
        // must not outlive it.
        let mut child = tokio::process::Command::new(program)
            .args(rest)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        // Once asked to stop, the command has a grace period before it is
        // killed: a wrapper whose parent is gone must not wait for ever.
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let grace_over = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                status = child.wait() => {
                    let code = status.context("cannot wait for the command")?.code().unwrap_or(1);
                    return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
                }
                _ = term.recv() => {
                    if let Some(p) = pid { let _ = kill(p, Signal::SIGTERM); }
                    deadline.get_or_insert_with(|| tokio::time::Instant::now() + GRACE);
                }
                _ = int.recv() => { if let Some(p) = pid { let _ = kill(p, Signal::SIGINT); } }
                _ = grace_over => {
                    let _ = child.start_kill();
                    deadline = None;
                }
            }
        }
    })
}
