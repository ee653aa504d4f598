//! The data-plane matrix: every system under the same open-loop loads,
//! with each proxy's CPU and memory read from /proc around the run.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::oha::{self, Load, Outcome, Proto};
use crate::procstat::{self, PeakRss};
use crate::setup::{self, System, Weft};

/// One proxy process (or process tree) in one case.
#[derive(Debug, Clone, Serialize)]
pub struct ProcUse {
    pub process: String,
    pub cpu_seconds: f64,
    /// CPU seconds per 1000 requests, which is also vCPU per 1000 requests/s.
    pub cpu_seconds_per_1000_requests: f64,
    pub rss_idle_mib: f64,
    /// Idle proportional set size: shared pages split among their users.
    pub pss_idle_mib: f64,
    pub rss_peak_mib: f64,
    /// Microseconds per request the process's threads were runnable but
    /// waited for a CPU.
    pub cpu_wait_us_per_request: f64,
    /// Times per request the process went to sleep (and so was woken).
    pub sleeps_per_request: f64,
    /// Times per request the process was switched out with work left.
    pub preemptions_per_request: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub system: System,
    pub proto: Proto,
    /// `None`: closed loop, for maximum throughput.
    pub rate: Option<u32>,
    pub connections: u32,
    pub seconds: f64,
    /// 0 for the matrix; the headline load is run again in rounds 1, 2, …
    /// interleaved across systems, so its target checks rest on medians.
    pub round: u32,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub processes: Vec<ProcUse>,
}

pub struct Plan {
    pub protos: Vec<Proto>,
    pub rates: Vec<u32>,
    pub connections: Vec<u32>,
    pub warmup: Duration,
    pub duration: Duration,
    pub throughput_duration: Duration,
    pub with_references: bool,
    pub with_throughput: bool,
    /// How many times the headline load runs for every system (the first
    /// is the matrix's own run). A single p99 on a shared 2-core machine
    /// moves by ±30% between runs of the same binary; the median of
    /// interleaved rounds does not.
    pub rounds: u32,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            protos: vec![Proto::Http1, Proto::Http2],
            rates: vec![1000, 5000],
            connections: vec![16, 64],
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            throughput_duration: Duration::from_secs(5),
            with_references: true,
            with_throughput: true,
            rounds: 4,
        }
    }

    /// Only the load the targets name (HTTP/1.1, 1000 requests/s, 16
    /// connections), at full length: for trying a change in two minutes.
    pub fn headline() -> Plan {
        Plan {
            protos: vec![Proto::Http1],
            rates: vec![1000],
            connections: vec![16],
            with_throughput: false,
            rounds: 3,
            ..Plan::full()
        }
    }

    pub fn smoke() -> Plan {
        Plan {
            protos: vec![Proto::Http1, Proto::Http2],
            rates: vec![1000],
            connections: vec![16],
            warmup: Duration::from_millis(200),
            duration: Duration::from_secs(1),
            throughput_duration: Duration::from_secs(1),
            with_references: true,
            with_throughput: true,
            rounds: 1,
        }
    }
}

/// The processes that make up `system`'s proxies, by name.
fn processes(system: System, nginx: Option<u32>, haproxy: Option<u32>) -> Vec<(String, Vec<u32>)> {
    match system {
        System::Direct => Vec::new(),
        System::WeftGateway | System::WeftGatewayNoTelemetry | System::WeftGatewaySchedOther => {
            vec![("weft gateway".into(), Weft::gateway_pids())]
        }
        System::WeftMesh
        | System::WeftMeshNoTelemetry
        | System::WeftMeshSchedOther
        | System::WeftMeshPlaintext => vec![
            (
                "client sidecar".into(),
                Weft::sidecar_pids(setup::CLIENT_SIDECAR_OUTBOUND),
            ),
            (
                "server sidecar".into(),
                Weft::sidecar_pids(setup::SERVER_SIDECAR_OUTBOUND),
            ),
        ],
        System::Nginx | System::NginxSchedBatch => nginx
            .map(|p| vec![("nginx".into(), procstat::with_children(p))])
            .unwrap_or_default(),
        System::Haproxy => haproxy
            .map(|p| vec![("haproxy".into(), procstat::with_children(p))])
            .unwrap_or_default(),
        // The capture mesh's own (see `capture_processes`).
        System::DirectVeth | System::NginxVeth | System::WeftMeshCapture => Vec::new(),
    }
}

/// The processes of a system of the capture mesh.
fn capture_processes(
    system: System,
    mesh: &crate::capture::CaptureMesh,
) -> Vec<(String, Vec<u32>)> {
    match system {
        System::NginxVeth => vec![("nginx (across veths)".into(), mesh.nginx_pids())],
        System::WeftMeshCapture => mesh.sidecar_pids(),
        _ => Vec::new(),
    }
}

