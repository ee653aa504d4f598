//! The identity flags `weft up` and `weft control-plane` share: the CA
//! and the refresh of RequestAuthentication key sets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(clap::Args, Debug, Clone)]
pub struct CaArgs {
    /// The CA's TLS port; defaults to port 15012 on the model stream's
    /// address.
    #[arg(long)]
    ca: Option<SocketAddr>,
    /// The CA's keys: Istio's plug-in `cacerts` files (ca-cert.pem,
    /// ca-key.pem, root-cert.pem, cert-chain.pem), or where weft keeps the
    /// root it makes on first start. Defaults to `ca/` next to the run
    /// directory.
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// The SPIFFE trust domain of workload identities.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// Workload certificate lifetime (Go duration, e.g. 24h, 90m).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    cert_ttl: Duration,
    /// How often RequestAuthentication `jwksUri` key sets are re-fetched.
    #[arg(long, default_value = "20m", value_parser = parse_refresh)]
    jwks_refresh: Duration,
    /// Where Gateway and DestinationRule `credentialName` secrets live:
    /// `<dir>/<name>/tls.crt`, `tls.key`, `ca.crt`. Defaults to `secrets/`
    /// in the first configuration directory.
    #[arg(long)]
    secrets: Option<PathBuf>,
}

fn parse_refresh(s: &str) -> Result<Duration, String> {
    let d = weft_api::types::common::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("refresh at most every 100ms".into());
    }
    Ok(d)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = weft_api::types::common::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_secs(5) {
        return Err("certificates must live at least 5s".into());
    }
    Ok(d)
}

impl CaArgs {
    pub fn address(&self, xds: SocketAddr) -> SocketAddr {
        self.ca.unwrap_or(SocketAddr::new(xds.ip(), 15012))
    }

    /// `--ca-dir`, or `ca/` beside an explicit run directory, or
    /// `.weft/ca` when the run directory is the default one per mesh
    /// (meshes started from one working directory share the CA).
    pub fn dir(&self, run_dir: &RunDir) -> PathBuf {
        self.ca_dir.clone().unwrap_or_else(|| match run_dir {
            RunDir::Given(d) => d.parent().map_or_else(|| d.join("ca"), |p| p.join("ca")),
            RunDir::PerMesh { state, .. } => state.join("ca"),
        })
    }

    pub fn trust_domain(&self) -> String {
        self.trust_domain.clone()
    }

    pub fn ttl(&self) -> Duration {
        self.cert_ttl
    }

    /// `--secrets`, or `secrets/` in the first configuration directory,
    /// whether or not it exists yet: it is read when a credential is asked
    /// for, so one made after start is found.
    pub fn secrets(&self, files: &[PathBuf]) -> Option<PathBuf> {
        self.secrets.clone().or_else(|| {
            let first = files.first()?;
            let dir = first.join("secrets");
            first
                .is_dir()
                .then(|| std::path::absolute(&dir).unwrap_or(dir))
        })
    }

    pub fn jwks_refresh(&self) -> Duration {
        self.jwks_refresh
    }
}

/// Where a mesh keeps its state: models, logs, tokens, replica addresses
/// and the resources `weft apply` wrote.
pub enum RunDir {
    /// `--run-dir`.
    Given(PathBuf),
    /// `.weft/run/<mesh>` under the working directory (`state` is
    /// `.weft`), `<mesh>` naming the configuration: the first path's name
    /// and a hash of every path made absolute. Meshes started from one
    /// working directory with other files keep their state apart.
    PerMesh { state: PathBuf, dir: PathBuf },
}

impl RunDir {
    pub fn new(given: Option<&Path>, files: &[PathBuf]) -> std::io::Result<RunDir> {
        let cwd = std::env::current_dir()?;
        if let Some(d) = given {
            return Ok(RunDir::Given(if d.is_absolute() {
                d.to_owned()
            } else {
                cwd.join(d)
            }));
        }
        let absolute: Vec<String> = files
            .iter()
            .map(|f| {
                std::fs::canonicalize(f)
                    .unwrap_or_else(|_| cwd.join(f))
                    .display()
                    .to_string()
            })
            .collect();
        let name = files
            .first()
            .and_then(|f| std::fs::canonicalize(f).ok())
            .and_then(|f| f.file_stem().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "mesh".to_owned());
        let hash = weft_model::names::content_version(&absolute.join("\n"));
        let state = cwd.join(".weft");
        let dir = state.join("run").join(format!("{name}-{}", &hash[..8]));
        Ok(RunDir::PerMesh { state, dir })
    }

    pub fn path(&self) -> &Path {
        match self {
            RunDir::Given(d) | RunDir::PerMesh { dir: d, .. } => d,
        }
    }
}
