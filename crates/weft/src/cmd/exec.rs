//! `weft exec WORKLOAD -- CMD ARGS…`: runs a command inside a running
//! replica's pod under `weft up --capture`, as `kubectl exec` does: in its
//! network namespace, where its traffic is captured like the
//! application's (`weft exec productpage -- curl http://reviews:9080/`).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The replica, workload or app (as `weft logs` takes it).
    workload: String,
    /// The control plane's admin API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = crate::http_get::get(args.admin, "/api/status").with_context(|| {
        format!(
            "no control plane answers on {} (start one with `weft up --capture`, or pass --admin)",
            args.admin
        )
    })?;
    let status: serde_json::Value = serde_json::from_str(&text)?;
    let w = super::workload_name::resolve(&status, &args.workload)?;
    let full = w["name"].as_str().context("the workload has no name")?;
    // The pod this mesh's status names; by name among the namespaces for
    // a status without one.
    let netns = w["netns"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| weft_local::capture::find_pod(&weft_local::capture::namespaces(), full));
    let Some(netns) = netns else {
        bail!("{full} has no pod namespace: it runs in a pod only under `weft up --capture` (in loopback mode run the command directly, with HTTP_PROXY set to its sidecar)");
    };
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &netns])
        .args(&args.command)
        .exec();
    bail!("cannot run `ip netns exec {netns}`: {err} (exec needs root, and iproute2)")
}
