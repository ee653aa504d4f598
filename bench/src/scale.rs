//! Control-plane scale: a mesh of 1000 services and 10 000 endpoints, 2000
//! simulated proxies holding real model streams (the proxy's own gRPC
//! protocol, plain h2c) and ACKing every model. A change is written into
//! the configuration directory; each affected proxy's ACK is timed from
//! the write.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use weft_model::wire::{proxy_message::Kind, Ack, ProxyMessage};

use crate::procstat::{self, PeakRss};
use crate::setup;

const ADMIN: &str = "127.0.200.10:15014";
const XDS: &str = "127.0.200.10:15010";
const CA: &str = "127.0.200.10:15012";

#[derive(Debug, Clone, Default, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    fn of(mut v: Vec<f64>) -> Quantiles {
        if v.is_empty() {
            return Quantiles::default();
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
        Quantiles {
            p50: at(0.50),
            p99: at(0.99),
            max: v[v.len() - 1],
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    pub scope: String,
    pub change: String,
    pub services: usize,
    pub endpoints: usize,
    pub proxies: usize,
    pub affected: usize,
    pub control_plane_start_seconds: f64,
    pub ack_ms: Quantiles,
    pub initial_bytes_per_proxy: f64,
    pub change_bytes_per_proxy: f64,
    pub control_plane_cpu_seconds_change: f64,
    pub control_plane_rss_peak_mib: f64,
    /// Where the change's time went in the control plane, as its log says:
    /// listing what changed, analyzing, compiling, then serving the models
    /// to the streams.
    pub times_ms: ChangeTimes,
    /// What the change's compile built anew; everything else it kept
    /// from the compile before.
    pub built: Built,
    /// The distinct sections the control plane holds after the change
    /// (each once, however many proxies' models have it), and their bytes.
    pub sections_held: u64,
    pub section_mib_held: f64,
    /// A real `weft proxy` on the same mesh, after the change.
    pub sidecar_rss_mib: f64,
}

/// The size of the simulated mesh.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    pub namespaces: usize,
    pub services_per_namespace: usize,
    pub replicas: usize,
    /// Replicas per workload that connect (2 × 1000 workloads = 2000).
    pub connected_per_workload: usize,
}

impl Size {
    pub fn full() -> Size {
        Size {
            namespaces: 50,
            services_per_namespace: 20,
            replicas: 10,
            connected_per_workload: 2,
        }
    }

    /// Five times the full size: 5000 services, 50 000 endpoints, 10 000
    /// proxies (`weft-bench scale --stretch`, not part of the default run).
    pub fn stretch() -> Size {
        Size {
            namespaces: 250,
            ..Size::full()
        }
    }

    fn services(&self) -> usize {
        self.namespaces * self.services_per_namespace
    }
}

/// Every service is a Kubernetes Service over a Workload of `replicas`
/// replicas; scoped meshes give each namespace a Sidecar that limits its
/// proxies to their own namespace, as Istio's scalability advice does.
fn write_mesh(dir: &Path, size: Size, scoped: bool) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let mut y = String::new();
    for n in 0..size.namespaces {
        let ns = format!("ns{n}");
        for s in 0..size.services_per_namespace {
            let name = format!("svc{s}");
            let _ = write!(
                y,
                "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 9080}}]\n\
                 ---\napiVersion: weft.dev/v1\nkind: Workload\nmetadata: {{name: {name}, namespace: {ns}, labels: {{app: {name}, version: v1}}}}\nspec:\n  command: sleep\n  replicas: {}\n  ports: [{{name: http, port: 9080}}]\n  serviceAccount: {name}\n",
                size.replicas
            );
        }
        if scoped {
            let _ = write!(
                y,
                "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: {ns}}}\nspec:\n  egress:\n  - hosts: [\"./*\", \"istio-system/*\"]\n"
            );
        }
    }
    std::fs::write(dir.join("mesh.yaml"), y)?;
    Ok(())
}

pub const WHOLE_MESH: &str = "whole mesh (no Sidecar)";

