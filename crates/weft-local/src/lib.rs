//! Local mode (`weft up`): the whole mesh as processes on one machine, no
//! root and no containers. This crate is the supervisor, apart from the
//! control plane it runs (which knows nothing of it): it plans and
//! runs the control plane (as a child process), one sidecar per Workload
//! replica, the gateways and the workloads, restarts what crashes, and
//! stops everything on Ctrl-C. The control plane can crash or restart on
//! its own: proxies keep serving and reconnect.

pub mod capture;
mod dns_relay;
pub mod plan;
mod prometheus;
mod supervise;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use plan::{GatewayPlan, Plan, SidecarPlan};

/// The port a sidecar takes mTLS tunnels on, at its inbound address (the
/// proxy's default; Istio's HBONE port).
const TUNNEL_PORT: u16 = 15008;
use supervise::{Managed, Spec};
use weft_control::server::{self, print_diagnostics, token_path};
use weft_control::source::files::FilesSource;
use weft_control::source::ConfigSource;
use weft_control::store::{Config, Store};
use weft_control::ControlError;

#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    /// Where the ingress gateway's port 8080 listens.
    pub ingress: SocketAddr,
    /// The control plane's admin API (and, later, dashboard).
    pub admin: SocketAddr,
    /// The model stream proxies connect to.
    pub xds: SocketAddr,
    /// The CA proxies get their certificates from.
    pub ca: SocketAddr,
    pub trust_domain: String,
    pub ca_dir: PathBuf,
    pub cert_ttl: Duration,
    pub jwks_refresh: Duration,
    pub secrets_dir: Option<PathBuf>,
    /// First loopback address for workload replicas.
    pub address_base: Ipv4Addr,
    /// Models, tokens and logs go here.
    pub run_dir: PathBuf,
    /// This weft binary: the control plane, the proxies, and what
    /// `command: weft` runs.
    pub weft: PathBuf,
    /// Proxies add `x-weft-reason` to their own replies.
    pub explain: bool,
    /// Run Prometheus, listening here, scraping every proxy.
    pub prometheus: Option<SocketAddr>,
    /// Transparent capture: pods in network namespaces on the mesh's
    /// network (`None`: loopback mode).
    pub capture: Option<std::sync::Arc<capture::Network>>,
    /// Where the user on this machine reaches the ingress and the admin
    /// API (under capture, forwards to the mesh network).
    pub user_ingress: SocketAddr,
    pub user_admin: SocketAddr,
    /// Under capture, the resolver pods ask for names that are not the
    /// mesh's; by default this machine's first nameserver.
    pub dns_upstream: Option<IpAddr>,
    /// The roots proxies trust for servers outside the mesh, in place of
    /// the system's (their `SSL_CERT_FILE`).
    pub external_roots: Option<PathBuf>,
}

impl Options {
    /// The environment every proxy gets.
    fn proxy_env(&self) -> Vec<(String, String)> {
        self.external_roots
            .iter()
            .map(|p| ("SSL_CERT_FILE".to_owned(), p.display().to_string()))
            .collect()
    }
}

impl Options {
    fn server(&self) -> server::Options {
        server::Options {
            paths: self.paths.clone(),
            admin: self.admin,
            xds: self.xds,
            ca: self.ca,
            trust_domain: self.trust_domain.clone(),
            ca_dir: self.ca_dir.clone(),
            cert_ttl: self.cert_ttl,
            jwks_refresh: self.jwks_refresh,
            secrets_dir: self.secrets_dir.clone(),
            address_base: self.address_base,
            service_address_base: self.capture.as_ref().map(|_| capture::SERVICE_BASE),
            pod_ranges: self.capture.as_ref().map(|_| capture::pod_ranges()),
            gateway_addresses: self.gateway_addresses(),
            run_dir: self.run_dir.clone(),
        }
    }

    /// Where the mesh's gateways listen, as the control plane is told:
    /// the ingress where the user reaches it (on the mesh network under
    /// capture), the egress gateway on its own address under capture. In
    /// loopback mode the egress gateway takes a replica address, which
    /// the control plane gives.
    fn gateway_addresses(&self) -> Vec<(String, Ipv4Addr)> {
        let mut out = Vec::new();
        if let IpAddr::V4(ip) = self.ingress.ip() {
            out.push(("istio-ingressgateway".to_owned(), ip));
        }
        if self.capture.is_some() {
            out.push(("istio-egressgateway".to_owned(), capture::EGRESS_GATEWAY_IP));
        }
        out
    }
}

