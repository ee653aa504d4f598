//! Canary releases through the binary: Flagger's Canary, unchanged, on a
//! `weft.dev/v1 Workload`, driven by the control plane's controller and
//! judged by the mesh's own telemetry. The controller's clock runs ten
//! times faster (`WEFT_CANARY_TIME_SCALE`, a test-only setting): the
//! 10 s interval is a second.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common;

fn config(version: &str, fail_fraction: &str) -> String {
    format!(
        r#"apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: client
  labels: {{app: client}}
spec:
  command: sleep
  args: ["100000"]
---
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: podinfo
  labels: {{app: podinfo}}
spec:
  command: weft
  args: [sample-app, httpbin, --fail-fraction, "{fail_fraction}"]
  env: [{{name: PODINFO_VERSION, value: "{version}"}}]
  ports: [{{name: http, port: 8000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: podinfo}}
spec:
  selector: {{app: podinfo}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
  # weft's comparison with the primary, beside the absolute limits.
  annotations: {{weft.dev/canary-compare-to-primary: "request-success-rate >= primary - 5"}}
spec:
  targetRef: {{apiVersion: weft.dev/v1, kind: Workload, name: podinfo}}
  service:
    port: 8000
    retries: {{attempts: 2, retryOn: "connect-failure,refused-stream"}}
  analysis:
    interval: 10s
    threshold: 2
    maxWeight: 30
    stepWeight: 10
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      interval: 30s
    - name: request-duration
      thresholdRange: {{max: 500}}
      interval: 30s
"#
    )
}

/// `weft up` on `yaml` (written as `config/podinfo.yaml`, where the test
/// rewrites it) with the controller's clock ten times faster; `more`
/// arguments for `weft up`.
fn start(w: common::World, yaml: &str, more: &[&str]) -> (common::mesh::Mesh, std::path::PathBuf) {
    let cfg = w.dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("podinfo.yaml"), yaml).unwrap();
    let (xds, base) = (w.addr(0, 253, 15010).to_string(), w.ip(10, 1));
    let mut args = vec!["--xds", xds.as_str(), "--address-base", base.as_str()];
    args.extend_from_slice(more);
    let m = common::mesh::start(w, &args, &[("WEFT_CANARY_TIME_SCALE", "10")]);
    (m, cfg)
}

/// One request through the client's sidecar: its status and who served.
fn call(outbound: &str) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(outbound) else {
        return (0, String::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.write_all(
        b"GET http://podinfo:8000/get HTTP/1.1\r\nHost: podinfo:8000\r\nConnection: close\r\n\r\n",
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let served = text
        .lines()
        .find_map(|l| l.strip_prefix("x-served-by: "))
        .unwrap_or("")
        .trim()
        .to_owned();
    (status, served)
}

/// The canary as `/api/canaries` shows it.
fn canary(admin: &str) -> serde_json::Value {
    let r = common::curl(&[&format!("http://{admin}/api/canaries")]);
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap_or_default()[0].clone()
}

fn until_phase(m: &common::mesh::Mesh, phase: &str, within: Duration) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let c = canary(&m.admin);
        if c["status"]["phase"] == phase {
            return c;
        }
        assert!(
            started.elapsed() < within,
            "{phase} not reached in {within:?}: {c:#}\n{}",
            m.w.log("up")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn messages(c: &serde_json::Value) -> Vec<String> {
    c["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

/// Requests sent without pause until stopped (at most 5 minutes' worth),
/// each outcome kept.
struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(u16, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(outbound: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !s.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                let r = call(&outbound);
                v.lock().unwrap().push(r);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Load {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn take(&self) -> Vec<(u16, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Flagger's progressive canary, promoted; then a revision that fails a
/// third of its requests, rolled back; the primary serving throughout.
#[test]
fn a_canary_is_promoted_by_its_metrics_and_a_failing_one_rolled_back() {
    let (m, cfg) = start(common::World::any(), &config("1", "0"), &[]);
    let c = until_phase(&m, "Initialized", Duration::from_secs(20));
    assert!(
        messages(&c).contains(&"Initialization done! podinfo.default".to_owned()),
        "{c:#}"
    );
    assert_eq!(c["status"]["conditions"][0]["reason"], "Initialized");
    // The user's Service is taken over while the Canary exists.
    let status = m.status_text();
    assert!(
        status.contains("podinfo.yaml:")
            && status.contains(
                "Service default/podinfo is taken over by Canary default/podinfo while it exists"
            ),
        "{status}"
    );
    // The objects Flagger makes, in the control plane's store.
    let resources = common::curl(&[&format!("http://{}/api/resources", m.admin)]).body;
    for name in [
        "\"Workload\",\"namespace\":\"default\",\"name\":\"podinfo-primary\"",
        "\"Service\",\"namespace\":\"default\",\"name\":\"podinfo-canary\"",
        "\"DestinationRule\",\"namespace\":\"default\",\"name\":\"podinfo-primary\"",
        "\"VirtualService\",\"namespace\":\"default\",\"name\":\"podinfo\"",
    ] {
        assert!(resources.contains(name), "{name} missing: {resources}");
    }
    let outbound = m
        .outbound_of("default/client-0")
        .trim_start_matches("http://")
        .to_owned();
    let started = Instant::now();
    while call(&outbound) != (200, "podinfo-primary-0".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the primary does not serve"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let load = Load::start(outbound.clone());

    // A new revision: shifted 10, 20, 30, promoted, finalised.
    std::fs::write(cfg.join("podinfo.yaml"), config("2", "0")).unwrap();
    until_phase(&m, "Progressing", Duration::from_secs(15));
    let c = until_phase(&m, "Succeeded", Duration::from_secs(60));
    let said = messages(&c);
    let from = said
        .iter()
        .position(|m| m == "New revision detected! Scaling up podinfo.default")
        .unwrap_or_else(|| panic!("{said:#?}"));
    let run: Vec<&str> = said[from..]
        .iter()
        .map(String::as_str)
        // Waiting for replicas, or for traffic to judge, is no step.
        .filter(|m| !m.contains("not ready") && !m.contains("(held: "))
        .collect();
    assert_eq!(
        run,
        [
            "New revision detected! Scaling up podinfo.default",
            "Starting canary analysis for podinfo.default",
            "Advance podinfo.default canary weight 10",
            "Advance podinfo.default canary weight 20",
            "Advance podinfo.default canary weight 30",
            "Copying podinfo.default template spec to podinfo-primary.default",
            "Routing all traffic to primary",
            "Promotion completed! Scaling down podinfo.default",
        ],
        "{said:#?}"
    );
    // The success rate was held to the primary's too, whose own traffic
    // the mesh measured.
    let compared: Vec<serde_json::Value> = c["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["metrics"].as_array().cloned().unwrap_or_default())
        .filter(|j| j["compared"] == ">= primary - 5")
        .collect();
    assert!(
        compared
            .iter()
            .any(|j| j["primary"].as_f64().is_some_and(|p| p > 99.0) && j["verdict"] == "passed"),
        "{compared:#?}"
    );
    // Flagger's metrics on the control plane's /metrics.
    let metrics = || common::curl(&[&format!("http://{}/metrics", m.admin)]).body;
    let said = metrics();
    for line in [
        "flagger_canary_total{namespace=\"default\"} 1",
        "flagger_canary_status{name=\"podinfo\",namespace=\"default\"} 1",
        "flagger_canary_weight{namespace=\"default\",workload=\"podinfo-primary\"} 100",
        "flagger_canary_weight{namespace=\"default\",workload=\"podinfo\"} 0",
        "flagger_canary_successes_total{analysis_status=\"completed\",deployment_strategy=\"canary\",name=\"podinfo\",namespace=\"default\"} 1",
        "flagger_canary_metric_analysis{metric=\"request-success-rate\",name=\"podinfo\",namespace=\"default\"} 100",
    ] {
        assert!(said.lines().any(|l| l == line), "{line} missing:\n{said}");
    }
    assert!(
        said.contains(
            "flagger_canary_duration_seconds_count{name=\"podinfo\",namespace=\"default\"}"
        ),
        "{said}"
    );

    // kubectl's view of it.
    let get = |args: &[&str]| {
        let o = common::weft()
            .arg("get")
            .args(args)
            .args(["--admin", &m.admin])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let table = get(&["canaries"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAMESPACE",
            "NAME",
            "STATUS",
            "WEIGHT",
            "LASTTRANSITIONTIME"
        ],
        "{table}"
    );
    assert_eq!(
        lines[1][..4],
        ["default", "podinfo", "Succeeded", "0"],
        "{table}"
    );
    let wide = get(&["canaries", "-o", "wide"]);
    assert!(
        wide.lines()
            .next()
            .unwrap_or("")
            .contains("FAILEDCHECKS   INTERVAL"),
        "{wide}"
    );
    assert!(wide.contains(" 10s "), "{wide}");
    let yaml = get(&["canary", "podinfo", "-o", "yaml"]);
    assert!(
        yaml.contains("phase: Succeeded") && yaml.contains("lastPromotedSpec:"),
        "{yaml}"
    );

    let seen = load.take();
    let canary_served = seen.iter().filter(|(_, who)| who == "podinfo-0").count();
    let failed: Vec<_> = seen.iter().filter(|(s, _)| *s != 200).collect();
    eprintln!(
        "promotion: {} requests, {canary_served} served by the canary, {} failed: {failed:?}",
        seen.len(),
        failed.len()
    );
    assert!(canary_served > 0, "the canary never served");
    // Promotion restarts the primary's replica in place: its sidecar
    // holds requests while the application restarts, and the application
    // finishes the ones under way, so none is lost.
    assert!(failed.is_empty(), "{failed:?}");

    // A revision that fails a third of its requests: rolled back. Its
    // metrics' window (30 s, 3 s here) must not still hold the last
    // revision's traffic, as Prometheus's would not an hour later.
    std::thread::sleep(Duration::from_secs(4));
    std::fs::write(cfg.join("podinfo.yaml"), config("3", "0.34")).unwrap();
    until_phase(&m, "Progressing", Duration::from_secs(15));
    // The control plane dies mid-run: restarted by weft up, it resumes
    // the run from its recorded status rather than starting it again.
    let started = Instant::now();
    while canary(&m.admin)["status"]["canaryWeight"] == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no traffic shifted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let detected = |c: &serde_json::Value| {
        messages(c)
            .iter()
            .filter(|m| m.starts_with("New revision detected"))
            .count()
    };
    let before = canary(&m.admin);
    let runs_before = detected(&before);
    let pid = m.status()["controlPlane"]["process"]["pid"]
        .as_u64()
        .expect("the control plane's pid");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    while m.status()["controlPlane"]["process"]["pid"].as_u64() == Some(pid)
        || canary(&m.admin).is_null()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the control plane did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = until_phase(&m, "Failed", Duration::from_secs(60));
    let said = messages(&c);
    // The events from before the restart were kept, and none says a
    // run started again.
    assert!(runs_before >= 2, "{before:#}");
    assert_eq!(
        detected(&c),
        runs_before,
        "the run started again after the restart: {said:#?}"
    );
    assert!(
        messages(&before).iter().all(|m| said.contains(m)),
        "events were lost in the restart: {said:#?}"
    );
    assert!(
        c["decisions"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["phase"] == "Succeeded")),
        "decisions were lost in the restart: {c:#}"
    );
    assert!(
        said.iter().any(
            |m| m.starts_with("Halt podinfo.default advancement success rate ")
                && m.ends_with("% < 99%")
        ),
        "{said:#?}"
    );
    let tail: Vec<&str> = said[said.len() - 2..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "Rolling back podinfo.default failed checks threshold reached 2",
            "Canary failed! Scaling down podinfo.default"
        ]
    );
    assert_eq!(c["status"]["canaryWeight"], 0);
    let said = metrics();
    for line in [
        "flagger_canary_status{name=\"podinfo\",namespace=\"default\"} 2",
        "flagger_canary_failures_total{analysis_status=\"completed\",deployment_strategy=\"canary\",name=\"podinfo\",namespace=\"default\"} 1",
    ] {
        assert!(said.lines().any(|l| l == line), "{line} missing:\n{said}");
    }
    // All traffic is back on the primary, still the promoted revision.
    std::thread::sleep(Duration::from_secs(1));
    load.take();
    std::thread::sleep(Duration::from_secs(2));
    let after = load.take();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|r| *r == (200, "podinfo-primary-0".to_owned())),
        "{after:?}"
    );
    drop(load);

    // The Canary deleted: what it made goes, the target runs again, and
    // the user's Service serves it.
    let text = std::fs::read_to_string(cfg.join("podinfo.yaml")).unwrap();
    let without: String = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: Canary"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    std::fs::write(cfg.join("podinfo.yaml"), without).unwrap();
    let started = Instant::now();
    while call(&outbound) != (200, "podinfo-0".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the target does not serve after the Canary went: {}",
            m.w.log("up")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let resources = common::curl(&[&format!("http://{}/api/resources", m.admin)]).body;
    assert!(!resources.contains("podinfo-primary"), "{resources}");
    assert!(!m.status_text().contains("taken over"));
}

fn ab_config(version: &str, weft: &str) -> String {
    format!(
        r#"apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: client
  labels: {{app: client}}
spec:
  command: sleep
  args: ["100000"]
---
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: loadtester
  labels: {{app: loadtester}}
spec:
  command: weft
  args: [sample-app, loadtester]
  ports: [{{name: http, port: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: loadtester}}
spec:
  selector: {{app: loadtester}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: podinfo-config}}
data: {{version: "{version}"}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector: {{matchLabels: {{app: podinfo}}}}
  template:
    metadata: {{labels: {{app: podinfo}}}}
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.7.0
        command: [weft, sample-app, httpbin]
        ports: [{{name: http, containerPort: 8000}}]
        env:
        - name: PODINFO_VERSION
          valueFrom: {{configMapKeyRef: {{name: podinfo-config, key: version}}}}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: podinfo
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: podinfo}}
  service: {{port: 8000}}
  analysis:
    interval: 10s
    threshold: 2
    iterations: 3
    match:
    - headers:
        cookie: {{regex: "^(.*?;)?(canary=always)(;.*)?$"}}
    metrics:
    - name: request-success-rate
      thresholdRange: {{min: 99}}
      interval: 30s
    webhooks:
    - name: smoke
      type: pre-rollout
      url: http://loadtester.default/
      timeout: 15s
      metadata:
        type: bash
        cmd: "{weft} sample-app curl --fail http://podinfo-canary:8000/status/200"
    - name: load
      url: http://loadtester.default/
      metadata:
        cmd: "{weft} sample-app curl http://podinfo:8000/get -H 'Cookie: canary=always' --count 6000 --interval-ms 20"
    - name: promotion gate
      type: confirm-promotion
      url: http://loadtester.default/gate/check
    - name: end
      type: post-rollout
      url: http://loadtester.default/
      metadata: {{type: bash, cmd: "true"}}
"#
    )
}

/// Flagger's A/B testing: the requests with the canary cookie go to the
/// new version for three iterations, driven by Flagger's load tester
/// (a pre-rollout smoke test, a background load command), then wait at
/// a confirm-promotion gate until it is opened, as Flagger's
/// `/gate/open` does; the load ends with the rollout.
#[test]
fn ab_testing_by_cookie_waits_for_its_promotion_gate() {
    let weft = env!("CARGO_BIN_EXE_weft");
    let (m, cfg) = start(common::World::any(), &ab_config("1", weft), &[]);
    until_phase(&m, "Initialized", Duration::from_secs(20));
    let outbound = m.outbound_of("default/client-0");
    std::fs::write(cfg.join("podinfo.yaml"), ab_config("2", weft)).unwrap();
    let c = until_phase(&m, "WaitingPromotion", Duration::from_secs(40));
    let said = messages(&c);
    let from = said
        .iter()
        .position(|m| m == "New revision detected! Scaling up podinfo.default")
        .unwrap_or_else(|| panic!("{said:#?}"));
    let run: Vec<&str> = said[from..]
        .iter()
        .map(String::as_str)
        .filter(|m| !m.contains("not ready") && !m.contains("(held: "))
        .collect();
    assert_eq!(
        run,
        [
            "New revision detected! Scaling up podinfo.default",
            "Starting canary analysis for podinfo.default",
            "Pre-rollout check smoke passed",
            "Advance podinfo.default canary iteration 1/3",
            "Advance podinfo.default canary iteration 2/3",
            "Advance podinfo.default canary iteration 3/3",
            "Halt podinfo.default advancement waiting for promotion approval promotion gate",
        ],
        "{said:#?}"
    );
    // The cookie decides: with it the canary, without it the primary.
    let who = |cookie: Option<&str>| {
        let mut args = vec!["-x", outbound.as_str()];
        if let Some(c) = cookie {
            args.extend(["-b", c]);
        }
        args.push("http://podinfo:8000/get");
        common::curl(&args)
            .header("x-served-by")
            .unwrap_or_default()
    };
    assert_eq!(who(Some("canary=always")), "podinfo-0");
    assert_eq!(who(None), "podinfo-primary-0");
    // The target is a Deployment whose version comes from a ConfigMap:
    // the change to the ConfigMap was the new revision, the canary reads
    // it, the primary still its copy of the old one.
    let version = |cookie: Option<&str>| {
        let mut args = vec!["-x", outbound.as_str()];
        if let Some(c) = cookie {
            args.extend(["-b", c]);
        }
        args.push("http://podinfo:8000/version");
        let body = common::curl(&args).body;
        serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["version"].clone()
    };
    assert_eq!(version(Some("canary=always")), "2");
    assert_eq!(version(None), "1");
    // It waits, the background load still going, until the gate opens.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(canary(&m.admin)["status"]["phase"], "WaitingPromotion");
    let opened = common::curl(&[
        "-x",
        &outbound,
        "-X",
        "POST",
        "-d",
        r#"{"name":"podinfo","namespace":"default"}"#,
        "http://loadtester/gate/open",
    ]);
    assert_eq!(opened.status, 202, "{}", opened.body);
    let c = until_phase(&m, "Succeeded", Duration::from_secs(30));
    let said = messages(&c);
    assert!(
        said.contains(&"Confirm-promotion check promotion gate passed".to_owned())
            && said.contains(&"Post-rollout check end passed".to_owned()),
        "{said:#?}"
    );
    assert_eq!(who(Some("canary=always")), "podinfo-primary-0");
    assert_eq!(version(None), "2", "the primary reads the promoted copy");
    // The load command ended with the rollout.
    let log =
        std::fs::read_to_string(m.w.dir.join("run/logs/loadtester-0.log")).unwrap_or_default();
    assert!(
        log.contains("podinfo.default rollout ended: command stopped"),
        "{log}"
    );

    // By hand: a paused run waits at promotion even with its gate open;
    // an abort rolls it back; a retry runs the same spec again; promote
    // opens the user's own gate.
    let canary_cmd = |action: &str| {
        let o = common::weft()
            .args(["canary", action, "podinfo", "--admin", &m.admin])
            .output()
            .unwrap();
        assert!(o.status.success(), "weft canary {action}: {o:?}");
    };
    let gate = |what: &str| {
        let r = common::curl(&[
            "-x",
            &outbound,
            "-X",
            "POST",
            "-d",
            r#"{"name":"podinfo","namespace":"default"}"#,
            &format!("http://loadtester/gate/{what}"),
        ]);
        assert_eq!(r.status, 202, "{}", r.body);
    };
    std::thread::sleep(Duration::from_secs(4));
    canary_cmd("pause");
    std::fs::write(cfg.join("podinfo.yaml"), ab_config("3", weft)).unwrap();
    let c = until_phase(&m, "WaitingPromotion", Duration::from_secs(40));
    assert!(
        messages(&c).contains(
            &"Halt podinfo.default advancement waiting for promotion approval weft canary pause"
                .to_owned()
        ),
        "{:#?}",
        messages(&c)
    );
    canary_cmd("abort");
    let c = until_phase(&m, "Failed", Duration::from_secs(10));
    let said = messages(&c);
    assert!(
        said.contains(&"Rolling back podinfo.default manual webhook invoked".to_owned())
            && said.contains(&"Rollback check weft canary abort passed".to_owned()),
        "{said:#?}"
    );
    assert_eq!(who(Some("canary=always")), "podinfo-primary-0");
    gate("close");
    canary_cmd("resume");
    canary_cmd("retry");
    until_phase(&m, "Progressing", Duration::from_secs(10));
    until_phase(&m, "WaitingPromotion", Duration::from_secs(40));
    let o = common::weft()
        .args(["canary", "status", "podinfo", "--admin", &m.admin])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.starts_with("Canary podinfo.default: WaitingPromotion")
            && text.contains("request-success-rate 100.00 (min 99)")
            && text.contains("waiting for promotion approval promotion gate"),
        "{text}"
    );
    canary_cmd("promote");
    let c = until_phase(&m, "Succeeded", Duration::from_secs(20));
    assert!(
        messages(&c).contains(&"Confirm-promotion check promotion gate passed".to_owned()),
        "{:#?}",
        messages(&c)
    );
}

/// The same canary judged through a real Prometheus (Debian's, started
/// by `weft up --prometheus`): the built-in success rate by Flagger's own
/// Istio query (`metricsServer`), and a MetricTemplate whose query uses
/// Flagger's template variables.
#[test]
fn a_canary_is_judged_by_prometheus_queries_and_a_metric_template() {
    assert!(
        std::path::Path::new("/usr/bin/prometheus").exists(),
        "Debian's prometheus is missing: scripts/test installs it (apt-get install prometheus)"
    );
    let w = common::World::any();
    let prom = w.addr(0, 250, 9090).to_string();
    // A Slack-compatible hook that keeps what it is sent.
    let listener = std::net::TcpListener::bind(w.addr(0, 249, 8099)).unwrap();
    let hook = listener.local_addr().unwrap().to_string();
    let received = Arc::new(Mutex::new(Vec::<serde_json::Value>::new()));
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1000) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = s.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_owned)
                        })
                        .and_then(|l| l.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if body.len() >= len {
                        if let Ok(v) = serde_json::from_str(body) {
                            kept.lock().unwrap().push(v);
                        }
                        break;
                    }
                }
            }
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    let yaml = |version: &str| {
        // Prometheus scrapes every 2 s: a window of 6 s (1m on the
        // controller's clock) holds three samples.
        config(version, "0")
            .replace(
                "  targetRef:",
                &format!("  metricsServer: http://{prom}\n  targetRef:"),
            )
            .replace("interval: 30s", "interval: 1m")
            .replace(
                "    maxWeight: 30\n",
                &format!("    maxWeight: 30\n    sessionAffinity: {{cookieName: flagger-cookie}}\n    alerts: [{{name: on-call, severity: info, providerRef: {{name: on-call}}}}]\n    webhooks: [{{name: events, type: event, url: \"http://{hook}/events\", metadata: {{team: web}}}}]\n"),
            )
            + &format!(
                r#"    - name: error-rate
      templateRef: {{name: error-rate}}
      templateVariables: {{codes: "5.*"}}
      thresholdRange: {{max: 1}}
      interval: 1m
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata:
  name: on-call
spec: {{type: slack, channel: releases, address: "http://{hook}/services/hook"}}
---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: error-rate
spec:
  provider: {{type: prometheus, address: "http://{prom}"}}
  query: |
    100 - sum(rate(istio_requests_total{{reporter="destination", destination_workload_namespace="{{{{ namespace }}}}", destination_workload="{{{{ target }}}}", response_code!~"{{{{ variables.codes }}}}"}}[{{{{ interval }}}}]))
    / sum(rate(istio_requests_total{{reporter="destination", destination_workload_namespace="{{{{ namespace }}}}", destination_workload="{{{{ target }}}}"}}[{{{{ interval }}}}])) * 100
"#
            )
    };
    let (m, cfg) = start(
        w,
        &yaml("1"),
        &["--prometheus", "--prometheus-listen", &prom],
    );
    let c = until_phase(&m, "Initialized", Duration::from_secs(30));
    assert!(
        messages(&c).contains(&"all the metrics providers are available!".to_owned()),
        "{:#?}",
        messages(&c)
    );
    let proxy = m.outbound_of("default/client-0");
    let outbound = proxy.trim_start_matches("http://").to_owned();
    let load = Load::start(outbound);
    std::fs::write(cfg.join("podinfo.yaml"), yaml("2")).unwrap();

    // Session affinity: a client the canary served keeps its cookie and
    // stays on the canary (the run paused meanwhile, so it cannot end).
    let started = Instant::now();
    while canary(&m.admin)["status"]["canaryWeight"] == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no traffic shifted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pause = common::weft()
        .args(["canary", "pause", "podinfo", "--admin", &m.admin])
        .output()
        .unwrap();
    assert!(pause.status.success(), "{pause:?}");
    let get = |cookie: Option<&str>| {
        let mut args = vec!["-x", proxy.as_str()];
        if let Some(c) = cookie {
            args.extend(["-b", c]);
        }
        args.push("http://podinfo:8000/get");
        common::curl(&args)
    };
    let started = Instant::now();
    let cookie = loop {
        let r = get(None);
        if r.header("x-served-by").as_deref() == Some("podinfo-0") {
            let set = r.header("set-cookie").unwrap_or_default();
            assert!(
                set.starts_with("flagger-cookie=") && set.contains("Max-Age=86400"),
                "{}",
                r.headers
            );
            break set.split(';').next().unwrap_or_default().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the canary never served"
        );
    };
    for _ in 0..10 {
        assert_eq!(
            get(Some(&cookie)).header("x-served-by").as_deref(),
            Some("podinfo-0")
        );
    }
    let resume = common::weft()
        .args(["canary", "resume", "podinfo", "--admin", &m.admin])
        .output()
        .unwrap();
    assert!(resume.status.success(), "{resume:?}");
    let c = until_phase(&m, "Succeeded", Duration::from_secs(90));
    // After the run, the cookie is expired and its holder is on the
    // primary.
    let r = get(Some(&cookie));
    assert_eq!(
        r.header("x-served-by").as_deref(),
        Some("podinfo-primary-0")
    );
    assert_eq!(
        r.header("set-cookie"),
        Some(format!("{cookie}; Max-Age=-1")),
        "{}",
        r.headers
    );
    // Every event went to the event webhook, with Flagger's metadata.
    let sent = received.lock().unwrap().clone();
    let event = sent
        .iter()
        .find(|v| {
            v["metadata"]["eventMessage"] == "New revision detected! Scaling up podinfo.default"
        })
        .unwrap_or_else(|| panic!("{sent:#?}"));
    assert_eq!(event["metadata"]["eventType"], "Normal");
    assert_eq!(event["metadata"]["team"], "web");
    assert_eq!(event["phase"], "Progressing");
    assert!(event["metadata"]["timestamp"]
        .as_str()
        .is_some_and(|t| t.parse::<u64>().is_ok()));
    // The alerts reached the on-call channel in Flagger's Slack form.
    let sent = received.lock().unwrap().clone();
    let texts: Vec<&str> = sent
        .iter()
        .filter_map(|v| v["attachments"][0]["text"].as_str())
        .collect();
    assert!(
        texts.contains(&"New revision detected, progressing canary analysis.")
            && texts.contains(&"Canary analysis completed successfully, promotion finished."),
        "{sent:#?}"
    );
    let started = sent
        .iter()
        .find(|v| {
            v["attachments"][0]["text"] == "New revision detected, progressing canary analysis."
        })
        .unwrap();
    assert_eq!(started["channel"], "releases");
    assert_eq!(started["username"], "flagger");
    assert_eq!(started["attachments"][0]["author_name"], "podinfo.default");
    assert_eq!(started["attachments"][0]["fields"][0]["title"], "Target");
    assert_eq!(
        started["attachments"][0]["fields"][0]["value"],
        "Workload/podinfo.default"
    );
    let said = messages(&c);
    assert!(
        said.contains(&"Advance podinfo.default canary weight 30".to_owned())
            && said.contains(&"Promotion completed! Scaling down podinfo.default".to_owned()),
        "{said:#?}"
    );
    // No query failed (Prometheus may start after the first tick, whose
    // provider check then says so).
    assert!(
        !said.iter().any(|m| m.starts_with("Prometheus query failed")
            || m.starts_with("Metric query failed")
            || m.contains("render error")),
        "{said:#?}"
    );
    let metrics = common::curl(&[&format!("http://{}/metrics", m.admin)]).body;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("flagger_canary_metric_analysis{metric=\"error-rate\""))
        .unwrap_or_else(|| panic!("no error-rate analysis: {metrics}"));
    assert!(line.ends_with(" 0"), "{line}");
    assert!(
        metrics.contains(
            "flagger_canary_metric_analysis{metric=\"request-success-rate\",name=\"podinfo\",namespace=\"default\"} 100"
        ),
        "{metrics}"
    );

    // The dashboard's canary panel shows the same run, and its buttons
    // steer it as `weft canary` does.
    let artifacts = common::repo().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let report = common::browser::run(
        "canary.mjs",
        &[
            ("WEFT_DASHBOARD", &format!("http://{}/", m.admin)),
            ("WEFT_CANARY", "default/podinfo"),
            (
                "WEFT_SCREENSHOT",
                &artifacts.join("dashboard-canary.png").display().to_string(),
            ),
        ],
    );
    assert!(
        report["error"].is_null() && report["pageErrors"].is_null(),
        "{report}"
    );
    assert_eq!(report["rows"][0][1], "podinfo", "{report}");
    assert_eq!(report["rows"][0][2], "Succeeded", "{report}");
    assert_eq!(report["title"], "podinfo.default");
    let metric = |name: &str| -> Vec<String> {
        report["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("no {name} row: {report}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        metric("request-success-rate"),
        [
            "request-success-rate",
            "100.00",
            "≥ 99; >= primary - 5 (primary 100.00)",
            "passed"
        ]
    );
    assert_eq!(
        metric("error-rate"),
        ["error-rate", "0.00", "≤ 1", "passed"]
    );
    assert_eq!(metric("request-duration")[2], "≤ 500");
    assert!(
        report["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "Promotion completed! Scaling down podinfo.default"),
        "{report}"
    );
    assert!(
        report["paused"].as_str().unwrap().contains("paused")
            && !report["resumed"].as_str().unwrap().contains("paused"),
        "{report}"
    );
    // A page of another site cannot do the same.
    let forged = common::curl(&[
        "-X",
        "POST",
        "-H",
        "Origin: http://evil.example",
        &format!("http://{}/api/canaries/default/podinfo/abort", m.admin),
    ]);
    assert_eq!(forged.status, 403, "{}", forged.body);
    drop(load);
}