/// A real sidecar of the mesh (a replica no simulated proxy is), started
/// as `weft up` starts one but without mTLS, to read what a proxy holds
/// with the mesh visible to it. `None` where the mesh has no such replica.
fn real_sidecar(
    weft: &Path,
    run_dir: &Path,
    dir: &Path,
    size: Size,
) -> anyhow::Result<Option<setup::Proc>> {
    if size.replicas <= size.connected_per_workload {
        return Ok(None);
    }
    let name = format!("ns0/svc0-{}", size.connected_per_workload);
    let token = run_dir
        .join("tokens")
        .join(format!("{}.token", name.replace('/', ".")));
    let args: Vec<String> = [
        "proxy",
        "--control-plane",
        XDS,
        "--proxy",
        &name,
        "--token-file",
        &token.display().to_string(),
        "--no-mtls",
        "--outbound",
        SIDECAR_OUTBOUND,
        "--inbound-ip",
        SIDECAR_IP,
        "--admin",
        SIDECAR_ADMIN,
        "--app",
        &format!("9080={SIDECAR_IP}:19080"),
        "--access-log",
        &dir.join("sidecar.access.log").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = dir.join("sidecar.log");
    let proc = setup::spawn(weft, &args, &log)?;
    setup::wait_for_log(
        &log,
        "weft proxy: ready",
        "the real sidecar",
        Duration::from_secs(120),
    )?;
    Ok(Some(proc))
}

const SIDECAR_IP: &str = "127.0.200.11";
const SIDECAR_OUTBOUND: &str = "127.0.200.11:15001";
const SIDECAR_ADMIN: &str = "127.0.200.11:15000";

/// Milliseconds of one change in the control plane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ChangeTimes {
    pub list: f64,
    pub analyze: f64,
    pub compile: f64,
    pub serve: f64,
}

/// Virtual hosts and clusters one change's compile built anew, and
/// those it kept from the compile before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Built {
    pub virtual_hosts: u64,
    pub clusters: u64,
    pub virtual_hosts_kept: u64,
    pub clusters_kept: u64,
}

/// The log line of the last configuration the control plane accepted.
fn last_accepted(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| l.contains("accepted (loaded and compiled in"))
        .unwrap_or_default()
        .to_owned()
}

