//! One module per subcommand.

pub mod analyze;
pub mod ca;
pub mod ca_args;
pub mod canary;
pub mod control_plane;
pub mod dashboard;
pub mod exec;
pub mod exec_child;
pub mod logs;
pub mod proxy;
pub mod proxy_config;
pub mod resources;
pub mod sample_app;
pub mod status;
pub mod up;
pub mod validate;
pub mod workload;
pub mod workload_name;
pub mod x509;

use std::path::PathBuf;

use weft_api::diag::Severity;
use weft_api::load::{load_paths, Loaded};

/// Loads configuration for a command that goes on with the valid part:
/// errors are printed to stderr (the resources they name are left out, as
/// a control plane would refuse them).
pub fn load_reporting_errors(paths: &[PathBuf]) -> Loaded {
    let loaded = load_paths(paths);
    for d in loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
    {
        eprintln!("{d}");
    }
    loaded
}

/// The admin address of the proxy serving `name` (a proxy or workload
/// name, with or without its namespace), from the control plane's status;
/// a proxy on a `weft up --capture` mesh's network is reached from its
/// node's namespace.
pub fn proxy_admin(
    control: std::net::SocketAddr,
    name: &str,
) -> anyhow::Result<crate::http_get::Target> {
    use anyhow::Context;
    let text = crate::http_get::get(control, "/api/status").with_context(|| {
        format!("no control plane answers on {control} (start one with `weft up`, or pass --admin)")
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let proxies: Vec<&serde_json::Value> = v["proxies"].as_array().into_iter().flatten().collect();
    let wanted = match proxies.iter().find(|p| {
        p["name"]
            .as_str()
            .is_some_and(|n| n == name || n.rsplit('/').next() == Some(name))
    }) {
        Some(p) => (*p).clone(),
        None => {
            let w = workload_name::resolve(&v, name)?;
            proxies
                .iter()
                .find(|p| p["name"] == w["name"])
                .map(|p| (*p).clone())
                .context("that workload has no proxy")?
        }
    };
    let addr: std::net::SocketAddr = wanted["admin"]
        .as_str()
        .context("the proxy has no admin address")?
        .parse()?;
    // A proxy in a pod (its address from a node's range, which a Node
    // may declare anywhere) or a gateway on the mesh network is reached
    // from the mesh network's namespace.
    // The mesh is told by this status's pods (its own first), so that
    // two meshes running at once are never confused.
    let proxy = wanted["name"].as_str().unwrap_or(name);
    let workloads: Vec<&serde_json::Value> =
        v["workloads"].as_array().into_iter().flatten().collect();
    let own = workloads
        .iter()
        .find(|w| w["name"] == proxy)
        .and_then(|w| w["netns"].as_str());
    let any = workloads.iter().find_map(|w| w["netns"].as_str());
    let netns = match (own, any) {
        (Some(pod), _) => Some(weft_local::capture::mesh_of_pod(pod)),
        (None, Some(pod)) if weft_local::capture::on_mesh_network(addr.ip()) => {
            Some(weft_local::capture::mesh_of_pod(pod))
        }
        _ if weft_local::capture::on_mesh_network(addr.ip()) => {
            weft_local::capture::mesh_of(&weft_local::capture::namespaces(), proxy)
        }
        _ => None,
    }
    .map(|n| std::path::Path::new("/var/run/netns").join(n));
    // Never from this machine's own namespace: the address means nothing
    // there.
    if netns.is_none() && weft_local::capture::on_mesh_network(addr.ip()) {
        anyhow::bail!("{proxy} is on a `weft up --capture` mesh network ({addr}), but which mesh's namespace reaches it cannot be told; pass the --admin of the weft up that runs it");
    }
    Ok(crate::http_get::Target { addr, netns })
}
