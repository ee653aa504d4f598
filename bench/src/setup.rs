//! The systems under test, each started the way a user would run it:
//! weft with `weft up` (its gateway is the single hop; two sidecars and the
//! mTLS tunnel between them are the mesh path), nginx and HAProxy as plain
//! keep-alive reverse proxies from Debian's packages. All on loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::oha::Target;
use crate::procstat;

/// Loopback addresses, away from the ones the tests use (127.61–127.116).
pub const ADMIN: &str = "127.0.200.1:15014";
pub const XDS: &str = "127.0.200.1:15010";
pub const INGRESS: &str = "127.0.200.2:8080";
pub const NGINX_H1: &str = "127.0.200.3:8080";
pub const NGINX_H2: &str = "127.0.200.3:8081";
pub const HAPROXY_H1: &str = "127.0.200.4:8080";
pub const HAPROXY_H2: &str = "127.0.200.4:8081";
/// `weft up` gives replicas consecutive addresses from the base in name
/// order (bench-client, then bench-server), and each app the address one
/// up in the third octet.
pub const ADDRESS_BASE: &str = "127.0.201.1";
pub const CLIENT_SIDECAR_OUTBOUND: &str = "127.0.201.1:15001";
pub const SERVER_SIDECAR_OUTBOUND: &str = "127.0.201.2:15001";
pub const BACKEND: &str = "127.0.202.2:9080";

/// A started process tree, killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so weft up takes its children down with it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn(program: &Path, args: &[String], log: &Path) -> anyhow::Result<Proc> {
    let out = std::fs::File::create(log)?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {}", program.display()))?;
    Ok(Proc { child })
}

