//! The report: Markdown for people, JSON for tools, both with the machine
//! they were measured on. Every latency is also given as added over the
//! direct call at the same load, and compared with nginx's single hop.

use std::fmt::Write;

use serde::Serialize;

use crate::dataplane::{Case, ProcUse};
use crate::oha::{Latency, Proto};
use crate::scale::ScaleResult;
use crate::setup::System;

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub weft_commit: String,
    pub nginx: String,
    pub haproxy: String,
    pub oha: String,
}

fn command_text(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|_| "not found".into())
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: command_text("uname", &["-sr"]),
            weft_commit: command_text("git", &["describe", "--always", "--dirty"]),
            nginx: command_text("nginx", &["-v"]),
            haproxy: command_text("haproxy", &["-v"]),
            oha: command_text(
                &crate::oha::oha_path().display().to_string(),
                &["--version"],
            ),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_unix: u64,
    pub mode: String,
    pub machine: Machine,
    pub cases: Vec<Case>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<Vec<ScaleResult>>,
}

/// The matrix's run of one system at one load (round 0).
fn find(cases: &[Case], s: System, proto: Proto, rate: Option<u32>, conns: u32) -> Option<&Case> {
    cases.iter().find(|c| {
        c.system == s
            && c.proto == proto
            && c.rate == rate
            && c.connections == conns
            && c.round == 0
    })
}

/// Every run of `s` at the headline load (HTTP/1.1, 1000 requests/s, 16
/// connections), one per round.
fn headline_runs(cases: &[Case], s: System) -> Vec<&Case> {
    cases
        .iter()
        .filter(|c| {
            c.system == s && c.proto == Proto::Http1 && c.rate == Some(1000) && c.connections == 16
        })
        .collect()
}

/// `s`'s p99 minus the direct call's in the same round, round by round.
fn added_p99_by_round(cases: &[Case], s: System) -> Vec<f64> {
    added_by_round(cases, s, |l| l.p99)
}

