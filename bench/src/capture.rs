//! The mesh path under transparent capture (`weft up --capture`, root),
//! beside the direct call and nginx across the same veths and bridge, so
//! that what capture adds can be told from what the veth path costs.
//!
//! The client and the server are pods on one node:
//! - **weft mesh under capture**: the load generator runs in the client's
//!   pod and calls the service's address as an application would:
//!   captured by the client's rules, carried by its sidecar over the mTLS
//!   tunnel to the server's sidecar, captured there and delivered to the
//!   backend;
//! - **direct across veths**: the load generator runs in a namespace of
//!   its own joined to the node's bridge as a pod is (a veth, an address
//!   in the node's range), without capture rules, and calls a second
//!   backend on a server port the server's rules exclude (9081);
//! - **nginx across veths**: the same way, to nginx in the server's pod
//!   on another excluded port (9082), in front of that backend.
//!
//! The uncaptured client is a namespace of its own, not the client's pod
//! with the proxy's group (which the rules let through): under gVisor,
//! where this benchmark has run, such connections stalled once their
//! ports were reused, which the captured path and a plain namespace never
//! did.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::oha::Target;
use crate::setup::{spawn, Proc};

/// On the machine's loopback, away from the loopback mesh's addresses.
const ADMIN: &str = "127.0.203.1:15014";
const XDS: &str = "127.0.203.1:15010";
const INGRESS: &str = "127.0.203.2:8080";
/// The server pod's ports its capture rules leave alone.
const DIRECT_PORT: u16 = 9081;
const NGINX_PORT: u16 = 9082;

const MESH_YAML: &str = r#"# The benchmark's mesh under capture: the same two workloads as the
# loopback mesh, each in a pod.
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: bench-client
  labels: {app: bench-client, version: v1}
spec:
  command: sleep
  args: ["100000"]
  serviceAccount: bench-client
---
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: bench-server
  labels: {app: bench-server, version: v1}
  annotations:
    # The direct call and nginx reach the server's pod here, uncaptured.
    traffic.sidecar.istio.io/excludeInboundPorts: "9081,9082"
spec:
  command: BACKEND_COMMAND
  args: [backend]
  ports: [{name: http, port: 9080}]
  serviceAccount: bench-server
---
apiVersion: v1
kind: Service
metadata:
  name: bench-server
spec:
  selector: {app: bench-server}
  ports: [{name: http, port: 9080}]
"#;

/// Why the capture rows cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces and nftables need it)".into());
    }
    for (program, package) in [("nft", "nftables"), ("ip", "iproute2")] {
        if std::process::Command::new(program)
            .arg("--version")
            .output()
            .is_err()
        {
            return Some(format!("`{program}` is missing (Debian's {package})"));
        }
    }
    None
}

pub struct CaptureMesh {
    // Dropped in this order: the extra processes, then the mesh.
    _nginx: Proc,
    _backend: Proc,
    load: LoadNamespace,
    _up: Proc,
    client_pod: String,
    server_ip: String,
    service_ip: String,
}

fn status() -> anyhow::Result<serde_json::Value> {
    let (_, body) = crate::setup::http_get(ADMIN, "weft", "/api/status")?;
    Ok(serde_json::from_str(&body)?)
}

/// `program args…` in network namespace `netns`.
fn in_netns(netns: &str, program: &str, args: &[String], log: &Path) -> anyhow::Result<Proc> {
    let mut all = vec![
        "netns".to_owned(),
        "exec".into(),
        netns.to_owned(),
        program.into(),
    ];
    all.extend(args.iter().cloned());
    spawn(Path::new("ip"), &all, log)
}

