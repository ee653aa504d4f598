//! `weft logs WORKLOAD`: a running workload's output (and, with --proxy,
//! its sidecar's), found through the control plane's admin API.

use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The workload: a replica (`reviews-v1-0`), a workload or Deployment
    /// (`reviews-v1`, `deploy/reviews-v1`), an app (`productpage`) that names
    /// one workload, each optionally as `namespace/name`.
    workload: String,
    /// Show the sidecar's log instead of the workload's.
    #[arg(long)]
    proxy: bool,
    /// Show the sidecar's access log.
    #[arg(long, conflicts_with = "proxy")]
    access: bool,
    /// Keep printing new lines.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Lines from the end to start with.
    #[arg(long, default_value_t = 50)]
    tail: usize,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = crate::http_get::get(args.admin, "/api/status").with_context(|| {
        format!(
            "no control plane answers on {}: is `weft up` running?",
            args.admin
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let w = super::workload_name::resolve(&v, &args.workload)?;
    let app_log = std::path::PathBuf::from(w["log"].as_str().unwrap_or(""));
    let path = if args.proxy {
        app_log.with_file_name(
            app_log
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .replace(".log", ".proxy.log"),
        )
    } else if args.access {
        app_log.with_file_name(
            app_log
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .replace(".log", ".access.log"),
        )
    } else {
        app_log
    };
    let mut file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut content = String::new();
    file.read_to_string(&mut content)?;
    let lines: Vec<&str> = content.lines().collect();
    let out = std::io::stdout();
    let mut out = out.lock();
    for l in &lines[lines.len().saturating_sub(args.tail)..] {
        writeln!(out, "{l}")?;
    }
    out.flush()?;
    if args.follow {
        let mut pos = file.seek(SeekFrom::End(0))?;
        loop {
            std::thread::sleep(Duration::from_millis(250));
            let len = std::fs::metadata(&path)?.len();
            if len > pos {
                file.seek(SeekFrom::Start(pos))?;
                let mut buf = String::new();
                file.read_to_string(&mut buf)?;
                write!(out, "{buf}")?;
                out.flush()?;
                pos = len;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