/// The number in `line` after `what`, up to `until`.
fn number_between(line: &str, what: &str, until: &str) -> f64 {
    line.split(what)
        .nth(1)
        .and_then(|rest| rest.split(until).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Where the last configuration the control plane's log says it accepted
/// spent its time, and what its compile built.
fn change_times(log: &Path) -> (ChangeTimes, Built) {
    let line = last_accepted(log);
    let ms = |what: &str| number_between(&line, what, " ms");
    let times = ChangeTimes {
        list: ms("listed in"),
        analyze: ms("analyzed in"),
        compile: ms(", compiled in"),
        serve: ms("served to the streams in"),
    };
    let count = |what: &str, until: &str| number_between(&line, what, until) as u64;
    // "keeping 9998 and 5000;"
    let kept = line
        .split("and keeping ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default();
    let (hosts_kept, clusters_kept) = kept.split_once(" and ").unwrap_or_default();
    let built = Built {
        virtual_hosts: count("building ", " virtual hosts"),
        clusters: count("virtual hosts and ", " clusters"),
        virtual_hosts_kept: hosts_kept.trim().parse().unwrap_or(0),
        clusters_kept: clusters_kept.trim().parse().unwrap_or(0),
    };
    (times, built)
}

/// What `/api/status` says the control plane holds in sections.
fn sections_held() -> (u64, u64) {
    let Ok((_, body)) = setup::http_get(ADMIN, "localhost", "/api/status") else {
        return (0, 0);
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let s = &v["controlPlane"]["sections"];
    (
        s["distinct"].as_u64().unwrap_or(0),
        s["bytes"].as_u64().unwrap_or(0),
    )
}

/// A change to one service: every proxy that can reach it gets a new model.
const ONE_SERVICE: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc0-timeout, namespace: ns0}
spec:
  hosts: [svc0.ns0.svc.cluster.local]
  http:
  - timeout: 3s
    route:
    - destination: {host: svc0.ns0.svc.cluster.local}
"#;

/// A mesh-wide change: every proxy gets a new model.
const MESH_WIDE: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{disabled: true}]
"#;

#[derive(Default)]
struct Seen {
    /// Proxy → (version, bytes, when received) of every model, in order.
    models: BTreeMap<String, Vec<(String, usize, Instant)>>,
    errors: Vec<String>,
}

async fn simulate(proxy: String, token: String, seen: Arc<Mutex<Seen>>) {
    // 2000 proxies connecting at once overflow the accept queue now and
    // then, and 10 000 that connect while the first are sent their whole
    // mesh wait longer; a real proxy reconnects with backoff for as long
    // as it runs, this one for about a minute and a half.
    let mut last = String::new();
    for attempt in 0..50u64 {
        match session(&proxy, &token, &seen).await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis((100 * (attempt + 1)).min(2000))).await;
    }
    if let Ok(mut s) = seen.lock() {
        s.errors.push(format!("{proxy}: {last}"));
    }
}

/// One stream, opened as a proxy opens it (plain h2c, Hello), then an ACK
/// for every model. Returns when the control plane ends the stream.
async fn session(proxy: &str, token: &str, seen: &Mutex<Seen>) -> Result<(), String> {
    let cfg = weft_proxy::control::ClientConfig {
        control_plane: XDS.parse().map_err(|e| format!("{e}"))?,
        mesh: None,
        proxy: proxy.to_owned(),
        token: token.to_owned(),
        cache: None,
        max_model_bytes: weft_model::wire::MAX_MODEL_BYTES,
        admin: None,
        role: "sidecar".into(),
        held: Default::default(),
    };
    let (tx, mut stream) = weft_proxy::control::open(&cfg, "").await?;
    let mut parts = 0usize;
    let mut whole_len;
    loop {
        let update = match stream.message().await {
            Ok(Some(u)) => u,
            Ok(None) => return Ok(()),
            Err(s) => return Err(format!("stream broke: {}", s.message())),
        };
        // A model may come in parts; the proxy answers once, for the
        // whole. (Counted, not put together: 2000 simulated proxies
        // copying whole-mesh models would load the cores the control
        // plane is measured on; a real proxy assembles its own one.)
        if update.parts > 1 {
            let len = update.model_json.len();
            parts = if update.part == 0 { len } else { parts + len };
            if update.part + 1 < update.parts {
                continue;
            }
            whole_len = parts;
        } else {
            whole_len = update.model_json.len();
        }
        let ack = ProxyMessage {
            kind: Some(Kind::Ack(Ack {
                nonce: update.nonce,
                version: update.version.clone(),
                error: String::new(),
                resync: false,
            })),
        };
        tx.send(ack).await.map_err(|e| e.to_string())?;
        // The ACK is on its way: this is the moment the proxy has the model.
        let now = Instant::now();
        if let Ok(mut s) = seen.lock() {
            s.models
                .entry(proxy.to_owned())
                .or_default()
                .push((update.version, whole_len, now));
        }
    }
}

fn proxies(size: Size) -> Vec<String> {
    let mut out = Vec::new();
    for n in 0..size.namespaces {
        for s in 0..size.services_per_namespace {
            for r in 0..size.connected_per_workload {
                out.push(format!("ns{n}/svc{s}-{r}"));
            }
        }
    }
    out
}

/// Waits until `done` holds for the seen models, or fails after `within`.
fn wait_for(
    seen: &Mutex<Seen>,
    within: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        {
            let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            if let Some(e) = s.errors.first() {
                bail!("a simulated proxy failed ({} in all): {e}", s.errors.len());
            }
            if done(&s) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{what} did not happen within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Scenario {
    scope: &'static str,
    scoped: bool,
    change: &'static str,
    change_yaml: &'static str,
    /// Which connected proxies the change reaches.
    affected: fn(&str) -> bool,
}

fn one(weft: &Path, work: &Path, size: Size, sc: &Scenario) -> anyhow::Result<ScaleResult> {
    let dir = work.join("scale");
    let config = dir.join("config");
    write_mesh(&config, size, sc.scoped)?;
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    let log = dir.join("control-plane.log");
    let started = Instant::now();
    let args: Vec<String> = [
        "control-plane",
        "-f",
        &config.display().to_string(),
        "--admin",
        ADMIN,
        "--xds",
        XDS,
        "--ca",
        CA,
        "--run-dir",
        &run_dir.display().to_string(),
        "--ca-dir",
        &dir.join("ca").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cp = setup::spawn(weft, &args, &log)?;
    let pid = cp.child.id();
    let peak = PeakRss::start(vec![pid]);
    setup::wait_for_log(
        &log,
        "control plane ready",
        "the control plane",
        Duration::from_secs(300),
    )?;
    let start_seconds = started.elapsed().as_secs_f64();
    let sidecar = real_sidecar(weft, &run_dir, &dir, size)?;
    let names = proxies(size);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    for name in &names {
        let token_file = run_dir
            .join("tokens")
            .join(format!("{}.token", name.replace('/', ".")));
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("no token for {name} at {}", token_file.display()))?;
        rt.spawn(simulate(
            name.clone(),
            token.trim().to_owned(),
            seen.clone(),
        ));
    }
    wait_for(
        &seen,
        Duration::from_secs(300),
        "every proxy's first model",
        |s| s.models.len() == names.len(),
    )?;
    // Let the control plane settle (status, ACK bookkeeping) before the change.
    std::thread::sleep(Duration::from_secs(2));
    let initial: BTreeMap<String, String> = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .models
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.last()?.0.clone())))
        .collect();
    let initial_bytes = {
        let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        s.models
            .values()
            .filter_map(|v| v.last().map(|m| m.1 as f64))
            .sum::<f64>()
            / names.len() as f64
    };
    let affected: Vec<String> = names.iter().filter(|n| (sc.affected)(n)).cloned().collect();
    let cpu_before = procstat::cpu_seconds(pid).unwrap_or(0.0);
    let t0 = Instant::now();
    std::fs::write(config.join("change.yaml"), sc.change_yaml)?;
    wait_for(
        &seen,
        Duration::from_secs(300),
        "every affected proxy's ACK",
        |s| {
            affected.iter().all(|p| {
                s.models
                    .get(p)
                    .and_then(|v| v.last())
                    .is_some_and(|(v, _, _)| Some(v) != initial.get(p))
            })
        },
    )?;
    let cpu = procstat::cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    // Anything else that changed is a proxy the change should not have reached.
    std::thread::sleep(Duration::from_millis(500));
    let (times_ms, built) = change_times(&log);
    let (sections_held, section_bytes_held) = sections_held();
    let sidecar_rss_mib = sidecar
        .as_ref()
        .and_then(|p| procstat::rss_kib(p.child.id()))
        .map_or(0.0, |k| k as f64 / 1024.0);
    drop(sidecar);
    let s = seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut times = Vec::new();
    let mut bytes = Vec::new();
    let mut reached = 0;
    for (p, models) in &s.models {
        let Some((v, b, at)) = models.last() else {
            continue;
        };
        if Some(v) == initial.get(p) {
            continue;
        }
        reached += 1;
        if affected.contains(p) {
            times.push(at.duration_since(t0).as_secs_f64() * 1000.0);
            bytes.push(*b as f64);
        }
    }
    drop(s);
    let rss = peak.finish();
    drop(cp);
    if reached != affected.len() {
        eprintln!(
            "weft-bench: the change reached {reached} proxies; {} were expected",
            affected.len()
        );
    }
    let result = ScaleResult {
        scope: sc.scope.into(),
        change: sc.change.into(),
        services: size.services(),
        endpoints: size.services() * size.replicas,
        proxies: names.len(),
        affected: affected.len(),
        control_plane_start_seconds: start_seconds,
        ack_ms: Quantiles::of(times),
        initial_bytes_per_proxy: initial_bytes,
        change_bytes_per_proxy: if bytes.is_empty() {
            0.0
        } else {
            bytes.iter().sum::<f64>() / bytes.len() as f64
        },
        control_plane_cpu_seconds_change: cpu,
        control_plane_rss_peak_mib: rss as f64 / 1024.0,
        times_ms,
        built,
        sections_held,
        section_mib_held: section_bytes_held as f64 / 1_048_576.0,
        sidecar_rss_mib,
    };
    eprintln!(
        "  {} / {}: {} proxies, {} affected; ACKed p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {:.0} bytes per proxy at start, {:.0} for the change; CPU {:.2} s (list {:.0} ms, analyze {:.0} ms, compile {:.0} ms building {} virtual hosts and {} clusters and keeping {} and {}, serve {:.0} ms); RSS peak {:.0} MiB; {} sections held ({:.1} MiB); a sidecar's RSS {:.1} MiB; start {:.1} s",
        result.scope, result.change, result.proxies, result.affected, result.ack_ms.p50, result.ack_ms.p99,
        result.ack_ms.max, result.initial_bytes_per_proxy, result.change_bytes_per_proxy,
        result.control_plane_cpu_seconds_change, result.times_ms.list, result.times_ms.analyze,
        result.times_ms.compile, result.built.virtual_hosts, result.built.clusters,
        result.built.virtual_hosts_kept, result.built.clusters_kept, result.times_ms.serve,
        result.control_plane_rss_peak_mib, result.sections_held, result.section_mib_held,
        result.sidecar_rss_mib, result.control_plane_start_seconds
    );
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(result)
}

