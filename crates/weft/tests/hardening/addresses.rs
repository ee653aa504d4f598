//! Adding a workload moves nobody: replicas keep their addresses (given
//! once, remembered in the run directory), no other process restarts, no
//! page fails meanwhile, and a replica whose application address another
//! process holds is not started rather than served by that process.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::curl;
use crate::common::mesh::{up, Mesh};

fn workload(name: &str) -> String {
    format!(
        "apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {{name: {name}-v1, labels: {{app: {name}}}}}\nspec: {{command: weft, args: [sample-app, httpbin, --name, {name}-v1], ports: [{{name: http, port: 8000}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{selector: {{app: {name}}}, ports: [{{name: http, port: 8000}}]}}\n"
    )
}

/// Every proxy and workload process by name: (pid, address).
fn processes(m: &Mesh) -> BTreeMap<String, (u64, String)> {
    let s = m.status();
    let mut out = BTreeMap::new();
    for p in s["proxies"].as_array().into_iter().flatten() {
        out.insert(
            format!("proxy {}", p["name"].as_str().unwrap_or("")),
            (
                p["process"]["pid"].as_u64().unwrap_or(0),
                p["outbound"].as_str().unwrap_or("").to_owned(),
            ),
        );
    }
    for w in s["workloads"].as_array().into_iter().flatten() {
        out.insert(
            format!("workload {}", w["name"].as_str().unwrap_or("")),
            (
                w["process"]["pid"].as_u64().unwrap_or(0),
                w["listens"][0].as_str().unwrap_or("").to_owned(),
            ),
        );
    }
    out
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn adding_a_workload_moves_and_restarts_nothing_else() {
    let m = up(141);
    let before = processes(&m);
    assert!(before.len() >= 13, "{before:?}");

    // Pages throughout the change, from another thread.
    let ingress = m.ingress.clone();
    let pages = std::thread::spawn(move || {
        let mut failed = Vec::new();
        for _ in 0..120 {
            let r = curl(&[&format!("http://{ingress}/productpage")]);
            if r.status != 200 {
                failed.push(r.status);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        failed
    });
    // `aaa` sorts before every bookinfo workload.
    std::fs::write(m.cfg.join("aaa.yaml"), workload("aaa")).unwrap();
    let added = wait_for("aaa did not start", || {
        let now = processes(&m);
        let up = now
            .get("workload default/aaa-v1-0")
            .is_some_and(|(pid, _)| *pid > 0)
            && now.contains_key("proxy default/aaa-v1-0");
        up.then_some(now)
    });
    let failed = pages.join().unwrap();
    assert!(
        failed.is_empty(),
        "pages failed while a workload was added: {failed:?}"
    );
    for (name, was) in &before {
        assert_eq!(added.get(name), Some(was), "{name} moved or restarted");
    }
    let aaa = &added["proxy default/aaa-v1-0"].1;
    assert!(
        before.values().all(|(_, addr)| addr != aaa),
        "aaa took an address in use: {aaa}"
    );
    let served = curl(&[
        "-x",
        &m.outbound_of("default/productpage-v1-0"),
        "http://aaa:8000/get",
    ]);
    assert_eq!(served.header("x-served-by").as_deref(), Some("aaa-v1"));

    // Removed again: only its processes go.
    std::fs::remove_file(m.cfg.join("aaa.yaml")).unwrap();
    let after = wait_for("aaa did not stop", || {
        let now = processes(&m);
        (!now.contains_key("workload default/aaa-v1-0")).then_some(now)
    });
    assert_eq!(after, before);

    // The next replica's application address is held by something else:
    // that replica is not started, and nothing is served from there.
    let book: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(m.w.dir.join("run/addresses.json")).unwrap())
            .unwrap();
    let taken: Vec<String> = book["replicas"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let next = (1..=254)
        .map(|d| m.w.ip(10, d))
        .find(|ip| !taken.contains(ip))
        .unwrap();
    let twin = next.replacen(".10.", ".11.", 1);
    let rogue = std::net::TcpListener::bind(format!("{twin}:8000")).unwrap();
    rogue.set_nonblocking(true).unwrap();
    let answering = rogue.try_clone().unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..400 {
            if let Ok((mut c, _)) = answering.accept() {
                let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nROGUE");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    });
    std::fs::write(m.cfg.join("bbb.yaml"), workload("bbb")).unwrap();
    let reason = wait_for("bbb was not reported", || {
        let s = m.status();
        s["workloads"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|w| w["name"] == "default/bbb-v1-0")
            .and_then(|w| w["process"]["last_exit"].as_str().map(str::to_owned))
    });
    assert!(reason.contains(&format!("{twin}:8000")), "{reason}");
    let bbb = processes(&m).get("proxy default/bbb-v1-0").cloned();
    assert!(bbb.as_ref().is_none_or(|(pid, _)| *pid == 0), "{bbb:?}");
    let r = curl(&[
        "-x",
        &m.outbound_of("default/productpage-v1-0"),
        "http://bbb:8000/get",
    ]);
    assert!(
        !r.body.contains("ROGUE"),
        "served by the process holding the address"
    );
    assert_eq!(r.status, 503, "{}", r.body);
    drop(rogue);
}