fn measure(
    system: System,
    round: u32,
    load: &Load,
    warmup: Duration,
    procs: &[(String, Vec<u32>)],
    idle: &std::collections::BTreeMap<String, (u64, u64)>,
) -> anyhow::Result<Case> {
    measure_at(
        setup::target(system, load.proto),
        system,
        round,
        load,
        warmup,
        procs,
        idle,
    )
}

fn measure_at(
    target: crate::oha::Target,
    system: System,
    round: u32,
    load: &Load,
    warmup: Duration,
    procs: &[(String, Vec<u32>)],
    idle: &std::collections::BTreeMap<String, (u64, u64)>,
) -> anyhow::Result<Case> {
    if !warmup.is_zero() {
        oha::run(
            &target,
            &Load {
                duration: warmup,
                ..load.clone()
            },
        )?;
    }
    let before: Vec<f64> = procs.iter().map(|(_, p)| procstat::total_cpu(p)).collect();
    let sched_before: Vec<procstat::Sched> = procs
        .iter()
        .map(|(_, p)| procstat::total_sched(p))
        .collect();
    let peaks: Vec<PeakRss> = procs
        .iter()
        .map(|(_, p)| PeakRss::start(p.clone()))
        .collect();
    let outcome = oha::run(&target, load)?;
    let after: Vec<f64> = procs.iter().map(|(_, p)| procstat::total_cpu(p)).collect();
    let sched: Vec<procstat::Sched> = procs
        .iter()
        .zip(sched_before)
        .map(|((_, p), b)| procstat::total_sched(p).since(b))
        .collect();
    let per_request = |n: f64| {
        if outcome.ok > 0 {
            n / outcome.ok as f64
        } else {
            0.0
        }
    };
    let processes = procs
        .iter()
        .zip(peaks)
        .zip(before.iter().zip(&after))
        .zip(&sched)
        .map(|((((name, _), peak), (b, a)), sched)| {
            let cpu = a - b;
            ProcUse {
                process: name.clone(),
                cpu_seconds: cpu,
                cpu_seconds_per_1000_requests: per_request(cpu * 1000.0),
                rss_idle_mib: idle.get(name).map_or(0, |m| m.0) as f64 / 1024.0,
                pss_idle_mib: idle.get(name).map_or(0, |m| m.1) as f64 / 1024.0,
                rss_peak_mib: peak.finish() as f64 / 1024.0,
                cpu_wait_us_per_request: per_request(sched.wait_ns as f64 / 1000.0),
                sleeps_per_request: per_request(sched.sleeps as f64),
                preemptions_per_request: per_request(sched.preemptions as f64),
            }
        })
        .collect();
    let case = Case {
        system,
        proto: load.proto,
        rate: load.rate,
        connections: load.connections,
        seconds: load.duration.as_secs_f64(),
        round,
        outcome,
        processes,
    };
    eprintln!(
        "  {:<40} {:<8} {:>5} rps {:>3} conns: p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3} ms, {} ok, {} failed, {:.0} rps",
        system.label(),
        load.proto.label(),
        load.rate.map(|r| r.to_string()).unwrap_or_else(|| "max".into()),
        load.connections,
        case.outcome.latency.p50,
        case.outcome.latency.p99,
        case.outcome.latency.p99_9,
        case.outcome.latency.max,
        case.outcome.ok,
        case.outcome.failed,
        case.outcome.achieved_rps,
    );
    Ok(case)
}