/// Which meshes a run compiles: scoped by a Sidecar per namespace, and
/// whole (Istio's default, no Sidecar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scopes {
    Both,
    WholeOnly,
}

pub fn run(
    weft: &Path,
    work: &Path,
    size: Size,
    scopes: Scopes,
) -> anyhow::Result<Vec<ScaleResult>> {
    eprintln!(
        "weft-bench: control plane with {} services, {} endpoints, {} proxies",
        size.services(),
        size.services() * size.replicas,
        size.services() * size.connected_per_workload
    );
    let mut scenarios = Vec::new();
    let scoped = [
        Scenario {
            scope: "namespace-scoped (Sidecar per namespace)",
            scoped: true,
            change: "mesh-wide Telemetry",
            change_yaml: MESH_WIDE,
            affected: |_| true,
        },
        Scenario {
            scope: "namespace-scoped (Sidecar per namespace)",
            scoped: true,
            change: "VirtualService on one service",
            change_yaml: ONE_SERVICE,
            affected: |p| p.starts_with("ns0/"),
        },
    ];
    if scopes == Scopes::Both {
        scenarios.extend(scoped);
    }
    scenarios.extend([
        Scenario {
            scope: WHOLE_MESH,
            scoped: false,
            change: "mesh-wide Telemetry",
            change_yaml: MESH_WIDE,
            affected: |_| true,
        },
        Scenario {
            scope: WHOLE_MESH,
            scoped: false,
            change: "VirtualService on one service",
            change_yaml: ONE_SERVICE,
            affected: |_| true,
        },
    ]);
    scenarios
        .iter()
        .map(|sc| one(weft, work, size, sc))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let q = Quantiles::of((1..=100).map(f64::from).collect());
        assert_eq!((q.p50, q.p99, q.max), (50.0, 99.0, 100.0));
        let one = Quantiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Quantiles::of(Vec::new()).max, 0.0);
    }

    #[test]
    fn the_log_says_where_a_changes_time_went() {
        let dir = std::env::temp_dir().join(format!("weft-bench-log-{}", std::process::id()));
        std::fs::write(
            &dir,
            "weft: configuration 1 accepted (loaded and compiled in 900 ms: listed in 1 ms, analyzed in 2 ms, compiled in 3 ms, building 9 virtual hosts and 8 clusters and keeping 0 and 0; served to the streams in 80 ms)\nweft: configuration 2 accepted (loaded and compiled in 31 ms: listed in 10 ms, analyzed in 20 ms, compiled in 1 ms, building 2 virtual hosts and 0 clusters and keeping 7 and 8; served to the streams in 7 ms)\n",
        )
        .unwrap();
        assert_eq!(
            change_times(&dir),
            (
                ChangeTimes {
                    list: 10.0,
                    analyze: 20.0,
                    compile: 1.0,
                    serve: 7.0
                },
                Built {
                    virtual_hosts: 2,
                    clusters: 0,
                    virtual_hosts_kept: 7,
                    clusters_kept: 8
                }
            )
        );
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn the_full_size_is_the_issues() {
        let s = Size::full();
        assert_eq!(s.services(), 1000);
        assert_eq!(s.services() * s.replicas, 10_000);
        assert_eq!(proxies(s).len(), 2000);
        let big = Size::stretch();
        assert_eq!(big.services(), 5000);
        assert_eq!(big.services() * big.replicas, 50_000);
        assert_eq!(proxies(big).len(), 10_000);
    }
}