struct Running {
    control_plane: Option<Managed>,
    prometheus: Option<Managed>,
    /// Proxy name → process.
    proxies: BTreeMap<String, Managed>,
    /// Workload instance name → process.
    apps: BTreeMap<String, Managed>,
    /// Replicas not started because another process holds their
    /// application's address, and what holds it.
    held: BTreeMap<String, String>,
    plan: Plan,
    /// Under capture, the Guardrail each pod is held to (`noBypass`), as
    /// installed.
    guards: BTreeMap<String, Option<weft_capture::guard::Guard>>,
    /// Under capture, the Guardrail the mesh's egress is held to
    /// (`egressThroughGateway`), as installed; `None` before the first.
    egress_guard: Option<Option<weft_capture::egress_guard::EgressGuard>>,
    /// What was last reported to the control plane, and when.
    reported: std::sync::Mutex<(String, Option<std::time::Instant>)>,
}

/// The arguments that connect a proxy to the model stream.
fn stream_args(o: &Options, name: &str) -> Vec<String> {
    vec![
        "--control-plane".into(),
        o.xds.to_string(),
        "--proxy".into(),
        name.to_owned(),
        "--token-file".into(),
        token_path(&o.run_dir, name).display().to_string(),
        "--model-cache".into(),
        model_path(&o.run_dir, name).display().to_string(),
        "--ca".into(),
        o.ca.to_string(),
        "--ca-root".into(),
        server::trust_bundle_path(&o.run_dir).display().to_string(),
        "--trust-domain".into(),
        o.trust_domain.clone(),
    ]
}

/// `program args…` inside pod `netns` when there is one.
fn in_pod(netns: Option<&str>, program: PathBuf, args: Vec<String>) -> (PathBuf, Vec<String>) {
    match netns {
        Some(ns) => {
            let mut a = vec!["netns".to_owned(), "exec".into(), ns.to_owned()];
            a.push(program.display().to_string());
            a.extend(args);
            ("ip".into(), a)
        }
        None => (program, args),
    }
}

/// The pod namespace of sidecar `s` under capture.
fn pod_of(o: &Options, s: &SidecarPlan) -> Option<String> {
    o.capture
        .as_ref()
        .map(|c| c.pod_namespace(&s.namespace, &s.instance))
}

