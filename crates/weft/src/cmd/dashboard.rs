//! `weft dashboard`: opens the control plane's dashboard (the live
//! service graph) in a browser, or prints its address.

use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The control plane's admin API, which serves the dashboard.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    /// Print the address only.
    #[arg(long)]
    no_browser: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    crate::http_get::get(args.admin, "/ready").with_context(|| {
        format!(
            "no control plane answers on {}: is `weft up` running?",
            args.admin
        )
    })?;
    let url = format!("http://{}/", args.admin);
    println!("weft dashboard: {url}");
    if !args.no_browser {
        let opened = Command::new("xdg-open")
            .arg(&url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !opened {
            println!("(no browser could be opened here; open the address above)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