/// A percentile of `s` minus the direct call's in the same round, round
/// by round.
fn added_by_round(cases: &[Case], s: System, pick: impl Fn(&Latency) -> f64) -> Vec<f64> {
    let direct = headline_runs(cases, System::Direct);
    headline_runs(cases, s)
        .iter()
        .filter_map(|c| {
            let d = direct.iter().find(|d| d.round == c.round)?;
            Some(pick(&c.outcome.latency) - pick(&d.outcome.latency))
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Target checks for the headline load (HTTP/1.1, 1000 requests/s, 16
/// connections): (what, measured, target, holds). With several rounds,
/// each number is the median over rounds (latency added over the same
/// round's direct call; the largest RSS of any round).
pub fn targets(r: &Report) -> Vec<(String, String, String, bool)> {
    let mut out = Vec::new();
    let mesh_runs = headline_runs(&r.cases, System::WeftMesh);
    let of_rounds = if mesh_runs.len() > 1 {
        format!(", median of {} rounds", mesh_runs.len())
    } else {
        String::new()
    };
    if let Some(added) = median(added_p99_by_round(&r.cases, System::WeftMesh)) {
        out.push((
            format!("mesh path added p99{of_rounds}"),
            format!("{added:.3} ms"),
            "≤ 0.5 ms".into(),
            added <= 0.5,
        ));
        if let Some(nginx_added) = median(added_p99_by_round(&r.cases, System::Nginx)) {
            out.push((
                format!("mesh path added p99 vs nginx's single hop{of_rounds}"),
                format!(
                    "{added:.3} ms vs {nginx_added:.3} ms ({:.2}×)",
                    ratio(added, nginx_added)
                ),
                "≤ 2× nginx".into(),
                added <= 2.0 * nginx_added.max(0.0),
            ));
        }
    }
    if let Some(first) = mesh_runs.first() {
        for p in &first.processes {
            let same = || {
                mesh_runs
                    .iter()
                    .filter_map(|c| c.processes.iter().find(|q| q.process == p.process))
            };
            let peak = same().map(|q| q.rss_peak_mib).fold(0.0, f64::max);
            let cpu = median(same().map(|q| q.cpu_seconds_per_1000_requests).collect())
                .unwrap_or(p.cpu_seconds_per_1000_requests);
            out.push((
                format!("{} RSS idle", p.process),
                format!("{:.1} MiB (PSS {:.1} MiB)", p.rss_idle_mib, p.pss_idle_mib),
                "≤ 15 MB".into(),
                p.rss_idle_mib * 1.048_576 <= 15.0,
            ));
            out.push((
                format!("{} RSS under load", p.process),
                format!("{peak:.1} MiB"),
                "≤ 25 MB".into(),
                peak * 1.048_576 <= 25.0,
            ));
            out.push((
                format!("{} CPU{of_rounds}", p.process),
                format!("{cpu:.3} vCPU per 1000 requests/s"),
                "≤ 0.10".into(),
                cpu <= 0.10,
            ));
        }
    }
    if let Some(c) = capture_cost(&r.cases) {
        // Issue 21: capture adds no more than the noise beyond the veths.
        out.push((
            format!(
                "capture's added p99 beyond the veth path, median of {} rounds",
                c.rounds
            ),
            format!(
                "{} ms (noise {:.3} ms)",
                signed(c.extra_p99_ms),
                c.p99_noise_ms
            ),
            "≤ the noise".into(),
            c.extra_p99_ms <= c.p99_noise_ms,
        ));
        out.push((
            format!(
                "capture's added sidecar CPU per request, median of {} rounds",
                c.rounds
            ),
            format!("{:+.3} ms (noise {:.3} ms)", c.extra_cpu_ms, c.cpu_noise_ms),
            "≤ the noise".into(),
            c.extra_cpu_ms <= c.cpu_noise_ms,
        ));
    }
    if let Some(scale) = &r.scale {
        for s in scale {
            let whole = s.scope == crate::scale::WHOLE_MESH;
            let mesh_wide = s.change.starts_with("mesh-wide");
            // Issue 19's targets for the whole mesh: a one-service change
            // in a second, a mesh-wide one in two.
            let ack_target = if whole && mesh_wide { 2000.0 } else { 1000.0 };
            out.push((
                format!(
                    "control plane: {} → its {} proxies ACKed, p99 ({})",
                    s.change, s.affected, s.scope
                ),
                format!("{:.0} ms", s.ack_ms.p99),
                format!("≤ {ack_target:.0} ms"),
                s.ack_ms.p99 <= ack_target,
            ));
            let (rss_target, rss_mb) = if whole {
                ("≤ 1.5 GB", 1500.0)
            } else {
                ("≤ 1 GB", 1000.0)
            };
            out.push((
                format!("control plane RSS ({} services, {})", s.services, s.scope),
                format!("{:.0} MiB", s.control_plane_rss_peak_mib),
                rss_target.into(),
                s.control_plane_rss_peak_mib * 1.048_576 <= rss_mb,
            ));
            if whole {
                out.push((
                    format!("control plane CPU for {} ({})", s.change, s.scope),
                    format!("{:.2} s", s.control_plane_cpu_seconds_change),
                    "≤ 1 CPU-second".into(),
                    s.control_plane_cpu_seconds_change <= 1.0,
                ));
                if !mesh_wide {
                    out.push((
                        format!("bytes pushed per proxy for {} ({})", s.change, s.scope),
                        format!("{:.0} bytes", s.change_bytes_per_proxy),
                        "≤ 10 KB".into(),
                        s.change_bytes_per_proxy <= 10_000.0,
                    ));
                }
            }
        }
    }
    out
}

/// Every system the headline load runs in each round, in the report's order.
const HEADLINE_SYSTEMS: [System; 8] = [
    System::Direct,
    System::WeftGateway,
    System::WeftMesh,
    System::Nginx,
    System::Haproxy,
    System::WeftGatewaySchedOther,
    System::WeftMeshSchedOther,
    System::NginxSchedBatch,
];

/// The headline load round by round: how far a single run's p99 moves.
fn rounds_section(r: &Report, o: &mut String) {
    if headline_runs(&r.cases, System::WeftMesh).len() < 2 {
        return;
    }
    let _ = writeln!(
        o,
        "## The headline load, round by round
"
    );
    let _ = writeln!(o, "The headline load runs once more per round for every system, interleaved (direct, gateway, mesh, nginx, HAProxy, then again), so that slow spells of the shared machine fall on all of them. Added p99 is taken against the same round's direct call; the targets above use the medians. weft's proxies run under `SCHED_BATCH` (no preemption on wakeup, crates/weft/src/sched.rs); in every round they are also measured switched to the kernel's default policy (SCHED_OTHER rows), and nginx switched to `SCHED_BATCH`, so the rows show how much of a difference is the scheduling policy.
");
    let _ = writeln!(o, "| system | p99 per round | added p99 per round | median added p99 | ÷ nginx (medians) | CPU s / 1000 requests per round |
|---|---|---|---|---|---|");
    let nginx = median(added_p99_by_round(&r.cases, System::Nginx));
    for s in HEADLINE_SYSTEMS {
        let runs = headline_runs(&r.cases, s);
        if runs.is_empty() {
            continue;
        }
        let p99: Vec<String> = runs.iter().map(|c| ms(c.outcome.latency.p99)).collect();
        let added_rounds = added_p99_by_round(&r.cases, s);
        let added: Vec<String> = added_rounds.iter().map(|a| signed(*a)).collect();
        let med = median(added_rounds);
        let cpu: Vec<String> = runs
            .iter()
            .map(|c| cpu_per_process(c))
            .filter(|c| !c.is_empty())
            .collect();
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} |",
            s.label(),
            p99.join(", "),
            added.join(", "),
            med.map(signed).unwrap_or_else(|| "–".into()),
            match (med, nginx) {
                (Some(m), Some(n)) if s != System::Direct => format!("{:.2}", ratio(m, n)),
                _ => "–".into(),
            },
            if cpu.is_empty() {
                "–".into()
            } else {
                cpu.join("; ")
            }
        );
    }
    o.push('\n');
}

/// What a system's proxies cost a request at the headline load, summed
/// over its proxy processes, median over rounds.
struct PathCost {
    cpu_us: f64,
    cpu_wait_us: f64,
    sleeps: f64,
    preemptions: f64,
    /// Median added p50 and p99 over the same rounds, in ms.
    added_p50: Option<f64>,
    added_p99: Option<f64>,
}

impl PathCost {
    fn of(cases: &[Case], s: System) -> Option<PathCost> {
        let runs = headline_runs(cases, s);
        let sum = |f: fn(&ProcUse) -> f64| {
            median(
                runs.iter()
                    .map(|c| c.processes.iter().map(f).sum::<f64>())
                    .collect(),
            )
        };
        Some(PathCost {
            cpu_us: sum(|p| p.cpu_seconds_per_1000_requests * 1000.0)?,
            cpu_wait_us: sum(|p| p.cpu_wait_us_per_request)?,
            sleeps: sum(|p| p.sleeps_per_request)?,
            preemptions: sum(|p| p.preemptions_per_request)?,
            added_p50: median(added_by_round(cases, s, |l| l.p50)),
            added_p99: median(added_p99_by_round(cases, s)),
        })
    }
}

/// Why two proxy hops cost what they do: the work and the waits behind
/// each system's added latency, side by side.
fn scheduling_section(r: &Report, o: &mut String) {
    // The direct call has no proxy, so nothing sleeps: no row. The last
    // two run once, after the rounds.
    let rows: Vec<(System, PathCost)> = HEADLINE_SYSTEMS
        .into_iter()
        .chain([System::WeftMeshNoTelemetry, System::WeftMeshPlaintext])
        .filter_map(|s| Some((s, PathCost::of(&r.cases, s)?)))
        .filter(|(_, c)| c.sleeps > 0.0)
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Where the added latency goes (the headline load)\n");
    let _ = writeln!(o, "A proxy hop adds its own work and, twice per request (once for the request, once for the response), a wake-up: the kernel must find a core for the proxy, or wake one, before the proxy can read. Per request, summed over the system's proxy processes and all their threads (from `/proc/PID/task/*/schedstat` and `status`), median over the headline load's rounds:\n");
    let _ = writeln!(o, "| system | proxy processes | CPU µs | µs waiting for a CPU | sleeps (each one a wake-up) | preemptions | median added p50 ms | median added p99 ms |\n|---|---|---|---|---|---|---|---|");
    let shown = |v: Option<f64>| v.map(signed).unwrap_or_else(|| "–".into());
    for (s, c) in &rows {
        let procs = headline_runs(&r.cases, *s)
            .first()
            .map_or(0, |c| c.processes.len());
        let _ = writeln!(
            o,
            "| {} | {procs} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} |",
            s.label(),
            c.cpu_us,
            c.cpu_wait_us,
            c.sleeps,
            c.preemptions,
            shown(c.added_p50),
            shown(c.added_p99),
        );
    }
    let get = |s: System| rows.iter().find(|(x, _)| *x == s).map(|(_, c)| c);
    if let (Some(mesh), Some(nginx)) = (get(System::WeftMesh), get(System::Nginx)) {
        let _ = writeln!(
            o,
            "\nThe mesh path puts two proxies in the request's way where nginx puts one: its proxies are woken {:.2} times per request to nginx's {:.2} ({:.2}×), spend {:.0} µs of CPU to nginx's {:.0} ({:.2}×, the mTLS tunnel's encryption and framing included) and wait {:.1} µs for a CPU to nginx's {:.1} ({:.2}×). On two cores shared with the load generator and the backend, each wake-up is a chance to find both cores busy or asleep, and the p99 is made of those chances.",
            mesh.sleeps,
            nginx.sleeps,
            ratio(mesh.sleeps, nginx.sleeps),
            mesh.cpu_us,
            nginx.cpu_us,
            ratio(mesh.cpu_us, nginx.cpu_us),
            mesh.cpu_wait_us,
            nginx.cpu_wait_us,
            ratio(mesh.cpu_wait_us, nginx.cpu_wait_us),
        );
    }
    if let (Some(mesh), Some(plain)) = (get(System::WeftMesh), get(System::WeftMeshPlaintext)) {
        if let (Some(mesh_p99), Some(plain_p99)) = (mesh.added_p99, plain.added_p99) {
            let _ = writeln!(
                o,
                "\nWith mTLS off between the sidecars (a DestinationRule with `tls.mode: DISABLE`; one run, after the rounds), the pair spends {:.0} µs of CPU instead of {:.0} and adds {} ms at p99 instead of {}: the tunnel's encryption and framing are {:.0} µs of the pair's work, and the rest is two proxies doing what nginx does once.",
                plain.cpu_us,
                mesh.cpu_us,
                signed(plain_p99),
                signed(mesh_p99),
                mesh.cpu_us - plain.cpu_us,
            );
        }
    }
    o.push('\n');
}

/// What the mesh path under capture adds beyond the veth path's own
/// cost, against what the loopback mesh path adds, with the spread of the
/// latter over the rounds as the noise.
pub struct CaptureCost {
    pub rounds: usize,
    /// Median over rounds of the capture path's added p99 (against the
    /// direct call across veths) minus the loopback path's (against the
    /// direct call on loopback).
    pub extra_p99_ms: f64,
    /// Max minus min of the loopback path's added p99 over the rounds.
    pub p99_noise_ms: f64,
    pub capture_added_p99_ms: f64,
    pub loopback_added_p99_ms: f64,
    /// The same for the two sidecars' CPU, ms per request.
    pub extra_cpu_ms: f64,
    pub cpu_noise_ms: f64,
    pub capture_cpu_ms: f64,
    pub loopback_cpu_ms: f64,
}

fn capture_cost(cases: &[Case]) -> Option<CaptureCost> {
    let by_round = |s: System| -> std::collections::BTreeMap<u32, &Case> {
        headline_runs(cases, s)
            .into_iter()
            .map(|c| (c.round, c))
            .collect()
    };
    let (mesh, direct, cap, veth) = (
        by_round(System::WeftMesh),
        by_round(System::Direct),
        by_round(System::WeftMeshCapture),
        by_round(System::DirectVeth),
    );
    let cpu = |c: &Case| {
        c.processes
            .iter()
            .map(|p| p.cpu_seconds_per_1000_requests)
            .sum::<f64>()
    };
    let mut rows = Vec::new();
    for (round, c) in &cap {
        let (Some(m), Some(d), Some(v)) = (mesh.get(round), direct.get(round), veth.get(round))
        else {
            continue;
        };
        let loop_added = m.outcome.latency.p99 - d.outcome.latency.p99;
        let cap_added = c.outcome.latency.p99 - v.outcome.latency.p99;
        rows.push((cap_added, loop_added, cpu(c), cpu(m)));
    }
    if rows.is_empty() {
        return None;
    }
    let spread = |v: Vec<f64>| {
        v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min)
    };
    Some(CaptureCost {
        rounds: rows.len(),
        extra_p99_ms: median(rows.iter().map(|r| r.0 - r.1).collect())?,
        p99_noise_ms: spread(rows.iter().map(|r| r.1).collect()),
        capture_added_p99_ms: median(rows.iter().map(|r| r.0).collect())?,
        loopback_added_p99_ms: median(rows.iter().map(|r| r.1).collect())?,
        extra_cpu_ms: median(rows.iter().map(|r| r.2 - r.3).collect())?,
        cpu_noise_ms: spread(rows.iter().map(|r| r.3).collect()),
        capture_cpu_ms: median(rows.iter().map(|r| r.2).collect())?,
        loopback_cpu_ms: median(rows.iter().map(|r| r.3).collect())?,
    })
}

/// The capture rows: each system's added p99 against its own direct call.
fn capture_section(r: &Report, o: &mut String) {
    let Some(c) = capture_cost(&r.cases) else {
        return;
    };
    let _ = writeln!(
        o,
        "## The mesh path under transparent capture (the headline load)
"
    );
    let _ = writeln!(o, "`weft up --capture` runs the client and the server in pods (network namespaces on one node's bridge, Istio's nftables rules). The direct call and nginx are measured across the same veths and bridge: oha runs in a plain namespace joined to the node's bridge as a pod is and reaches a second backend, or nginx in front of it, on server ports the server's rules exclude. The mesh path is oha in the client's pod calling the service's address as an application does, captured on both sides. Each path's added p99 is against its own direct call in the same round; medians over {} rounds.
", c.rounds);
    let _ = writeln!(
        o,
        "| path | added p99 ms | sidecars' CPU ms per request |
|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| weft mesh on loopback (HTTP_PROXY) | {} | {:.3} |",
        signed(c.loopback_added_p99_ms),
        c.loopback_cpu_ms
    );
    let _ = writeln!(
        o,
        "| weft mesh under capture, across veths | {} | {:.3} |",
        signed(c.capture_added_p99_ms),
        c.capture_cpu_ms
    );
    if let Some(n) = median(added_by_veth(&r.cases)) {
        let _ = writeln!(o, "| nginx (1 hop) across veths | {} | – |", signed(n));
    }
    let _ = writeln!(
        o,
        "
Beyond what the veths cost the direct call, capture adds {} ms at p99 (the loopback path's added p99 moves by {:.3} ms between rounds) and {:+.3} ms of the sidecars' CPU per request (which moves by {:.3}).
",
        signed(c.extra_p99_ms),
        c.p99_noise_ms,
        c.extra_cpu_ms,
        c.cpu_noise_ms
    );
}

/// nginx across veths minus the direct call across veths, round by round.
fn added_by_veth(cases: &[Case]) -> Vec<f64> {
    let direct = headline_runs(cases, System::DirectVeth);
    headline_runs(cases, System::NginxVeth)
        .iter()
        .filter_map(|c| {
            let d = direct.iter().find(|d| d.round == c.round)?;
            Some(c.outcome.latency.p99 - d.outcome.latency.p99)
        })
        .collect()
}

/// "client sidecar 0.132, server sidecar 0.115": CPU s per 1000 requests.
fn cpu_per_process(c: &Case) -> String {
    c.processes
        .iter()
        .map(|p| format!("{} {:.3}", p.process, p.cpu_seconds_per_1000_requests))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ratio(a: f64, b: f64) -> f64 {
    if b.abs() < 1e-9 {
        f64::NAN
    } else {
        a / b
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3}")
}

fn signed(v: f64) -> String {
    format!("{v:+.3}")
}

pub fn markdown(r: &Report, command: &str) -> String {
    let mut o = String::new();
    let m = &r.machine;
    let _ = writeln!(o, "# weft benchmark results ({})\n", r.mode);
    let _ = writeln!(o, "Produced by `{command}`; the JSON beside this file has every number. Latencies are in milliseconds, measured by oha at a fixed rate (open loop) with latency correction, so a stall counts against every request queued behind it. Every load is 1 KB responses from one backend on loopback; the load generator, the proxies and the backend share the machine's cores.\n");
    let _ = writeln!(
        o,
        "**Machine**: {} ({} cores), {} GiB, {}. weft {}; {}; {}; {}.\n",
        m.cpu, m.cores, m.memory_gib, m.kernel, m.weft_commit, m.nginx, m.haproxy, m.oha
    );
    let _ = writeln!(o, "weft runs with its defaults under `weft up`: Istio metrics on and a JSON access log written to a file per proxy. nginx and HAProxy run as plain keep-alive reverse proxies with logging off. The telemetry-off rows turn weft's metrics and access log off with a mesh-wide Telemetry resource.\n");

    let t = targets(r);
    if !t.is_empty() {
        let _ = writeln!(
            o,
            "## Targets (HTTP/1.1, 1000 requests/s, 16 connections)\n"
        );
        let _ = writeln!(o, "| what | measured | target | |\n|---|---|---|---|");
        for (what, got, want, ok) in &t {
            let _ = writeln!(
                o,
                "| {what} | {got} | {want} | {} |",
                if *ok { "holds" } else { "**missed**" }
            );
        }
        o.push('\n');
    }

    rounds_section(r, &mut o);
    scheduling_section(r, &mut o);
    capture_section(r, &mut o);

    let _ = writeln!(o, "## Latency at fixed rates\n");
    let _ = writeln!(o, "Added = this system's percentile minus the direct call's at the same load. \"÷ nginx\" divides the added p99 by nginx's added p99.\n");
    let mut loads: Vec<(Proto, u32, u32)> = Vec::new();
    for c in &r.cases {
        if let Some(rate) = c.rate {
            if !loads.contains(&(c.proto, rate, c.connections)) {
                loads.push((c.proto, rate, c.connections));
            }
        }
    }
    for (proto, rate, conns) in &loads {
        let _ = writeln!(
            o,
            "### {} · {rate} requests/s · {conns} connections\n",
            proto.label()
        );
        let _ = writeln!(o, "| system | p50 | p90 | p99 | p99.9 | max | added p50 | added p90 | added p99 | added p99.9 | added max | p99 ÷ direct | added p99 ÷ nginx | ok | failed |");
        let _ = writeln!(
            o,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let direct = find(&r.cases, System::Direct, *proto, Some(*rate), *conns);
        let nginx = find(&r.cases, System::Nginx, *proto, Some(*rate), *conns);
        for c in r.cases.iter().filter(|c| {
            c.proto == *proto && c.rate == Some(*rate) && c.connections == *conns && c.round == 0
        }) {
            let l = &c.outcome.latency;
            let (added, vs_direct, vs_nginx) = match direct {
                Some(d) => {
                    let dl = &d.outcome.latency;
                    let a = [
                        l.p50 - dl.p50,
                        l.p90 - dl.p90,
                        l.p99 - dl.p99,
                        l.p99_9 - dl.p99_9,
                        l.max - dl.max,
                    ];
                    let vn = nginx
                        .map(|n| format!("{:.2}", ratio(a[2], n.outcome.latency.p99 - dl.p99)))
                        .unwrap_or_else(|| "–".into());
                    (a.map(signed), format!("{:.2}", ratio(l.p99, dl.p99)), vn)
                }
                None => (std::array::from_fn(|_| "–".into()), "–".into(), "–".into()),
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                c.system.label(),
                ms(l.p50),
                ms(l.p90),
                ms(l.p99),
                ms(l.p99_9),
                ms(l.max),
                added[0],
                added[1],
                added[2],
                added[3],
                added[4],
                vs_direct,
                vs_nginx,
                c.outcome.ok,
                c.outcome.failed
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## CPU and memory per proxy process\n");
    let _ = writeln!(o, "CPU seconds per 1000 requests (equal to vCPU per 1000 requests/s); RSS idle is before any load, peak is the largest sample (every 100 ms) during the run. PSS counts each shared page as its share among the processes mapping it: all weft proxies map one binary, so PSS is nearer what one more sidecar costs.\n");
    let _ = writeln!(o, "| load | process | CPU s / 1000 requests | µs waiting for a CPU per request | sleeps per request | preemptions per request | RSS idle MiB | PSS idle MiB | RSS peak MiB |\n|---|---|---|---|---|---|---|---|---|");
    for c in r.cases.iter().filter(|c| c.rate.is_some() && c.round == 0) {
        for p in &c.processes {
            let _ = writeln!(
                o,
                "| {} {} rps {} conns | {} ({}) | {:.3} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
                c.proto.label(),
                c.rate.unwrap_or(0),
                c.connections,
                p.process,
                c.system.label(),
                p.cpu_seconds_per_1000_requests,
                p.cpu_wait_us_per_request,
                p.sleeps_per_request,
                p.preemptions_per_request,
                p.rss_idle_mib,
                p.pss_idle_mib,
                p.rss_peak_mib
            );
        }
    }
    o.push('\n');

    let max: Vec<&Case> = r.cases.iter().filter(|c| c.rate.is_none()).collect();
    if !max.is_empty() {
        let _ = writeln!(
            o,
            "## Maximum throughput (closed loop, HTTP/1.1, 64 connections)\n"
        );
        let _ = writeln!(o, "| system | requests/s | ÷ direct | ÷ nginx | p99 ms | CPU s / 1000 requests |\n|---|---|---|---|---|---|");
        let direct = max
            .iter()
            .find(|c| c.system == System::Direct)
            .map(|c| c.outcome.achieved_rps);
        let nginx = max
            .iter()
            .find(|c| c.system == System::Nginx)
            .map(|c| c.outcome.achieved_rps);
        for c in &max {
            let cpu = cpu_per_process(c);
            let _ = writeln!(
                o,
                "| {} | {:.0} | {} | {} | {} | {} |",
                c.system.label(),
                c.outcome.achieved_rps,
                direct
                    .map(|d| format!("{:.2}", ratio(c.outcome.achieved_rps, d)))
                    .unwrap_or_else(|| "–".into()),
                nginx
                    .map(|n| format!("{:.2}", ratio(c.outcome.achieved_rps, n)))
                    .unwrap_or_else(|| "–".into()),
                ms(c.outcome.latency.p99),
                if cpu.is_empty() { "–".into() } else { cpu }
            );
        }
        o.push('\n');
    }

    let pairs = [
        (
            System::WeftGateway,
            System::WeftGatewayNoTelemetry,
            Proto::Http1,
        ),
        (System::WeftMesh, System::WeftMeshNoTelemetry, Proto::Http1),
        (System::WeftMesh, System::WeftMeshNoTelemetry, Proto::Http2),
    ];
    let rows: Vec<_> = pairs
        .iter()
        .filter_map(|(on, off, p)| {
            Some((
                find(&r.cases, *on, *p, Some(1000), 16)?,
                find(&r.cases, *off, *p, Some(1000), 16)?,
            ))
        })
        .collect();
    if !rows.is_empty() {
        let _ = writeln!(
            o,
            "## Telemetry on and off (1000 requests/s, 16 connections)\n"
        );
        let _ = writeln!(o, "| path | protocol | telemetry | p50 | p99 | p99.9 | CPU s / 1000 requests (per process) | RSS peak MiB |\n|---|---|---|---|---|---|---|---|");
        for (on, off) in rows {
            for (c, label) in [(on, "on (metrics + access log)"), (off, "off")] {
                let l = &c.outcome.latency;
                let cpu = cpu_per_process(c);
                let rss: Vec<String> = c
                    .processes
                    .iter()
                    .map(|p| format!("{:.1}", p.rss_peak_mib))
                    .collect();
                let path = if matches!(
                    c.system,
                    System::WeftGateway | System::WeftGatewayNoTelemetry
                ) {
                    "gateway"
                } else {
                    "mesh"
                };
                let _ = writeln!(
                    o,
                    "| {path} | {} | {label} | {} | {} | {} | {} | {} |",
                    c.proto.label(),
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.p99_9),
                    cpu,
                    rss.join(", ")
                );
            }
        }
        o.push('\n');
    }

    if let Some(scale) = &r.scale {
        let _ = writeln!(o, "## Control plane at scale\n");
        let _ = writeln!(o, "Simulated proxies hold real model streams (gRPC, the proxy's own protocol) and ACK every model they are sent. A change is a file written into the configuration directory (a mesh-wide Telemetry, or a VirtualService on one service); the time runs from the write to each affected proxy's ACK, so it includes the control plane noticing the file (it checks the files every 50 ms and waits until they hold still for one more check).\n");
        let _ = writeln!(o, "| scope | change | services | endpoints | proxies | affected | to ACK p50 | p99 | max (all ACKed) | first model bytes per proxy (mean) | pushed bytes per affected proxy (mean) | control-plane CPU s for the change | RSS peak MiB | start s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for s in scale {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} | {:.0} | {:.2} | {:.0} | {:.1} |",
                s.scope, s.change, s.services, s.endpoints, s.proxies, s.affected, s.ack_ms.p50, s.ack_ms.p99, s.ack_ms.max,
                s.initial_bytes_per_proxy, s.change_bytes_per_proxy, s.control_plane_cpu_seconds_change, s.control_plane_rss_peak_mib, s.control_plane_start_seconds
            );
        }
        let _ = writeln!(o, "\nWhere each change's time went in the control plane (its log), what it holds in sections (each once, however many proxies' models have it), and one real `weft proxy`'s RSS on the same mesh:\n");
        let _ = writeln!(o, "| scope | change | list ms | analyze ms | compile ms | virtual hosts built (kept) | clusters built (kept) | serve ms | sections held | MiB held | a sidecar's RSS MiB |\n|---|---|---|---|---|---|---|---|---|---|---|");
        for s in scale {
            let t = &s.times_ms;
            let b = &s.built;
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} | {:.0} | {:.0} | {} ({}) | {} ({}) | {:.0} | {} | {:.1} | {:.1} |",
                s.scope,
                s.change,
                t.list,
                t.analyze,
                t.compile,
                b.virtual_hosts,
                b.virtual_hosts_kept,
                b.clusters,
                b.clusters_kept,
                t.serve,
                s.sections_held,
                s.section_mib_held,
                s.sidecar_rss_mib
            );
        }
        o.push('\n');
    }
    let _ = writeln!(o, "![latency distributions](latency.svg)");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oha::Outcome;

    fn case(system: System, p99: f64, procs: Vec<ProcUse>) -> Case {
        Case {
            system,
            proto: Proto::Http1,
            rate: Some(1000),
            connections: 16,
            seconds: 10.0,
            round: 0,
            outcome: Outcome {
                latency: Latency {
                    p99,
                    ..Latency::default()
                },
                ok: 10_000,
                ..Outcome::default()
            },
            processes: procs,
        }
    }

    fn report(cases: Vec<Case>) -> Report {
        Report {
            generated_unix: 0,
            mode: "test".into(),
            machine: Machine::read(),
            cases,
            scale: None,
        }
    }

    /// A proxy process with the given CPU and peak RSS, idle at 10 MiB.
    fn proc_use(process: &str, cpu: f64, peak: f64) -> ProcUse {
        ProcUse {
            process: process.into(),
            cpu_seconds: 1.0,
            cpu_seconds_per_1000_requests: cpu,
            rss_idle_mib: 10.0,
            pss_idle_mib: 4.0,
            rss_peak_mib: peak,
            cpu_wait_us_per_request: 0.0,
            sleeps_per_request: 0.0,
            preemptions_per_request: 0.0,
        }
    }

    #[test]
    fn targets_use_latency_added_over_direct() {
        let sidecar = proc_use("client sidecar", 0.1, 30.0);
        let r = report(vec![
            case(System::Direct, 0.2, vec![]),
            case(System::WeftMesh, 0.6, vec![sidecar]),
            case(System::Nginx, 0.3, vec![]),
        ]);
        let t = targets(&r);
        let get = |what: &str| t.iter().find(|x| x.0 == what).map(|x| x.3);
        assert_eq!(get("mesh path added p99"), Some(true), "0.4 ms ≤ 0.5 ms");
        assert_eq!(
            get("mesh path added p99 vs nginx's single hop"),
            Some(false),
            "0.4 ms > 2 × 0.1 ms"
        );
        assert_eq!(get("client sidecar RSS idle"), Some(true));
        assert_eq!(get("client sidecar RSS under load"), Some(false));
        assert_eq!(get("client sidecar CPU"), Some(true));
        let md = markdown(&r, "bench/run");
        assert!(md.contains("| weft mesh (sidecar → mTLS → sidecar) |"));
        assert!(md.contains("+0.400"), "added p99 is printed: {md}");
        assert!(
            !md.contains("round by round"),
            "one round has no such table"
        );
    }

    /// With rounds, one slow spell does not decide a target: each round's
    /// added p99 is against that round's direct call, and the median wins.
    #[test]
    fn targets_take_the_median_of_rounds() {
        let sidecar = |cpu: f64, peak: f64| proc_use("client sidecar", cpu, peak);
        let in_round = |mut c: Case, round: u32| {
            c.round = round;
            c
        };
        let mut cases = Vec::new();
        // (direct, mesh, nginx) p99 and the sidecar's CPU, per round; round
        // 1 is a slow spell for everything, round 2 for the mesh alone.
        for (round, (d, m, n, cpu)) in [
            (0.20, 0.60, 0.45, 0.09),
            (0.90, 1.40, 1.20, 0.12),
            (0.20, 2.00, 0.40, 0.30),
        ]
        .into_iter()
        .enumerate()
        {
            let round = round as u32;
            cases.push(in_round(case(System::Direct, d, vec![]), round));
            cases.push(in_round(
                case(
                    System::WeftMesh,
                    m,
                    vec![sidecar(cpu, 14.0 + f64::from(round) * 6.0)],
                ),
                round,
            ));
            cases.push(in_round(case(System::Nginx, n, vec![]), round));
        }
        let r = report(cases);
        let t = targets(&r);
        let get = |what: &str| t.iter().find(|x| x.0 == what).cloned();
        let added = get("mesh path added p99, median of 3 rounds").expect("median target");
        // Added per round: 0.4, 0.5, 1.8 -> 0.5.
        assert_eq!(added.1, "0.500 ms");
        assert!(added.3);
        // nginx added per round: 0.25, 0.3, 0.2 -> 0.25; 0.5 ≤ 2 × 0.25.
        let vs = get("mesh path added p99 vs nginx's single hop, median of 3 rounds")
            .expect("nginx target");
        assert!(vs.3, "{vs:?}");
        let cpu = get("client sidecar CPU, median of 3 rounds").expect("cpu target");
        assert_eq!(cpu.1, "0.120 vCPU per 1000 requests/s");
        assert!(!cpu.3);
        // The largest peak of any round: 26 MiB.
        assert_eq!(
            get("client sidecar RSS under load").map(|x| x.3),
            Some(false)
        );
        let md = markdown(&r, "bench/run");
        assert!(md.contains("round by round"), "{md}");
        assert!(md.contains("+0.400, +0.500, +1.800"), "{md}");
    }

    /// The section on scheduling adds the proxies of a path together, so
    /// two sidecars are set against nginx's one process.
    #[test]
    fn the_scheduling_section_sums_a_paths_proxies() {
        let proc = |name: &str, cpu: f64, wait: f64, sleeps: f64| ProcUse {
            cpu_wait_us_per_request: wait,
            sleeps_per_request: sleeps,
            preemptions_per_request: 0.5,
            ..proc_use(name, cpu, 20.0)
        };
        // A mesh path: the two sidecars, with their CPU per 1000 requests.
        let mesh = |system: System, p99: f64, client: f64, server: f64| {
            let sidecars = vec![
                proc("client sidecar", client, 10.0, 1.8),
                proc("server sidecar", server, 20.0, 1.9),
            ];
            case(system, p99, sidecars)
        };
        let r = report(vec![
            case(System::Direct, 0.2, vec![]),
            mesh(System::WeftMesh, 0.6, 0.070, 0.055),
            case(System::Nginx, 0.4, vec![proc("nginx", 0.050, 6.0, 2.0)]),
            mesh(System::WeftMeshPlaintext, 0.5, 0.060, 0.045),
        ]);
        let md = markdown(&r, "bench/run");
        assert!(
            md.contains(
                "| weft mesh (sidecar → mTLS → sidecar) | 2 | 125.0 | 30.0 | 3.70 | 1.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("woken 3.70 times per request to nginx's 2.00 (1.85×)"),
            "{md}"
        );
        assert!(
            md.contains("wait 30.0 µs for a CPU to nginx's 6.0 (5.00×)"),
            "{md}"
        );
        assert!(
            md.contains("the pair spends 105 µs of CPU instead of 125 and adds +0.300 ms at p99 instead of +0.400: the tunnel's encryption and framing are 20 µs"),
            "{md}"
        );
    }
}
