//! The `weft` binary as users run it: exit codes, output formats, stdin,
//! and hostile input. Every test starts the real executable.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> Output {
    weft()
        .current_dir(repo())
        .args(args)
        .output()
        .expect("weft runs")
}

fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = weft()
        .current_dir(repo())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("weft exits")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weft-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_bundled_example_validates_and_analyzes_clean() {
    for cmd in ["validate", "analyze"] {
        let o = run(&[cmd, "-f", "examples/bookinfo"]);
        assert_eq!(o.status.code(), Some(0), "{cmd}: {}", stdout(&o));
        assert!(
            stdout(&o).contains("0 errors, 0 warnings"),
            "{cmd}: {}",
            stdout(&o)
        );
    }
}

#[test]
fn every_istio_task_yaml_analyzes_clean_on_top_of_the_example() {
    for entry in std::fs::read_dir(repo().join("examples/bookinfo-tasks")).unwrap() {
        let path = entry.unwrap().path();
        let o = run(&[
            "analyze",
            "-f",
            "examples/bookinfo",
            "-f",
            path.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            stdout(&o)
        );
    }
}

#[test]
fn exit_codes_are_0_clean_1_errors_2_usage() {
    let dir = tmp("exit");
    std::fs::write(dir.join("bad.yaml"), "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [x]\n  http:\n  - route: [{destination: {host: x}, weight: 60}, {destination: {host: y}, weight: -30}]\n").unwrap();
    let o = run(&["validate", "-f", dir.join("bad.yaml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("bad.yaml:7:84: error[WEFT0005]"), "{text}");
    assert!(
        text.contains("spec.http[0].route[1].weight: weight -30 is negative"),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
    assert_eq!(run(&["validate"]).status.code(), Some(2));
    assert_eq!(
        run(&["validate", "-f", "/no/such/path"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

/// As Istio's webhook, validate warns of VirtualService rules that can
/// never match (and accepts the resource).
#[test]
fn validate_warns_of_unreachable_rules_as_the_webhook_does() {
    let o = run_stdin(
        &["validate", "-f", "-"],
        b"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: reviews}}]\n",
    );
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(
        text.contains("warning[IST0130]")
            && text
                .contains("VirtualService rule #1 not used (route without matches defined before)"),
        "{text}"
    );
}

/// A Guardrail among the files judges the rest, as admission would:
/// Enforce fails validation at the field, Audit warns.
#[test]
fn validate_judges_the_files_by_their_guardrails() {
    let files = |action: &str| {
        format!("apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {{name: platform, namespace: istio-system}}\nspec:\n  validationFailureAction: {action}\n  rules: {{strictMtls: true}}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: lenient}}\nspec: {{mtls: {{mode: PERMISSIVE}}}}\n")
    };
    let o = run_stdin(&["validate", "-f", "-"], files("Enforce").as_bytes());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let text = stdout(&o);
    assert!(
        text.contains("<stdin>:11:21: error[WEFT0130]")
            && text.contains("rule strictMtls")
            && text.contains("set mtls.mode to STRICT"),
        "{text}"
    );
    let o = run_stdin(&["validate", "-f", "-"], files("Audit").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(stdout(&o).contains("warning[WEFT0130]"), "{}", stdout(&o));
    // A misspelt rule is refused with the ones there are.
    let o = run_stdin(
        &["validate", "-f", "-"],
        b"apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: p}\nspec:\n  rules: {strictMTLS: true}\n",
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("strictMtls"), "{}", stdout(&o));
}

/// Kyverno's published Istio policies, unchanged, judge the files as
/// Kyverno would: their Audit findings are warnings with Kyverno's
/// message at the field that broke the rule, and the same policy set to
/// Enforce fails validation.
#[test]
fn validate_judges_the_files_by_kyverno_policies() {
    let fixtures = repo().join("crates/weft-kyverno/tests/fixtures");
    let policies = fixtures.join("kyverno-policies-istio");
    let resources = fixtures.join("resources.yaml");
    let o = run(&[
        "validate",
        "-f",
        policies.to_str().unwrap(),
        "-f",
        resources.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("resources.yaml:48:11: warning[WEFT0130]")
            && text.contains("validation error: PeerAuthentication resources may only set UNSET or STRICT for the mode. rule validate-mtls failed at path /spec/mtls/mode/ (audited by ClusterPolicy enforce-strict-mtls, rule validate-mtls)"),
        "{text}"
    );
    // The mutate policies label the Namespaces first: the one without
    // the injection label passes the policy that asks for it.
    assert!(
        text.lines().any(|l| l.contains("info[WEFT0130]: Namespace unlabelled: mutated by")
            && l.contains("ClusterPolicy add-sidecar-injection-namespace (rule add-istio-injection-enabled)")),
        "{text}"
    );
    assert!(
        !text.contains("rule check-istio-injection-enabled failed"),
        "{text}"
    );
    let dir = tmp("kyverno-enforce");
    std::fs::create_dir_all(&dir).unwrap();
    let enforced = std::fs::read_to_string(policies.join("enforce-strict-mtls.yaml"))
        .unwrap()
        .replace(
            "validationFailureAction: Audit",
            "validationFailureAction: Enforce",
        );
    std::fs::write(dir.join("policy.yaml"), enforced).unwrap();
    let o = run(&[
        "validate",
        "-f",
        dir.to_str().unwrap(),
        "-f",
        resources.to_str().unwrap(),
    ]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("resources.yaml:48:11: error[WEFT0130]")
            && text.contains("refused by ClusterPolicy enforce-strict-mtls")
            && text.contains("make spec.mtls.mode match \"UNSET | STRICT\""),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_output_is_for_tools() {
    let o = run_stdin(&["validate", "-f", "-", "-o", "json"], b"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {mtls: {mode: STRCT}}\n");
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let d = &v["diagnostics"][0];
    assert_eq!(d["file"], "<stdin>");
    assert_eq!(d["line"], 4);
    assert_eq!(d["field"], "spec.mtls.mode");
    assert_eq!(d["severity"], "error");
    assert!(d["fix"].as_str().unwrap().contains("did you mean `STRICT`"));
}

#[test]
fn stdin_json_and_multi_document_yaml_load() {
    let json = br#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"name": "http", "port": 80}]}}"#;
    let o = run_stdin(&["validate", "-f", "-"], json);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 resources"));
    let multi = b"apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\n";
    let o = run_stdin(&["validate", "-f", "-"], multi);
    assert!(stdout(&o).contains("2 resources"), "{}", stdout(&o));
}

#[test]
fn a_directory_with_one_bad_file_reports_it_and_loads_the_rest() {
    let dir = tmp("dir");
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    std::fs::write(
        dir.join("good.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: good}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nested/also-good.yml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: also-good}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("other.yaml"),
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml").unwrap();
    let o = run(&["validate", "-f", dir.to_str().unwrap()]);
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("broken.yaml:4:"), "{text}");
    assert!(text.contains("skipped StatefulSet"), "{text}");
    assert!(text.contains("4 files, 2 resources"), "{text}");
}

/// Hostile input gets a clear error quickly and never a panic.
#[test]
fn hostile_input_is_bounded_and_never_panics() {
    let dir = tmp("hostile");
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("garbage.yaml", (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "error"),
        ("nonutf8.yaml", b"apiVersion: v1\nkind: \xff\xfe\n".to_vec(), "not UTF-8"),
        ("deep.yaml", "[".repeat(100_000).into_bytes(), "nesting"),
        ("dupkeys.yaml", b"apiVersion: v1\nkind: Service\nkind: Pod\nmetadata: {name: a}\n".to_vec(), "duplicate key `kind`"),
        ("types.yaml", b"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: eighty}]}\n".to_vec(), "expected an integer"),
        ("huge.yaml", {
            let mut v = b"apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector:\n".to_vec();
            while v.len() < 10 * 1024 * 1024 {
                v.extend_from_slice(format!("    k{}: v\n", v.len()).as_bytes());
            }
            v
        }, "weft reads at most"),
    ];
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
            p = i - 1
        ));
    }
    cases.push(("bomb.yaml", bomb.into_bytes(), "alias"));
    for (name, bytes, expect) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let started = Instant::now();
        let o = run(&["validate", "-f", path.to_str().unwrap()]);
        let text = stdout(&o);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {text}{err}");
        assert!(!err.contains("panicked"), "{name} panicked: {err}");
        assert!(
            text.contains(expect),
            "{name}: expected {expect:?} in:\n{text}"
        );
        // Generous bound so a slow CI machine passes; an unbounded parse
        // of these inputs takes minutes or exhausts memory.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn proxy_config_prints_a_sidecar_and_a_gateway() {
    // An app or Deployment name names a workload when it is unambiguous.
    for name in [
        "productpage",
        "deploy/productpage-v1",
        "default/productpage-v1-0",
    ] {
        let o = run(&[
            "proxy-config",
            name,
            "-f",
            "examples/bookinfo",
            "-o",
            "json",
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["proxy"]["workload"], "productpage-v1", "{name}");
    }
    let o = run(&["proxy-config", "reviews", "-f", "examples/bookinfo"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("name one of them"));

    let o = run(&[
        "proxy-config",
        "reviews-v1",
        "-f",
        "examples/bookinfo",
        "-f",
        "examples/bookinfo-tasks/virtual-service-reviews-test-v2.yaml",
        "--section",
        "routes",
        "-o",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reviews = v
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["virtualHosts"].as_array().unwrap())
        .find(|vh| vh["name"] == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    assert_eq!(
        reviews["routes"][0]["matches"][0]["headers"][0]["name"],
        "end-user"
    );
    assert_eq!(
        reviews["routes"][0]["action"]["forward"][0]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local"
    );
    assert_eq!(
        reviews["routes"][1]["action"]["forward"][0]["cluster"],
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );

    let o = run(&[
        "proxy-config",
        "istio-ingressgateway",
        "-f",
        "examples/bookinfo",
    ]);
    let text = stdout(&o);
    assert!(text.contains("name: gateway|8080"), "{text}");
    assert!(text.contains("exact: /productpage"), "{text}");

    let o = run(&["proxy-config", "nobody", "-f", "examples/bookinfo"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known workloads: default/details-v1"));
}

/// Istio's mesh ConfigMap: errors inside the embedded `mesh` text point at
/// the line and column in the file, not in the string.
#[test]
fn mesh_config_errors_point_into_the_embedded_text() {
    let cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n    extensionProviders:\n    - name: a\n      envoyExtAuthzHttp:\n        service: x.default.svc.cluster.local\n        prot: 8000\n";
    let o = run_stdin(&["validate", "-f", "-"], cm);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr).into_owned() + &stdout(&o);
    assert!(err.contains("<stdin>:10:9:"), "{err}");
    assert!(err.contains("did you mean `port`?"), "{err}");
    // Other ConfigMaps are not the mesh's business.
    let other = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-settings}\ndata: {mesh: 'not: [valid'}\n";
    assert_eq!(
        run_stdin(&["validate", "-f", "-"], other).status.code(),
        Some(0)
    );
}

#[test]
fn a_proxy_config_annotation_that_cannot_be_read_is_a_warning_at_its_line() {
    let yaml = b"apiVersion: weft.dev/v1\nkind: Workload\nmetadata:\n  name: busy\n  annotations:\n    proxy.istio.io/config: \"concurrency: lots\"\nspec: {command: weft}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata:\n      labels: {app: web}\n      annotations: {proxy.istio.io/config: \"{concurrency: 2\"}\n    spec: {containers: [{name: web, image: web}]}\n";
    let o = run_stdin(&["validate", "-f", "-", "-o", "json"], yaml);
    // A warning: the proxy's default applies, the configuration loads.
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let ds = v["diagnostics"].as_array().unwrap();
    let find = |field: &str| {
        ds.iter()
            .find(|d| d["field"] == field)
            .unwrap_or_else(|| panic!("no diagnostic on {field}: {v}"))
    };
    let w = find(r#"metadata.annotations["proxy.istio.io/config"]"#);
    assert_eq!(w["severity"], "warning");
    assert_eq!(w["line"], 6);
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("\"lots\" is not a whole number"),
        "{w}"
    );
    assert!(w["fix"].as_str().unwrap().contains("concurrency: 2"), "{w}");
    let d = find(r#"spec.template.metadata.annotations["proxy.istio.io/config"]"#);
    assert_eq!(d["line"], 16);
    assert!(d["message"].as_str().unwrap().contains("not YAML"), "{d}");
    // Good annotations say nothing.
    let good = b"apiVersion: weft.dev/v1\nkind: Workload\nmetadata:\n  name: busy\n  annotations: {proxy.istio.io/config: \"concurrency: 2\"}\nspec: {command: weft}\n";
    let o = run_stdin(&["validate", "-f", "-", "-o", "json"], good);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert_eq!(v["diagnostics"], serde_json::json!([]), "{v}");
}

/// `weft analyze` as CI jobs written for `istioctl analyze` use it: exit
/// 79 for issues at the threshold, 65 for input it cannot parse, 0 for
/// `-o json` whatever it found; thresholds, suppressions (flag and
/// annotation), one analyzer at a time, and the list of analyzers.
#[test]
fn analyze_has_istioctls_exit_codes_flags_and_json() {
    let dir = tmp("analyze");
    let vs = |name: &str, annotations: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  annotations: {{{annotations}}}\nspec:\n  hosts: [{name}]\n  http:\n  - route: [{{destination: {{host: nowhere}}}}]\n---\n")
    };
    let broken = dir.join("broken.yaml");
    std::fs::write(&broken, vs("a", "")).unwrap();
    let path = broken.to_str().unwrap();

    let o = run(&["analyze", "-f", path]);
    assert_eq!(o.status.code(), Some(79), "{}", stdout(&o));
    assert!(stdout(&o).contains("error[IST0101]"), "{}", stdout(&o));

    let o = run(&["analyze", "-f", path, "-o", "json"]);
    assert_eq!(o.status.code(), Some(0), "istioctl's -o json exits 0");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    let m = &v.as_array().expect("a list of messages")[0];
    assert_eq!(m["code"], "IST0101");
    assert_eq!(m["level"], "Error");
    assert_eq!(m["origin"], "VirtualService default/a");
    assert_eq!(m["reference"], format!("{path}:9"));
    assert_eq!(m["message"], "Referenced host not found: \"nowhere\"");
    assert_eq!(m["analyzer"], "virtualservice.destinationhost");
    assert!(m["documentationUrl"]
        .as_str()
        .unwrap()
        .ends_with("/ist0101/?ref=istioctl-analyze"));

    let o = run(&["analyze", "-f", path, "-o", "yaml"]);
    assert!(stdout(&o).contains("code: IST0101"), "{}", stdout(&o));

    // Suppressed by the flag, with a glob, or by the resource's annotation.
    let o = run(&[
        "analyze",
        "-f",
        path,
        "-S",
        "IST0101=VirtualService default/*",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = run(&["analyze", "-f", path, "-S", "IST0101=VirtualService prod/*"]);
    assert_eq!(o.status.code(), Some(79), "{}", stdout(&o));
    let annotated = dir.join("annotated.yaml");
    std::fs::write(
        &annotated,
        vs("b", "galley.istio.io/analyze-suppress: \"IST0118,IST0101\""),
    )
    .unwrap();
    let o = run(&["analyze", "-f", annotated.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(!stdout(&o).contains("IST0101"), "{}", stdout(&o));

    // One analyzer, by weft's name or istioctl's.
    for name in [
        "gateway.conflictinggateways",
        "gateway.ConflictingGatewayAnalyzer",
    ] {
        let o = run(&["analyze", "-f", path, "--analyzer", name]);
        assert_eq!(o.status.code(), Some(0), "{name}: {}", stdout(&o));
    }
    assert_eq!(
        run(&["analyze", "-f", path, "--analyzer", "no.such"])
            .status
            .code(),
        Some(2)
    );

    // Thresholds: a service port named against Istio's convention is Info.
    let svc = dir.join("svc.yaml");
    std::fs::write(&svc, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selector: {app: s}\n  ports: [{name: foo, port: 80}]\n").unwrap();
    let svc = svc.to_str().unwrap();
    let o = run(&["analyze", "-f", svc]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("info[IST0118]"), "{}", stdout(&o));
    let o = run(&["analyze", "-f", svc, "--failure-threshold", "Info"]);
    assert_eq!(o.status.code(), Some(79), "{}", stdout(&o));
    let o = run(&["analyze", "-f", svc, "--output-threshold", "warning"]);
    assert!(!stdout(&o).contains("IST0118"), "{}", stdout(&o));

    // Input that cannot be parsed is 65, not an analysis issue.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "a: [\n").unwrap();
    assert_eq!(
        run(&["analyze", "-f", bad.to_str().unwrap()]).status.code(),
        Some(65)
    );

    // A gateway's credential that cannot serve is IST0161, found in the
    // secrets directory beside the configuration as `weft up` finds it.
    let mesh = dir.join("mesh");
    std::fs::create_dir_all(mesh.join("secrets/web-cert")).unwrap();
    std::fs::write(
        mesh.join("secrets/web-cert/tls.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(mesh.join("secrets/web-cert/tls.key"), "not a key").unwrap();
    std::fs::write(mesh.join("gw.yaml"), "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: web}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [web.example.com]\n    tls: {mode: SIMPLE, credentialName: web-cert}\n").unwrap();
    let o = run(&["analyze", "-f", mesh.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(79), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("error[IST0161]: Gateway default/web"),
        "{}",
        stdout(&o)
    );

    let o = run(&["analyze", "-L", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).expect("valid JSON");
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["istio"] == "gateway.ConflictingGatewayAnalyzer"));
}
