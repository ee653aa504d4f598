//! `weft workload configure`: the files a host or VM needs to join the
//! mesh, as `istioctl x workload entry configure` writes them
//! (`cluster.env`, `mesh.yaml`, `root-cert.pem`, `istio-token`, `hosts`),
//! for `weft proxy --bootstrap DIR --capture --install-capture` on that
//! host. The token is the control plane's, for the WorkloadGroup.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Write the files a host or VM of a WorkloadGroup joins the mesh with.
    Configure(ConfigureArgs),
}

#[derive(clap::Args)]
pub struct ConfigureArgs {
    /// The WorkloadGroup's file (its name and namespace are read from it).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// The WorkloadGroup's name (without --file).
    #[arg(long)]
    name: Option<String>,
    /// The WorkloadGroup's namespace (without --file).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Where the files are written.
    #[arg(short = 'o', long)]
    output: PathBuf,
    /// The control plane's admin API, which issues the token.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    /// How long the token registers new hosts, in seconds (a host it
    /// registered keeps using it).
    #[arg(
        long = "tokenDuration",
        alias = "token-duration",
        default_value_t = 3600
    )]
    token_duration: u64,
    /// The host registers its own WorkloadEntry when its proxy connects
    /// (the only way weft enrols hosts).
    #[arg(long)]
    autoregister: bool,
    /// The address peers reach the host at (by default the one it reaches
    /// the control plane from).
    #[arg(long = "internalIP", alias = "internal-ip")]
    internal_ip: Option<IpAddr>,
    /// Whether the host's DNS queries are answered by its proxy.
    #[arg(long = "capture-dns", default_value_t = true, action = clap::ArgAction::Set)]
    capture_dns: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Sub::Configure(c) => configure(c),
    }
}

/// The WorkloadGroup `--file` names, or `--name`/`--namespace`.
fn group_of(args: &ConfigureArgs) -> anyhow::Result<(String, String)> {
    let Some(file) = &args.file else {
        let name = args.name.clone().context(
            "name the WorkloadGroup: --file workloadgroup.yaml, or --name NAME -n NAMESPACE",
        )?;
        return Ok((args.namespace.clone(), name));
    };
    let loaded = weft_api::load::load_paths(std::slice::from_ref(file));
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let groups: Vec<&weft_api::resource::Resource> = loaded
        .resources
        .iter()
        .filter(|r| r.kind() == weft_api::resource::ResourceKind::WorkloadGroup)
        .collect();
    match groups.as_slice() {
        [one] => Ok((one.namespace().to_owned(), one.name().to_owned())),
        [] => bail!("{} holds no WorkloadGroup", file.display()),
        _ => bail!(
            "{} holds {} WorkloadGroups; name one with --name and -n",
            file.display(),
            groups.len()
        ),
    }
}

fn configure(args: &ConfigureArgs) -> anyhow::Result<ExitCode> {
    if !args.autoregister {
        bail!("weft enrols hosts by auto-registration: add --autoregister (the host's proxy registers its WorkloadEntry from the WorkloadGroup when it connects)");
    }
    let (namespace, name) = group_of(args)?;
    let path = format!(
        "/api/workloadgroups/{namespace}/{name}/token?duration={}",
        args.token_duration
    );
    let (status, body) = crate::http_get::request(args.admin, "POST", &path, b"")
        .with_context(|| format!("no control plane answers on {} (pass --admin)", args.admin))?;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 200 {
        bail!(
            "the control plane refused: {}",
            v["error"].as_str().unwrap_or(body.trim())
        );
    }
    let text = |k: &str| v[k].as_str().map(str::to_owned).unwrap_or_default();
    let (token, control_plane, roots, trust_domain) = (
        text("token"),
        text("controlPlane"),
        text("rootCert"),
        text("trustDomain"),
    );
    if token.is_empty() || control_plane.is_empty() || roots.is_empty() {
        bail!("the control plane's answer is missing the token, its address or the roots");
    }
    let template = &v["workloadGroup"]["spec"]["template"];
    let labels = &v["workloadGroup"]["spec"]["metadata"]["labels"];
    let label = |k: &str| {
        labels[k]
            .as_str()
            .or_else(|| template["labels"][k].as_str())
            .map(str::to_owned)
    };
    let ports: Vec<String> = template["ports"]
        .as_object()
        .map(|p| {
            let mut n: Vec<u64> = p.values().filter_map(|v| v.as_u64()).collect();
            n.sort_unstable();
            n.iter().map(u64::to_string).collect()
        })
        .unwrap_or_default();
    let service_account = template["serviceAccount"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("default");
    // As istioctl writes it: the canonical service and revision from the
    // labels, the inbound ports from the template, the agent's ports
    // and ssh left alone.
    let mut env: BTreeMap<&str, String> = BTreeMap::from([
        (
            "CANONICAL_REVISION",
            label("service.istio.io/canonical-revision")
                .or_else(|| label("version"))
                .unwrap_or_else(|| "latest".into()),
        ),
        (
            "CANONICAL_SERVICE",
            label("service.istio.io/canonical-name")
                .or_else(|| label("app"))
                .unwrap_or_else(|| name.clone()),
        ),
        ("CA_ADDR", control_plane.clone()),
        (
            "ISTIO_INBOUND_PORTS",
            if ports.is_empty() {
                "*".into()
            } else {
                ports.join(",")
            },
        ),
        ("ISTIO_LOCAL_EXCLUDE_PORTS", "22,15090,15021,15020".into()),
        ("ISTIO_META_AUTO_REGISTER_GROUP", name.clone()),
        ("ISTIO_META_DNS_CAPTURE", args.capture_dns.to_string()),
        ("ISTIO_META_WORKLOAD_NAME", name.clone()),
        ("ISTIO_NAMESPACE", namespace.clone()),
        ("ISTIO_SERVICE", format!("{name}.{namespace}")),
        ("ISTIO_SERVICE_CIDR", "*".into()),
        ("POD_NAMESPACE", namespace.clone()),
        ("SERVICE_ACCOUNT", service_account.to_owned()),
        ("TRUST_DOMAIN", trust_domain),
    ]);
    if let Some(ip) = args.internal_ip {
        env.insert("ISTIO_SVC_IP", ip.to_string());
    }
    let dir = &args.output;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cluster_env: String = env.iter().map(|(k, v)| format!("{k}='{v}'\n")).collect();
    write(dir, "cluster.env", &cluster_env, 0o644)?;
    let mesh = serde_json::json!({
        "defaultConfig": {
            "discoveryAddress": control_plane,
            "proxyMetadata": env,
        }
    });
    write(
        dir,
        "mesh.yaml",
        &weft_api::yaml::emit::to_yaml_string(&mesh).unwrap_or_default(),
        0o644,
    )?;
    write(dir, "root-cert.pem", &roots, 0o644)?;
    // A secret: the owner's alone.
    write(dir, "istio-token", &token, 0o600)?;
    let cp_ip = control_plane
        .parse::<SocketAddr>()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    write(
        dir,
        "hosts",
        &format!("{cp_ip} istiod.istio-system.svc\n"),
        0o644,
    )?;
    println!(
        "wrote cluster.env, mesh.yaml, root-cert.pem, istio-token and hosts to {} for WorkloadGroup {namespace}/{name}; the token registers hosts for {}s",
        dir.display(),
        args.token_duration
    );
    println!(
        "on the host: sudo weft proxy --bootstrap {} --capture --install-capture",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
