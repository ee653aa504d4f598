//! Local mode (`weft up`): the control plane, one sidecar per Workload
//! replica, the gateways, and the workloads themselves, as processes on
//! one machine, with no root and no containers.
//!
//! Configuration reaches proxies over the model stream (`push`): each
//! proxy connects with its bootstrap token, is sent its model at once and
//! every change after, and ACKs or NACKs each one; `weft status` shows
//! that state, like `istioctl proxy-status`.

pub mod plan;
mod supervise;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_api::diag::{Diagnostic, Severity};
use weft_compile::MeshConfig;

use crate::admin;
use crate::push::{self, Hub};
use crate::store::{Config, Refused, Store};
use crate::ControlError;
use plan::{GatewayPlan, Plan, SidecarPlan};
use supervise::{Managed, Spec};

#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// Where the ingress gateway's port 8080 listens.
    pub ingress: SocketAddr,
    /// The control plane's admin API (and, later, dashboard).
    pub admin: SocketAddr,
    /// The model stream proxies connect to.
    pub xds: SocketAddr,
    /// First loopback address for workload replicas.
    pub address_base: Ipv4Addr,
    /// Models and logs go here.
    pub run_dir: PathBuf,
    /// This weft binary: what `command: weft` runs, and the proxies.
    pub weft: PathBuf,
    /// Proxies add `x-weft-reason` to their own replies.
    pub explain: bool,
    /// Run the proxies and workloads (`weft up`), or only serve their
    /// configuration to proxies started elsewhere (`weft control-plane`).
    pub processes: bool,
}

struct Running {
    /// Proxy name → process and the version last pushed.
    proxies: BTreeMap<String, (Managed, String)>,
    /// Workload instance name → process.
    apps: BTreeMap<String, Managed>,
    plan: Plan,
}

fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

fn model_path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir
        .join("models")
        .join(format!("{}.json", name.replace('/', ".")))
}

/// The arguments that connect a proxy to the model stream.
fn stream_args(o: &Options, hub: &Hub, name: &str) -> Vec<String> {
    let token = hub
        .token_file(&o.run_dir.join("tokens"), name)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    vec![
        "--control-plane".into(),
        o.xds.to_string(),
        "--proxy".into(),
        name.to_owned(),
        "--token-file".into(),
        token,
        "--model-cache".into(),
        model_path(&o.run_dir, name).display().to_string(),
    ]
}

fn sidecar_spec(o: &Options, hub: &Hub, s: &SidecarPlan) -> Spec {
    let mut args = vec!["proxy".to_owned()];
    args.extend(stream_args(o, hub, &s.name));
    args.extend([
        "--outbound".into(),
        s.outbound().to_string(),
        "--inbound-ip".into(),
        s.ip.to_string(),
        "--admin".into(),
        s.admin().to_string(),
        "--access-log".into(),
        o.run_dir
            .join("logs")
            .join(format!("{}.access.log", s.instance))
            .display()
            .to_string(),
    ]);
    for p in &s.ports {
        args.push("--app".into());
        args.push(format!("{p}={}", s.app(*p)));
    }
    for (name, addr, _) in &s.tcp {
        args.push("--bind".into());
        args.push(format!("{name}={addr}"));
    }
    if o.explain {
        args.push("--explain".into());
    }
    Spec {
        name: format!("{} (sidecar)", s.name),
        program: o.weft.clone(),
        args,
        env: Vec::new(),
        log: o
            .run_dir
            .join("logs")
            .join(format!("{}.proxy.log", s.instance)),
    }
}