fn sidecar_spec(o: &Options, s: &SidecarPlan) -> Spec {
    let mut args = vec!["proxy".to_owned()];
    args.extend(stream_args(o, &s.name));
    if o.capture.is_some() {
        args.push("--capture".into());
        if matches!(&s.capture, Ok(Some(c)) if c.mode == weft_capture::InterceptionMode::Tproxy) {
            args.extend(["--interception-mode".into(), "TPROXY".into()]);
        }
    } else {
        args.extend(["--outbound".into(), s.outbound().to_string()]);
    }
    args.extend([
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
    // Under capture a TCP service is reached at its own address.
    for (name, addr, _) in s.tcp.iter().filter(|_| o.capture.is_none()) {
        args.push("--bind".into());
        args.push(format!("{name}={addr}"));
    }
    if o.explain {
        args.push("--explain".into());
    }
    if let Some(n) = s.concurrency {
        args.push("--concurrency".into());
        args.push(n.to_string());
    }
    let (program, args) = in_pod(pod_of(o, s).as_deref(), o.weft.clone(), args);
    Spec {
        name: format!("{} (sidecar)", s.name),
        program,
        args,
        env: o.proxy_env(),
        log: o
            .run_dir
            .join("logs")
            .join(format!("{}.proxy.log", s.instance)),
    }
}

fn gateway_spec(o: &Options, g: &GatewayPlan) -> Spec {
    let short = g.name.rsplit('/').next().unwrap_or(&g.name).to_owned();
    let mut args = vec!["proxy".to_owned()];
    args.extend(stream_args(o, &g.name));
    args.extend([
        "--admin".into(),
        g.admin.to_string(),
        // The gateway's own address, which the workloads behind it see.
        "--source-ip".into(),
        g.admin.ip().to_string(),
        "--access-log".into(),
        o.run_dir
            .join("logs")
            .join(format!("{short}.access.log"))
            .display()
            .to_string(),
    ]);
    for (port, addr) in &g.binds {
        args.push("--listen".into());
        args.push(format!("{port}={addr}"));
    }
    args.push("--listen-ip".into());
    args.push(g.listen_ip.to_string());
    // The mTLS tunnel, where sidecars send what a DestinationRule says is
    // ISTIO_MUTUAL to the gateway. Not on the address the user reaches
    // the ingress at in loopback mode: 15008 there may be anyone's.
    if o.capture.is_some() || g.listen_ip != o.ingress.ip() {
        args.push("--tunnel".into());
        args.push(SocketAddr::new(g.listen_ip, TUNNEL_PORT).to_string());
    }
    if o.explain {
        args.push("--explain".into());
    }
    // Under capture through `ip netns exec` into the mesh network's
    // namespace (where it already is), for that namespace's resolver.
    let mesh_net = o.capture.as_ref().map(|c| c.mesh_namespace().to_owned());
    let (program, args) = in_pod(mesh_net.as_deref(), o.weft.clone(), args);
    Spec {
        name: format!("{} (gateway)", g.name),
        program,
        args,
        env: o.proxy_env(),
        log: o.run_dir.join("logs").join(format!("{short}.log")),
    }
}

fn control_plane_spec(o: &Options) -> Spec {
    let mut args = vec!["control-plane".to_owned()];
    for p in &o.paths {
        args.push("-f".into());
        args.push(p.display().to_string());
    }
    args.extend([
        "--admin".into(),
        o.admin.to_string(),
        "--xds".into(),
        o.xds.to_string(),
        "--ca".into(),
        o.ca.to_string(),
        "--trust-domain".into(),
        o.trust_domain.clone(),
        "--ca-dir".into(),
        o.ca_dir.display().to_string(),
        "--cert-ttl".into(),
        format!("{}s", o.cert_ttl.as_secs()),
        "--jwks-refresh".into(),
        format!("{}ms", o.jwks_refresh.as_millis()),
        "--address-base".into(),
        o.address_base.to_string(),
        "--run-dir".into(),
        o.run_dir.display().to_string(),
    ]);
    for (name, ip) in o.gateway_addresses() {
        args.push("--gateway-address".into());
        args.push(format!("{name}={ip}"));
    }
    if o.capture.is_some() {
        args.push("--service-address-base".into());
        args.push(capture::SERVICE_BASE.to_string());
        let ranges = capture::pod_ranges();
        args.push("--pod-ranges".into());
        args.push(ranges.first.to_string());
        for r in ranges.reserved {
            args.push("--reserved-range".into());
            args.push(r.to_string());
        }
    }
    if let Some(dir) = &o.secrets_dir {
        args.push("--secrets".into());
        args.push(dir.display().to_string());
    }
    Spec {
        name: "control plane".into(),
        program: o.weft.clone(),
        args,
        env: Vec::new(),
        log: o.run_dir.join("logs").join("control-plane.log"),
    }
}

pub async fn run(o: Options) -> Result<(), ControlError> {
    if let Some(net) = &o.capture {
        net.spawn_forwards();
    }
    let files = std::sync::Arc::new(
        FilesSource::new(o.paths.clone()).with_applied(o.run_dir.join("applied")),
    );
    let mut revision = files.watch();
    files.spawn_watcher();
    let mut store = Store::new(files, server::mesh(&o.server()));
    eprintln!(
        "weft: loading {}",
        o.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let config = store.load(None);
    print_diagnostics(&config.diagnostics);
    server::print_refused(&config);
    say_restored(&config, &o.run_dir.join("applied"));
    for (addr, what) in [
        (o.ingress, "the ingress gateway"),
        (o.admin, "the admin API"),
        (o.xds, "the configuration stream"),
        (o.ca, "the CA"),
    ] {
        check_free(addr, what).await?;
    }
    std::fs::create_dir_all(o.run_dir.join("models"))?;
    std::fs::create_dir_all(o.run_dir.join("logs"))?;

    let cp = Managed::start(control_plane_spec(&o));
    if !wait_listening(o.admin, Duration::from_secs(30)).await {
        eprintln!(
            "weft: the control plane did not start; see {}",
            o.run_dir.join("logs/control-plane.log").display()
        );
        cp.stop().await;
        if let Some(net) = &o.capture {
            net.teardown();
        }
        return Err(ControlError::ControlPlaneDidNotStart);
    }
    eprintln!(
        "weft: control plane admin API on http://{}, model stream on {}",
        o.user_admin, o.xds
    );
    let mut running = Running {
        control_plane: Some(cp),
        prometheus: None,
        proxies: BTreeMap::new(),
        apps: BTreeMap::new(),
        held: BTreeMap::new(),
        plan: Plan::default(),
        guards: BTreeMap::new(),
        egress_guard: None,
        reported: std::sync::Mutex::new((String::new(), None)),
    };
    apply(&o, &config, &mut running).await;
    let mut current = config;
    write_status(&o, &running);
    if let Some(listen) = o.prometheus {
        match prometheus::spec(&o.run_dir, &o.weft, listen) {
            Ok(spec) => {
                running.prometheus = Some(Managed::start(spec));
                eprintln!("weft: Prometheus on http://{listen}, scraping every proxy");
            }
            Err(e) => eprintln!("weft: {e}"),
        }
    }
    for g in &running.plan.gateways {
        for (port, addr) in &g.listens {
            eprintln!("weft: {} port {port} on http://{addr}", g.name);
        }
    }
    eprintln!(
        "weft: ready: {} workloads, {} proxies; try curl http://{}/productpage",
        running.apps.len(),
        running.proxies.len(),
        o.user_ingress
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            Ok(()) = revision.changed() => {
                revision.mark_unchanged();
                let next = store.load(Some(&current));
                eprintln!("weft: configuration {} accepted", next.generation);
                print_diagnostics(&next.diagnostics);
                server::print_refused(&next);
                apply(&o, &next, &mut running).await;
                current = next;
                write_status(&o, &running);
            }
            _ = tick.tick() => {
                if let Some(net) = &o.capture {
                    let lost = net.lost_nodes();
                    if !lost.is_empty() {
                        remake_lost_nodes(&o, net, &lost, &mut running).await;
                        apply(&o, &current, &mut running).await;
                    }
                }
                write_status(&o, &running);
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!("weft: stopping workloads, then proxies, then the control plane");
    if let Some(p) = running.prometheus.take() {
        p.stop().await;
    }
    let apps: Vec<Managed> = std::mem::take(&mut running.apps).into_values().collect();
    futures_join(apps.into_iter().map(Managed::stop).collect()).await;
    let proxies: Vec<Managed> = std::mem::take(&mut running.proxies).into_values().collect();
    futures_join(proxies.into_iter().map(Managed::stop).collect()).await;
    if let Some(cp) = running.control_plane.take() {
        cp.stop().await;
    }
    if let Some(net) = &o.capture {
        net.teardown();
    }
    eprintln!("weft: stopped");
    Ok(())
}

/// Nodes whose namespace went away (as a machine is lost) took their
/// pods off the mesh: their processes are stopped and their pods removed,
/// so the next [`apply`] makes the node again and starts them there, as a
/// kubelet coming back would.
async fn remake_lost_nodes(
    o: &Options,
    net: &capture::Network,
    lost: &[String],
    running: &mut Running,
) {
    let on_lost: Vec<SidecarPlan> = running
        .plan
        .sidecars
        .iter()
        .filter(|s| s.node.as_ref().is_some_and(|n| lost.contains(n)))
        .cloned()
        .collect();
    for node in lost {
        let pods: Vec<&str> = on_lost
            .iter()
            .filter(|s| s.node.as_ref() == Some(node))
            .map(|s| s.name.as_str())
            .collect();
        eprintln!(
            "weft: node {node} was lost (its network namespace {} is gone), and with it the network of {}; making it again and restarting them there",
            net.node_namespace(node),
            if pods.is_empty() { "no pod".to_owned() } else { pods.join(", ") }
        );
    }
    for s in on_lost {
        if let Some(app) = running.apps.remove(&s.name) {
            app.stop().await;
        }
        if let Some(proxy) = running.proxies.remove(&s.name) {
            proxy.stop().await;
        }
        if let Some(pod) = pod_of(o, &s) {
            net.remove_pod(&pod);
        }
    }
    net.forget_nodes(lost);
}

/// Waits until the control plane has written a proxy's token.
async fn wait_token(path: &Path) -> bool {
    for _ in 0..200 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Brings the running processes in line with `config`: starts new
/// sidecars and workloads and stops removed ones. Model changes travel on
/// the control plane's stream, not through here.
async fn apply(o: &Options, config: &Config, running: &mut Running) {
    let plan = plan::plan(config, o.ingress, o.capture.is_some());
    let mut wanted: BTreeMap<String, Spec> = BTreeMap::new();
    for g in &plan.gateways {
        wanted.insert(g.name.clone(), gateway_spec(o, g));
    }
    // A replica is started only where nothing else listens on its
    // application's address: a process left from before (or anything
    // else) there would be served as this workload, unseen by its sidecar.
    running.held.clear();
    for (name, why) in &plan.pending {
        if !running
            .plan
            .pending
            .iter()
            .any(|(n, w)| n == name && w == why)
        {
            eprintln!("weft: {name} is pending: {why}");
        }
        running.held.insert(name.clone(), format!("pending: {why}"));
    }
    for s in &plan.sidecars {
        if !running.apps.contains_key(&s.name) && o.capture.is_none() {
            if let Some(why) = app_address_held(s) {
                eprintln!("weft: not starting {}: {why}; stop that process, and weft starts the replica with the next change", s.name);
                running.held.insert(s.name.clone(), why);
                continue;
            }
        }
        wanted.insert(s.name.clone(), sidecar_spec(o, s));
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
        if let Some(p) = running.proxies.remove(&name) {
            eprintln!("weft: stopping {}", p.spec.name);
            p.stop().await;
        }
        if let (Some(net), Some(s)) = (
            &o.capture,
            running.plan.sidecars.iter().find(|s| s.name == name),
        ) {
            let netns = net.pod_namespace(&s.namespace, &s.instance);
            net.remove_pod(&netns);
            running.guards.remove(&netns);
        }
    }
    // Under capture each replica's pod is made before its proxy starts,
    // once: its application and proxy live in it until it is removed.
    if let Some(net) = &o.capture {
        for s in &plan.sidecars {
            if running.proxies.contains_key(&s.name) {
                continue;
            }
            let netns = net.pod_namespace(&s.namespace, &s.instance);
            let range = config
                .registry
                .nodes
                .iter()
                .find(|n| Some(&n.name) == s.node.as_ref())
                .and_then(|n| n.pod_range.clone()?.ok());
            let made = match (&s.capture, range, &s.node) {
                (Ok(c), Some(range), Some(node)) => {
                    net.add_pod(&netns, &s.namespace, (node, range), s.ip, c.as_ref())
                }
                (Ok(_), _, _) => Err(capture::CaptureError::Failed {
                    what: format!("workload {}", s.name),
                    why: "its node has no pod range".into(),
                }),
                (Err(e), _, _) => Err(capture::CaptureError::Failed {
                    what: format!("workload {}", s.name),
                    why: e.to_string(),
                }),
            };
            // A pod made (again) has no guard until one is installed.
            running.guards.remove(&netns);
            if let Err(e) = made {
                eprintln!("weft: not starting {}: {e}", s.name);
                net.remove_pod(&netns);
                running.held.insert(s.name.clone(), e.to_string());
                wanted.remove(&s.name);
            }
        }
    }
    let mut started = Vec::new();
    for (name, spec) in wanted {
        if running
            .proxies
            .get(&name)
            .is_some_and(|p| p.spec.args == spec.args)
        {
            continue;
        }
        // New, or its listeners moved: (re)start it.
        if let Some(old) = running.proxies.remove(&name) {
            old.stop().await;
        }
        if !wait_token(&token_path(&o.run_dir, &name)).await {
            eprintln!(
                "weft: the control plane wrote no token for {name}; see {}",
                o.run_dir.join("logs/control-plane.log").display()
            );
        }
        let admin = spec
            .args
            .iter()
            .position(|a| a == "--admin")
            .and_then(|i| spec.args.get(i + 1))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        eprintln!("weft: starting {}", spec.name);
        running.proxies.insert(name.clone(), Managed::start(spec));
        started.push((name, admin));
    }
    for (name, admin) in started {
        if let Some(a) = admin {
            if !wait_ready(a, Duration::from_secs(10)).await {
                eprintln!(
                    "weft: {name}'s proxy is not ready on {a} (no certificate or no configuration yet); see its log under {}",
                    o.run_dir.join("logs").display()
                );
            }
        }
    }
    for s in plan
        .sidecars
        .iter()
        .filter(|s| !running.held.contains_key(&s.name))
    {
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
    // Wait for the workloads together, under one deadline (not for those
    // not started).
    let waits: Vec<_> = plan
        .sidecars
        .iter()
        .filter(|s| !running.held.contains_key(&s.name))
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
    if let Some(net) = &o.capture {
        hold_to_guardrails(net, config, &plan, running);
        hold_egress(net, config, running);
    }
    running.plan = plan;
}

/// Holds each captured pod to the Guardrail whose `noBypass` covers its
/// namespace, or lets it go; only what changed is installed.
fn hold_to_guardrails(net: &capture::Network, config: &Config, plan: &Plan, running: &mut Running) {
    let guards =
        weft_compile::guardrails::BypassGuards::of(&config.resources, &config.root_namespace);
    for s in &plan.sidecars {
        // A pod without capture (interceptionMode NONE) has no proxy's
        // ways to keep to.
        if !matches!(&s.capture, Ok(Some(_))) || running.held.contains_key(&s.name) {
            continue;
        }
        let netns = net.pod_namespace(&s.namespace, &s.instance);
        let wanted = guards
            .of_namespace(&s.namespace)
            .map(|(policy, enforce)| weft_capture::guard::Guard { policy, enforce });
        if running.guards.get(&netns) == Some(&wanted) {
            continue;
        }
        match weft_capture::guard::install(Some(&netns), wanted.as_ref()) {
            Ok(()) => {
                if let Some(g) = &wanted {
                    eprintln!(
                        "weft: {} is held to the mesh by Guardrail {} ({})",
                        s.name,
                        g.policy,
                        if g.enforce { "enforced" } else { "audited" }
                    );
                }
                running.guards.insert(netns, wanted);
            }
            Err(e) => eprintln!("weft: cannot hold {} to the mesh: {e}", s.name),
        }
    }
}

/// Holds the mesh network to the Guardrail whose `egressThroughGateway`
/// covers the mesh, or lets it go; installed again only when it changed.
/// The supervisor runs in the mesh network's namespace.
fn hold_egress(net: &capture::Network, config: &Config, running: &mut Running) {
    let wanted = weft_compile::guardrails::egress_guard(&config.resources, &config.root_namespace)
        .map(
            |(policy, enforce)| weft_capture::egress_guard::EgressGuard {
                policy,
                enforce,
                mesh: net.internal_ranges(),
            },
        );
    if running.egress_guard.as_ref() == Some(&wanted) {
        return;
    }
    match weft_capture::egress_guard::install(None, wanted.as_ref()) {
        Ok(()) => {
            match &wanted {
                Some(g) => eprintln!(
                    "weft: the mesh's egress is held to the egress gateway by Guardrail {} ({}), in {}",
                    g.policy,
                    if g.enforce { "enforced" } else { "audited" },
                    net.mesh_namespace()
                ),
                None if running.egress_guard.is_some() => {
                    eprintln!("weft: the mesh's egress is no longer held to the egress gateway")
                }
                None => {}
            }
            running.egress_guard = Some(wanted);
        }
        Err(e) => eprintln!("weft: cannot hold the mesh's egress to the egress gateway: {e}"),
    }
}

/// What the supervisor knows, for the control plane's `/api/status`.
fn write_status(o: &Options, running: &Running) {
    let proxies: serde_json::Map<String, serde_json::Value> = running
        .proxies
        .iter()
        .map(|(name, m)| {
            let sidecar = running.plan.sidecars.iter().find(|s| &s.name == name);
            let gateway = running.plan.gateways.iter().find(|g| &g.name == name);
            let admin = m.spec.args.iter().position(|a| a == "--admin").and_then(|i| m.spec.args.get(i + 1)).cloned();
            (
                name.clone(),
                serde_json::json!({
                    "outbound": sidecar.map(|s| s.outbound().to_string()),
                    "listens": gateway.map(|g| g.listens.iter().map(|(p, a)| serde_json::json!({"port": p, "address": a.to_string()})).collect::<Vec<_>>()),
                    "admin": admin,
                    "process": m.snapshot(),
                }),
            )
        })
        .collect();
    let mut workloads: Vec<serde_json::Value> = running
        .apps
        .iter()
        .map(|(name, m)| {
            let s = running.plan.sidecars.iter().find(|s| &s.name == name);
            serde_json::json!({
                "name": name,
                "workload": s.map(|s| s.workload.clone()),
                "labels": s.map(|s| s.labels.clone()),
                "command": m.spec.program.display().to_string(),
                "listens": s.map(|s| s.ports.iter().map(|p| s.app(*p).to_string()).collect::<Vec<_>>()),
                // The sidecar's mTLS tunnel (HBONE's port), where peers reach it.
                "tunnel": s.map(|s| std::net::SocketAddr::from((s.ip, TUNNEL_PORT)).to_string()),
                // Under capture, the pod's network namespace (`ip netns exec`).
                "netns": s.and_then(|s| pod_of(o, s)),
                "node": s.and_then(|s| s.node.clone()),
                "log": m.spec.log.display().to_string(),
                "process": m.snapshot(),
            })
        })
        .collect();
    for (name, why) in &running.held {
        let s = running.plan.sidecars.iter().find(|s| &s.name == name);
        workloads.push(serde_json::json!({
            "name": name,
            "workload": s.map(|s| s.workload.clone()),
            "labels": s.map(|s| s.labels.clone()),
            "listens": s.map(|s| s.ports.iter().map(|p| s.app(*p).to_string()).collect::<Vec<_>>()),
            "tunnel": s.map(|s| std::net::SocketAddr::from((s.ip, TUNNEL_PORT)).to_string()),
            "process": {"running": false, "restarts": 0, "last_exit": format!("not started: {why}")},
        }));
    }
    if o.prometheus.is_some() {
        let targets: Vec<(String, String)> = proxies
            .iter()
            .filter_map(|(name, p)| Some((name.clone(), p["admin"].as_str()?.to_owned())))
            .collect();
        prometheus::write_targets(&o.run_dir, &targets);
    }
    // The mesh's egress guard counts in the supervisor's own namespace
    // (the mesh network's); the control plane serves it with its metrics.
    let counters = match &running.egress_guard {
        Some(Some(_)) => weft_capture::egress_guard::counters(None),
        _ => Vec::new(),
    };
    let guard_metrics = weft_capture::guard::render(&counters, "egressThroughGateway");
    let doc = serde_json::json!({
        "guardMetrics": guard_metrics,
        "guardCounters": counters
            .iter()
            .map(|c| serde_json::json!({
                "policy": c.policy,
                "direction": c.direction,
                "drops": c.drops,
                "packets": c.packets,
            }))
            .collect::<Vec<_>>(),
        "ingress": o.ingress.to_string(),
        "prometheus": o.prometheus.map(|p| p.to_string()),
        "controlPlane": running.control_plane.as_ref().map(Managed::snapshot),
        "proxies": proxies,
        "workloads": workloads,
    });
    report(o.admin, doc.to_string(), &running.reported);
}

/// Tells the control plane (`PUT /api/processes` on its admin API) what
/// runs, when that changed or every 2 s (a restarted control plane learns
/// it again). The control plane shows it in `weft status` beside what the
/// proxies say of themselves; it reads nothing of local mode's own.
fn report(
    admin: SocketAddr,
    doc: String,
    reported: &std::sync::Mutex<(String, Option<std::time::Instant>)>,
) {
    let Ok(mut last) = reported.lock() else {
        return;
    };
    let due = last.1.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
    if last.0 == doc && !due {
        return;
    }
    *last = (doc.clone(), Some(std::time::Instant::now()));
    tokio::spawn(async move {
        let put = async {
            let stream = tokio::net::TcpStream::connect(admin).await.ok()?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(conn);
            let req = http::Request::put("/api/processes")
                .header(http::header::HOST, admin.to_string())
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(doc)))
                .ok()?;
            sender.send_request(req).await.ok()
        };
        if tokio::time::timeout(Duration::from_secs(2), put)
            .await
            .is_err()
        {
            tracing::debug!("the control plane did not take the process report");
        }
    });
}

/// Resources `weft apply` wrote in an earlier run of this mesh come back
/// with it: say which, and how to drop them, so none is a surprise.
fn say_restored(config: &Config, applied: &Path) {
    let restored: Vec<String> = config
        .resources
        .iter()
        .filter(|r| Path::new(&*r.origin().file).starts_with(applied))
        .map(|r| r.display_name())
        .collect();
    if restored.is_empty() {
        return;
    }
    eprintln!(
        "weft: restoring {} resource(s) applied with `weft apply` in an earlier run of this mesh ({}): {}",
        restored.len(),
        applied.display(),
        restored.join(", ")
    );
    eprintln!(
        "weft: drop one with `weft delete KIND NAME -n NAMESPACE`, or all of them by removing {}",
        applied.display()
    );
}

/// Whether something already listens on one of `s`'s application
/// addresses (its own application is not running).
fn app_address_held(s: &SidecarPlan) -> Option<String> {
    for port in &s.ports {
        let addr = s.app(*port);
        if let Err(e) = std::net::TcpListener::bind(addr) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Some(format!(
                    "another process listens on {addr}, this replica's application address"
                ));
            }
        }
    }
    None
}

fn model_path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir
        .join("models")
        .join(format!("{}.json", name.replace('/', ".")))
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
    // Under capture the kernel hands the application's connections to
    // its proxy: it is told nothing.
    let mut env: Vec<(String, String)> = if o.capture.is_some() {
        Vec::new()
    } else {
        vec![
            ("HTTP_PROXY".into(), proxy.clone()),
            ("http_proxy".into(), proxy),
            ("NO_PROXY".into(), "localhost".into()),
            ("no_proxy".into(), "localhost".into()),
        ]
    };
    env.extend([
        ("WEFT_LISTEN".into(), s.app(first).to_string()),
        ("PORT".into(), first.to_string()),
        ("HOST".into(), s.app_ip.to_string()),
        ("WEFT_INSTANCE".into(), s.instance.clone()),
        ("POD_NAME".into(), s.instance.clone()),
        ("POD_NAMESPACE".into(), s.namespace.clone()),
        ("SERVICE_ACCOUNT".into(), s.service_account.clone()),
    ]);
    if let Some(v) = s.labels.get("version") {
        env.push(("WEFT_VERSION".into(), v.clone()));
    }
    for (_, addr, prefix) in &s.tcp {
        env.push((format!("{prefix}_SERVICE_HOST"), addr.ip().to_string()));
        env.push((format!("{prefix}_SERVICE_PORT"), addr.port().to_string()));
    }
    env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let (program, args) = in_pod(pod_of(o, s).as_deref(), program, args);
    Spec {
        name: s.name.clone(),
        program,
        args,
        env,
        log: o.run_dir.join("logs").join(format!("{}.log", s.instance)),
    }
}

/// Waits until a proxy's admin port answers `/ready` with 200: listening,
/// configured, and holding its workload certificate.
async fn wait_ready(addr: SocketAddr, within: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let mut head = [0u8; 12];
            let asked = s.write_all(b"GET /ready HTTP/1.0\r\n\r\n").await.is_ok();
            if asked && s.read_exact(&mut head).await.is_ok() && head.ends_with(b" 200") {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
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
    drop(weft_control::listen::bind(addr, what).await?);
    Ok(())
}

async fn futures_join(tasks: Vec<impl std::future::Future<Output = ()> + Send + 'static>) {
    let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
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
