//! `weft proxy --model FILE`: run one proxy from a compiled model (JSON, as
//! `weft proxy-config -o json` writes it). SIGHUP re-reads the file and
//! swaps the model in without dropping a request; a model that does not
//! load is refused and the old one keeps serving. SIGINT/SIGTERM drain.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use weft_proxy::telemetry::access_log::AccessLog;
use weft_proxy::{Proxy, RuntimeConfig};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// The compiled model (JSON); SIGHUP re-reads it.
    #[arg(long, required_unless_present_any = ["control_plane", "bootstrap"])]
    model: Option<PathBuf>,
    /// Join the mesh as a host or VM, with the files `weft workload
    /// configure` wrote here (cluster.env, istio-token, root-cert.pem):
    /// the control plane, the CA and trust domain, and the WorkloadGroup
    /// whose WorkloadEntry this proxy registers, named after the address
    /// it reaches the control plane from (or cluster.env's ISTIO_SVC_IP).
    #[arg(long, conflicts_with_all = ["model", "control_plane", "proxy", "token_file"])]
    bootstrap: Option<PathBuf>,
    /// Follow the control plane's model stream at this address instead.
    #[arg(long, requires_all = ["proxy", "token_file"])]
    control_plane: Option<SocketAddr>,
    /// This proxy's name (`namespace/name`) for the control plane.
    #[arg(long)]
    proxy: Option<String>,
    /// The bootstrap token the control plane wrote for this proxy.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Where to keep the last applied model, to start from when the
    /// control plane is down.
    #[arg(long)]
    model_cache: Option<PathBuf>,
    /// The largest model the proxy takes from the control plane in one
    /// message; a larger one is reported (here and in `weft status`),
    /// never applied in part.
    #[arg(long, env = "WEFT_MAX_MODEL_BYTES", default_value_t = weft_model::wire::MAX_MODEL_BYTES)]
    max_model_bytes: usize,
    /// The sidecar's outbound HTTP proxy address (what HTTP_PROXY names).
    #[arg(long)]
    outbound: Option<SocketAddr>,
    /// The address inbound listeners bind (each on its workload port).
    #[arg(long)]
    inbound_ip: Option<IpAddr>,
    /// The address connections to mesh workloads leave from (what their
    /// `source.ip` sees); defaults to --inbound-ip.
    #[arg(long)]
    source_ip: Option<IpAddr>,
    /// `PORT=ADDR`: the application serving workload port PORT listens at ADDR.
    #[arg(long = "app", value_parser = parse_port_addr)]
    apps: Vec<(u32, SocketAddr)>,
    /// `PORT=ADDR`: bind the gateway listener for PORT at ADDR.
    #[arg(long = "listen", value_parser = parse_port_addr)]
    listens: Vec<(u32, SocketAddr)>,
    /// Gateway ports without a --listen bind this address with their own
    /// number, so Gateway servers added later are served without a
    /// restart.
    #[arg(long)]
    listen_ip: Option<IpAddr>,
    /// `NAME=ADDR`: bind the model's listener NAME (e.g. a TCP service's
    /// `outbound|9000||echo.default.svc.cluster.local`) at ADDR.
    #[arg(long = "bind", value_parser = parse_name_addr)]
    binds: Vec<(String, SocketAddr)>,
    /// The workload's traffic is captured by the kernel (the nftables
    /// rules `weft up --capture` installs in its pod): take outbound
    /// connections on 0.0.0.0:15001 and inbound ones on 0.0.0.0:15006,
    /// each served by where it was going; reach the application from
    /// 127.0.0.6; run with group 1337, whose traffic the rules let
    /// through. Inbound ports are not bound (the application holds them).
    #[arg(long)]
    capture: bool,
    /// Under --capture, where DNS queries for names that are not the
    /// mesh's go (`IP` or `IP:PORT`); by default the first nameserver of
    /// /etc/resolv.conf (in a pod, the pod's).
    #[arg(long, value_parser = parse_dns_upstream, requires = "capture")]
    dns_upstream: Option<SocketAddr>,
    /// Under --capture, how inbound traffic was captured (Istio's
    /// `sidecar.istio.io/interceptionMode`): TPROXY keeps the client's
    /// address, which the application then sees.
    #[arg(long, value_enum, default_value = "REDIRECT", requires = "capture")]
    interception_mode: InterceptionMode,
    /// Under --capture, install the capture rules in this process's
    /// network namespace first (as a host or VM that joins the mesh does;
    /// `weft up` installs a pod's itself) and remove them at exit. Run it
    /// in the namespace to capture (`ip netns exec`).
    #[arg(long, requires = "capture")]
    install_capture: bool,
    /// `ANNOTATION=VALUE`: Istio's capture annotations for the rules
    /// --install-capture installs
    /// (`traffic.sidecar.istio.io/excludeOutboundPorts=5432`).
    #[arg(long = "capture-setting", value_parser = parse_setting, requires = "install_capture")]
    capture_settings: Vec<(String, String)>,
    /// Admin address (/ready, /config_dump).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Add `x-weft-reason` to replies the proxy makes itself.
    #[arg(long, env = "WEFT_EXPLAIN")]
    explain: bool,
    /// Access log: `-` for stdout (default), a file path, or `off`.
    #[arg(long, default_value = "-")]
    access_log: String,
    /// The control plane's CA (TLS, port 15012): the proxy gets its
    /// workload certificate there and takes mTLS tunnels on 15008.
    #[arg(long, requires_all = ["proxy", "token_file", "ca_root"])]
    ca: Option<SocketAddr>,
    /// The mesh's roots (PEM), to verify the CA and peers with.
    #[arg(long)]
    ca_root: Option<PathBuf>,
    /// The mesh's trust domain (the control plane's identity is verified
    /// in it).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Where the mTLS tunnel listens; defaults to port 15008 on the
    /// inbound address.
    #[arg(long)]
    tunnel: Option<SocketAddr>,
    /// Run without a workload identity: mesh traffic goes in plain text and
    /// PeerAuthentication STRICT cannot be enforced. For testing the data
    /// plane alone.
    #[arg(long, conflicts_with = "ca")]
    no_mtls: bool,
    /// `credentialName` secrets, when running from a model file:
    /// `<dir>/<name>/tls.crt`, `tls.key`, `ca.crt`. With --ca they come
    /// from the control plane.
    #[arg(long)]
    secrets: Option<PathBuf>,
    /// Seconds in-flight requests get to finish at shutdown.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// A client connection with no request in flight and nothing sent
    /// either way for this long is closed (Envoy's idle_timeout).
    #[arg(long, env = "WEFT_IDLE_TIMEOUT", default_value = "1h", value_parser = parse_timeout)]
    idle_timeout: Duration,
    /// An HTTP/1.1 request's headers must arrive within this long of its
    /// first byte, or the connection is closed (408 in the access log).
    #[arg(long, env = "WEFT_REQUEST_HEADERS_TIMEOUT", default_value = "10s", value_parser = parse_timeout)]
    request_headers_timeout: Duration,
    /// Worker threads, as Istio's ProxyConfig `concurrency`: 0 is one per
    /// core. The default is 1 for a sidecar (no `--listen`) and one per
    /// core for a gateway.
    #[arg(long)]
    concurrency: Option<usize>,
    /// How the kernel schedules the proxy's threads (see
    /// crates/weft/src/sched.rs). `weft up` passes its environment on, so
    /// `WEFT_CPU_POLICY=normal weft up` opts a whole mesh out.
    #[arg(long, value_enum, env = "WEFT_CPU_POLICY", default_value = "batch")]
    cpu_policy: crate::sched::CpuPolicy,
}

