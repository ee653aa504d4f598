//! The data plane end to end, a module per topic: `weft proxy` runs a model compiled by
//! `weft proxy-config` from Istio YAML, httpbin sample apps stand in for
//! the bookinfo services, and curl is the client.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod balancing;
mod connect;
mod l4;
mod lifecycle;
mod policy;
mod resilience;
mod routing;
mod telemetry;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{curl, World};

/// Bookinfo's six workloads as httpbins at their compiled addresses
/// (127.N.0.1 … .6), some with extra flags.
fn bookinfo_apps(w: &mut World, app_flags: &[(&str, &[&str])]) {
    let names = [
        "details-v1",
        "productpage-v1",
        "ratings-v1",
        "reviews-v1",
        "reviews-v2",
        "reviews-v3",
    ];
    for (i, n) in names.iter().enumerate() {
        let flags = app_flags
            .iter()
            .find(|(name, _)| name == n)
            .map_or(&[][..], |(_, f)| f);
        w.httpbin(n, w.addr(0, i as u8 + 1, 9080), flags);
    }
}

/// productpage's model from bookinfo's services and workloads only (not
/// its DestinationRules) plus the file `extra`.
fn productpage_model_without_rules(w: &World, extra: std::path::PathBuf) -> std::path::PathBuf {
    let ex = common::repo().join("examples/bookinfo");
    w.model(
        "productpage-v1",
        &[ex.join("services.yaml"), ex.join("workloads.yaml"), extra],
        "model.json",
    )
}

/// Bookinfo's apps (`bookinfo_apps`), and productpage's sidecar compiled
/// with `extra` YAML, its outbound proxy at 127.N.1.1:15001. Returns the
/// proxy address.
fn bookinfo(w: &mut World, extra: &str, app_flags: &[(&str, &[&str])]) -> String {
    bookinfo_apps(w, app_flags);
    let extra_file = w.write("extra.yaml", extra);
    let model = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), extra_file],
        "model.json",
    );
    let outbound = w.addr(1, 1, 15001);
    let (m, o, log) = (
        model.display().to_string(),
        outbound.to_string(),
        w.dir.join("access.log").display().to_string(),
    );
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--explain",
            "--access-log",
            &log,
        ],
        Some(outbound),
    );
    format!("http://{outbound}")
}

fn access_log(w: &World) -> Vec<serde_json::Value> {
    // The log is written by a background task; give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    std::fs::read_to_string(w.dir.join("access.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn served_by(proxy: &str, url: &str, n: usize, extra: &[&str]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let mut args = vec!["-x", proxy, url];
        args.extend_from_slice(extra);
        let r = curl(&args);
        let who = if r.status == 200 {
            r.header("x-served-by").unwrap_or_default()
        } else {
            format!("status {}", r.status)
        };
        *counts.entry(who).or_default() += 1;
    }
    counts
}

/// `served_by` from `clients` threads at once, `each` requests apiece.
fn served_by_concurrently(
    proxy: &str,
    url: &str,
    clients: usize,
    each: usize,
) -> BTreeMap<String, usize> {
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (p, u) = (proxy.to_owned(), url.to_owned());
            std::thread::spawn(move || served_by(&p, &u, each, &[]))
        })
        .collect();
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for t in threads {
        for (who, n) in t.join().unwrap() {
            *total.entry(who).or_default() += n;
        }
    }
    total
}