impl CaptureMesh {
    pub fn start(weft: &Path, bench: &Path, work: &Path) -> anyhow::Result<CaptureMesh> {
        let work = work.join("capture");
        let config = work.join("mesh");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&config)?;
        std::fs::write(
            config.join("mesh.yaml"),
            MESH_YAML.replace("BACKEND_COMMAND", &bench.display().to_string()),
        )?;
        let up =
            crate::setup::weft_up(weft, &config, &work, (INGRESS, ADMIN, XDS), &["--capture"])?;
        let v = status()?;
        let replica = |name: &str| {
            v["workloads"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["name"] == format!("default/{name}-0"))
                .cloned()
                .with_context(|| format!("{name} is not in weft's status"))
        };
        let (client, server) = (replica("bench-client")?, replica("bench-server")?);
        let client_pod = client["netns"]
            .as_str()
            .context("the client has no pod")?
            .to_owned();
        let server_pod = server["netns"]
            .as_str()
            .context("the server has no pod")?
            .to_owned();
        let server_ip = server["listens"][0]
            .as_str()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(ip, _)| ip.to_owned())
            .context("the server has no address")?;
        let addresses: serde_json::Value =
            serde_json::from_slice(&std::fs::read(work.join("run/service-addresses.json"))?)?;
        let service_ip = addresses["replicas"]["bench-server.default.svc.cluster.local"]
            .as_str()
            .context("bench-server has no service address")?
            .to_owned();
        // A second backend on a port the server's rules leave alone, and
        // nginx in front of it, in the server's pod.
        let backend = in_netns(
            &server_pod,
            &bench.display().to_string(),
            &[
                "backend".into(),
                "--listen".into(),
                format!("0.0.0.0:{DIRECT_PORT}"),
            ],
            &work.join("backend-direct.log"),
        )?;
        let nginx = nginx_in(&server_pod, &server_ip, &work)?;
        let prefix = client_pod
            .split("-default-")
            .next()
            .context("the client's pod is not named as weft names pods")?;
        let load = LoadNamespace::make(&format!("{prefix}-node.local"))?;
        let mesh = CaptureMesh {
            _nginx: nginx,
            _backend: backend,
            load,
            _up: up,
            client_pod,
            server_ip,
            service_ip,
        };
        // Each path answers before it is measured (the backend and nginx
        // have just started).
        for system in [
            crate::setup::System::DirectVeth,
            crate::setup::System::NginxVeth,
            crate::setup::System::WeftMeshCapture,
        ] {
            let t = mesh.target(system);
            let load = crate::oha::Load {
                proto: crate::oha::Proto::Http1,
                rate: Some(100),
                connections: 1,
                duration: Duration::from_millis(300),
            };
            let started = std::time::Instant::now();
            loop {
                let out = crate::oha::run(&t, &load)
                    .with_context(|| format!("{} does not answer", system.label()))?;
                if out.ok > 0 {
                    break;
                }
                if started.elapsed() > Duration::from_secs(15) {
                    bail!("{} does not answer at {}: {out:?}", system.label(), t.url);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(mesh)
    }

    /// Where oha aims for `system`, and how it runs.
    pub fn target(&self, system: crate::setup::System) -> Target {
        use crate::setup::System;
        let (url, netns) = match system {
            System::DirectVeth => (
                format!("http://{}:{DIRECT_PORT}/", self.server_ip),
                &self.load.name,
            ),
            System::NginxVeth => (
                format!("http://{}:{NGINX_PORT}/", self.server_ip),
                &self.load.name,
            ),
            _ => (
                format!("http://{}:9080/", self.service_ip),
                &self.client_pod,
            ),
        };
        Target {
            url,
            connect_to: None,
            netns: Some(netns.clone()),
        }
    }

    /// The sidecars' processes, client first.
    pub fn sidecar_pids(&self) -> Vec<(String, Vec<u32>)> {
        let pids = |ip: &str| crate::procstat::find(&["proxy", "--capture", "--inbound-ip", ip]);
        let client_ip = status()
            .ok()
            .and_then(|v| {
                v["workloads"]
                    .as_array()?
                    .iter()
                    .find(|w| w["name"] == "default/bench-client-0")?["tunnel"]
                    .as_str()
                    .and_then(|t| t.rsplit_once(':'))
                    .map(|(ip, _)| ip.to_owned())
            })
            .unwrap_or_default();
        vec![
            ("client sidecar (capture)".into(), pids(&client_ip)),
            ("server sidecar (capture)".into(), pids(&self.server_ip)),
        ]
    }

    /// nginx's processes.
    pub fn nginx_pids(&self) -> Vec<u32> {
        crate::procstat::with_children(self._nginx.child.id())
    }
}

/// nginx in pod `netns`, on the pod's address, in front of the backend on
/// the pod's loopback.
fn nginx_in(netns: &str, ip: &str, work: &Path) -> anyhow::Result<Proc> {
    let dir = work.join("nginx");
    let (program, args) = crate::setup::nginx_command(
        &dir,
        &format!("127.0.0.1:{DIRECT_PORT}"),
        &[format!("{ip}:{NGINX_PORT}")],
    )?;
    in_netns(netns, &program, &args, &dir.join("stdout.log"))
}

/// A namespace joined to a node's bridge as a pod is, without capture
/// rules: where the direct call and nginx are called from. Removed when
/// dropped.
struct LoadNamespace {
    name: String,
}

/// The load namespace's address: the top of the node's range, which
/// `weft up` gives a pod only when the node holds 250 of them.
const LOAD_IP: &str = "198.19.1.250";

impl LoadNamespace {
    fn make(node: &str) -> anyhow::Result<LoadNamespace> {
        let load = LoadNamespace {
            name: format!("weft-bench-load-{}", std::process::id()),
        };
        let veth = format!("wbl{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| -> anyhow::Result<()> {
            let out = std::process::Command::new("ip").args(args).output()?;
            if !out.status.success() {
                bail!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(())
        };
        ip(&["netns", "add", &load.name])?;
        ip(&["-n", &load.name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", node, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &load.name,
        ])?;
        ip(&["-n", node, "link", "set", &veth, "master", "weft0", "up"])?;
        ip(&[
            "-n",
            &load.name,
            "addr",
            "add",
            &format!("{LOAD_IP}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &load.name, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &load.name,
            "route",
            "add",
            "default",
            "via",
            "198.19.1.1",
        ])?;
        Ok(load)
    }
}

impl Drop for LoadNamespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