/// The runtime the proxy runs on, and its workers. One worker is a
/// current-thread runtime: a sidecar carries one workload's traffic, and
/// keeping every socket on one thread saves the cross-thread wake-ups that
/// cost more CPU than the requests themselves at moderate load
/// (bench/README.md). More workers are threads of their own, each with one
/// event loop that keeps the connections it is given
/// (`weft_proxy::listen::workers`); the main thread accepts, follows the control
/// plane and serves the admin port.
fn runtime(
    args: &Args,
) -> std::io::Result<(
    tokio::runtime::Runtime,
    std::sync::Arc<weft_proxy::listen::workers::Workers>,
)> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = match args.concurrency {
        Some(0) => cores,
        Some(n) => n,
        None if args.listens.is_empty() => 1,
        None => cores,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let workers = if workers > 1 {
        weft_proxy::listen::workers::Workers::start(workers)?
    } else {
        weft_proxy::listen::workers::Workers::default()
    };
    Ok((rt, std::sync::Arc::new(workers)))
}

fn parse_port_addr(s: &str) -> Result<(u32, SocketAddr), String> {
    let (p, a) = s
        .split_once('=')
        .ok_or("expected PORT=ADDR, e.g. 9080=127.0.0.1:19080")?;
    let port = p.parse::<u32>().map_err(|e| format!("port {p:?}: {e}"))?;
    let addr = a
        .parse::<SocketAddr>()
        .map_err(|e| format!("address {a:?}: {e}"))?;
    Ok((port, addr))
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[allow(clippy::upper_case_acronyms)]
enum InterceptionMode {
    #[value(name = "REDIRECT")]
    Redirect,
    #[value(name = "TPROXY")]
    Tproxy,
}

/// Capture rules this process installed, removed when it ends, whatever
/// way it ends short of being killed (the next start replaces them then).
struct InstalledRules;

impl Drop for InstalledRules {
    fn drop(&mut self) {
        match weft_capture::remove(None) {
            Ok(()) => eprintln!("weft proxy: capture rules removed"),
            Err(e) => eprintln!("weft proxy: the capture rules could not be removed: {e}"),
        }
    }
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or(
        "expected ANNOTATION=VALUE, e.g. traffic.sidecar.istio.io/excludeOutboundPorts=5432",
    )?;
    Ok((k.to_owned(), v.to_owned()))
}

/// The rules --install-capture installs: Istio's defaults, the given
/// annotations, and --interception-mode.
fn capture_rules(args: &Args) -> anyhow::Result<Option<weft_capture::Capture>> {
    if !args.install_capture {
        return Ok(None);
    }
    let settings = args.capture_settings.iter().cloned().collect();
    let mut capture = weft_capture::Capture::from_annotations(&settings)?
        .context("sidecar.istio.io/interceptionMode NONE leaves nothing to install")?;
    if args.interception_mode == InterceptionMode::Tproxy {
        capture.mode = weft_capture::InterceptionMode::Tproxy;
    }
    Ok(Some(capture))
}

/// A resolver's address: `IP:PORT`, or `IP` for port 53.
fn parse_dns_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
        .map_err(|e| format!("{s:?} is not an address: {e}"))
}

