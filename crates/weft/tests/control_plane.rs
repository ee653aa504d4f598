//! The control plane and proxies as separate processes over the model
//! stream: proxies keep serving when the control plane dies, a proxy
//! restarted meanwhile starts from its cached model, and when the control
//! plane returns they reconnect and resync.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{curl, World};

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn proxies_survive_and_resync_with_the_control_plane() {
    let mut w = World::new(95);
    let cfg = w.dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    let ex = common::repo().join("examples/bookinfo");
    for f in [
        "services.yaml",
        "workloads.yaml",
        "destination-rule-all.yaml",
    ] {
        std::fs::copy(ex.join(f), cfg.join(f)).unwrap();
    }
    let tasks = common::repo().join("examples/bookinfo-tasks");
    std::fs::copy(
        tasks.join("virtual-service-all-v1.yaml"),
        cfg.join("routing.yaml"),
    )
    .unwrap();
    let (xds, admin, run) = (
        w.addr(0, 253, 15010).to_string(),
        w.addr(0, 253, 15014).to_string(),
        w.dir.join("run"),
    );
    let cp_args: Vec<String> = [
        "control-plane",
        "-f",
        &cfg.display().to_string(),
        "--xds",
        &xds,
        "--admin",
        &admin,
        "--address-base",
        &w.ip(10, 1),
        "--run-dir",
        &run.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cp: Vec<&str> = cp_args.iter().map(String::as_str).collect();
    w.spawn("cp", &cp, None);
    wait_for("the control plane", Duration::from_secs(30), || {
        w.log("cp").contains("control plane ready")
    });
    // The reviews versions, where the endpoints are (no destination
    // sidecars here: the client sidecar reaches them directly).
    for (i, name) in [
        (4u8, "reviews-v1-0"),
        (5, "reviews-v2-0"),
        (6, "reviews-v3-0"),
    ] {
        w.httpbin(name, w.addr(10, i, 9080), &[]);
    }
    let outbound = w.addr(1, 1, 15001);
    let token = run
        .join("tokens/default.productpage-v1-0.token")
        .display()
        .to_string();
    let cache = w.dir.join("pp-model.json").display().to_string();
    let proxy_admin = w.addr(1, 1, 15020).to_string();
    let proxy_args: Vec<String> = [
        "proxy",
        "--control-plane",
        &xds,
        "--proxy",
        "default/productpage-v1-0",
        "--token-file",
        &token,
        "--model-cache",
        &cache,
        "--outbound",
        &outbound.to_string(),
        "--admin",
        &proxy_admin,
        "--explain",
        "--access-log",
        &w.dir.join("access.log").display().to_string(),
        // The endpoints are bare httpbins without sidecars to tunnel to.
        "--no-mtls",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pa: Vec<&str> = proxy_args.iter().map(String::as_str).collect();
    w.spawn("proxy", &pa, Some(outbound));
    let p = format!("http://{outbound}");
    let served = |n: usize| -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let r = curl(&["-x", &p, "http://reviews:9080/get"]);
            *out.entry(if r.status == 200 {
                r.header("x-served-by").unwrap_or_default()
            } else {
                format!(
                    "status {}: {}",
                    r.status,
                    r.header("x-weft-reason").unwrap_or_default()
                )
            })
            .or_default() += 1;
        }
        out
    };
    assert_eq!(
        served(10),
        BTreeMap::from([("reviews-v1-0".to_owned(), 10)])
    );

    // The control plane dies: traffic goes on.
    w.proc("cp").signal("KILL");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        served(20),
        BTreeMap::from([("reviews-v1-0".to_owned(), 20)])
    );

    // A proxy restarted while it is down starts from its cached model.
    w.procs.retain(|x| x.name != "proxy");
    w.spawn("proxy", &pa, Some(outbound));
    assert!(
        w.log("proxy").contains("starting from the cached model")
            || w.log("proxy").contains("ready"),
        "{}",
        w.log("proxy")
    );
    assert_eq!(
        served(10),
        BTreeMap::from([("reviews-v1-0".to_owned(), 10)])
    );

    // The configuration changes while the control plane is down; when it
    // returns, the proxy reconnects and gets the change.
    std::fs::copy(
        tasks.join("virtual-service-reviews-v3.yaml"),
        cfg.join("routing.yaml"),
    )
    .unwrap();
    w.procs.retain(|x| x.name != "cp");
    w.spawn("cp", &cp, None);
    wait_for("the proxy to resync", Duration::from_secs(20), || {
        served(3) == BTreeMap::from([("reviews-v3-0".to_owned(), 3)])
    });
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["status", "-o", "json", "--admin", &admin])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let pp = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "default/productpage-v1-0")
        .unwrap()
        .clone();
    assert_eq!(pp["sync"], "SYNCED", "{pp}");
    // With no weft up around, the control plane knows the proxy's admin
    // address and role from the proxy's own Hello.
    assert_eq!(pp["admin"], proxy_admin.as_str(), "{pp}");
    assert_eq!(pp["stream"]["role"], "sidecar", "{pp}");

    // A proxy with a wrong token is refused.
    let bad = w.write("bad.token", "0123456789abcdef0123456789abcdef");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy",
            "--control-plane",
            &xds,
            "--proxy",
            "default/reviews-v1-0",
            "--token-file",
            &bad.display().to_string(),
            "--outbound",
            &w.addr(1, 2, 15001).to_string(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong or unknown bootstrap token"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A valid token is only good for its own proxy: productpage's token
    // cannot fetch reviews' configuration.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy",
            "--control-plane",
            &xds,
            "--proxy",
            "default/reviews-v1-0",
            "--token-file",
            &token,
            "--outbound",
            &w.addr(1, 3, 15001).to_string(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong or unknown bootstrap token"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // No token appears in any log.
    let tok = std::fs::read_to_string(&token).unwrap();
    for log in ["cp", "proxy"] {
        assert!(
            !w.log(log).contains(tok.trim()),
            "the token leaked into the {log} log"
        );
    }
    // Tokens are private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.join("tokens/default.productpage-v1-0.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
