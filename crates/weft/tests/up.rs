//! `weft up` end to end: the bundled bookinfo example runs from one
//! command, and Istio's bookinfo tasks, applied by writing their YAML into
//! the configuration directory while traffic flows, behave as Istio's
//! documentation says.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::curl;
use common::mesh::{up, up_with, Mesh};

#[test]
fn bookinfo_runs_and_istio_routing_tasks_apply_live() {
    let m = up(90);
    let (status, body) = m.page(None);
    assert_eq!(status, 200);
    assert!(
        body.contains("The Comedy of Errors") && body.contains("Book Details"),
        "{body}"
    );
    // No VirtualService yet: all three reviews versions answer.
    let all = m.served_by(30, None);
    assert!(all.len() == 3, "{all:?}");

    // Request routing: everyone to v1 (no stars).
    m.apply("virtual-service-all-v1.yaml");
    assert_eq!(
        m.served_by(10, None),
        BTreeMap::from([("reviews-v1-0".to_owned(), 10)])
    );
    assert!(!m.page(None).1.contains("glyphicon-star"));

    // jason to v2 (black stars), everyone else v1.
    m.apply(
        "virtual-service-all-v1.yaml,virtual-service-reviews-test-v2.yaml"
            .replace("virtual-service-all-v1.yaml,", "")
            .as_str(),
    );
    assert_eq!(
        m.served_by(5, Some("jason")),
        BTreeMap::from([("reviews-v2-0".to_owned(), 5)])
    );
    assert!(m.page(Some("jason")).1.contains("color=\"black\""));
    assert_eq!(
        m.served_by(5, None),
        BTreeMap::from([("reviews-v1-0".to_owned(), 5)])
    );

    // Traffic shifting: 50/50 between v1 and v3 over 100 pages
    // (expected 50 ± 10 at about 2 sigma; asserted within 30..70).
    m.apply("virtual-service-reviews-50-v3.yaml");
    let split = m.served_by(100, None);
    let v1 = split.get("reviews-v1-0").copied().unwrap_or(0);
    let v3 = split.get("reviews-v3-0").copied().unwrap_or(0);
    assert_eq!(v1 + v3, 100, "{split:?}");
    assert!((30..=70).contains(&v1), "{split:?}");
    m.apply("virtual-service-reviews-v3.yaml");
    assert_eq!(
        m.served_by(10, None),
        BTreeMap::from([("reviews-v3-0".to_owned(), 10)])
    );

    // The proxies report the pushed versions.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["status", "--admin", &m.admin])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        text.contains("istio-system/istio-ingressgateway") && text.contains("SYNCED"),
        "{text}"
    );
    assert!(!text.contains("STALE") && !text.contains("DOWN"), "{text}");
}

#[test]
fn istio_fault_injection_tasks() {
    let m = up(91);
    // ratings-test-abort: jason sees the ratings error, others see stars.
    m.apply("virtual-service-all-v1.yaml");
    m.apply("virtual-service-reviews-test-v2.yaml,virtual-service-ratings-test-abort.yaml");
    let (status, body) = m.page(Some("jason"));
    assert_eq!(status, 200);
    assert!(
        body.contains("Ratings service is currently unavailable"),
        "{body}"
    );
    assert!(m
        .page(None)
        .1
        .contains("Reviews served by: <u>reviews-v1-0"));

    // ratings-test-delay: jason's page fails after productpage's 3 s
    // timeout and one retry (about 6 s), as Istio's task explains.
    m.apply("virtual-service-reviews-test-v2.yaml,virtual-service-ratings-test-delay.yaml");
    let started = Instant::now();
    let (status, body) = m.page(Some("jason"));
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        body.contains("Sorry, product reviews are currently unavailable"),
        "{body}"
    );
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(9),
        "took {took:?}"
    );
}

