//! A configuration too large for the proxies never fails silently: the
//! control plane says why a proxy cannot be sent its model, `weft status`
//! shows it STALE with the reason, and `weft apply` waits for the proxies a
//! change is for and names those that have not applied it, instead of
//! saying "accepted" while requests keep getting 200.

use std::time::{Duration, Instant};

use crate::common::{self, mesh::up_with_env};

/// ServiceEntries enough to grow every sidecar's model past 50 kB.
fn many_service_entries(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext-{i}}}\nspec:\n  hosts: [ext-{i}.example.test]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.201.0.{}}}]\n---\n",
                1 + i % 250
            )
        })
        .collect()
}

fn apply(m: &common::mesh::Mesh, file: &std::path::Path) -> (bool, String) {
    let o = common::weft()
        .args([
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--admin",
            &m.admin,
            "--wait",
            "3s",
        ])
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn a_model_too_large_for_its_proxy_is_reported_and_apply_says_who_lacks_it() {
    let m = up_with_env(140, "", &[], &[("WEFT_MAX_MODEL_BYTES", "50000")]);
    assert_eq!(m.page(None).0, 200);
    std::fs::write(m.cfg.join("external.yaml"), many_service_entries(120)).unwrap();

    // productpage's sidecar cannot be sent its model: STALE, and why.
    let started = Instant::now();
    let productpage = loop {
        let p = m.proxy("default/productpage-v1-0");
        if p["sync"] == "STALE" && p["reason"].as_str().is_some() {
            break p;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{p}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let reason = productpage["reason"].as_str().unwrap();
    assert!(reason.contains("over the 50000 bytes"), "{reason}");
    let status = m.status_text();
    assert!(
        status.contains("WARNING default/productpage-v1-0 is STALE: model"),
        "{status}"
    );
    let cp_log = std::fs::read_to_string(m.w.dir.join("run/logs/control-plane.log")).unwrap();
    assert!(
        cp_log.contains("over the 50000 bytes this proxy takes"),
        "{cp_log}"
    );

    // A deny-all for productpage cannot reach it: apply says so, by name.
    let deny = crate::task_file(&m.w, "authorization-allow-nothing.yaml");
    let (ok, out) = apply(&m, &deny);
    assert!(!ok, "{out}");
    assert!(
        out.contains("default/productpage-v1-0 has not applied it: STALE (model"),
        "{out}"
    );

    // With the model small again, the same apply waits for the ACKs and
    // the policy holds.
    std::fs::remove_file(m.cfg.join("external.yaml")).unwrap();
    let (ok, out) = apply(&m, &deny);
    assert!(ok, "{out}");
    assert!(out.contains("applied by"), "{out}");
    assert_eq!(m.page(None).0, 403);
    let p = m.proxy("default/productpage-v1-0");
    assert_eq!(p["sync"], "SYNCED", "{p}");
    assert!(p["reason"].is_null(), "{p}");
}