fn app_spec(o: &Options, s: &SidecarPlan) -> Spec {
    // weft's own commands follow weft up's lifetime themselves; anything
    // else runs under `weft exec-child`, which does it for them.
    let (program, args) = if s.command == "weft" {
        (o.weft.clone(), s.args.clone())
    } else {
        let mut a = vec!["exec-child".to_owned(), "--".to_owned(), s.command.clone()];
        a.extend(s.args.iter().cloned());
        (o.weft.clone(), a)
    };
    let proxy = format!("http://{}", s.outbound());
    let first = s.ports.first().copied().unwrap_or(8080);
    let mut env: Vec<(String, String)> = vec![
        ("HTTP_PROXY".into(), proxy.clone()),
        ("http_proxy".into(), proxy),
        ("NO_PROXY".into(), "localhost".into()),
        ("no_proxy".into(), "localhost".into()),
        ("WEFT_LISTEN".into(), s.app(first).to_string()),
        ("PORT".into(), first.to_string()),
        ("HOST".into(), s.app_ip.to_string()),
        ("WEFT_INSTANCE".into(), s.instance.clone()),
        ("POD_NAME".into(), s.instance.clone()),
        ("POD_NAMESPACE".into(), s.namespace.clone()),
        ("SERVICE_ACCOUNT".into(), s.service_account.clone()),
    ];
    if let Some(v) = s.labels.get("version") {
        env.push(("WEFT_VERSION".into(), v.clone()));
    }
    for (_, addr, prefix) in &s.tcp {
        env.push((format!("{prefix}_SERVICE_HOST"), addr.ip().to_string()));
        env.push((format!("{prefix}_SERVICE_PORT"), addr.port().to_string()));
    }
    env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    Spec {
        name: s.name.clone(),
        program,
        args,
        env,
        log: o.run_dir.join("logs").join(format!("{}.log", s.instance)),
    }
}

fn gateway_spec(o: &Options, hub: &Hub, g: &GatewayPlan) -> Spec {
    let short = g.name.rsplit('/').next().unwrap_or(&g.name).to_owned();
    let mut args = vec!["proxy".to_owned()];
    args.extend(stream_args(o, hub, &g.name));
    args.extend([
        "--admin".into(),
        g.admin.to_string(),
        "--access-log".into(),
        o.run_dir
            .join("logs")
            .join(format!("{short}.access.log"))
            .display()
            .to_string(),
    ]);
    for (port, addr) in &g.listens {
        args.push("--listen".into());
        args.push(format!("{port}={addr}"));
    }
    if o.explain {
        args.push("--explain".into());
    }
    Spec {
        name: format!("{} (gateway)", g.name),
        program: o.weft.clone(),
        args,
        env: Vec::new(),
        log: o.run_dir.join("logs").join(format!("{short}.log")),
    }
}

