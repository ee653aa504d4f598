//! A proxy's life: models swapped under load or refused, clusters removed, shutdown, CPU policy.

use super::*;

/// Swapping the model under steady load (four clients, 600 requests)
/// loses no request: in-flight requests finish on the old snapshot.
#[test]
fn config_swap_under_load_loses_no_request() {
    let mut w = World::any();
    let v1 = std::fs::read_to_string(
        common::repo().join("examples/bookinfo-tasks/virtual-service-all-v1.yaml"),
    )
    .unwrap();
    let p = bookinfo(&mut w, &v1, &[]);
    let v3_file = w.write(
        "v3.yaml",
        &std::fs::read_to_string(
            common::repo().join("examples/bookinfo-tasks/virtual-service-reviews-v3.yaml"),
        )
        .unwrap(),
    );
    let model_v3 = w.model(
        "productpage-v1",
        &[common::repo().join("examples/bookinfo"), v3_file],
        "model-v3.json",
    );
    let model_v1 = std::fs::read(w.dir.join("model.json")).unwrap();
    let model_v3 = std::fs::read(model_v3).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                (0..150)
                    .map(|_| {
                        let r = curl(&["-x", &p, "http://reviews:9080/delay/0.01"]);
                        (r.status, r.header("x-served-by").unwrap_or_default())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(150));
        std::fs::write(
            w.dir.join("model.json"),
            if i % 2 == 0 { &model_v3 } else { &model_v1 },
        )
        .unwrap();
        w.proc("proxy").signal("HUP");
    }
    let results: Vec<(u16, String)> = clients
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let failed: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} failed: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
    let versions: std::collections::BTreeSet<_> = results.iter().map(|(_, v)| v.as_str()).collect();
    assert!(
        versions.contains("reviews-v1") && versions.contains("reviews-v3"),
        "the swap never took effect: {versions:?}"
    );
    assert!(
        w.log("proxy").contains("model version 11 applied"),
        "{}",
        w.log("proxy")
    );
}

#[test]
fn a_bad_model_is_refused_and_the_old_one_keeps_serving() {
    let mut w = World::any();
    let p = bookinfo(&mut w, "", &[]);
    std::fs::write(w.dir.join("model.json"), "{\"not\": \"a model\"}").unwrap();
    w.proc("proxy").signal("HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        w.log("proxy")
            .contains("model refused, version 1 keeps serving"),
        "{}",
        w.log("proxy")
    );
    assert_eq!(curl(&["-x", &p, "http://details:9080/get"]).status, 200);
}

/// A push that removes a cluster lets the requests already on it finish;
/// requests after the push no longer find the service (404 NR).
#[test]
fn a_removed_cluster_drains_its_requests_in_flight() {
    let mut w = World::any();
    let p = bookinfo(&mut w, "", &[]);
    let mut model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.dir.join("model.json")).unwrap()).unwrap();
    let is_reviews = |v: &serde_json::Value| v["name"].as_str().unwrap_or("").contains("reviews.");
    model["clusters"]
        .as_array_mut()
        .unwrap()
        .retain(|c| !is_reviews(c));
    for t in model["routeTables"].as_array_mut().unwrap() {
        t["virtualHosts"]
            .as_array_mut()
            .unwrap()
            .retain(|v| !is_reviews(v));
    }
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || curl(&["-x", &p, "http://reviews:9080/delay/1.5"]))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    std::fs::write(w.dir.join("model.json"), model.to_string()).unwrap();
    w.proc("proxy").signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(3);
    while !w.log("proxy").contains("model version 2 applied") {
        assert!(Instant::now() < deadline, "{}", w.log("proxy"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = curl(&["-x", &p, "http://reviews:9080/get"]);
    assert_eq!(after.status, 404, "{}", after.headers);
    assert!(
        after
            .header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("NR"),
        "{}",
        after.headers
    );
    for h in in_flight {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "an in-flight request was cut: {}", r.body);
        assert!(r
            .header("x-served-by")
            .unwrap_or_default()
            .starts_with("reviews-v"));
    }
    assert_eq!(curl(&["-x", &p, "http://details:9080/get"]).status, 200);
}

/// SIGTERM drains: a request in flight finishes with 200, new connections
/// are refused, and the proxy exits.
#[test]
fn shutdown_drains_requests_in_flight() {
    let mut w = World::any();
    let p = bookinfo(&mut w, "", &[]);
    let proxy = p.clone();
    let slow = std::thread::spawn(move || curl(&["-x", &proxy, "http://details:9080/delay/1"]));
    std::thread::sleep(Duration::from_millis(300));
    w.proc("proxy").signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    let refused = curl(&["-x", &p, "http://details:9080/get"]);
    assert_eq!(refused.status, 0, "a new request was accepted during drain");
    let r = slow.join().unwrap();
    assert_eq!(r.status, 200, "the request in flight was dropped");
    let started = Instant::now();
    let idx = w.procs.iter().position(|p| p.name == "proxy").unwrap();
    loop {
        if let Ok(Some(status)) = w.procs[idx].child.try_wait() {
            assert!(status.success(), "proxy exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "proxy did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(w.log("proxy").contains("draining"));
}

/// `--cpu-policy normal` keeps the kernel's default scheduling for every
/// thread of the proxy; without it they run under SCHED_BATCH
/// (crates/weft/src/sched.rs).
#[test]
fn cpu_policy_is_batch_unless_asked_otherwise() {
    let mut w = World::any();
    let f = w.write("none.yaml", "");
    let model = productpage_model_without_rules(&w, f).display().to_string();
    for (i, policy) in [(1, None), (2, Some("normal"))] {
        let outbound = w.addr(1, i, 15001);
        let o = outbound.to_string();
        let mut args = vec!["proxy", "--model", &model, "--outbound", &o];
        if let Some(p) = policy {
            args.extend(["--cpu-policy", p]);
        }
        w.spawn(&format!("proxy-{i}"), &args, Some(outbound));
    }
    let batch = common::proxy_thread_policies(&w.addr(1, 1, 15001).to_string());
    assert!(
        !batch.is_empty() && batch.iter().all(|p| *p == 3),
        "{batch:?}"
    );
    let normal = common::proxy_thread_policies(&w.addr(1, 2, 15001).to_string());
    assert!(
        !normal.is_empty() && normal.iter().all(|p| *p == 0),
        "{normal:?}"
    );
}
