//! The load generator: oha at a fixed rate (open loop) with latency
//! correction, so a stalled response delays the measurement of every
//! request scheduled behind it, as it would a real client's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Http1,
    Http2,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Http1 => "HTTP/1.1",
            Proto::Http2 => "HTTP/2",
        }
    }
}

/// Where a load goes: the URL, and the address oha connects to for it
/// (a sidecar's outbound port stands in for transparent capture).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub connect_to: Option<String>,
    /// Run oha in this network namespace (a pod's, under capture).
    pub netns: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Load {
    pub proto: Proto,
    /// Requests per second; `None` runs closed-loop as fast as it goes.
    pub rate: Option<u32>,
    pub connections: u32,
    pub duration: Duration,
}

/// Latencies in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub latency: Latency,
    /// Every percentile oha reports (p10 … p99.99), for the plot.
    pub percentiles: Vec<(f64, f64)>,
    pub ok: u64,
    pub failed: u64,
    pub achieved_rps: f64,
}

pub fn oha_path() -> PathBuf {
    if let Ok(p) = std::env::var("OHA") {
        return PathBuf::from(p);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_else(|_| PathBuf::from("/root/.cargo"));
    let installed = home.join("bin/oha");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("oha")
    }
}

pub fn run(target: &Target, load: &Load) -> anyhow::Result<Outcome> {
    let mut cmd = match &target.netns {
        None => Command::new(oha_path()),
        Some(netns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", netns]).arg(oha_path());
            c
        }
    };
    cmd.args(["--no-tui", "--output-format", "json"])
        // One thread for the client leaves the other core to what is
        // measured; oha on one thread does far more than 5000 requests/s.
        .args(["--worker-threads", "1"])
        .arg("-c")
        .arg(load.connections.to_string())
        .arg("-z")
        .arg(format!("{}ms", load.duration.as_millis()))
        .arg("-t")
        .arg("5s");
    if let Some(rate) = load.rate {
        cmd.arg("-q")
            .arg(rate.to_string())
            .arg("--latency-correction");
    }
    if load.proto == Proto::Http2 {
        cmd.arg("--http2");
    }
    if let Some(c) = &target.connect_to {
        cmd.arg("--connect-to").arg(c);
    }
    cmd.arg(&target.url);
    if std::env::var_os("WEFT_BENCH_DEBUG").is_some() {
        eprintln!("weft-bench: {cmd:?}");
    }
    let out = cmd.output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run oha ({}): {e}; install it with `cargo install oha`",
            oha_path().display()
        )
    })?;
    if !out.status.success() {
        anyhow::bail!(
            "oha failed on {}: {}",
            target.url,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse(&out.stdout)
}

fn secs_to_ms(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN) * 1000.0
}

pub fn parse(json: &[u8]) -> anyhow::Result<Outcome> {
    let v: serde_json::Value = serde_json::from_slice(json)?;
    let p = &v["latencyPercentiles"];
    let codes = v["statusCodeDistribution"].as_object();
    let ok = codes
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let other_status: u64 = codes
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !k.starts_with('2'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let errors: u64 = v["errorDistribution"]
        .as_object()
        .map(|m| {
            m.iter()
                // A run stopped at its deadline aborts what is in flight;
                // those were never answered late, they were cut off.
                .filter(|(k, _)| !k.contains("deadline"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let percentiles = [
        "p10", "p25", "p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99",
    ]
    .iter()
    .filter_map(|k| {
        let q: f64 = k.trim_start_matches('p').parse().ok()?;
        Some((q, secs_to_ms(&p[*k])))
    })
    .collect();
    let secs = v["summary"]["total"].as_f64().unwrap_or(0.0);
    Ok(Outcome {
        latency: Latency {
            p50: secs_to_ms(&p["p50"]),
            p90: secs_to_ms(&p["p90"]),
            p99: secs_to_ms(&p["p99"]),
            p99_9: secs_to_ms(&p["p99.9"]),
            max: secs_to_ms(&v["summary"]["slowest"]),
        },
        percentiles,
        ok,
        failed: other_status + errors,
        achieved_rps: if secs > 0.0 { ok as f64 / secs } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_oha_json_and_counts_failures() {
        let json = br#"{"summary":{"total":2.0,"slowest":0.004},
            "latencyPercentiles":{"p10":0.0001,"p25":0.0002,"p50":0.0003,"p75":0.0004,
              "p90":0.0005,"p95":0.0006,"p99":0.001,"p99.9":0.002,"p99.99":0.003},
            "statusCodeDistribution":{"200":1998,"503":1},
            "errorDistribution":{"connection reset":1,"aborted due to deadline":5}}"#;
        let o = parse(json).unwrap();
        assert_eq!(o.ok, 1998);
        assert_eq!(
            o.failed, 2,
            "503 and the reset count; deadline aborts do not"
        );
        assert!((o.latency.p99 - 1.0).abs() < 1e-9);
        assert!((o.latency.max - 4.0).abs() < 1e-9);
        assert!((o.achieved_rps - 999.0).abs() < 1e-9);
        assert_eq!(o.percentiles.len(), 9);
    }
}