pub fn run(plan: &Plan, weft: &Path, bench: &Path, work: &Path) -> anyhow::Result<Vec<Case>> {
    eprintln!("weft-bench: starting weft up, nginx and HAProxy");
    let mesh = Weft::start(weft, bench, work)?;
    let nginx = if plan.with_references {
        Some(setup::nginx(work)?)
    } else {
        None
    };
    let haproxy = if plan.with_references {
        Some(setup::haproxy(work)?)
    } else {
        None
    };
    let nginx_pid = nginx.as_ref().map(|p| p.child.id());
    let haproxy_pid = haproxy.as_ref().map(|p| p.child.id());
    // The mesh path under capture, beside the direct call and nginx
    // across the same veths, where this machine allows it.
    let capture = match crate::capture::unavailable() {
        Some(why) => {
            eprintln!("weft-bench: the capture rows are skipped: {why}");
            None
        }
        None => {
            eprintln!("weft-bench: starting weft up --capture");
            Some(crate::capture::CaptureMesh::start(weft, bench, work)?)
        }
    };
    let capture_systems = [
        System::DirectVeth,
        System::NginxVeth,
        System::WeftMeshCapture,
    ];
    let mut systems = vec![System::Direct, System::WeftGateway, System::WeftMesh];
    if plan.with_references {
        systems.extend([System::Nginx, System::Haproxy]);
    }
    // Idle memory: after start and the readiness checks, before any load.
    std::thread::sleep(Duration::from_millis(500));
    let mut idle = std::collections::BTreeMap::new();
    for s in &systems {
        for (name, pids) in processes(*s, nginx_pid, haproxy_pid) {
            if pids.is_empty() {
                anyhow::bail!("found no process for {name}");
            }
            idle.insert(
                name,
                (procstat::total_rss(&pids), procstat::total_pss(&pids)),
            );
        }
    }
    if let Some(mesh) = &capture {
        for s in capture_systems {
            for (name, pids) in capture_processes(s, mesh) {
                if pids.is_empty() {
                    anyhow::bail!("found no process for {name}");
                }
                idle.insert(
                    name,
                    (procstat::total_rss(&pids), procstat::total_pss(&pids)),
                );
            }
        }
    }
    let mut cases = Vec::new();
    for &proto in &plan.protos {
        for &rate in &plan.rates {
            for &connections in &plan.connections {
                eprintln!(
                    "weft-bench: {} at {rate} requests/s over {connections} connections",
                    proto.label()
                );
                for &system in &systems {
                    let load = Load {
                        proto,
                        rate: Some(rate),
                        connections,
                        duration: plan.duration,
                    };
                    let procs = processes(system, nginx_pid, haproxy_pid);
                    cases.push(measure(system, 0, &load, plan.warmup, &procs, &idle)?);
                }
            }
        }
    }
    let headline = Load {
        proto: Proto::Http1,
        rate: Some(1000),
        connections: 16,
        duration: plan.duration,
    };
    let headline_case = |system: System, round: u32| {
        let procs = processes(system, nginx_pid, haproxy_pid);
        measure(system, round, &headline, plan.warmup, &procs, &idle)
    };
    if plan.protos.contains(&headline.proto) {
        for round in 0..plan.rounds {
            if round > 0 {
                eprintln!(
                    "weft-bench: the headline load again, round {} of {}",
                    round + 1,
                    plan.rounds
                );
                for &system in &systems {
                    cases.push(headline_case(system, round)?);
                }
            }
            // weft's proxies run under SCHED_BATCH (crates/weft/src/sched.rs);
            // switching them to the default policy, and nginx to theirs,
            // shows how much of the difference is the policy.
            let weft_pids: Vec<u32> = [System::WeftGateway, System::WeftMesh]
                .into_iter()
                .flat_map(|s| processes(s, None, None))
                .flat_map(|(_, pids)| pids)
                .collect();
            setup::set_batch(&weft_pids, false)?;
            for system in [System::WeftGatewaySchedOther, System::WeftMeshSchedOther] {
                cases.push(headline_case(system, round)?);
            }
            setup::set_batch(&weft_pids, true)?;
            if let Some(mesh) = &capture {
                for system in capture_systems {
                    let procs = capture_processes(system, mesh);
                    cases.push(measure_at(
                        mesh.target(system),
                        system,
                        round,
                        &headline,
                        plan.warmup,
                        &procs,
                        &idle,
                    )?);
                }
            }
            if let Some(pid) = nginx_pid {
                let pids = procstat::with_children(pid);
                setup::set_batch(&pids, true)?;
                cases.push(headline_case(System::NginxSchedBatch, round)?);
                setup::set_batch(&pids, false)?;
            }
        }
    }
    if plan.with_throughput {
        eprintln!("weft-bench: maximum throughput (closed loop, HTTP/1.1, 64 connections)");
        for &system in &systems {
            let load = Load {
                proto: Proto::Http1,
                rate: None,
                connections: 64,
                duration: plan.throughput_duration,
            };
            let procs = processes(system, nginx_pid, haproxy_pid);
            cases.push(measure(system, 0, &load, Duration::ZERO, &procs, &idle)?);
        }
    }
    eprintln!("weft-bench: telemetry off (no metrics, no access log), the headline load");
    mesh.set_telemetry(false)?;
    for (system, proto) in [
        (System::WeftGatewayNoTelemetry, Proto::Http1),
        (System::WeftMeshNoTelemetry, Proto::Http1),
        (System::WeftMeshNoTelemetry, Proto::Http2),
    ] {
        if !plan.protos.contains(&proto) {
            continue;
        }
        let load = Load {
            proto,
            rate: Some(1000),
            connections: 16,
            duration: plan.duration,
        };
        let procs = processes(system, nginx_pid, haproxy_pid);
        cases.push(measure(system, 0, &load, plan.warmup, &procs, &idle)?);
    }
    if plan.protos.contains(&headline.proto) {
        eprintln!("weft-bench: the mesh path without mTLS between the sidecars, the headline load");
        mesh.set_telemetry(true)?;
        mesh.set_mtls(false)?;
        let system = System::WeftMeshPlaintext;
        let procs = processes(system, nginx_pid, haproxy_pid);
        let before = Weft::server_plaintext_requests()?;
        let case = measure(system, 0, &headline, plan.warmup, &procs, &idle)?;
        let plaintext = Weft::server_plaintext_requests()? - before;
        if plaintext < case.outcome.ok as f64 {
            anyhow::bail!(
                "the plaintext run's {} requests reached the server sidecar with only {plaintext} counted as plaintext",
                case.outcome.ok
            );
        }
        cases.push(case);
    }
    drop(capture);
    drop(nginx);
    drop(haproxy);
    drop(mesh);
    Ok(cases)
}
