//! `weft control-plane -f DIR`: only the control plane — the model stream
//! and the admin API — for proxies run elsewhere (`weft proxy
//! --control-plane`), as hosts and Kubernetes modes will run it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use weft_control::server::{self, Options};

use crate::output::check_paths;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:15010")]
    xds: SocketAddr,
    #[arg(long, default_value = "127.0.10.1")]
    address_base: Ipv4Addr,
    /// Give services that declare no address one counting up from here
    /// (transparent capture routes connections by address; `weft up
    /// --capture` passes it).
    #[arg(long)]
    service_address_base: Option<Ipv4Addr>,
    /// Give each node's pods addresses from its pod range: `spec.podCIDR`,
    /// else ranges of this one's size counting up from it (`weft up
    /// --capture` passes it).
    #[arg(long)]
    pod_ranges: Option<ipnet::Ipv4Net>,
    /// A range the mesh keeps for itself, which no node's `podCIDR` may
    /// overlap (repeatable).
    #[arg(long = "reserved-range")]
    reserved_ranges: Vec<ipnet::Ipv4Net>,
    /// `NAME=IP`: where the mesh's gateway NAME (`istio-ingressgateway`,
    /// `istio-egressgateway`) listens, the endpoint of its Service
    /// (repeatable; `weft up` passes them).
    #[arg(long = "gateway-address", value_parser = parse_gateway_address)]
    gateway_addresses: Vec<(String, Ipv4Addr)>,
    #[command(flatten)]
    ca: super::ca_args::CaArgs,
    /// Where proxies' bootstrap tokens are written (tokens/).
    /// Defaults to `.weft/run/<mesh>`, one per configuration.
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    check_paths(&args.files)?;
    let dirs = super::ca_args::RunDir::new(args.run_dir.as_deref(), &args.files)?;
    let run_dir = dirs.path().to_owned();
    let opts = Options {
        paths: args.files.clone(),
        admin: args.admin,
        xds: args.xds,
        ca: args.ca.address(args.xds),
        trust_domain: args.ca.trust_domain(),
        ca_dir: args.ca.dir(&dirs),
        cert_ttl: args.ca.ttl(),
        jwks_refresh: args.ca.jwks_refresh(),
        secrets_dir: args.ca.secrets(&args.files),
        address_base: args.address_base,
        service_address_base: args.service_address_base,
        pod_ranges: args.pod_ranges.map(|first| weft_compile::nodes::PodRanges {
            first,
            reserved: args.reserved_ranges.clone(),
        }),
        gateway_addresses: args.gateway_addresses.clone(),
        run_dir,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match rt.block_on(server::run(opts)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(weft_control::ControlError::ControlPlaneDidNotStart) => Ok(ExitCode::from(1)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn parse_gateway_address(s: &str) -> Result<(String, Ipv4Addr), String> {
    let (name, ip) = s
        .split_once('=')
        .ok_or("expected NAME=IP, e.g. istio-egressgateway=198.19.0.3")?;
    let ip = ip
        .parse::<Ipv4Addr>()
        .map_err(|e| format!("address {ip:?}: {e}"))?;
    Ok((name.to_owned(), ip))
}
