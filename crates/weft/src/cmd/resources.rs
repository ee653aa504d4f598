//! `weft apply`, `weft get` and `weft delete`: kubectl habits against a
//! running control plane's admin API. Applied resources replace same-named
//! ones from the configuration files; resources from files are changed in
//! the files.

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::http_get::{get, request};
use crate::output::Format;

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Files or directories to apply (a directory's files recursively, as
    /// every weft command reads one); `-` reads stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// kubectl's flag for recursing into directories: weft always does.
    #[arg(short = 'R', long = "recursive")]
    _recursive: bool,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
    /// How long to wait for the proxies the change is for to acknowledge
    /// it (`10s`, `1m`); those that have not are named.
    #[arg(long, default_value = "10s", value_parser = parse_wait)]
    wait: Duration,
}

fn parse_wait(s: &str) -> Result<Duration, String> {
    weft_api::types::common::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(clap::Args)]
pub struct GetArgs {
    /// A kind: VirtualService (vs), DestinationRule (dr), Gateway (gw), Service (svc), …
    kind: String,
    name: Option<String>,
    #[arg(short = 'n', long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Every namespace (what weft lists without -n too), as kubectl's -A.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// A kind and a name (`vs reviews`), or `-f FILE`.
    #[arg(required_unless_present = "files", requires = "name")]
    kind: Option<String>,
    name: Option<String>,
    /// Delete every resource these files (or directories) name, as
    /// `kubectl delete -f` does.
    #[arg(short = 'f', long = "filename", conflicts_with = "kind")]
    files: Vec<PathBuf>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[arg(long, default_value = "127.0.0.1:15014")]
    admin: SocketAddr,
}

fn unreachable(admin: SocketAddr) -> String {
    format!("no control plane answers on {admin}: is `weft up` running? (use --admin if it listens elsewhere)")
}

fn generation(admin: SocketAddr) -> anyhow::Result<(u64, Option<serde_json::Value>)> {
    let v: serde_json::Value = serde_json::from_str(&get(admin, "/api/status")?)?;
    let cp = &v["controlPlane"];
    Ok((
        cp["generation"].as_u64().unwrap_or(0),
        cp["lastRefusedChange"]
            .as_array()
            .map(|a| serde_json::Value::Array(a.clone())),
    ))
}

pub fn apply(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut body = Vec::new();
    for f in &args.files {
        if f.as_os_str() == "-" {
            std::io::stdin().read_to_end(&mut body)?;
            body.extend_from_slice(b"\n---\n");
            continue;
        }
        let files = if f.is_dir() {
            let (files, diags) = weft_api::load::files_under(f);
            if let Some(d) = diags.first() {
                bail!("{d}");
            }
            files
        } else {
            vec![f.clone()]
        };
        for file in files {
            body.extend(
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?,
            );
            body.extend_from_slice(b"\n---\n");
        }
    }
    let (before, _) = generation(args.admin).with_context(|| unreachable(args.admin))?;
    let (status, text) = request(args.admin, "POST", "/api/apply", &body)
        .with_context(|| unreachable(args.admin))?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if status != 200 {
        for d in v["diagnostics"].as_array().into_iter().flatten() {
            eprintln!(
                "{}:{}:{}: {}: {}: {}",
                d["file"].as_str().unwrap_or(""),
                d["line"],
                d["column"],
                d["field"].as_str().unwrap_or(""),
                d["message"].as_str().unwrap_or(""),
                d["fix"].as_str().unwrap_or("")
            );
        }
        bail!("{}", v["error"].as_str().unwrap_or("refused"));
    }
    let applied: Vec<String> = v["applied"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    for name in &applied {
        println!("{name} applied");
    }
    // The control plane admits each resource on its own when it reloads.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let (now, refused) = generation(args.admin)?;
        if now <= before {
            continue;
        }
        let ours: Vec<serde_json::Value> = refused
            .and_then(|r| r.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e["resource"]
                    .as_str()
                    .is_some_and(|r| applied.iter().any(|a| a == r))
            })
            .collect();
        if !ours.is_empty() {
            for e in &ours {
                eprintln!(
                    "{}:{}:{}: {}",
                    e["file"].as_str().unwrap_or(""),
                    e["line"],
                    e["column"],
                    e["message"].as_str().unwrap_or("")
                );
            }
            bail!("the control plane refused the change; the previous version keeps serving");
        }
        println!("configuration {now} accepted");
        return wait_for_acks(args.admin, now, args.wait);
    }
    bail!("the control plane did not pick the change up within 10 s")
}

