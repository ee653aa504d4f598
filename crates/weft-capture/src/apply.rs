//! Installing and removing capture rules with Debian's `nft` (and, for
//! TPROXY, `ip` for the policy route that delivers marked packets
//! locally), in a named network namespace or the caller's own.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::settings::{Capture, InterceptionMode};
use crate::{PROXY_ID, TPROXY_ROUTE_TABLE};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("`{0}` is not installed; install Debian's {1} package (apt-get install {1})")]
    Missing(&'static str, &'static str),
    #[error("{what} failed in {place}: {stderr}")]
    Failed {
        what: String,
        place: String,
        stderr: String,
    },
    #[error("cannot run {what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn place(netns: Option<&str>) -> String {
    match netns {
        Some(n) => format!("network namespace {n}"),
        None => "this network namespace".to_owned(),
    }
}

/// `program args…`, inside `netns` when given (through `ip netns exec`).
pub(crate) fn command(netns: Option<&str>, program: &str, args: &[&str]) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]).args(args);
            c
        }
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

/// Runs `program args…` (with `stdin` piped in), inside `netns` when
/// given; a missing program names the Debian `package` that has it, and a
/// failure carries what the program printed.
pub fn run_tool(
    netns: Option<&str>,
    program: &'static str,
    package: &'static str,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(), ApplyError> {
    let what = format!("{program} {}", args.join(" "));
    let mut cmd = command(netns, program, args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            ApplyError::Missing(if netns.is_some() { "ip" } else { program }, package)
        } else {
            ApplyError::Io {
                what: what.clone(),
                error,
            }
        }
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A program that stopped before reading (`ip netns exec` on a
        // namespace that is not there) says why on stderr: a broken pipe
        // here is not the error to report.
        match pipe.write_all(text.as_bytes()) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(ApplyError::Io {
                    what: what.clone(),
                    error,
                })
            }
            _ => {}
        }
    }
    let out = child.wait_with_output().map_err(|error| ApplyError::Io {
        what: what.clone(),
        error,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    // `ip netns exec` reports a missing program itself.
    if stderr.contains(&format!("exec of \"{program}\" failed: No such file")) {
        return Err(ApplyError::Missing(program, package));
    }
    Err(ApplyError::Failed {
        what,
        place: place(netns),
        stderr,
    })
}

/// Installs `capture`'s rules in `netns` (or here), replacing any there:
/// one `nft -f` transaction, so they are all in place or none are.
pub fn install(netns: Option<&str>, capture: &Capture) -> Result<(), ApplyError> {
    run_tool(
        netns,
        "nft",
        "nftables",
        &["-f", "-"],
        Some(&crate::rules::script(capture)),
    )?;
    if capture.mode == InterceptionMode::Tproxy {
        // Packets TPROXY marked are delivered to the local socket.
        let table = TPROXY_ROUTE_TABLE.to_string();
        let mark = PROXY_ID.to_string();
        drop_tproxy_rule(netns);
        run_tool(
            netns,
            "ip",
            "iproute2",
            &["-4", "rule", "add", "fwmark", &mark, "lookup", &table],
            None,
        )?;
        run_tool(
            netns,
            "ip",
            "iproute2",
            &[
                "-4", "route", "replace", "local", "default", "dev", "lo", "table", &table,
            ],
            None,
        )?;
    }
    Ok(())
}

/// Removes every capture table from `netns` (or here); tables that are not
/// there are no error.
pub fn remove(netns: Option<&str>) -> Result<(), ApplyError> {
    run_tool(
        netns,
        "nft",
        "nftables",
        &["-f", "-"],
        Some(&crate::rules::removal()),
    )?;
    drop_tproxy_rule(netns);
    Ok(())
}

/// Removes TPROXY's policy rule, if there is one.
fn drop_tproxy_rule(netns: Option<&str>) {
    let table = TPROXY_ROUTE_TABLE.to_string();
    let mark = PROXY_ID.to_string();
    let _ = run_tool(
        netns,
        "ip",
        "iproute2",
        &["-4", "rule", "del", "fwmark", &mark, "lookup", &table],
        None,
    );
}
