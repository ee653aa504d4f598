//! `weft up --prometheus`: a real Prometheus (Debian's `prometheus`)
//! scraping every proxy's `/metrics`. weft writes its configuration and
//! keeps the target list current through file-based service discovery as
//! proxies come and go.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::supervise::Spec;

/// How often Prometheus scrapes the proxies.
const SCRAPE_INTERVAL: &str = "2s";

fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("prometheus")
}

fn targets_file(run_dir: &Path) -> PathBuf {
    dir(run_dir).join("targets.json")
}

/// Finds the `prometheus` binary.
fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("prometheus"))
            .find(|p| p.is_file())
    })
}

/// The process spec, or why Prometheus cannot run.
pub fn spec(run_dir: &Path, weft: &Path, listen: SocketAddr) -> Result<Spec, String> {
    let Some(bin) = binary() else {
        return Err("--prometheus needs Prometheus on PATH: install it with `apt-get install prometheus` (Debian) or from prometheus.io".into());
    };
    let d = dir(run_dir);
    std::fs::create_dir_all(d.join("data")).map_err(|e| format!("{}: {e}", d.display()))?;
    let config = [
        "# Written by weft up; regenerated at every start.".to_owned(),
        "global:".into(),
        format!("  scrape_interval: {SCRAPE_INTERVAL}"),
        format!("  scrape_timeout: {SCRAPE_INTERVAL}"),
        "scrape_configs:".into(),
        "- job_name: weft-proxies".into(),
        "  metrics_path: /metrics".into(),
        "  file_sd_configs:".into(),
        format!("  - files: [\"{}\"]", targets_file(run_dir).display()),
        "    refresh_interval: 2s".into(),
        String::new(),
    ]
    .join("\n");
    let config_path = d.join("prometheus.yml");
    std::fs::write(&config_path, config).map_err(|e| format!("{}: {e}", config_path.display()))?;
    if !targets_file(run_dir).exists() {
        let _ = std::fs::write(targets_file(run_dir), "[]");
    }
    Ok(Spec {
        name: "prometheus".into(),
        program: weft.to_owned(),
        args: vec![
            "exec-child".into(),
            "--".into(),
            bin.display().to_string(),
            format!("--config.file={}", config_path.display()),
            format!("--storage.tsdb.path={}", d.join("data").display()),
            format!("--web.listen-address={listen}"),
            "--storage.tsdb.retention.time=1d".into(),
        ],
        env: Vec::new(),
        log: run_dir.join("logs").join("prometheus.log"),
    })
}

/// Rewrites the scrape targets: every proxy's admin address, labelled
/// with its name, namespace and pod as Istio's Prometheus configuration
/// labels them.
pub fn write_targets(run_dir: &Path, proxies: &[(String, String)]) {
    let groups: Vec<serde_json::Value> = proxies
        .iter()
        .map(|(name, admin)| {
            let (ns, pod) = name.split_once('/').unwrap_or(("default", name));
            serde_json::json!({
                "targets": [admin],
                "labels": {"proxy": name, "namespace": ns, "pod": pod},
            })
        })
        .collect();
    let text = serde_json::Value::Array(groups).to_string();
    let path = targets_file(run_dir);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return;
    }
    let tmp = path.with_extension("json.tmp");
    if std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .is_err()
    {
        tracing::debug!("cannot write {}", path.display());
    }
}
