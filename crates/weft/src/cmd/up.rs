//! `weft up -f DIR`: the whole mesh on this machine — control plane,
//! sidecars, gateways and workloads — with no root and no containers.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use weft_local::{self as local, Options};

use crate::output::check_paths;

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories with the mesh's configuration.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Where the ingress gateway's port 8080 listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    ingress: SocketAddr,
    /// The control plane's admin API (weft status, the dashboard).
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    /// The model stream proxies connect to.
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: SocketAddr,
    /// First loopback address given to workload replicas.
    #[arg(long, default_value = "127.0.10.1")]
    address_base: Ipv4Addr,
    /// Where models and logs are written.
    /// Defaults to `.weft/run/<mesh>`, one per configuration.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    #[command(flatten)]
    ca: super::ca_args::CaArgs,
    /// Proxies add `x-weft-reason` to the replies they make themselves.
    #[arg(long)]
    explain: bool,
    /// Start Prometheus (Debian's `prometheus`), scraping every proxy.
    #[arg(long)]
    prometheus: bool,
    /// Where Prometheus listens, with --prometheus.
    #[arg(long, default_value = "127.0.0.1:9090")]
    prometheus_listen: SocketAddr,
    /// Transparent capture (root): each Workload replica runs in its own
    /// network namespace with its own address, its traffic handed to its
    /// sidecar by nftables rules as Istio's sidecar mode does; workloads
    /// need no HTTP_PROXY. The ingress, admin API and Prometheus stay
    /// where they are on this machine, forwarded into the mesh.
    #[arg(long)]
    capture: bool,
    /// Under --capture, the resolver pods' proxies ask for names that are
    /// not the mesh's (what their resolv.conf names); by default this
    /// machine's first nameserver.
    #[arg(long, requires = "capture")]
    dns_upstream: Option<std::net::IpAddr>,
    /// PEM roots the proxies trust for servers outside the mesh (TLS they
    /// originate without `caCertificates` or a credential's CA), in place
    /// of the system's bundle; a test CA is trusted this way, never by
    /// adding it to the system's store.
    #[arg(long)]
    external_roots: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    check_paths(&args.files)?;
    let weft = std::env::current_exe().context("cannot find the weft binary itself")?;
    let dirs = super::ca_args::RunDir::new(args.run_dir.as_deref(), &args.files)?;
    let run_dir = dirs.path().to_owned();
    let mut opts = Options {
        paths: args.files.clone(),
        ingress: args.ingress,
        admin: args.admin,
        xds: args.xds,
        ca: args.ca.address(args.xds),
        trust_domain: args.ca.trust_domain(),
        ca_dir: args.ca.dir(&dirs),
        cert_ttl: args.ca.ttl(),
        jwks_refresh: args.ca.jwks_refresh(),
        secrets_dir: args.ca.secrets(&args.files),
        address_base: args.address_base,
        run_dir,
        weft,
        explain: args.explain,
        prometheus: args.prometheus.then_some(args.prometheus_listen),
        capture: None,
        user_ingress: args.ingress,
        user_admin: args.admin,
        dns_upstream: args.dns_upstream,
        external_roots: args
            .external_roots
            .as_deref()
            .map(std::path::absolute)
            .transpose()
            .context("--external-roots")?,
    };
    if args.capture {
        // Before the runtime: its threads must start on the mesh network.
        weft_local::capture::onto_mesh_network(&mut opts)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match rt.block_on(local::run(opts)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(weft_control::ControlError::ControlPlaneDidNotStart) => Ok(ExitCode::from(1)),
        Err(e) => Err(e.into()),
    }
}