fn parse_name_addr(s: &str) -> Result<(String, SocketAddr), String> {
    let (n, a) = s.rsplit_once('=').ok_or("expected NAME=ADDR")?;
    let addr = a
        .parse::<SocketAddr>()
        .map_err(|e| format!("address {a:?}: {e}"))?;
    Ok((n.to_owned(), addr))
}

/// The model and its content version (the control plane computes the same).
fn read_model(path: &Path) -> anyhow::Result<(weft_model::ProxyModel, String)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let model: weft_model::ProxyModel = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a weft model (write one with `weft proxy-config WORKLOAD -f DIR -o json`)",
            path.display()
        )
    })?;
    if model.model_version != weft_model::MODEL_VERSION {
        bail!(
            "{} has model version {}; this weft reads version {}",
            path.display(),
            model.model_version,
            weft_model::MODEL_VERSION
        );
    }
    Ok((model, weft_model::names::content_version(&text)))
}

/// Why `model` cannot run without a workload identity, if it cannot.
fn needs_identity(model: &weft_model::ProxyModel) -> Option<String> {
    if let Some(c) = model
        .clusters
        .iter()
        .find(|c| matches!(c.tls, weft_model::UpstreamTls::IstioMutual { .. }))
    {
        return Some(format!("cluster {} uses the mesh's mTLS", c.name));
    }
    let mtls = &model.security.inbound_mtls;
    if mtls.mode == weft_model::MtlsMode::Strict
        || mtls
            .ports
            .values()
            .any(|m| *m == weft_model::MtlsMode::Strict)
    {
        return Some("PeerAuthentication makes inbound mTLS STRICT".to_owned());
    }
    None
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bootstrapped;
    let args = match &args.bootstrap {
        Some(dir) => {
            bootstrapped = bootstrap(args, dir)?;
            &bootstrapped
        }
        None => args,
    };
    // With a CA, the proxy has an identity: the model stream and the CA
    // both run over TLS on the CA's port, verified against these roots.
    let identity = match (&args.ca, &args.ca_root) {
        (Some(_), Some(root)) => {
            let pem = std::fs::read_to_string(root)
                .with_context(|| format!("cannot read the mesh's roots {}", root.display()))?;
            let bundle = weft_identity::verify::TrustBundle::from_pem(
                &root.display().to_string(),
                &weft_identity::pem::split(&pem),
            )?;
            Some(weft_proxy::identity::mesh::Mesh::new(
                bundle,
                &args.trust_domain,
            ))
        }
        _ => None,
    };
    let client = match (&args.control_plane, &args.proxy, &args.token_file) {
        (Some(cp), Some(name), Some(token)) => Some(weft_proxy::control::ClientConfig {
            control_plane: match (&identity, args.ca) {
                (Some(_), Some(ca)) => ca,
                _ => *cp,
            },
            mesh: identity.clone(),
            proxy: name.clone(),
            token: std::fs::read_to_string(token)
                .with_context(|| format!("cannot read the bootstrap token {}", token.display()))?
                .trim()
                .to_owned(),
            cache: args.model_cache.clone(),
            max_model_bytes: args.max_model_bytes,
            admin: args.admin,
            // Said once the first model has told which.
            role: String::new(),
            held: Default::default(),
        }),
        _ => None,
    };
    let rules = capture_rules(args)?;
    if args.capture {
        // Before any thread or socket: the capture rules let the traffic
        // of group 1337 through (Istio's proxy group), so the proxy's own
        // connections are not captured again. The user stays root, which
        // the proxy needs for nothing else but keeps for its files.
        let gid = nix::unistd::Gid::from_raw(weft_capture::PROXY_ID);
        nix::unistd::setresgid(gid, gid, gid)
            .context("--capture runs the proxy as group 1337, which needs root (CAP_SETGID)")?;
    }
    // Before the runtime: threads started afterwards inherit the policy.
    if let Err(why) = crate::sched::apply(args.cpu_policy) {
        tracing::info!("CPU policy {:?} not applied: {why}", args.cpu_policy);
    }
    let (rt, workers) = runtime(args)?;
    let (model, first_version) = match (&client, &args.model) {
        (Some(c), _) => {
            rt.block_on(weft_proxy::control::first_model(c, Duration::from_secs(30)))?
        }
        (None, Some(path)) => read_model(path)?,
        (None, None) => anyhow::bail!("pass --model FILE or --control-plane ADDR"),
    };
    let client = client.map(|c| weft_proxy::control::ClientConfig {
        role: match model.proxy.kind {
            weft_model::ProxyKind::Sidecar => "sidecar".into(),
            weft_model::ProxyKind::Gateway => "gateway".into(),
        },
        ..c
    });
    let mesh = match (identity, args.ca, &client) {
        (Some(m), Some(ca), Some(c)) => {
            if model.security.trust_domain != m.trust_domain {
                bail!(
                    "the model's trust domain is {:?} but this proxy was started with --trust-domain {:?}",
                    model.security.trust_domain,
                    m.trust_domain
                );
            }
            m.set_identity(&model.proxy.spiffe_id);
            Some((
                m,
                weft_proxy::identity::mesh::CaClient {
                    ca,
                    proxy: c.proxy.clone(),
                    token: c.token.clone(),
                },
            ))
        }
        _ => None,
    };
    if mesh.is_none() && !args.no_mtls {
        if let Some(why) = needs_identity(&model) {
            bail!("{why}, but this proxy has no identity: pass --ca and --ca-root (and --proxy, --token-file) to get one, or --no-mtls to run without (plain text, for testing)");
        }
    }
    let tunnel = args.tunnel.or(args
        .inbound_ip
        .map(|ip| SocketAddr::new(ip, weft_proxy::identity::mesh::TUNNEL_PORT)));
    let config = RuntimeConfig {
        outbound: args.outbound,
        inbound_ip: args.inbound_ip,
        apps: args.apps.iter().copied().collect::<HashMap<_, _>>(),
        gateway_binds: args.listens.iter().copied().collect::<HashMap<_, _>>(),
        gateway_ip: args.listen_ip,
        binds: args.binds.iter().cloned().collect::<HashMap<_, _>>(),
        admin: args.admin,
        tunnel: if mesh.is_some() { tunnel } else { None },
        explain: args.explain,
        drain: Duration::from_secs(args.drain_seconds),
        workers,
        source: args.source_ip,
        captured_outbound: args
            .capture
            .then(|| SocketAddr::from(([0, 0, 0, 0], weft_capture::ports::OUTBOUND))),
        captured_inbound: args
            .capture
            .then(|| SocketAddr::from(([0, 0, 0, 0], weft_capture::ports::INBOUND))),
        app_source: args
            .capture
            .then_some(IpAddr::V4(weft_capture::INBOUND_PASSTHROUGH_SOURCE)),
        tproxy: args.capture
            && (args.interception_mode == InterceptionMode::Tproxy
                || rules
                    .as_ref()
                    .is_some_and(|c| c.mode == weft_capture::InterceptionMode::Tproxy)),
        dns: args.capture.then(|| {
            (
                // On loopback, as Istio's agent: REDIRECT hands the query
                // to 127.0.0.1, and a reply must leave from there for
                // conntrack to turn it back into the resolver's.
                SocketAddr::from(([127, 0, 0, 1], weft_capture::ports::DNS)),
                weft_proxy::dns::Upstream::resolve(args.dns_upstream),
            )
        }),
        limits: weft_proxy::listen::limits::Limits {
            idle_timeout: args.idle_timeout,
            request_headers_timeout: args.request_headers_timeout,
            ..Default::default()
        },
    };
    let _installed = match &rules {
        Some(c) => {
            weft_capture::install(None, c).context("cannot install the capture rules")?;
            eprintln!("weft proxy: capture rules installed (nft list table inet istio-proxy-nat)");
            Some(InstalledRules)
        }
        None => None,
    };
    rt.block_on(async move {
        let log = match args.access_log.as_str() {
            "off" => AccessLog::off(),
            "-" => AccessLog::spawn(Box::new(std::io::stdout())),
            path => AccessLog::spawn(Box::new(std::fs::OpenOptions::new().create(true).append(true).open(path).with_context(|| format!("cannot open access log {path}"))?)),
        };
        use weft_proxy::identity::credentials::{Credentials, Source};
        let identity = mesh.as_ref().map(|(m, _)| m.clone());
        let credentials = Credentials::new(match (&mesh, &args.secrets) {
            (Some((m, ca)), _) => Source::ControlPlane { mesh: m.clone(), ca: ca.clone() },
            (None, Some(dir)) => Source::Dir(dir.clone()),
            (None, None) => Source::None,
        });
        if let Some((m, ca)) = mesh {
            tokio::spawn(weft_proxy::identity::mesh::keep_certified(m.clone(), ca));
        }
        tokio::spawn(weft_proxy::identity::credentials::keep_fresh(credentials.clone(), Duration::from_secs(30)));
        let proxy = Proxy::start(model, first_version, config, log, identity, credentials.clone()).await?;
        for (name, addr) in &proxy.bound() {
            eprintln!("weft proxy: {name} listening on {addr}");
        }
        eprintln!("weft proxy: ready");
        let _follow = client.map(|c| proxy.follow(c));
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut version = 1u64;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    let Some(path) = &args.model else { continue };
                    let read = read_model(path);
                    if let Ok((m, _)) = &read {
                        credentials.ensure(&m.credential_names()).await;
                    }
                    let applied = match read {
                        Ok((m, v)) => proxy.update(m, v).await.map_err(Into::into),
                        Err(e) => Err(e),
                    };
                    match applied {
                        Ok(()) => {
                            version += 1;
                            eprintln!("weft proxy: model version {version} applied");
                        }
                        Err(e) => eprintln!("weft proxy: model refused, version {version} keeps serving: {e:#}"),
                    }
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        eprintln!("weft proxy: draining");
        proxy.shutdown().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// A timeout as Istio writes durations (`10s`, `1h`, `500ms`).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = weft_api::types::common::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("a timeout must be longer than 0".into());
    }
    Ok(d)
}

/// `KEY='value'` lines of a `cluster.env`, as `weft workload configure`
/// (and istioctl) write them.
fn read_cluster_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// `args` filled in from the files in `dir` (see `--bootstrap`).
fn bootstrap(args: &Args, dir: &Path) -> anyhow::Result<Args> {
    let env_path = dir.join("cluster.env");
    let text = std::fs::read_to_string(&env_path).with_context(|| {
        format!(
            "cannot read {}: write it with `weft workload configure -o {}`",
            env_path.display(),
            dir.display()
        )
    })?;
    let env = read_cluster_env(&text);
    let need = |k: &str| {
        env.get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .with_context(|| format!("{} has no {k}", env_path.display()))
    };
    let ca: SocketAddr = need("CA_ADDR")?
        .parse()
        .with_context(|| format!("{}: CA_ADDR is not an address", env_path.display()))?;
    let namespace = need("POD_NAMESPACE")?;
    let group = need("ISTIO_META_AUTO_REGISTER_GROUP")?;
    // The address peers reach this host at: as said, or the one it
    // reaches the control plane from.
    let ip: IpAddr = match env.get("ISTIO_SVC_IP").filter(|v| !v.is_empty()) {
        Some(ip) => ip
            .parse()
            .with_context(|| format!("{}: ISTIO_SVC_IP is not an address", env_path.display()))?,
        None => {
            let probe =
                std::net::UdpSocket::bind(if ca.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
            probe
                .connect(ca)
                .with_context(|| format!("no route to the control plane at {ca}"))?;
            probe.local_addr()?.ip()
        }
    };
    let mut out = args.clone();
    out.control_plane = Some(ca);
    out.ca = Some(ca);
    out.proxy = Some(format!(
        "{namespace}/{}",
        weft_control::registration::entry_name(&group, ip)
    ));
    out.token_file = Some(dir.join("istio-token"));
    out.ca_root = Some(dir.join("root-cert.pem"));
    if let Some(td) = env.get("TRUST_DOMAIN").filter(|v| !v.is_empty()) {
        out.trust_domain = td.clone();
    }
    out.inbound_ip = out.inbound_ip.or(Some(ip));
    out.admin = out
        .admin
        .or(Some(SocketAddr::new(ip, weft_capture::ports::ADMIN)));
    out.model_cache = out.model_cache.or(Some(dir.join("model.json")));
    // The group's ports: its application listens on them at this address.
    if out.apps.is_empty() {
        for p in env
            .get("ISTIO_INBOUND_PORTS")
            .map(String::as_str)
            .unwrap_or("*")
            .split(',')
            .filter_map(|p| p.trim().parse::<u16>().ok())
        {
            out.apps.push((u32::from(p), SocketAddr::new(ip, p)));
        }
    }
    eprintln!(
        "weft proxy: joining the mesh as {} (WorkloadGroup {namespace}/{group}) through {ca}",
        out.proxy.as_deref().unwrap_or_default()
    );
    Ok(out)
}

#[cfg(test)]
mod bootstrap_tests {
    #[test]
    fn cluster_env_reads_as_istioctl_writes_it() {
        let env = super::read_cluster_env(
            "CA_ADDR='198.19.0.1:15012'\nPOD_NAMESPACE='vms'\nISTIO_SERVICE_CIDR='*'\nPLAIN=x\n",
        );
        assert_eq!(env["CA_ADDR"], "198.19.0.1:15012");
        assert_eq!(env["POD_NAMESPACE"], "vms");
        assert_eq!(env["ISTIO_SERVICE_CIDR"], "*");
        assert_eq!(env["PLAIN"], "x");
    }
}