/// Waits until every proxy whose model changed in configuration
/// `generation` has acknowledged it; names those that have not (with
/// why, when the control plane knows) after `wait`.
fn wait_for_acks(admin: SocketAddr, generation: u64, wait: Duration) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    loop {
        let v: serde_json::Value = serde_json::from_str(&get(admin, "/api/status")?)?;
        let affected: Vec<&serde_json::Value> = v["proxies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["changedIn"].as_u64().unwrap_or(0) >= generation)
            .collect();
        let behind: Vec<&&serde_json::Value> =
            affected.iter().filter(|p| p["sync"] != "SYNCED").collect();
        if behind.is_empty() {
            println!("applied by {} proxies", affected.len());
            return Ok(ExitCode::SUCCESS);
        }
        if started.elapsed() >= wait {
            for p in &behind {
                eprintln!(
                    "{} has not applied it: {}{}",
                    p["name"].as_str().unwrap_or(""),
                    p["sync"].as_str().unwrap_or(""),
                    p["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            bail!(
                "{} of the {} proxies the change is for have not applied it within {} s",
                behind.len(),
                affected.len(),
                wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn get_cmd(args: &GetArgs) -> anyhow::Result<ExitCode> {
    match args.kind.to_ascii_lowercase().as_str() {
        "policyreports" | "policyreport" | "polr" => return get_policy_reports(args, false),
        "clusterpolicyreports" | "clusterpolicyreport" | "cpolr" => {
            return get_policy_reports(args, true)
        }
        _ => {}
    }
    let kind = weft_api::resource::ResourceKind::from_cli_name(&args.kind)
        .with_context(|| format!("unknown kind {}", args.kind))?;
    let mut path = format!("/api/resources?kind={}", kind.name());
    if let Some(n) = &args.name {
        path.push_str(&format!("&name={n}"));
    }
    if let Some(ns) = &args.namespace {
        path.push_str(&format!("&namespace={ns}"));
    }
    let mut items: Vec<serde_json::Value> =
        serde_json::from_str(&get(args.admin, &path).with_context(|| unreachable(args.admin))?)?;
    if kind == weft_api::resource::ResourceKind::Canary {
        // A Canary's status is the controller's, kept apart from its spec.
        let canaries: Vec<serde_json::Value> = serde_json::from_str(
            &get(args.admin, "/api/canaries").with_context(|| unreachable(args.admin))?,
        )?;
        for r in &mut items {
            if let Some(c) = canaries
                .iter()
                .find(|c| c["namespace"] == r["namespace"] && c["name"] == r["name"])
            {
                if !c["status"].is_null() {
                    r["object"]["status"] = c["status"].clone();
                }
            }
        }
        if matches!(args.output, Format::Text | Format::Wide) {
            print_canaries(&items, args.output == Format::Wide);
            return Ok(ExitCode::SUCCESS);
        }
    }
    if items.is_empty() {
        bail!(
            "no {}{} found",
            kind.name(),
            args.name
                .as_ref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        );
    }
    match args.output {
        Format::Text | Format::Wide if args.name.is_none() => {
            println!("{:<16} {:<32} {:<8} FILE", "NAMESPACE", "NAME", "SOURCE");
            for r in &items {
                println!(
                    "{:<16} {:<32} {:<8} {}:{}",
                    r["namespace"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    if r["applied"] == true {
                        "applied"
                    } else {
                        "file"
                    },
                    r["file"].as_str().unwrap_or(""),
                    r["line"]
                );
            }
        }
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &items
                    .iter()
                    .map(|r| r["object"].clone())
                    .collect::<Vec<_>>()
            )?
        ),
        _ => {
            for r in &items {
                print!(
                    "---\n{}",
                    weft_api::yaml::emit::to_yaml_string(&r["object"])?
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `weft get policyreports` (and `clusterpolicyreports`): the results of
/// the Guardrails and of Kyverno's policies as Kyverno's PolicyReports,
/// with kubectl's columns for them.
fn get_policy_reports(args: &GetArgs, cluster: bool) -> anyhow::Result<ExitCode> {
    let wanted_kind = if cluster {
        "ClusterPolicyReport"
    } else {
        "PolicyReport"
    };
    let reports: Vec<serde_json::Value> = serde_json::from_str(
        &get(args.admin, "/api/policyreports").with_context(|| unreachable(args.admin))?,
    )?;
    let reports: Vec<&serde_json::Value> = reports
        .iter()
        .filter(|r| {
            r["kind"] == wanted_kind
                && (cluster
                    || args
                        .namespace
                        .as_deref()
                        .is_none_or(|ns| r["metadata"]["namespace"] == ns))
                && args
                    .name
                    .as_deref()
                    .is_none_or(|n| r["metadata"]["name"] == n)
        })
        .collect();
    match args.output {
        Format::Text | Format::Wide => {
            let namespace_column = |text: &str| {
                if cluster {
                    String::new()
                } else {
                    format!("{text:<16} ")
                }
            };
            println!(
                "{}{:<24} {:<6} {:<6} {:<6} {:<6} SKIP",
                namespace_column("NAMESPACE"),
                "NAME",
                "PASS",
                "FAIL",
                "WARN",
                "ERROR"
            );
            for r in &reports {
                let n = |k: &str| r["summary"][k].as_u64().unwrap_or(0);
                println!(
                    "{}{:<24} {:<6} {:<6} {:<6} {:<6} {}",
                    namespace_column(r["metadata"]["namespace"].as_str().unwrap_or("")),
                    r["metadata"]["name"].as_str().unwrap_or(""),
                    n("pass"),
                    n("fail"),
                    n("warn"),
                    n("error"),
                    n("skip")
                );
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Format::Yaml => {
            for r in &reports {
                print!("---\n{}", weft_api::yaml::emit::to_yaml_string(r)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Canaries as `kubectl get canaries` prints them (Flagger's printer
/// columns; `-o wide` adds those of priority 1).
fn print_canaries(items: &[serde_json::Value], wide: bool) {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "<none>".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut rows = vec![{
        let mut h = vec!["NAMESPACE", "NAME", "STATUS", "WEIGHT"];
        if wide {
            h.extend([
                "SUSPENDED",
                "FAILEDCHECKS",
                "INTERVAL",
                "MIRROR",
                "STEPWEIGHT",
                "STEPWEIGHTS",
                "MAXWEIGHT",
            ]);
        }
        h.push("LASTTRANSITIONTIME");
        h.into_iter().map(str::to_owned).collect::<Vec<_>>()
    }];
    for r in items {
        let o = &r["object"];
        let (spec, status, analysis) = (&o["spec"], &o["status"], &o["spec"]["analysis"]);
        let mut row = vec![
            text(&r["namespace"]),
            text(&r["name"]),
            text(&status["phase"]),
            text(&status["canaryWeight"]),
        ];
        if wide {
            row.extend([
                text(&spec["suspend"]),
                text(&status["failedChecks"]),
                text(&analysis["interval"]),
                text(&analysis["mirror"]),
                text(&analysis["stepWeight"]),
                text(&analysis["stepWeights"]),
                text(&analysis["maxWeight"]),
            ]);
        }
        row.push(text(&status["lastTransitionTime"]));
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

pub fn delete(args: &DeleteArgs) -> anyhow::Result<ExitCode> {
    let targets: Vec<(weft_api::resource::ResourceKind, String, String)> =
        match (&args.kind, &args.name) {
            (Some(kind), Some(name)) => {
                let kind = weft_api::resource::ResourceKind::from_cli_name(kind)
                    .with_context(|| format!("unknown kind {kind}"))?;
                vec![(kind, args.namespace.clone(), name.clone())]
            }
            _ => {
                let loaded = weft_api::load::load_paths(&args.files);
                for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
                    eprintln!("{d}");
                }
                if loaded.resources.is_empty() {
                    bail!("the files name no resource weft can delete");
                }
                loaded
                    .resources
                    .iter()
                    .map(|r| (r.kind(), r.namespace().to_owned(), r.name().to_owned()))
                    .collect()
            }
        };
    let (before, _) = generation(args.admin).with_context(|| unreachable(args.admin))?;
    // As kubectl: delete what can be, report what cannot, and fail if any
    // could not.
    let mut failed = 0;
    for (kind, namespace, name) in &targets {
        let (status, text) = request(
            args.admin,
            "DELETE",
            &format!("/api/resources/{}/{namespace}/{name}", kind.name()),
            b"",
        )?;
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if status == 200 {
            println!("{} deleted", v["deleted"].as_str().unwrap_or(""));
        } else {
            failed += 1;
            eprintln!(
                "weft: {kind} {namespace}/{name}: {}",
                v["error"].as_str().unwrap_or("refused")
            );
        }
    }
    if failed == targets.len() {
        bail!("nothing was deleted");
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        if generation(args.admin)?.0 > before {
            return Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    bail!("the control plane did not pick the change up within 10 s")
}
