//! `weft proxy-config WORKLOAD -f PATH`: the model one proxy receives,
//! compiled offline from files (what `istioctl proxy-config all` shows).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use weft_compile::{Compiler, MeshConfig, ProxyRef, Registry};

use crate::output::{check_paths, Format};

#[derive(clap::Args)]
pub struct Args {
    /// The workload (`reviews-v1`, `reviews-v1-0`, `ns/name`) or gateway
    /// (`istio-ingressgateway`).
    #[arg(value_name = "WORKLOAD", required_unless_present = "workload_flag")]
    workload: Option<String>,
    #[arg(long = "workload", hide = true)]
    workload_flag: Option<String>,
    /// Namespace of the workload, unless given as `ns/name`.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Files or directories to compile from; `-` reads stdin. Without
    /// them, the model the running proxy serves is read from it.
    #[arg(short = 'f', long = "filename")]
    files: Vec<PathBuf>,
    /// The control plane's admin API (for a running mesh).
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: std::net::SocketAddr,
    /// Only one part of the model.
    #[arg(long, value_enum, default_value_t = Section::All)]
    section: Section,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    output: Format,
    /// First loopback address given to local Workload replicas.
    #[arg(long, default_value = "127.0.10.1")]
    local_address_base: std::net::Ipv4Addr,
    /// `NAME=IP`: where the mesh's gateway NAME listens, as `weft
    /// control-plane --gateway-address` (repeatable); a gateway not named
    /// takes a loopback address after the replicas'.
    #[arg(long = "gateway-address", value_parser = super::control_plane::parse_gateway_address)]
    gateway_addresses: Vec<(String, std::net::Ipv4Addr)>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    All,
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    Security,
    Telemetry,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let name = args
        .workload
        .as_deref()
        .or(args.workload_flag.as_deref())
        .context("name a workload")?;
    if args.files.is_empty() {
        return live(args, name);
    }
    check_paths(&args.files)?;
    let (namespace, name) = name
        .split_once('/')
        .unwrap_or((args.namespace.as_str(), name));
    let loaded = super::load_reporting_errors(&args.files);
    let mesh = MeshConfig {
        local_address_base: args.local_address_base,
        ..MeshConfig::default()
    }
    .with_gateway_addresses(&args.gateway_addresses);
    let registry = Registry::build(&loaded.resources, &mesh);
    let compiler = Compiler::new(&loaded.resources, &registry, &mesh);
    let is_gateway = mesh.gateways.iter().any(|g| g.name == name);
    // A Deployment, app or `kind/` name resolves as `weft x509` and `weft
    // logs` resolve it against a running mesh, here against the registry.
    let resolved;
    let (namespace, name) = if is_gateway {
        (namespace, name)
    } else {
        let instances: Vec<serde_json::Value> = registry
            .instances
            .iter()
            .map(|i| {
                serde_json::json!({
                    "name": format!("{}/{}", i.namespace, i.name),
                    "workload": i.workload,
                    "labels": i.labels,
                })
            })
            .collect();
        let asked = args
            .workload
            .as_deref()
            .or(args.workload_flag.as_deref())
            .unwrap_or(name);
        let asked = if asked.contains('/') {
            asked.to_owned()
        } else {
            format!("{namespace}/{asked}")
        };
        let found =
            super::workload_name::resolve(&serde_json::json!({ "workloads": instances }), &asked)?;
        resolved = found["name"].as_str().unwrap_or_default().to_owned();
        resolved.split_once('/').unwrap_or((namespace, name))
    };
    let proxy = if is_gateway {
        let ns = mesh
            .gateways
            .iter()
            .find(|g| g.name == name)
            .map_or(namespace, |g| g.namespace.as_str());
        ProxyRef::Gateway {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        }
    } else {
        ProxyRef::Sidecar {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    };
    let model = compiler.compile(&proxy)?;
    let value = match args.section {
        Section::All => serde_json::to_value(&model)?,
        Section::Listeners => serde_json::to_value(&model.listeners)?,
        Section::Routes => serde_json::to_value(&model.route_tables)?,
        Section::Clusters => serde_json::to_value(
            model
                .clusters
                .iter()
                .map(|c| {
                    let mut c = weft_model::Cluster::clone(c);
                    c.endpoints.clear();
                    c
                })
                .collect::<Vec<_>>(),
        )?,
        Section::Endpoints => serde_json::to_value(
            model
                .clusters
                .iter()
                .map(|c| (c.name.clone(), c.endpoints.clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        )?,
        Section::Security => serde_json::to_value(&model.security)?,
        Section::Telemetry => serde_json::to_value(&model.telemetry)?,
    };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Format::Yaml | Format::Text | Format::Wide => {
            print!("{}", weft_api::yaml::emit::to_yaml_string(&value)?)
        }
    }
    Ok(if loaded.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The model a running proxy serves, from its own admin port.
fn live(args: &Args, name: &str) -> anyhow::Result<ExitCode> {
    let admin = super::proxy_admin(args.admin, name)?;
    let dump = crate::http_get::get(admin.clone(), "/config_dump")
        .with_context(|| format!("the proxy does not answer on {admin}"))?;
    let dump: serde_json::Value = serde_json::from_str(&dump)?;
    let model = &dump["model"];
    let value = match args.section {
        Section::All => dump.clone(),
        Section::Listeners => model["listeners"].clone(),
        Section::Routes => model["routeTables"].clone(),
        Section::Clusters | Section::Endpoints => model["clusters"].clone(),
        Section::Security => model["security"].clone(),
        Section::Telemetry => model["telemetry"].clone(),
    };
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Format::Yaml | Format::Text | Format::Wide => {
            print!("{}", weft_api::yaml::emit::to_yaml_string(&value)?)
        }
    }
    Ok(ExitCode::SUCCESS)
}
