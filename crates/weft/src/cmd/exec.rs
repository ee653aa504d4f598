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

/// The pod namespace of replica `namespace/instance`, among `existing`.
fn pod_namespace(existing: &[String], full: &str) -> Option<String> {
    let suffix = format!("-{}", full.replace('/', "-"));
    let mut found = existing
        .iter()
        .filter(|n| n.starts_with("weft-") && n.ends_with(&suffix));
    let first = found.next()?;
    // Two meshes with the same replica: the name alone cannot tell.
    found.next().is_none().then(|| first.clone())
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
    let existing: Vec<String> = std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let Some(netns) = pod_namespace(&existing, full) else {
        bail!("{full} has no pod namespace: it runs in a pod only under `weft up --capture` (in loopback mode run the command directly, with HTTP_PROXY set to its sidecar)");
    };
    let err = std::process::Command::new("ip")
        .args(["netns", "exec", &netns])
        .args(&args.command)
        .exec();
    bail!("cannot run `ip netns exec {netns}`: {err} (exec needs root, and iproute2)")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_replica_finds_its_pod() {
        let existing = [
            "weft-25edda-node".to_owned(),
            "weft-25edda-default-reviews-v1-0".to_owned(),
            "weft-25edda-default-reviews-v1-01".to_owned(),
            "other".to_owned(),
        ];
        assert_eq!(
            super::pod_namespace(&existing, "default/reviews-v1-0").as_deref(),
            Some("weft-25edda-default-reviews-v1-0")
        );
        assert_eq!(
            super::pod_namespace(&existing, "default/ratings-v1-0"),
            None
        );
        let two = [
            "weft-aaaaaa-default-x-0".to_owned(),
            "weft-bbbbbb-default-x-0".to_owned(),
        ];
        assert_eq!(super::pod_namespace(&two, "default/x-0"), None);
    }
}