#[test]
fn a_bad_change_is_refused_and_ctrl_c_leaves_no_process() {
    let mut m = up(92);
    std::fs::write(m.cfg.join("broken.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken}\nspec:\n  hosts: [reviews]\n  http: [{route: [{destination: {host: reviews}, weight: -40}]}]\n").unwrap();
    let started = Instant::now();
    while !m.w.log("up").contains("refused") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            m.w.log("up")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        m.w.log("up").contains("broken.yaml:6:58: error[WEFT0005]"),
        "{}",
        m.w.log("up")
    );
    assert_eq!(
        m.page(None).0,
        200,
        "the last good configuration stopped serving"
    );
    // The supervisor and the control plane each notice the file on their
    // own poll: the control plane's status may trail the log a moment.
    let started = Instant::now();
    loop {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["status", "-o", "json", "--admin", &m.admin])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        if v["controlPlane"]["lastRefusedChange"][0]["line"] == 6 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{v}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The platform's Guardrail: Enforce refuses a DestinationRule that
    // turns TLS off, at the field, while the mesh keeps serving; Audit
    // admits it with a warning.
    let guardrail = |action: &str| {
        format!("apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {{name: platform, namespace: istio-system}}\nspec:\n  validationFailureAction: {action}\n  rules: {{noTlsDisable: true}}\n")
    };
    std::fs::write(m.cfg.join("guardrail.yaml"), guardrail("Enforce")).unwrap();
    // Admitted first: a rule already serving when a Guardrail arrives
    // keeps serving (its last good version), as Kubernetes keeps objects
    // a new policy would refuse.
    common::wait_until(
        Duration::from_secs(10),
        || {
            curl(&[&format!("http://{}/api/resources?kind=Guardrail", m.admin)])
                .body
                .contains("\"name\":\"platform\"")
        },
        || "no Guardrail".into(),
    );
    std::fs::write(
        m.cfg.join("plain.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain}\nspec:\n  host: ratings\n  trafficPolicy: {tls: {mode: DISABLE}}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || m.w.log("up").contains("plain.yaml:6:31: error[WEFT0130]"),
        || m.w.log("up"),
    );
    assert!(
        m.w.log("up")
            .contains("refused by Guardrail istio-system/platform, rule noTlsDisable"),
        "{}",
        m.w.log("up")
    );
    let served = |m: &Mesh| {
        curl(&[&format!(
            "http://{}/api/resources?kind=DestinationRule",
            m.admin
        )])
        .body
        .contains("\"name\":\"plain\"")
    };
    assert!(!served(&m), "an enforced Guardrail let the rule in");
    assert_eq!(m.page(None).0, 200);
    std::fs::write(m.cfg.join("guardrail.yaml"), guardrail("Audit")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || served(&m),
        || format!("an audited Guardrail refused the rule: {}", m.w.log("up")),
    );
    common::wait_until(
        Duration::from_secs(5),
        || m.status_text().contains("AUDITED (1)"),
        || m.status_text(),
    );
    assert!(
        m.status_text()
            .contains("plain.yaml:6:31: spec.trafficPolicy.tls.mode: TLS must not be turned off"),
        "{}",
        m.status_text()
    );
    // And as Kyverno's PolicyReports: bookinfo's DestinationRules pass,
    // the plain one fails.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["get", "policyreports", "-o", "json", "--admin", &m.admin])
        .output()
        .unwrap();
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let report = &reports[0];
    assert_eq!(report["kind"], "PolicyReport", "{reports}");
    assert_eq!(report["metadata"]["name"], "polr-ns-default");
    assert_eq!(report["summary"]["fail"], 1, "{report}");
    assert!(report["summary"]["pass"].as_u64().unwrap() >= 4, "{report}");
    let failed = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["result"] == "fail")
        .unwrap();
    assert_eq!(failed["policy"], "istio-system/platform");
    assert_eq!(failed["rule"], "noTlsDisable");
    assert_eq!(failed["resources"][0]["name"], "plain");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["get", "polr", "--admin", &m.admin])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.starts_with("NAMESPACE") && table.contains("polr-ns-default"),
        "{table}"
    );
    std::fs::remove_file(m.cfg.join("plain.yaml")).unwrap();
    // Kyverno's own policies work as written: its published
    // enforce-tls-hosts-host-subnets, switched to Enforce, refuses a
    // DestinationRule that turns TLS off, at the field, with Kyverno's
    // message; unchanged (Audit) it admits it and reports the failure in
    // the PolicyReport as Kyverno would.
    let published = std::fs::read_to_string(common::repo().join(
        "crates/weft-kyverno/tests/fixtures/kyverno-policies-istio/enforce-tls-hosts-host-subnets.yaml",
    ))
    .unwrap();
    std::fs::write(
        m.cfg.join("kyverno.yaml"),
        published.replace(
            "validationFailureAction: Audit",
            "validationFailureAction: Enforce",
        ),
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || {
            curl(&[&format!(
                "http://{}/api/resources?kind=ClusterPolicy",
                m.admin
            )])
            .body
            .contains("enforce-tls-hosts-host-subnets")
        },
        || format!("no ClusterPolicy: {}", m.w.log("up")),
    );
    let plain_k = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: plain-k}\nspec:\n  host: ratings\n  trafficPolicy: {tls: {mode: DISABLE}}\n";
    std::fs::write(m.cfg.join("plain-k.yaml"), plain_k).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || {
            let log = m.w.log("up");
            log.contains("plain-k.yaml:6:31: error[WEFT0130]")
                && log.contains("rule destrule failed at path /spec/trafficPolicy/tls/mode/ (refused by ClusterPolicy enforce-tls-hosts-host-subnets, rule destrule)")
        },
        || m.w.log("up"),
    );
    let served_k = |m: &Mesh| {
        curl(&[&format!(
            "http://{}/api/resources?kind=DestinationRule",
            m.admin
        )])
        .body
        .contains("\"name\":\"plain-k\"")
    };
    assert!(!served_k(&m), "an enforced ClusterPolicy let the rule in");
    std::fs::write(m.cfg.join("kyverno.yaml"), &published).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || served_k(&m),
        || {
            format!(
                "an audited ClusterPolicy refused the rule: {}",
                m.w.log("up")
            )
        },
    );
    let kyverno_result = |m: &Mesh| -> Option<serde_json::Value> {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args([
                "get", "polr", "-n", "default", "-o", "json", "--admin", &m.admin,
            ])
            .output()
            .unwrap();
        let reports: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        reports[0]["results"]
            .as_array()?
            .iter()
            .find(|r| r["source"] == "kyverno" && r["resources"][0]["name"] == "plain-k")
            .cloned()
    };
    common::wait_until(
        Duration::from_secs(5),
        || kyverno_result(&m).is_some(),
        || "no Kyverno result in the PolicyReport".into(),
    );
    let result = kyverno_result(&m).unwrap();
    assert_eq!(
        result["policy"], "enforce-tls-hosts-host-subnets",
        "{result}"
    );
    assert_eq!(result["rule"], "destrule", "{result}");
    assert_eq!(result["result"], "fail", "{result}");
    // `weft status` lists the mesh's policies with what they found.
    let listed = m.status_text();
    let line = listed
        .lines()
        .find(|l| l.starts_with("enforce-tls-hosts-host-subnets"))
        .unwrap_or_else(|| panic!("no policy line: {listed}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&columns[1..3], ["ClusterPolicy", "Audit"], "{line}");
    assert_eq!(columns[4], "1", "one DestinationRule fails: {line}");
    std::fs::remove_file(m.cfg.join("plain-k.yaml")).unwrap();
    // Kyverno's published add-sidecar-injection-namespace, unchanged,
    // labels a Namespace as the control plane admits it.
    std::fs::write(
        m.cfg.join("kyverno.yaml"),
        std::fs::read_to_string(common::repo().join(
            "crates/weft-kyverno/tests/fixtures/kyverno-policies-istio/add-sidecar-injection-namespace.yaml",
        ))
        .unwrap()
            + "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-x}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || {
            curl(&[&format!(
                "http://{}/api/resources?kind=Namespace&name=team-x",
                m.admin
            )])
            .body
            .contains("\"istio-injection\":\"enabled\"")
        },
        || {
            curl(&[&format!(
                "http://{}/api/resources?kind=Namespace&name=team-x",
                m.admin
            )])
            .body
        },
    );
    // Kyverno's published create-authorizationpolicy, unchanged, closes
    // bookinfo's namespace with its default-deny policy, and opens it
    // again when it goes.
    std::fs::write(
        m.cfg.join("kyverno.yaml"),
        std::fs::read_to_string(common::repo().join(
            "crates/weft-kyverno/tests/fixtures/kyverno-policies-istio/create-authorizationpolicy.yaml",
        ))
        .unwrap(),
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || m.page(None).0 == 403,
        || format!("no generated default deny: {}", m.w.log("up")),
    );
    assert!(
        curl(&[&format!(
            "http://{}/api/resources?kind=AuthorizationPolicy",
            m.admin
        )])
        .body
        .contains("\"name\":\"default-deny\""),
        "the generated policy is not listed"
    );
    std::fs::remove_file(m.cfg.join("kyverno.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || m.page(None).0 == 200,
        || "the generated default deny outlived its ClusterPolicy".into(),
    );
    // Kubernetes NetworkPolicy, enforced by the pods' proxies: details
    // isolated to callers labelled app=productpage on port 9080 still
    // serves the page; isolated to app=reviews, productpage is refused
    // (its proxy's address is not a reviews pod's) and the page says the
    // details are unavailable; gone, they are back.
    let netpol = |from_app: &str| {
        format!("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: details-ingress}}\nspec:\n  podSelector: {{matchLabels: {{app: details}}}}\n  policyTypes: [Ingress]\n  ingress:\n  - from:\n    - podSelector: {{matchLabels: {{app: {from_app}}}}}\n    ports:\n    - port: 9080\n")
    };
    let details_shown = |m: &Mesh| {
        let (status, body) = m.page(None);
        status == 200 && body.contains("<h4>Book Details</h4>")
    };
    std::fs::write(m.cfg.join("netpol.yaml"), netpol("reviews")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || {
            let (status, body) = m.page(None);
            status == 200 && body.contains("Sorry, product details are currently unavailable")
        },
        || format!("details not isolated: {}", m.page(None).1),
    );
    std::fs::write(m.cfg.join("netpol.yaml"), netpol("productpage")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || details_shown(&m),
        || format!("productpage not let in: {}", m.page(None).1),
    );
    // Egress: productpage may reach details only; its calls to reviews
    // find no endpoint it may connect to, and the page says so.
    std::fs::write(
        m.cfg.join("netpol.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: productpage-egress}\nspec:\n  podSelector: {matchLabels: {app: productpage}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - podSelector: {matchLabels: {app: details}}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || {
            let (status, body) = m.page(None);
            status == 200
                && body.contains("<h4>Book Details</h4>")
                && body.contains("Sorry, product reviews are currently unavailable")
        },
        || format!("egress not held: {}", m.page(None).1),
    );
    std::fs::remove_file(m.cfg.join("netpol.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || details_shown(&m) && !m.page(None).1.contains("reviews are currently unavailable"),
        || "details or reviews gone after the NetworkPolicy".into(),
    );
    // On request, the Guardrail makes the default-deny policy a namespace
    // lacks: bookinfo is closed until its owners say who may call it, and
    // open again when the request goes.
    std::fs::write(
        m.cfg.join("guardrail.yaml"),
        "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: platform, namespace: istio-system}\nspec:\n  rules: {requireAuthorizationPolicy: true, generateDefaultDeny: true}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || m.page(None).0 == 403,
        || format!("no default deny: {}", m.w.log("up")),
    );
    assert!(
        curl(&[&format!(
            "http://{}/api/resources?kind=AuthorizationPolicy",
            m.admin
        )])
        .body
        .contains("\"name\":\"allow-nothing\""),
        "the policy made is not listed"
    );
    std::fs::remove_file(m.cfg.join("guardrail.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(10),
        || m.page(None).0 == 200,
        || "the default deny outlived its Guardrail".into(),
    );

    // A workload that dies is restarted and reported.
    let status_json = |m: &Mesh| -> serde_json::Value {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["status", "-o", "json", "--admin", &m.admin])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let v = status_json(&m);
    let pid_of = |v: &serde_json::Value, kind: &str, name: &str| -> Option<u64> {
        v[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .and_then(|x| x["process"]["pid"].as_u64())
    };
    let details = pid_of(&v, "workloads", "default/details-v1-0").expect("details runs");
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(details.to_string())
        .status();
    let started = Instant::now();
    while !m.w.log("up").contains("default/details-v1-0 exited") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            m.w.log("up")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    while !m.page(None).1.contains("Book Details") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "details did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Status is refreshed every two seconds.
    let started = Instant::now();
    let v = loop {
        let v = status_json(&m);
        let restarted = v["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == "default/details-v1-0")
            .unwrap()
            .clone();
        if restarted["process"]["restarts"] == 1 && restarted["process"]["running"] == true {
            break v;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{restarted}");
        std::thread::sleep(Duration::from_millis(200));
    };

    // Ctrl-C stops everything it started.
    let pids: Vec<u64> = ["workloads", "proxies"]
        .iter()
        .flat_map(|k| {
            v[*k]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x["process"]["pid"].as_u64())
        })
        .collect();
    assert_eq!(pids.len(), 13, "{v}");
    m.w.proc("up").signal("INT");
    let idx = m.w.procs.iter().position(|p| p.name == "up").unwrap();
    let started = Instant::now();
    while m.w.procs[idx].child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "weft up did not exit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive: Vec<&u64> = pids
        .iter()
        .filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(alive.is_empty(), "processes left behind: {alive:?}");
    assert!(m.w.log("up").contains("weft: stopped"));
}

/// Even SIGKILL of `weft up` leaves nothing behind: every process it
/// started follows it (the kernel's parent-death signal), including a
/// non-weft workload command; a workload whose command does not exist is
/// reported with the fix while the rest of the mesh runs.
#[test]
fn sigkill_of_weft_up_leaves_no_orphans() {
    let mut m = up_with(93, "apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: sleeper, labels: {app: sleeper}}\nspec: {command: sleep, args: [\"300\"], ports: [{name: http, port: 7000}]}\n---\napiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: ghost, labels: {app: ghost}}\nspec: {command: no-such-program-weft, ports: [{name: http, port: 7001}]}\n");
    assert!(
        m.w.log("up")
            .contains("command `no-such-program-weft` is not found on PATH"),
        "{}",
        m.w.log("up")
    );
    assert_eq!(m.page(None).0, 200);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["status", "-o", "json", "--admin", &m.admin])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let pids: Vec<u64> = ["workloads", "proxies"]
        .iter()
        .flat_map(|k| {
            v[*k]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|x| x["process"]["pid"].as_u64())
        })
        .collect();
    assert!(pids.len() >= 14, "{v}");
    let sleeper_children = std::process::Command::new("pgrep")
        .args(["-x", "sleep"])
        .output()
        .unwrap();
    let sleepers: Vec<String> = String::from_utf8_lossy(&sleeper_children.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    m.w.proc("up").signal("KILL");
    let started = Instant::now();
    loop {
        let alive: Vec<&u64> = pids
            .iter()
            .filter(|p| {
                std::path::Path::new(&format!("/proc/{p}")).exists()
                    && !std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .unwrap_or_default()
                        .contains(") Z ")
            })
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "orphans after SIGKILL: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The `sleep 300` under exec-child went too. Its wrapper passes the
    // SIGTERM on and exits once the command has; on a loaded machine the
    // command's exit can trail the wrapper's by more than a moment, so
    // allow 5 s (a survivor would live 300 s).
    let ours = || -> Vec<String> {
        let after = std::process::Command::new("pgrep")
            .args(["-x", "sleep"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&after.stdout)
            .lines()
            .filter(|p| sleepers.contains(&p.to_string()))
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .unwrap_or_default()
                    .contains("300")
            })
            .map(str::to_owned)
            .collect()
    };
    let started = Instant::now();
    let mut left = ours();
    while !left.is_empty() && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
        left = ours();
    }
    let status: Vec<String> = left
        .iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default())
        .collect();
    // The wrapper writes why it left into the workload's log.
    let logs: Vec<String> = std::fs::read_dir(m.w.dir.join("run").join("logs"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("sleeper"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "sleep 300 survived: {left:?} {status:?}; its logs: {logs:?}"
    );
    m.w.procs.clear();
}

const HTTPBIN: &str = r#"apiVersion: v1
kind: Service
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: httpbin-v1, labels: {app: httpbin, version: v1}}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: httpbin-v2, labels: {app: httpbin, version: v2}}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
"#;

/// Istio's request-timeouts, circuit-breaking and mirroring tasks on a
/// running mesh, and a change under traffic that fails no request.
#[test]
fn istio_timeout_circuit_breaking_and_mirroring_tasks() {
    let m = up_with(94, HTTPBIN);
    // A client inside the mesh: productpage's sidecar (as Istio's tasks
    // use fortio or curl in a meshed pod).
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["status", "-o", "json", "--admin", &m.admin])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let sidecar = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "default/productpage-v1-0")
        .unwrap()["outbound"]
        .as_str()
        .unwrap()
        .to_owned();
    let proxy = format!("http://{sidecar}");

    // weft logs, x509 and live proxy-config find things by workload,
    // Deployment (`deploy/`) or app name, and refuse an ambiguous one.
    let logs = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["logs", "deploy/httpbin-v1", "--admin", &m.admin])
        .output()
        .unwrap();
    let weft = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .args(["--admin", &m.admin])
            .output()
            .unwrap()
    };
    let cert = weft(&["x509", "productpage", "-o", "json"]);
    let cert_text = String::from_utf8_lossy(&cert.stdout);
    assert!(
        cert.status.success() && cert_text.contains("sa/bookinfo-productpage"),
        "{cert_text}{}",
        String::from_utf8_lossy(&cert.stderr)
    );
    let ambiguous = weft(&["x509", "reviews"]);
    let why = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        !ambiguous.status.success() && why.contains("default/reviews-v1, default/reviews-v2"),
        "{why}"
    );
    // weft status shows each sidecar's tunnel (15008) address.
    let status = weft(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status_text.contains("TUNNEL") && status_text.contains(":15008"),
        "{status_text}"
    );
    assert!(
        String::from_utf8_lossy(&logs.stdout).contains("listening on"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let pc = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "proxy-config",
            "reviews-v2",
            "--section",
            "listeners",
            "-o",
            "json",
            "--admin",
            &m.admin,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&pc.stdout).contains("inbound|9080"),
        "{}",
        String::from_utf8_lossy(&pc.stderr)
    );

    // Request timeouts: reviews (v2) with 0.5 s, ratings delayed 2 s.
    let timeouts = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v2}}]\n    timeout: 0.5s\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec:\n  hosts: [ratings]\n  http:\n  - fault: {delay: {percentage: {value: 100}, fixedDelay: 2s}}\n    route: [{destination: {host: ratings, subset: v1}}]\n";
    m.write_config("routing.yaml", timeouts);
    let started = Instant::now();
    let (code, body) = m.page(None);
    assert_eq!(code, 200);
    assert!(
        body.contains("Sorry, product reviews are currently unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );

    // Circuit breaking: one connection, one pending request.
    let cb = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: httpbin}\nspec:\n  host: httpbin\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}\n    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}\n";
    m.write_config("routing.yaml", cb);
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let p = proxy.clone();
            std::thread::spawn(move || curl(&["-x", &p, "http://httpbin:8000/delay/0.5"]))
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let overflow: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(
        overflow.len() >= 5 && replies.iter().any(|r| r.status == 200),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        overflow.iter().all(|r| r
            .header("x-weft-reason")
            .unwrap_or_default()
            .starts_with("UO")),
        "{}",
        overflow[0].headers
    );

    // Mirroring: v1 answers, v2 gets copies with the -shadow host.
    let mirror = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: httpbin}\nspec:\n  host: httpbin\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: httpbin}\nspec:\n  hosts: [httpbin]\n  http:\n  - route: [{destination: {host: httpbin, subset: v1}, weight: 100}]\n    mirror: {host: httpbin, subset: v2}\n    mirrorPercentage: {value: 100.0}\n";
    m.write_config("routing.yaml", mirror);
    for _ in 0..5 {
        let r = curl(&["-x", &proxy, "http://httpbin:8000/headers"]);
        assert_eq!(
            r.header("x-served-by").as_deref(),
            Some("httpbin-v1-0"),
            "{}",
            r.headers
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let v2 = std::fs::read_to_string(m.w.dir.join("run/logs/httpbin-v2-0.log")).unwrap();
    assert!(
        v2.matches("GET /headers host=httpbin-shadow:8000").count() >= 5,
        "{v2}"
    );

    // A change while traffic flows takes effect within a second and
    // fails no request.
    let p = proxy.clone();
    let load = std::thread::spawn(move || {
        (0..120)
            .map(|_| curl(&["-x", &p, "http://httpbin:8000/get"]))
            .map(|r| (r.status, r.header("x-served-by").unwrap_or_default()))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(300));
    let to_v2 = mirror.replace("subset: v1}, weight: 100}]\n    mirror: {host: httpbin, subset: v2}\n    mirrorPercentage: {value: 100.0}\n", "subset: v2}, weight: 100}]\n");
    let changed_at = Instant::now();
    std::fs::write(m.cfg.join("routing.yaml"), to_v2).unwrap();
    let results = load.join().unwrap();
    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "failed during the change: {:?}",
        results
            .iter()
            .filter(|(s, _)| *s != 200)
            .collect::<Vec<_>>()
    );
    assert!(
        results.iter().any(|(_, w)| w == "httpbin-v2-0"),
        "the change never took effect"
    );
    let _ = changed_at;
}

/// kubectl habits: `weft apply` routes live (and waits for acceptance),
/// `weft get` lists and prints resources with where they came from,
/// `weft delete` removes what was applied, and refuses what lives in a
/// file; a bad apply is refused with positions.
#[test]
fn apply_get_delete_against_a_running_mesh() {
    let m = up(96);
    let weft = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--admin", &m.admin]);
        std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(&a)
            .output()
            .unwrap()
    };
    let task = common::repo()
        .join("examples/bookinfo-tasks/virtual-service-all-v1.yaml")
        .display()
        .to_string();
    // A directory applies its files, nested ones too (kubectl's -R is
    // accepted; weft always recurses), hidden ones left out.
    let dir = m.w.dir.join("to-apply");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::copy(&task, dir.join("nested/all-v1.yaml")).unwrap();
    std::fs::write(dir.join(".ignored.yaml"), "not: [valid").unwrap();
    let o = weft(&["apply", "-R", "-f", &dir.display().to_string()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("VirtualService default/reviews applied") && out.contains("accepted"),
        "{out}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        m.served_by(5, None),
        BTreeMap::from([("reviews-v1-0".to_owned(), 5)])
    );
    let o = weft(&["get", "vs"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("reviews") && out.contains("applied") && out.contains("bookinfo-gateway.yaml"),
        "{out}"
    );
    let o = weft(&["get", "virtualservice", "reviews", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["spec"]["http"][0]["route"][0]["destination"]["subset"],
        "v1"
    );
    let o = weft(&["delete", "vs", "bookinfo"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bookinfo-gateway.yaml"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = weft(&["delete", "vs", "reviews"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        m.served_by(30, None).len() > 1,
        "reviews is balanced across versions again"
    );
    // `delete -f` takes away every resource the file names, as kubectl's
    // does: the rest of the task's VirtualServices, and it says which one
    // was already gone.
    let o = weft(&["delete", "-f", &task]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(
        !o.status.success(),
        "reviews was already deleted: {out}{err}"
    );
    assert!(
        out.contains("VirtualService default/productpage deleted")
            && out.contains("VirtualService default/details deleted")
            && err.contains("default/reviews"),
        "{out}{err}"
    );
    let o = weft(&["get", "vs", "-A"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && !out.contains("applied"),
        "nothing applied is left: {out}"
    );
    let bad = m.w.write("bad.yaml", "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews2}\nspec:\n  host: reviews\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBN}}\n");
    let o = weft(&["apply", "-f", &bad.display().to_string()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("<apply>:6:") && err.contains("did you mean `ROUND_ROBIN`"),
        "{err}"
    );
    // A Guardrail applied first refuses what breaks it, at admission.
    let rail = m.w.write("rail.yaml", "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: platform, namespace: istio-system}\nspec:\n  validationFailureAction: Enforce\n  rules: {noWildcardHosts: true}\n");
    let o = weft(&["apply", "-f", &rail.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let wild = m.w.write("wild.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wild}\nspec:\n  hosts: [\"*.example.com\"]\n  http: [{route: [{destination: {host: reviews}}]}]\n");
    let o = weft(&["apply", "-f", &wild.display().to_string()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("<apply>:5:") && err.contains("rule noWildcardHosts"),
        "{err}"
    );
}

/// Restarting the control plane drops no traffic: kill -9 of `weft up`'s
/// control plane while pages load; `weft up` restarts it, proxies
/// reconnect, and a change made afterwards reaches them.
#[test]
fn control_plane_restart_in_weft_up_drops_no_traffic() {
    let m = up(97);
    m.apply("virtual-service-all-v1.yaml");
    let status = |m: &Mesh| -> serde_json::Value {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["status", "-o", "json", "--admin", &m.admin])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap_or_default()
    };
    let pid = status(&m)["controlPlane"]["process"]["pid"]
        .as_u64()
        .expect("the control plane's pid");
    let ingress = m.ingress.clone();
    let load = std::thread::spawn(move || {
        (0..60)
            .map(|_| {
                let r = curl(&[&format!("http://{ingress}/productpage")]);
                std::thread::sleep(Duration::from_millis(20));
                (
                    r.status,
                    r.body.contains("Reviews served by: <u>reviews-v1-0"),
                )
            })
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status();
    let results = load.join().unwrap();
    assert!(
        results.iter().all(|(s, v1)| *s == 200 && *v1),
        "pages failed while the control plane was down: {results:?}"
    );
    let started = Instant::now();
    loop {
        let v = status(&m);
        let restarted = v["controlPlane"]["process"]["restarts"]
            .as_u64()
            .unwrap_or(0)
            >= 1;
        let synced = v["proxies"]
            .as_array()
            .is_some_and(|p| p.iter().all(|x| x["sync"] == "SYNCED"));
        if restarted && synced {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no resync: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    m.apply("virtual-service-reviews-v3.yaml");
    assert_eq!(
        m.served_by(5, None),
        BTreeMap::from([("reviews-v3-0".to_owned(), 5)])
    );
}

/// The curl-like sample client works from inside the mesh (through a
/// sidecar, as a workload would), and a killed sidecar is restarted,
/// reported, and serves again.
#[test]
fn mesh_client_and_a_killed_sidecar() {
    let m = up(98);
    m.apply("virtual-service-all-v1.yaml");
    let status = |m: &Mesh| -> serde_json::Value {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(["status", "-o", "json", "--admin", &m.admin])
            .output()
            .unwrap();
        serde_json::from_slice(&o.stdout).unwrap_or_default()
    };
    let v = status(&m);
    let pp = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "default/productpage-v1-0")
        .unwrap()
        .clone();
    let outbound = pp["outbound"].as_str().unwrap().to_owned();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
        .args([
            "sample-app",
            "curl",
            "http://reviews:9080/reviews/0",
            "--count",
            "3",
        ])
        .env("HTTP_PROXY", format!("http://{outbound}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| *l == "200 reviews-v1-0")
            .count(),
        3,
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );

    // Kill the reviews-v1 sidecar: the page degrades, weft up restarts the
    // sidecar, and the page comes back.
    let sidecar = v["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "default/reviews-v1-0")
        .unwrap()["process"]["pid"]
        .as_u64()
        .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", &sidecar.to_string()])
        .status();
    let started = Instant::now();
    loop {
        let v = status(&m);
        let p = v["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "default/reviews-v1-0")
            .unwrap()
            .clone();
        if p["process"]["restarts"] == 1
            && p["sync"] == "SYNCED"
            && m.page(None)
                .1
                .contains("Reviews served by: <u>reviews-v1-0")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sidecar did not come back: {p}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        m.w.log("up")
            .contains("default/reviews-v1-0 (sidecar) exited"),
        "{}",
        m.w.log("up")
    );
}

/// The threads of the proxy process whose command line holds `needle`.
fn proxy_threads(needle: &str) -> Vec<usize> {
    proxy_proc_files(needle, "status")
        .iter()
        .filter_map(|status| {
            String::from_utf8_lossy(status)
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .collect()
}

/// `/proc/PID/<file>` of each proxy whose command line holds `needle`.
fn proxy_proc_files(needle: &str, file: &str) -> Vec<Vec<u8>> {
    common::proxy_dirs(needle)
        .iter()
        .filter_map(|d| std::fs::read(d.join(file)).ok())
        .collect()
}

/// A sidecar runs on one thread unless Istio's `proxy.istio.io/config`
/// annotation asks for more; an annotation that does not parse is reported
/// and the default kept. Proxies run under SCHED_BATCH.
#[test]
fn sidecar_concurrency_follows_the_proxy_config_annotation() {
    let m = up_with(
        117,
        r#"
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: busy
  labels: {app: busy}
  annotations: {proxy.istio.io/config: "concurrency: 3"}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: muddled
  labels: {app: muddled}
  annotations: {proxy.istio.io/config: "concurrency: lots"}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata:
  name: broken
  labels: {app: broken}
  annotations: {proxy.istio.io/config: "{concurrency: 2"}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
"#,
    );
    let inbound = |ip: (u8, u8)| m.w.ip(ip.0, ip.1);
    // Workloads are addressed in name order: broken, busy, details,
    // muddled, ...
    let broken = proxy_threads(&inbound((10, 1)));
    let busy = proxy_threads(&inbound((10, 2)));
    let details = proxy_threads(&inbound((10, 3)));
    let muddled = proxy_threads(&inbound((10, 4)));
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0] <= 2, "YAML that does not parse: {broken:?}");
    // The runtime's threads, the main thread, the access log's writer.
    assert_eq!(busy.len(), 1, "{busy:?}");
    assert!(busy[0] >= 4, "3 workers asked for: {busy:?}");
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(details[0] <= 2, "the default is one thread: {details:?}");
    // Sidecars run with the allocator committing memory on demand (see
    // crates/weft/src/allocator.rs), whoever started them.
    let environ = proxy_proc_files(&inbound((10, 3)), "environ");
    assert!(
        environ.iter().all(|e| e
            .split(|b| *b == 0)
            .any(|v| v == b"MIMALLOC_ARENA_EAGER_COMMIT=0")),
        "{:?}",
        environ
            .iter()
            .map(|e| String::from_utf8_lossy(e))
            .collect::<Vec<_>>()
    );
    assert_eq!(environ.len(), 1);
    assert_eq!(muddled.len(), 1, "{muddled:?}");
    assert!(muddled[0] <= 2, "{muddled:?}");
    // Every thread of every proxy runs under SCHED_BATCH (no preemption
    // on wakeup, crates/weft/src/sched.rs), the 3-worker sidecar's and the
    // gateway's included.
    // (A proxy process is under SCHED_OTHER for the moment between its
    // start and its first lines of `main`: a process the supervisor has
    // just (re)started may be seen then, so each is looked at again for
    // up to 3 s before a thread off SCHED_BATCH counts.)
    for needle in [
        inbound((10, 2)),
        inbound((10, 3)),
        "istio-system/istio-ingressgateway".to_owned(),
    ] {
        let started = Instant::now();
        loop {
            let policies = common::proxy_thread_policies(&needle);
            if policies.len() >= 2 && policies.iter().all(|p| *p == 3) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{needle}: {policies:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Reported as `weft validate` reports it: file, line, field.
    let log = m.w.log("up");
    for (name, at, why) in [
        (
            "default/muddled",
            "extra.yaml:15:",
            "\"lots\" is not a whole number",
        ),
        ("default/broken", "extra.yaml:23:", "not YAML"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(at)
                && l.contains("warning")
                && l.contains(name)
                && l.contains("proxy.istio.io/config")
                && l.contains(why)),
            "{name} not reported:\n{log}"
        );
    }
}

/// A Gateway server on port 9090 beside bookinfo's, with a route that
/// answers slowly when asked to (a fault delay), so a request can be in
/// flight when the port goes away.
const SECOND_PORT: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: second-port}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 9090, name: http-second, protocol: HTTP}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: second-port}
spec:
  hosts: [\"*\"]
  gateways: [second-port]
  http:
  - match: [{headers: {x-slow: {exact: \"1\"}}}]
    fault: {delay: {fixedDelay: 2s, percentage: {value: 100}}}
    route: [{destination: {host: productpage, port: {number: 9080}}}]
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
";

#[test]
fn a_gateway_port_comes_and_goes_without_a_restart_and_drains() {
    let m = up(144);
    let gateway_pid = || {
        m.status()["proxies"]
            .as_array()
            .and_then(|ps| {
                ps.iter()
                    .find(|p| {
                        p["name"]
                            .as_str()
                            .is_some_and(|n| n.contains("ingressgateway"))
                    })
                    .and_then(|p| p["process"]["pid"].as_u64())
            })
            .unwrap_or(0)
    };
    let pid = gateway_pid();
    assert!(pid > 0, "{}", m.status());
    let ip = m.ingress.rsplit_once(':').unwrap().0.to_owned();
    let second = format!("http://{ip}:9090/productpage");
    assert_eq!(
        curl(&["--max-time", "2", &second]).status,
        0,
        "9090 before it is configured"
    );

    m.write_config("second-port.yaml", SECOND_PORT);
    let started = Instant::now();
    while curl(&["--max-time", "2", &second]).status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "9090 never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(gateway_pid(), pid, "the gateway restarted to add a port");
    assert_eq!(m.page(None).0, 200, "the first port stopped serving");

    // A request in flight on 9090 when the port is removed finishes.
    let slow = second.clone();
    let in_flight = std::thread::spawn(move || {
        let t = Instant::now();
        (curl(&["-H", "x-slow: 1", &slow]).status, t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    m.write_config("second-port.yaml", "");
    let started = Instant::now();
    while curl(&["--max-time", "2", &second]).status != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "9090 still accepts"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !in_flight.is_finished(),
        "the port closed only after the slow request ended: the drain went untested"
    );
    let (status, took) = in_flight.join().unwrap();
    assert_eq!(
        status, 200,
        "the request in flight on the removed port was cut"
    );
    assert!(
        took >= Duration::from_secs(2),
        "the delay did not apply: {took:?}"
    );
    assert_eq!(gateway_pid(), pid, "the gateway restarted to remove a port");
    assert_eq!(m.page(None).0, 200);
}

/// Changes keep coming while sidecars and the control plane are killed:
/// a proxy restarted from its cache, one that reconnects to a restarted
/// control plane and one that simply missed a change in between all end
/// on the model the compiler makes whole, as a fresh proxy would.
#[test]
fn proxies_that_miss_changes_converge_to_the_compiled_models() {
    let m = common::mesh::up_in(common::World::any(), "", &[], &[]);
    let routing = [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-v3.yaml",
        "virtual-service-all-v1.yaml,virtual-service-reviews-test-v2.yaml",
        "virtual-service-reviews-50-v3.yaml",
    ];
    let pid_of = |v: &serde_json::Value, name: &str| -> Option<u64> {
        v["proxies"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == name)?["process"]["pid"]
            .as_u64()
    };
    let sidecars: Vec<String> = m.status()["proxies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "sidecar")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    assert!(sidecars.len() >= 6, "{sidecars:?}");
    let kill = |pid: u64| {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    };
    for i in 0..15 {
        // Not waited for: the next change may come before this one is in.
        let text = common::mesh::tasks_yaml(routing[i % routing.len()]);
        std::fs::write(m.cfg.join("routing.yaml"), text).unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let status = m.status();
        if i % 3 == 1 {
            if let Some(pid) = pid_of(&status, &sidecars[(i / 3) % sidecars.len()]) {
                kill(pid);
            }
        }
        if i == 7 {
            if let Some(pid) = status["controlPlane"]["process"]["pid"].as_u64() {
                kill(pid);
            }
        }
    }
    // Every proxy comes back and holds what it is served.
    let started = Instant::now();
    let final_status = loop {
        let s = m.status();
        let synced = s["proxies"]
            .as_array()
            .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["sync"] == "SYNCED"));
        if synced {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "not every proxy is SYNCED:\n{}",
            m.status_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // And what each sidecar holds is what the compiler makes of the files.
    let base = m.w.ip(10, 1);
    let without_roots = |mut v: serde_json::Value| {
        v["security"]["trustBundle"] = serde_json::Value::Null;
        v
    };
    for name in &sidecars {
        let p = final_status["proxies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| &p["name"] == name)
            .unwrap();
        let admin = p["admin"].as_str().unwrap();
        let dump: serde_json::Value =
            serde_json::from_str(&curl(&[&format!("http://{admin}/config_dump")]).body).unwrap();
        let o = common::weft()
            .args([
                "proxy-config",
                name,
                "-o",
                "json",
                "--local-address-base",
                &base,
                "--gateway-address",
                &format!(
                    "istio-ingressgateway={}",
                    m.ingress.rsplit_once(':').unwrap().0
                ),
                "-f",
            ])
            .arg(&m.cfg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let compiled: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            without_roots(dump["model"].clone()),
            without_roots(compiled),
            "{name} holds another model than the compiler makes"
        );
    }
}

#[path = "up/capture.rs"]
mod capture;

#[path = "up/canary.rs"]
mod canary;

#[path = "up/egress.rs"]
mod egress;
