//! `weft status`: the running mesh's components, ports, and each proxy's
//! configuration sync state, like `istioctl proxy-status`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::output::Format;

#[derive(clap::Args)]
pub struct Args {
    /// The control plane's admin API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = crate::http_get::get(args.admin, "/api/status").with_context(|| format!("no control plane answers on {}: is `weft up` running? (use --admin if it listens elsewhere)", args.admin))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).context("the control plane sent something that is not JSON")?;
    if args.output != Format::Text {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let cp = &v["controlPlane"];
    println!(
        "control plane  admin http://{}  ingress http://{}  configuration {}",
        cp["admin"].as_str().unwrap_or(""),
        cp["ingress"].as_str().unwrap_or(""),
        cp["generation"]
    );
    if let Some(errors) = cp["lastRefusedChange"].as_array() {
        println!(
            "REFUSED ({} errors): these resources are not admitted; everything else applies",
            errors.len()
        );
        for e in errors {
            println!(
                "  {}:{}:{}: {}: {}",
                e["file"].as_str().unwrap_or(""),
                e["line"],
                e["column"],
                e["field"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            );
        }
    }
    for t in cp["takenOver"].as_array().into_iter().flatten() {
        println!(
            "  {}:{}: {}",
            t["file"].as_str().unwrap_or(""),
            t["line"],
            t["message"].as_str().unwrap_or("")
        );
    }
    if let Some(audited) = cp["audited"].as_array().filter(|a| !a.is_empty()) {
        println!(
            "AUDITED ({}): admitted, but the platform's Guardrails would refuse them",
            audited.len()
        );
        for a in audited {
            println!(
                "  {}:{}:{}: {}: {}",
                a["file"].as_str().unwrap_or(""),
                a["line"],
                a["column"],
                a["field"].as_str().unwrap_or(""),
                a["message"].as_str().unwrap_or("")
            );
        }
    }
    for kept in cp["keptLastGood"].as_array().into_iter().flatten() {
        println!(
            "  {}: refused; its last good version keeps serving",
            kept.as_str().unwrap_or("")
        );
    }
    if let Some(policies) = cp["policies"].as_array().filter(|p| !p.is_empty()) {
        println!(
            "\n{:<44} {:<14} {:<8} {:<6} {:<6} HITS",
            "POLICY", "KIND", "ACTION", "PASS", "FAIL"
        );
        for p in policies {
            let n = |k: &str| p[k].as_u64().map_or("-".to_owned(), |n| n.to_string());
            let hits = match (
                p["dropped"].as_u64(),
                p["audited"].as_u64(),
                p["selects"].as_u64(),
            ) {
                (Some(d), _, _) => format!("{d} packets dropped"),
                (_, Some(a), _) => format!("{a} packets audited"),
                (_, _, Some(s)) => format!("selects {s} workloads"),
                _ => "-".to_owned(),
            };
            println!(
                "{:<44} {:<14} {:<8} {:<6} {:<6} {hits}",
                p["name"].as_str().unwrap_or(""),
                p["kind"].as_str().unwrap_or(""),
                p["action"].as_str().unwrap_or(""),
                n("pass"),
                n("fail"),
            );
        }
    }
    println!(
        "\n{:<40} {:<8} {:<22} {:<12} {:<18} {:<10} RESTARTS",
        "PROXY", "KIND", "ADDRESS", "SYNC", "VERSION", "CERT"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut expiring = Vec::new();
    let mut behind = Vec::new();
    for p in v["proxies"].as_array().into_iter().flatten() {
        if let Some(reason) = p["reason"].as_str() {
            behind.push(format!(
                "{} is {}: {reason}",
                p["name"].as_str().unwrap_or(""),
                p["sync"].as_str().unwrap_or("")
            ));
        }
        let addr = p["outbound"]
            .as_str()
            .or_else(|| p["listens"][0]["address"].as_str())
            .unwrap_or("-");
        let cert = &p["stream"]["certificate"];
        let left = cert["notAfterUnix"].as_u64().map(|t| t.saturating_sub(now));
        let life = cert["lifetimeSeconds"].as_u64().unwrap_or(0);
        let cert_col = match left {
            None => "-".to_owned(),
            Some(0) => "EXPIRED".to_owned(),
            Some(l) => human(l),
        };
        // Renewal is due at half-life: a quarter left means it is failing.
        if left.is_some_and(|l| l * 4 < life) {
            expiring.push(format!(
                "{}: certificate {} expires {} ({}); renewal is failing, see `weft logs {} --proxy`",
                p["name"].as_str().unwrap_or(""),
                cert["serial"].as_str().unwrap_or(""),
                cert["notAfter"].as_str().unwrap_or(""),
                if left == Some(0) { "expired".to_owned() } else { format!("in {cert_col}") },
                p["name"].as_str().unwrap_or("").rsplit('/').next().unwrap_or("")
            ));
        }
        println!(
            "{:<40} {:<8} {:<22} {:<12} {:<18} {:<10} {}",
            p["name"].as_str().unwrap_or(""),
            p["kind"].as_str().unwrap_or(""),
            addr,
            p["sync"].as_str().unwrap_or(""),
            p["pushedVersion"].as_str().unwrap_or(""),
            cert_col,
            p["process"]["restarts"]
        );
    }
    for e in expiring.iter().chain(&behind) {
        println!("WARNING {e}");
    }
    for d in cp["problems"].as_array().into_iter().flatten() {
        println!(
            "WARNING {}:{}: {} {}: {}{}",
            d["file"].as_str().unwrap_or(""),
            d["line"],
            d["code"].as_str().unwrap_or(""),
            d["resource"].as_str().unwrap_or(""),
            d["message"].as_str().unwrap_or(""),
            d["fix"]
                .as_str()
                .map(|f| format!(" (fix: {f})"))
                .unwrap_or_default()
        );
    }
    println!(
        "\n{:<40} {:<10} {:<12} {:<22} {:<22} RESTARTS",
        "WORKLOAD", "STATE", "NODE", "LISTENS", "TUNNEL"
    );
    let mut down = 0;
    for w in v["workloads"].as_array().into_iter().flatten() {
        let running = w["process"]["running"].as_bool().unwrap_or(false);
        let pending = w["process"]["last_exit"]
            .as_str()
            .is_some_and(|e| e.starts_with("not started: pending"));
        if !running {
            down += 1;
        }
        println!(
            "{:<40} {:<10} {:<12} {:<22} {:<22} {}{}",
            w["name"].as_str().unwrap_or(""),
            match (running, pending) {
                (true, _) => "running",
                (false, true) => "Pending",
                (false, false) => "DOWN",
            },
            w["node"].as_str().unwrap_or("-"),
            w["listens"][0].as_str().unwrap_or("-"),
            w["tunnel"].as_str().unwrap_or("-"),
            w["process"]["restarts"],
            w["process"]["last_exit"]
                .as_str()
                .map(|e| format!(
                    "  (last exit: {e}; log: {})",
                    w["log"].as_str().unwrap_or("")
                ))
                .unwrap_or_default()
        );
    }
    if down > 0 {
        bail!("{down} workload(s) are down");
    }
    Ok(ExitCode::SUCCESS)
}

/// `23h59m`, `12m`, `40s`.
fn human(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}
