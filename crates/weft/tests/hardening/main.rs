//! What hostile testing broke, kept broken-proof: each module reproduces
//! one defect through the `weft` binary with real clients, and fails
//! without its fix.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod addresses;
mod admission;
mod bodies;
mod concurrency;
mod hostile;
mod limits;
mod model_stream;
mod paths;
mod retries;
mod sources;
mod state;

use std::net::SocketAddr;

/// productpage's sidecar, compiled from bookinfo and `yaml`, running as
/// `weft proxy` (outbound at 127.N.1.1:15001, access log `access.log` in
/// the world's directory) with `args` added. Returns the outbound address
/// and the endpoints the model gives `service`, for the test to start.
pub fn sidecar(
    w: &mut common::World,
    yaml: &str,
    service: &str,
    args: &[&str],
) -> (SocketAddr, Vec<SocketAddr>) {
    let f = w.write("extra.yaml", yaml);
    let model_path = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), f],
        "model.json",
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let host = format!("{service}.default.svc.cluster.local");
    let endpoints = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == host.as_str())
        .map(|c| {
            c["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["address"].as_str().unwrap().parse().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let outbound = w.addr(1, 1, 15001);
    let (m, o, log) = (
        model_path.display().to_string(),
        outbound.to_string(),
        w.dir.join("access.log").display().to_string(),
    );
    let mut all = vec![
        "proxy",
        "--model",
        &m,
        "--outbound",
        &o,
        "--explain",
        "--access-log",
        &log,
    ];
    all.extend_from_slice(args);
    w.spawn("proxy", &all, Some(outbound));
    (outbound, endpoints)
}

/// The sidecar's access log entries so far.
pub fn access_log(w: &common::World) -> Vec<serde_json::Value> {
    // Written by a background task every 100 ms.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::read_to_string(w.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// A `web` Service on port 8000 and its Workload of `replicas` httpbins,
/// then `more` YAML.
pub fn web(replicas: u32, more: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {{name: web, labels: {{app: web}}}}
spec: {{command: weft, args: [sample-app, httpbin], ports: [{{name: http, port: 8000}}], replicas: {replicas}}}
---
{more}"#
    )
}

/// One of Istio's task files (`examples/bookinfo-tasks/NAME`), copied
/// into the world's directory for `weft apply`.
pub fn task_file(w: &common::World, name: &str) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(common::repo().join("examples/bookinfo-tasks").join(name)).unwrap();
    w.write(name, &text)
}