/// Waits until the log of `what` says `ready`.
pub fn wait_for_log(log: &Path, ready: &str, what: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(ready)
    {
        if Instant::now() > deadline {
            bail!(
                "{what} was not ready within {within:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Waits until `addr` answers an HTTP GET with 200.
pub fn wait_http(addr: &str, host: Option<&str>, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if http_get(addr, host.unwrap_or(addr), "/").is_ok_and(|(s, _)| s == 200) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing answered 200 at {addr} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal blocking HTTP/1.1 GET (status and body), for readiness and
/// the admin API; the load itself is oha's.
pub fn http_get(addr: &str, host: &str, path: &str) -> anyhow::Result<(u16, String)> {
    use std::io::Read;
    let sa: SocketAddr = addr.parse()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("not an HTTP response")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub struct Weft {
    /// Held so that dropping the mesh stops it.
    _up: Proc,
    pub config: PathBuf,
}

const MESH_YAML: &str = r#"# The benchmark's mesh: a client and a server workload with sidecars, and
# the ingress gateway routing straight to the server's process (one hop).
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
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench-backend-direct
spec:
  hosts: [backend.bench.internal]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: BACKEND_IP}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: bench-gateway
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: bench-direct
spec:
  hosts: ["*"]
  gateways: [bench-gateway]
  http:
  - route:
    - destination: {host: backend.bench.internal, port: {number: 9080}}
"#;

/// Mesh-wide: no metrics, no access log (the "telemetry off" rows).
const TELEMETRY_OFF: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{disabled: true}]
  metrics:
  - overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
"#;

/// Plaintext between the bench's sidecars: what the mTLS tunnel costs.
const MTLS_OFF: &str = r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bench-server-plaintext, namespace: default}
spec:
  host: bench-server
  trafficPolicy:
    tls: {mode: DISABLE}
"#;

/// The sidecars' names in the control plane's status.
const CLIENT_SIDECAR_NAME: &str = "default/bench-client-0";
const SERVER_SIDECAR_NAME: &str = "default/bench-server-0";

impl Weft {
    pub fn start(weft: &Path, bench: &Path, work: &Path) -> anyhow::Result<Weft> {
        let config = work.join("mesh");
        let _ = std::fs::remove_dir_all(work.join("run"));
        // A run stopped half-way leaves its changes (telemetry off, mTLS
        // off) behind: every run starts from the mesh alone.
        let _ = std::fs::remove_dir_all(&config);
        std::fs::create_dir_all(&config)?;
        let backend_ip = BACKEND.split(':').next().unwrap_or_default();
        std::fs::write(
            config.join("mesh.yaml"),
            MESH_YAML
                .replace("BACKEND_COMMAND", &bench.display().to_string())
                .replace("BACKEND_IP", backend_ip),
        )?;
        let up = weft_up(
            weft,
            &config,
            work,
            (INGRESS, ADMIN, XDS),
            &["--address-base", ADDRESS_BASE],
        )?;
        wait_http(BACKEND, None, Duration::from_secs(10))
            .context("the bench-server workload is not where weft up should have put it")?;
        wait_http(INGRESS, None, Duration::from_secs(10))?;
        wait_http(
            CLIENT_SIDECAR_OUTBOUND,
            Some("bench-server:9080"),
            Duration::from_secs(10),
        )?;
        Ok(Weft { _up: up, config })
    }

    pub fn gateway_pids() -> Vec<u32> {
        procstat::find(&["proxy", &format!("8080={INGRESS}")])
    }

    pub fn sidecar_pids(outbound: &str) -> Vec<u32> {
        procstat::find(&["proxy", "--outbound", outbound])
    }

    /// Turns telemetry off (or back on) mesh-wide and waits until every
    /// proxy has acknowledged the change.
    pub fn set_telemetry(&self, on: bool) -> anyhow::Result<()> {
        self.change("telemetry.yaml", (!on).then_some(TELEMETRY_OFF), None)
    }

    /// Turns mTLS between the bench's sidecars off (plaintext HTTP from
    /// the client sidecar to the server sidecar) or back on, and waits
    /// until the client sidecar has acknowledged it.
    pub fn set_mtls(&self, on: bool) -> anyhow::Result<()> {
        self.change(
            "plaintext.yaml",
            (!on).then_some(MTLS_OFF),
            Some(CLIENT_SIDECAR_NAME),
        )
    }

    /// Requests the server sidecar has counted as arriving without mTLS
    /// (`istio_requests_total` with `connection_security_policy="none"`),
    /// so the plaintext run can show it was one.
    pub fn server_plaintext_requests() -> anyhow::Result<f64> {
        let admin = status_proxies()?
            .into_iter()
            .find(|p| p["name"] == SERVER_SIDECAR_NAME)
            .and_then(|p| p["admin"].as_str().map(str::to_owned))
            .context("the server sidecar has no admin address in /api/status")?;
        let (_, metrics) = http_get(&admin, &admin, "/stats/prometheus")?;
        Ok(metrics
            .lines()
            .filter(|l| {
                l.starts_with("istio_requests_total{")
                    && l.contains(r#"reporter="destination""#)
                    && l.contains(r#"connection_security_policy="none""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Writes `file` of the mesh's configuration (or removes it, for
    /// `None`) and waits until every proxy is in sync, `affected` (every
    /// proxy when `None`) with a model it did not have before.
    fn change(
        &self,
        file: &str,
        contents: Option<&str>,
        affected: Option<&str>,
    ) -> anyhow::Result<()> {
        let before = pushed_versions()?;
        let path = self.config.join(file);
        match contents {
            Some(text) => std::fs::write(&path, text)?,
            None => std::fs::remove_file(&path)?,
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = pushed_versions()?;
            if now.iter().all(|(name, (v, sync))| {
                let must_change = affected.is_none_or(|a| a == name);
                sync == "SYNCED" && (!must_change || before.get(name).is_none_or(|(b, _)| b != v))
            }) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the change to {file} did not reach the proxies within 20 s: {now:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The proxies in the control plane's `/api/status`.
fn status_proxies() -> anyhow::Result<Vec<serde_json::Value>> {
    let (_, body) = http_get(ADMIN, ADMIN, "/api/status")?;
    let mut v: serde_json::Value = serde_json::from_str(&body)?;
    Ok(match v["proxies"].take() {
        serde_json::Value::Array(proxies) => proxies,
        _ => Vec::new(),
    })
}

fn pushed_versions() -> anyhow::Result<std::collections::BTreeMap<String, (String, String)>> {
    Ok(status_proxies()?
        .iter()
        .filter_map(|p| {
            Some((
                p["name"].as_str()?.to_owned(),
                (
                    p["pushedVersion"].as_str()?.to_owned(),
                    p["sync"].as_str()?.to_owned(),
                ),
            ))
        })
        .collect())
}

pub fn nginx(work: &Path) -> anyhow::Result<Proc> {
    let dir = work.join("nginx");
    let (program, args) = nginx_command(
        &dir,
        BACKEND,
        &[NGINX_H1.into(), format!("{NGINX_H2} http2")],
    )?;
    let p = spawn(Path::new(&program), &args, &dir.join("stdout.log"))?;
    wait_http(NGINX_H1, None, Duration::from_secs(10))?;
    Ok(p)
}

/// nginx as a plain keep-alive reverse proxy in front of `upstream`,
/// listening on each of `listens` (an nginx `listen` argument): its
/// configuration written under `dir`, and the command that runs it.
pub fn nginx_command(
    dir: &Path,
    upstream: &str,
    listens: &[String],
) -> anyhow::Result<(String, Vec<String>)> {
    std::fs::create_dir_all(dir.join("tmp"))?;
    let d = dir.display();
    let listen: String = listens
        .iter()
        .map(|l| format!("    listen {l};\n"))
        .collect();
    let conf = format!(
        r#"# A plain keep-alive reverse proxy, as a user would write one.
worker_processes auto;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  keepalive_requests 1000000;
  upstream backend {{
    server {upstream};
    keepalive 128;
    keepalive_requests 1000000;
  }}
  server {{
{listen}    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"#
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf)?;
    Ok((
        "nginx".into(),
        vec![
            "-c".into(),
            path.display().to_string(),
            "-e".into(),
            dir.join("error.log").display().to_string(),
        ],
    ))
}

/// `weft up -f config` with its ingress, admin API and model stream where
/// given, its run directory under `work`, and `extra` arguments; returns
/// once it says it is ready.
pub fn weft_up(
    weft: &Path,
    config: &Path,
    work: &Path,
    (ingress, admin, xds): (&str, &str, &str),
    extra: &[&str],
) -> anyhow::Result<Proc> {
    let log = work.join("weft-up.log");
    let mut args: Vec<String> = [
        "up",
        "-f",
        &config.display().to_string(),
        "--ingress",
        ingress,
        "--admin",
        admin,
        "--xds",
        xds,
        "--run-dir",
        &work.join("run").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let up = spawn(weft, &args, &log)?;
    wait_for_log(&log, "weft: ready", "weft up", Duration::from_secs(60))?;
    Ok(up)
}

pub fn haproxy(work: &Path) -> anyhow::Result<Proc> {
    let dir = work.join("haproxy");
    std::fs::create_dir_all(&dir)?;
    let conf = format!(
        r#"# A plain keep-alive reverse proxy, as a user would write one.
global
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend h1
  bind {HAPROXY_H1}
  default_backend backend
frontend h2
  bind {HAPROXY_H2} proto h2
  default_backend backend
backend backend
  server s1 {BACKEND}
"#
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let p = spawn(
        Path::new("haproxy"),
        &["-db".into(), "-f".into(), path.display().to_string()],
        &dir.join("stdout.log"),
    )?;
    wait_http(HAPROXY_H1, None, Duration::from_secs(10))?;
    Ok(p)
}

/// Puts every thread of `pids` under `SCHED_BATCH`, or back under the
/// kernel's default (util-linux `chrt`; no privilege is needed for either).
pub fn set_batch(pids: &[u32], batch: bool) -> anyhow::Result<()> {
    for pid in pids {
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
            let tid = task.file_name().to_string_lossy().into_owned();
            let status = std::process::Command::new("chrt")
                .args([if batch { "-b" } else { "-o" }, "-p", "0", &tid])
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                anyhow::bail!("chrt could not change the policy of thread {tid} of {pid}");
            }
        }
    }
    Ok(())
}

/// What oha aims at for each system, by protocol.
pub fn target(system: System, proto: crate::oha::Proto) -> Target {
    use crate::oha::Proto::*;
    let url = |a: &str| format!("http://{a}/");
    match (system, proto) {
        (System::Direct, _) => Target {
            url: url(BACKEND),
            connect_to: None,
            netns: None,
        },
        (
            System::WeftGateway | System::WeftGatewayNoTelemetry | System::WeftGatewaySchedOther,
            _,
        ) => Target {
            url: url(INGRESS),
            connect_to: None,
            netns: None,
        },
        // As transparent capture would: the app asks for bench-server:9080
        // and the connection lands on its sidecar's outbound port.
        (
            System::WeftMesh
            | System::WeftMeshNoTelemetry
            | System::WeftMeshSchedOther
            | System::WeftMeshPlaintext,
            _,
        ) => Target {
            url: "http://bench-server:9080/".into(),
            connect_to: Some(format!("bench-server:9080:{CLIENT_SIDECAR_OUTBOUND}")),
            netns: None,
        },
        // Aimed by the capture mesh (`capture::CaptureMesh::target`).
        (System::DirectVeth | System::NginxVeth | System::WeftMeshCapture, _) => Target {
            url: String::new(),
            connect_to: None,
            netns: None,
        },
        (System::Nginx | System::NginxSchedBatch, Http1) => Target {
            url: url(NGINX_H1),
            connect_to: None,
            netns: None,
        },
        (System::Nginx | System::NginxSchedBatch, Http2) => Target {
            url: url(NGINX_H2),
            connect_to: None,
            netns: None,
        },
        (System::Haproxy, Http1) => Target {
            url: url(HAPROXY_H1),
            connect_to: None,
            netns: None,
        },
        (System::Haproxy, Http2) => Target {
            url: url(HAPROXY_H2),
            connect_to: None,
            netns: None,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    Direct,
    WeftGateway,
    WeftMesh,
    Nginx,
    Haproxy,
    WeftGatewayNoTelemetry,
    WeftMeshNoTelemetry,
    /// The mesh path with mTLS off between the sidecars (a DestinationRule
    /// with `tls.mode: DISABLE`): what the tunnel costs, apart from the
    /// second proxy.
    WeftMeshPlaintext,
    /// weft's proxies switched to the kernel's default policy, and nginx
    /// switched to weft's: how much of the difference is `SCHED_BATCH`.
    WeftGatewaySchedOther,
    WeftMeshSchedOther,
    NginxSchedBatch,
    /// Under capture (`weft up --capture`): the direct call, nginx and the
    /// mesh path across the same veths and bridge (see `capture`).
    DirectVeth,
    NginxVeth,
    WeftMeshCapture,
}

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Direct => "direct (no proxy)",
            System::WeftGateway => "weft gateway (1 hop)",
            System::WeftMesh => "weft mesh (sidecar → mTLS → sidecar)",
            System::Nginx => "nginx (1 hop)",
            System::Haproxy => "HAProxy (1 hop)",
            System::WeftGatewayNoTelemetry => "weft gateway, telemetry off",
            System::WeftMeshNoTelemetry => "weft mesh, telemetry off",
            System::WeftMeshPlaintext => "weft mesh, plaintext (mTLS off)",
            System::WeftGatewaySchedOther => "weft gateway, SCHED_OTHER",
            System::WeftMeshSchedOther => "weft mesh, SCHED_OTHER",
            System::NginxSchedBatch => "nginx (1 hop), SCHED_BATCH",
            System::DirectVeth => "direct across veths (capture network)",
            System::NginxVeth => "nginx (1 hop) across veths",
            System::WeftMeshCapture => "weft mesh under capture, across veths",
        }
    }
}