/// Waits until something accepts connections on `addr`.
async fn wait_listening(addr: SocketAddr, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

/// Checks up front that the fixed addresses are free, so a taken port is
/// one clear message instead of a proxy that keeps crashing.
async fn check_free(addr: SocketAddr, what: &str) -> Result<(), ControlError> {
    drop(admin::bind(addr, what).await?);
    Ok(())
}

pub async fn run(o: Options) -> Result<(), ControlError> {
    let mesh = MeshConfig {
        local_address_base: o.address_base,
        ..MeshConfig::default()
    };
    let mut store = Store::new(o.paths.clone(), mesh).with_applied(o.run_dir.join("applied"));
    eprintln!(
        "weft: loading {}",
        o.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let config = match store.load() {
        Ok(c) => c,
        Err(Refused { diagnostics }) => {
            print_diagnostics(&diagnostics);
            return Err(ControlError::Refused);
        }
    };
    print_diagnostics(&config.diagnostics);
    std::fs::create_dir_all(o.run_dir.join("models"))?;
    std::fs::create_dir_all(o.run_dir.join("logs"))?;
    let admin_listener = admin::bind(o.admin, "the admin API").await?;
    let xds_listener = push::bind(o.xds).await?;
    let hub = Hub::new();
    tokio::spawn(push::serve(xds_listener, hub.clone()));
    if o.processes {
        check_free(o.ingress, "the ingress gateway").await?;
    }
    let docs: admin::Shared = Arc::new(Mutex::new(admin::Docs::default()));
    tokio::spawn(admin::serve(admin_listener, docs.clone()));
    eprintln!(
        "weft: control plane admin API on http://{}, model stream on {}",
        o.admin, o.xds
    );

    let mut running = Running {
        proxies: BTreeMap::new(),
        apps: BTreeMap::new(),
        plan: Plan::default(),
    };
    apply(&o, &hub, &config, &mut running).await;
    let mut current = config;
    publish(&docs, &o, &hub, &current, &running, None).await;
    for g in &running.plan.gateways {
        for (port, addr) in &g.listens {
            eprintln!("weft: {} port {port} on http://{addr}", g.name);
        }
    }
    if o.processes {
        eprintln!(
            "weft: ready: {} workloads, {} proxies; try curl http://{}/productpage",
            running.apps.len(),
            running.proxies.len(),
            o.ingress
        );
    } else {
        eprintln!(
            "weft: ready: serving {} proxies' configuration on {}; their tokens are in {}",
            current.models.len(),
            o.xds,
            o.run_dir.join("tokens").display()
        );
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut last_error: Option<Vec<Diagnostic>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut status_tick = 0u32;
    let mut stream_changes = hub.subscribe_changes();
    loop {
        tokio::select! {
            _ = stream_changes.changed() => {
                // ACKs arrive in bursts after a push; settle briefly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                stream_changes.borrow_and_update();
                publish(&docs, &o, &hub, &current, &running, last_error.as_deref()).await;
            }
            _ = tick.tick() => {
                if store.changed_on_disk() {
                    // Debounce: editors write in several steps.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    match store.load() {
                        Ok(next) => {
                            eprintln!("weft: configuration {} accepted", next.generation);
                            print_diagnostics(&next.diagnostics);
                            apply(&o, &hub, &next, &mut running).await;
                            current = next;
                            last_error = None;
                        }
                        Err(Refused { diagnostics }) => {
                            eprintln!("weft: the change was refused; configuration {} keeps serving:", current.generation);
                            print_diagnostics(diagnostics.iter().filter(|d| d.severity == Severity::Error).cloned().collect::<Vec<_>>().as_slice());
                            last_error = Some(diagnostics);
                        }
                    }
                    publish(&docs, &o, &hub, &current, &running, last_error.as_deref()).await;
                } else {
                    status_tick += 1;
                    if status_tick % 8 == 0 {
                        publish(&docs, &o, &hub, &current, &running, last_error.as_deref()).await;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("weft: stopping workloads, then proxies");
    let apps: Vec<Managed> = std::mem::take(&mut running.apps).into_values().collect();
    futures_join(apps.into_iter().map(Managed::stop).collect()).await;
    let proxies: Vec<Managed> = std::mem::take(&mut running.proxies)
        .into_values()
        .map(|(m, _)| m)
        .collect();
    futures_join(proxies.into_iter().map(Managed::stop).collect()).await;
    eprintln!("weft: stopped");
    Ok(())
}

async fn futures_join(tasks: Vec<impl std::future::Future<Output = ()> + Send + 'static>) {
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

/// Brings the running processes in line with `config`: writes changed
/// models and signals their proxies, starts new sidecars and workloads,
/// stops removed ones.
async fn apply(o: &Options, hub: &Arc<Hub>, config: &Config, running: &mut Running) {
    let plan = plan::plan(config, o.ingress, o.ingress.ip());
    // Publish first: proxies started below fetch their model at once, and
    // running ones are sent only what changed.
    hub.publish(
        config
            .models
            .iter()
            .map(|(name, c)| (name.clone(), (c.version.clone(), Arc::new(c.json.clone()))))
            .collect(),
    );
    if !o.processes {
        // Only the stream: make sure every proxy has its bootstrap token.
        for name in config.models.keys() {
            if let Err(e) = hub.token_file(&o.run_dir.join("tokens"), name) {
                eprintln!("weft: cannot write the token of {name}: {e}");
            }
        }
        return;
    }
    // Proxies: gateways and sidecars.
    let mut wanted: BTreeMap<String, Spec> = BTreeMap::new();
    for g in &plan.gateways {
        wanted.insert(g.name.clone(), gateway_spec(o, hub, g));
    }
    for s in &plan.sidecars {
        wanted.insert(s.name.clone(), sidecar_spec(o, hub, s));
    }
    let removed: Vec<String> = running
        .proxies
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    for name in removed {
        if let Some(app) = running.apps.remove(&name) {
            app.stop().await;
        }
        if let Some((p, _)) = running.proxies.remove(&name) {
            eprintln!("weft: stopping {}", p.spec.name);
            p.stop().await;
        }
    }
    let mut started = Vec::new();
    for (name, spec) in wanted {
        let Some(compiled) = config.models.get(&name) else {
            continue;
        };
        match running.proxies.get_mut(&name) {
            Some((proxy, version)) if proxy.spec.args == spec.args => {
                // The stream carries the change; remember what was sent.
                *version = compiled.version.clone();
            }
            existing => {
                // New, or its listeners moved: (re)start it.
                if let Some((old, _)) = existing
                    .map(|_| ())
                    .and_then(|()| running.proxies.remove(&name))
                {
                    old.stop().await;
                }
                let admin = spec
                    .args
                    .iter()
                    .position(|a| a == "--admin")
                    .and_then(|i| spec.args.get(i + 1))
                    .and_then(|a| a.parse::<SocketAddr>().ok());
                eprintln!("weft: starting {}", spec.name);
                running.proxies.insert(
                    name.clone(),
                    (Managed::start(spec), compiled.version.clone()),
                );
                started.push((name, admin));
            }
        }
    }
    for (name, admin) in started {
        if let Some(a) = admin {
            if !wait_listening(a, Duration::from_secs(10)).await {
                eprintln!(
                    "weft: {name}'s proxy is not answering on {a}; see its log under {}",
                    o.run_dir.join("logs").display()
                );
            }
        }
    }
    // Workloads, once their sidecars listen.
    for s in &plan.sidecars {
        let spec = app_spec(o, s);
        let restart = running.apps.get(&s.name).is_some_and(|a| {
            a.spec.args != spec.args || a.spec.env != spec.env || a.spec.program != spec.program
        });
        if restart {
            if let Some(a) = running.apps.remove(&s.name) {
                a.stop().await;
            }
        }
        if !running.apps.contains_key(&s.name) {
            if s.command != "weft" && !command_exists(&s.command) {
                eprintln!("weft: workload {}: command `{}` is not found on PATH; fix: install it or give a full path in the Workload's spec.command (weft keeps retrying, and the rest of the mesh runs)", s.name, s.command);
            }
            eprintln!("weft: starting workload {} on {}", s.name, s.ip);
            running.apps.insert(s.name.clone(), Managed::start(spec));
        }
    }
    // Wait for the workloads together, under one deadline.
    let waits: Vec<_> = plan
        .sidecars
        .iter()
        .filter_map(|s| {
            s.ports.first().map(|p| {
                (
                    s.name.clone(),
                    s.app(*p),
                    o.run_dir.join("logs").join(format!("{}.log", s.instance)),
                )
            })
        })
        .map(|(name, addr, log)| {
            tokio::spawn(async move {
                if !wait_listening(addr, Duration::from_secs(10)).await {
                    eprintln!(
                        "weft: workload {name} does not listen on {addr} yet; see {}",
                        log.display()
                    );
                }
            })
        })
        .collect();
    for w in waits {
        let _ = w.await;
    }
    running.plan = plan;
}

/// A short HTTP GET to a local admin port.
async fn get(addr: SocketAddr, path: &str) -> Option<String> {
    use http_body_util::BodyExt;
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .ok()?;
        let resp = send.send_request(req).await.ok()?;
        let body = resp.into_body().collect().await.ok()?.to_bytes();
        String::from_utf8(body.to_vec()).ok()
    };
    tokio::time::timeout(Duration::from_secs(1), fut)
        .await
        .ok()
        .flatten()
}

/// Refreshes `/api/status` and `/api/validations`, asking each proxy which
/// version it serves.
async fn publish(
    docs: &admin::Shared,
    o: &Options,
    hub: &Hub,
    config: &Config,
    running: &Running,
    last_error: Option<&[Diagnostic]>,
) {
    let sync = hub.sync();
    let mut proxies = Vec::new();
    if !o.processes {
        for (name, c) in &config.models {
            let stream = sync.get(name).cloned().unwrap_or_default();
            let state = if !stream.connected {
                "DISCONNECTED"
            } else if stream.acked_version == c.version {
                "SYNCED"
            } else if stream.nack.is_some() {
                "NACKED"
            } else {
                "STALE"
            };
            proxies.push(serde_json::json!({"name": name, "kind": if matches!(c.proxy, weft_compile::ProxyRef::Gateway { .. }) { "gateway" } else { "sidecar" }, "pushedVersion": c.version, "sync": state, "stream": stream}));
        }
    }
    for (name, (m, pushed)) in &running.proxies {
        let admin = m
            .spec
            .args
            .iter()
            .position(|a| a == "--admin")
            .and_then(|i| m.spec.args.get(i + 1))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        let served = match admin {
            Some(a) => get(a, "/config_dump")
                .await
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v["version"].as_str().map(str::to_owned)),
            None => None,
        };
        let state = m.snapshot();
        let stream = sync.get(name).cloned().unwrap_or_default();
        let sync = match (&served, state.running) {
            (_, false) => "NOT RUNNING".to_owned(),
            _ if stream.nack.is_some() && stream.acked_version != *pushed => "NACKED".to_owned(),
            _ if !stream.connected => "DISCONNECTED".to_owned(),
            (Some(v), true) if v == pushed && stream.acked_version == *pushed => {
                "SYNCED".to_owned()
            }
            (Some(_), true) => "STALE".to_owned(),
            (None, true) => "UNREACHABLE".to_owned(),
        };
        let kind = if m.spec.name.ends_with("(gateway)") {
            "gateway"
        } else {
            "sidecar"
        };
        let sidecar = running.plan.sidecars.iter().find(|s| &s.name == name);
        let gateway = running.plan.gateways.iter().find(|g| &g.name == name);
        proxies.push(serde_json::json!({
            "name": name,
            "kind": kind,
            "address": sidecar.map(|s| s.ip.to_string()),
            "outbound": sidecar.map(|s| s.outbound().to_string()),
            "listens": gateway.map(|g| g.listens.iter().map(|(p, a)| serde_json::json!({"port": p, "address": a.to_string()})).collect::<Vec<_>>()),
            "admin": admin.map(|a| a.to_string()),
            "pushedVersion": pushed,
            "servedVersion": served,
            "sync": sync,
            "stream": stream,
            "process": state,
        }));
    }
    let workloads: Vec<_> = running
        .apps
        .iter()
        .map(|(name, m)| {
            let s = running.plan.sidecars.iter().find(|s| &s.name == name);
            serde_json::json!({
                "name": name,
                "command": m.spec.program.display().to_string(),
                "listens": s.map(|s| s.ports.iter().map(|p| s.app(*p).to_string()).collect::<Vec<_>>()),
                "log": m.spec.log.display().to_string(),
                "process": m.snapshot(),
            })
        })
        .collect();
    let status = serde_json::json!({
        "controlPlane": {
            "admin": o.admin.to_string(),
            "ingress": o.ingress.to_string(),
            "runDir": o.run_dir.display().to_string(),
            "generation": config.generation,
            "lastRefusedChange": last_error.map(|d| d.iter().filter(|d| d.severity == Severity::Error).collect::<Vec<_>>()),
        },
        "proxies": proxies,
        "workloads": workloads,
    });
    let validations = serde_json::json!({ "generation": config.generation, "diagnostics": config.diagnostics, "refused": last_error });
    let applied_dir = o.run_dir.join("applied");
    let resources: Vec<serde_json::Value> = config
        .resources
        .iter()
        .map(|r| {
            let origin = r.origin();
            serde_json::json!({
                "kind": r.kind().name(),
                "namespace": r.namespace(),
                "name": r.name(),
                "file": origin.file.to_string(),
                "line": origin.line,
                "applied": std::path::Path::new(&*origin.file).starts_with(&applied_dir),
                "object": weft_api::yaml::emit::node_to_json(&r.source.tree, r.source.node),
            })
        })
        .collect();
    if let Ok(mut d) = docs.lock() {
        d.status = status;
        d.validations = validations;
        d.resources = resources;
        d.applied_dir = Some(applied_dir);
    }
}

/// The default ingress: Istio's gateway port 8080 on loopback.
pub fn default_ingress() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080)
}

/// Whether `cmd` names an executable: a path that exists, or a name on
/// PATH.
fn command_exists(cmd: &str) -> bool {
    if cmd.contains('/') {
        return Path::new(cmd).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(cmd).is_file()))
}
