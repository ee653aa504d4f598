//! `weft ca`: the mesh's certificate authority. `weft ca rotate` replaces
//! the root without downtime: the new root is first trusted everywhere,
//! then signs (every proxy renews at once), and the old root is trusted
//! until the certificates it signed have expired. `weft ca status` shows
//! the roots and the rotation's phase.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    /// The control plane's admin API.
    #[arg(long, default_value = "127.0.0.1:15014", global = true)]
    admin: SocketAddr,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Rotate the root certificate (a weft-made root; a plug-in CA is
    /// rotated with its owner's PKI).
    Rotate,
    /// The roots proxies trust and the rotation's phase.
    Status,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    match args.action {
        Action::Rotate => {
            let (status, body) =
                crate::http_get::request(args.admin, "POST", "/api/ca/rotate", b"")
                    .with_context(|| format!("no control plane answers on {}", args.admin))?;
            if status != 202 {
                anyhow::bail!("the control plane refused: HTTP {status}: {body}");
            }
            println!("root rotation started: the new root goes to every proxy first, then signs; follow it with `weft ca status`");
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let text = crate::http_get::get(args.admin, "/api/status")
                .with_context(|| format!("no control plane answers on {}", args.admin))?;
            let v: serde_json::Value = serde_json::from_str(&text)?;
            let ca = &v["controlPlane"]["ca"];
            println!("source  {}", ca["source"].as_str().unwrap_or("-"));
            println!("phase   {}", ca["phase"].as_str().unwrap_or("-"));
            if let Some(t) = ca["retireAt"].as_u64() {
                println!(
                    "the previous root is trusted until {}",
                    weft_identity::inspect::rfc3339(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)
                    )
                );
            }
            println!("\n{:<34} {:<22} SUBJECT", "ROOT SERIAL", "NOT AFTER");
            for (i, r) in ca["roots"].as_array().into_iter().flatten().enumerate() {
                println!(
                    "{:<34} {:<22} {}{}",
                    r["serial"].as_str().unwrap_or(""),
                    r["notAfter"].as_str().unwrap_or(""),
                    r["subject"].as_str().unwrap_or(""),
                    if i == 0 { "  (signing)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
