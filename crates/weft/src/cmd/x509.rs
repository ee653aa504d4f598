//! `weft x509 WORKLOAD`: the certificate a running proxy holds (SPIFFE ID,
//! serial, validity, chain) and the roots it trusts, from the proxy's own
//! admin port, like `istioctl proxy-config secret`.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::output::Format;

#[derive(clap::Args)]
pub struct Args {
    /// The workload or proxy (`reviews-v1`, `default/reviews-v1-0`).
    workload: String,
    /// The control plane's admin API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let admin = super::proxy_admin(args.admin, &args.workload)?;
    let text = crate::http_get::get(admin.clone(), "/certs")
        .with_context(|| format!("the proxy does not answer on {admin}"))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the proxy has no certificate: {}", text.trim()))?;
    match args.output {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Yaml => print!("{}", weft_api::yaml::emit::to_yaml_string(&v)?),
        Format::Text | Format::Wide => print_text(&v),
    }
    Ok(if v["state"] == "ACTIVE" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_text(v: &serde_json::Value) {
    let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_owned();
    println!("identity   {}", s(&v["identity"]));
    println!("state      {}", s(&v["state"]));
    if v["state"] == "WAITING" {
        println!("(the proxy has not received a certificate from the CA yet; see its log)");
    }
    println!(
        "\n{:<10} {:<8} {:<34} {:<22} {:<22} SUBJECT / SAN",
        "RESOURCE", "TYPE", "SERIAL", "NOT BEFORE", "NOT AFTER"
    );
    let row = |name: &str, kind: &str, c: &serde_json::Value| {
        let who = c["uris"]
            .as_array()
            .and_then(|u| u.first())
            .and_then(|u| u.as_str())
            .map_or_else(|| s(&c["subject"]), str::to_owned);
        println!(
            "{:<10} {:<8} {:<34} {:<22} {:<22} {}",
            name,
            kind,
            s(&c["serial"]),
            s(&c["notBefore"]),
            s(&c["notAfter"]),
            who
        );
    };
    for (i, c) in v["chain"].as_array().into_iter().flatten().enumerate() {
        row("default", if i == 0 { "leaf" } else { "chain" }, c);
    }
    for c in v["trustBundle"].as_array().into_iter().flatten() {
        row("ROOTCA", "root", c);
    }
    if let Some(r) = v["refreshAt"].as_str() {
        println!("\nrenews at  {r}");
    }
}
