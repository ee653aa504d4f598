//! State that surprised: resources applied in another mesh's run came
//! back; a secrets directory made after start was never read; traffic
//! before the first metrics sample was missing from the graph.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, curl, mesh::up_with};

/// `weft up -f CONFIG` from `cwd`, with its default run directory.
fn up_in(cwd: &Path, config: &Path, w: &common::World, log: &str) -> common::Proc {
    let f = std::fs::File::create(w.dir.join(log)).unwrap();
    let child = common::weft()
        .current_dir(cwd)
        .args(["up", "-f"])
        .arg(config)
        .args([
            "--ingress",
            &w.addr(0, 254, 8080).to_string(),
            "--admin",
            &w.addr(0, 253, 15014).to_string(),
            "--xds",
            &w.addr(0, 253, 15010).to_string(),
            "--address-base",
            &w.ip(10, 1),
        ])
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap();
    let p = common::Proc {
        child,
        name: log.to_owned(),
    };
    let started = Instant::now();
    while !std::fs::read_to_string(w.dir.join(log))
        .unwrap_or_default()
        .contains("weft: ready")
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            std::fs::read_to_string(w.dir.join(log)).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}

fn copy_bookinfo(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(common::repo().join("examples/bookinfo")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn applied_resources_stay_with_their_mesh_and_are_announced() {
    let w = common::World::new(143);
    let (a, b) = (w.dir.join("mesh-a"), w.dir.join("mesh-b"));
    copy_bookinfo(&a);
    copy_bookinfo(&b);
    let admin = w.addr(0, 253, 15014).to_string();

    let first = up_in(&w.dir, &a, &w, "a1.log");
    let deny = crate::task_file(&w, "authorization-allow-nothing.yaml");
    let o = common::weft()
        .args(["apply", "-f", deny.to_str().unwrap(), "--admin", &admin])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(first);

    // Another mesh from the same working directory starts clean.
    let other = up_in(&w.dir, &b, &w, "b.log");
    let log = std::fs::read_to_string(w.dir.join("b.log")).unwrap();
    assert!(!log.contains("restoring"), "{log}");
    let page = curl(&[&format!("http://{}/productpage", w.addr(0, 254, 8080))]);
    assert_eq!(page.status, 200, "mesh b got mesh a's deny-all");
    drop(other);

    // Mesh a again: its applied policy comes back, and it says so.
    let again = up_in(&w.dir, &a, &w, "a2.log");
    let log = std::fs::read_to_string(w.dir.join("a2.log")).unwrap();
    assert!(
        log.contains("restoring 1 resource(s) applied with `weft apply`")
            && log.contains("AuthorizationPolicy default/allow-nothing")
            && log.contains("weft delete"),
        "{log}"
    );
    let page = curl(&[&format!("http://{}/productpage", w.addr(0, 254, 8080))]);
    assert_eq!(page.status, 403);
    drop(again);
    assert!(w.dir.join(".weft/run").is_dir());
    assert!(w.dir.join(".weft/ca").is_dir(), "the CA stays in .weft/ca");
}

const TLS_GATEWAY: &str = r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [web.test]
    tls: {mode: SIMPLE, credentialName: web-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web-tls}
spec:
  hosts: [web.test]
  gateways: [tls-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
"#;

#[test]
fn a_secret_made_after_start_is_found_and_its_absence_is_reported() {
    let m = up_with(142, TLS_GATEWAY);
    // The graph has the pages sent right after start.
    for _ in 0..3 {
        assert_eq!(m.page(None).0, 200);
    }
    let status = || m.status_text();
    let started = Instant::now();
    loop {
        let text = status();
        if text.contains("IST0101") && text.contains("credentialName not found: \"web-cert\"") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }

    let secret = m.cfg.join("secrets/web-cert");
    std::fs::create_dir_all(&secret).unwrap();
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(secret.join("tls.key"))
        .arg("-out")
        .arg(secret.join("tls.crt"))
        .args([
            "-subj",
            "/CN=web.test",
            "-addext",
            "subjectAltName=DNS:web.test",
            "-days",
            "1",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ip = m.ingress.rsplit_once(':').unwrap().0.to_owned();
    let resolve = format!("web.test:8443:{ip}");
    let ca = secret.join("tls.crt").display().to_string();
    let started = Instant::now();
    loop {
        let r = curl(&[
            "--resolve",
            &resolve,
            "--cacert",
            &ca,
            "https://web.test:8443/productpage",
        ]);
        if r.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the new secret was not used: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let started = Instant::now();
    while status().contains("credentialName not found") {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", status());
        std::thread::sleep(Duration::from_millis(200));
    }

    let started = Instant::now();
    loop {
        let g = curl(&[&format!(
            "http://{}/api/graph?view=workload&window=60",
            m.admin
        )]);
        if g.body.contains("wl:default/productpage-v1") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the first pages are not in the graph: {}",
            g.body
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
