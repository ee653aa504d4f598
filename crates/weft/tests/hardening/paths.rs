//! A path-based AuthorizationPolicy bypassed with dot segments, checked on
//! every listener kind with real clients (curl `--path-as-is`, HTTP/2 with
//! prior knowledge) against a real application that resolves `..` itself
//! (Python's `http.server`) and an echo app that reports the path it got.

use crate::common::curl;
use crate::common::mesh::{up_with, Mesh};

/// A files app (Python's http.server, which resolves `..`) and an echo app,
/// each behind an ALLOW policy with an exact, a prefix and a suffix path,
/// both routed from the ingress by host.
fn guarded_apps(files_dir: &std::path::Path) -> String {
    let mut yaml = String::new();
    for (app, command, args) in [
        (
            "files",
            "sh",
            format!(
                "[-c, 'cd {} && exec python3 -m http.server --bind \"$HOST\" \"$PORT\"']",
                files_dir.display()
            ),
        ),
        (
            "echo",
            "weft",
            "[sample-app, httpbin, --name, echo-v1]".to_owned(),
        ),
    ] {
        yaml += &format!(
            r#"
apiVersion: weft.dev/v1
kind: Workload
metadata: {{name: {app}-v1, labels: {{app: {app}, version: v1}}}}
spec:
  command: {command}
  args: {args}
  ports: [{{name: http, port: 8000}}]
  serviceAccount: {app}
---
apiVersion: v1
kind: Service
metadata: {{name: {app}}}
spec:
  selector: {{app: {app}}}
  ports: [{{name: http, port: 8000}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: {app}-public}}
spec:
  selector: {{matchLabels: {{app: {app}}}}}
  action: ALLOW
  rules:
  - to:
    - operation:
        methods: [GET]
        paths: ["/public/*", "/exact.txt", "*.pub"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {app}-ingress}}
spec:
  hosts: [{app}.test]
  gateways: [bookinfo-gateway]
  http:
  - route:
    - destination: {{host: {app}, port: {{number: 8000}}}}
---
"#
        );
    }
    yaml
}

fn files_tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("public")).unwrap();
    std::fs::write(dir.join("public/index.txt"), "public index\n").unwrap();
    std::fs::write(dir.join("exact.txt"), "exact\n").unwrap();
    std::fs::write(dir.join("notes.pub"), "suffix\n").unwrap();
    std::fs::write(dir.join("secret.txt"), "TOP SECRET\n").unwrap();
}

/// The ways a client may write a path that leaves `/public/` (or ends in
/// `.pub`, or names `/exact.txt`), with the path the policy, the router and
/// the application must all see under Istio's default normalization.
const VARIANTS: &[(&str, &str)] = &[
    ("/public/../secret.txt", "/secret.txt"),
    ("/public/%2e%2e/secret.txt", "/secret.txt"),
    ("/public/%2E%2E/secret.txt", "/secret.txt"),
    ("/public/.%2e/secret.txt", "/secret.txt"),
    ("/public/./../secret.txt", "/secret.txt"),
    ("/public/..\\secret.txt", "/secret.txt"),
    ("/public//../secret.txt", "/public/secret.txt"),
    ("//public/../secret.txt", "//secret.txt"),
    ("/exact.txt/../secret.txt", "/secret.txt"),
    ("/notes.pub/../secret.txt", "/secret.txt"),
    ("/secret.txt/../notes.pub", "/notes.pub"),
    ("/public/%69ndex.txt", "/public/index.txt"),
    ("/public/index.txt;x=1", "/public/index.txt;x=1"),
    ("/PUBLIC/../public/index.txt", "/public/index.txt"),
    ("/secret.txt.", "/secret.txt."),
    ("/public/..;/secret.txt", "/public/..;/secret.txt"),
];

/// What the ALLOW policy says of a normalized path.
fn allowed(path: &str) -> bool {
    path.starts_with("/public/") || path == "/exact.txt" || path.ends_with(".pub")
}

/// Every way a request reaches the guarded apps: through a sidecar's
/// outbound proxy, straight to the app's sidecar inbound port, and through
/// the ingress, over HTTP/1.1 and HTTP/2.
fn entries(m: &Mesh, app: &str) -> Vec<(String, Vec<String>)> {
    let outbound = m.outbound_of("default/productpage-v1-0");
    let inbound_ip = m.proxy(&format!("default/{app}-v1-0"))["outbound"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .0
        .to_owned();
    let host = format!("{app}.test");
    vec![
        (
            "outbound HTTP/1.1".into(),
            vec!["-x".into(), outbound.clone(), format!("http://{app}:8000")],
        ),
        (
            "outbound HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                "-H".into(),
                format!("host: {app}:8000"),
                outbound,
            ],
        ),
        (
            "inbound HTTP/1.1".into(),
            vec![format!("http://{inbound_ip}:8000")],
        ),
        (
            "inbound HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                format!("http://{inbound_ip}:8000"),
            ],
        ),
        (
            "ingress HTTP/1.1".into(),
            vec![
                "-H".into(),
                format!("host: {host}"),
                format!("http://{}", m.ingress),
            ],
        ),
        (
            "ingress HTTP/2".into(),
            vec![
                "--http2-prior-knowledge".into(),
                "-H".into(),
                format!("host: {host}"),
                format!("http://{}", m.ingress),
            ],
        ),
    ]
}

fn get(entry: &[String], path: &str) -> crate::common::Reply {
    let (base, flags) = entry.split_last().unwrap();
    let url = format!("{base}{path}");
    let mut args: Vec<&str> = vec!["--path-as-is"];
    args.extend(flags.iter().map(String::as_str));
    args.push(&url);
    curl(&args)
}

#[test]
fn dot_segments_cannot_bypass_a_path_policy_on_any_listener() {
    let files = std::env::temp_dir().join(format!("weft-files-{}", std::process::id()));
    files_tree(&files);
    let m = up_with(130, &guarded_apps(&files));

    let mut failures = Vec::new();
    // The echo app says which path it was given: the one the policy saw.
    for (entry, args) in entries(&m, "echo") {
        for (sent, normalized) in VARIANTS {
            let r = get(&args, sent);
            let want = if allowed(normalized) { 200 } else { 403 };
            let got_path = serde_json::from_str::<serde_json::Value>(&r.body)
                .ok()
                .and_then(|v| v["path"].as_str().map(str::to_owned));
            let ok = r.status == want && (want == 403 || got_path.as_deref() == Some(*normalized));
            if !ok {
                failures.push(format!(
                    "{entry} {sent}: {} (want {want}, path {normalized}), app got {got_path:?}",
                    r.status
                ));
            }
        }
    }
    // The files app resolves dot segments itself: the secret never leaks.
    for (entry, args) in entries(&m, "files") {
        for (sent, _) in VARIANTS {
            let r = get(&args, sent);
            if r.body.contains("TOP SECRET") {
                failures.push(format!("{entry} {sent}: the secret leaked ({})", r.status));
            }
        }
        let r = get(&args, "/public/index.txt");
        if (r.status, r.body.as_str()) != (200, "public index\n") {
            failures.push(format!("{entry}: the public file: {} {}", r.status, r.body));
        }
    }
    // A NUL is refused at the edge, with the flag and reason.
    for (entry, args) in entries(&m, "echo") {
        let r = get(&args, "/public/a%00b");
        let reason = r.header("x-weft-reason").unwrap_or_default();
        if r.status != 400 || !reason.starts_with("DPE") {
            failures.push(format!("{entry} %00: {} {reason:?}", r.status));
        }
    }
    let _ = std::fs::remove_dir_all(&files);
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The access log records the normalized path.
    let log = std::fs::read_to_string(m.w.dir.join("run/logs/echo-v1-0.access.log")).unwrap();
    assert!(log.contains("\"/public/index.txt\""), "{log}");
    assert!(!log.contains("%2e%2e"), "{log}");
}

/// MeshConfig `pathNormalization: DECODE_AND_MERGE_SLASHES`: encoded
/// slashes are decoded and slashes merged before the policy sees the
/// path; with `NONE` nothing changes, as Istio's.
#[test]
fn mesh_config_selects_the_normalization() {
    let files = std::env::temp_dir().join(format!("weft-files-mc-{}", std::process::id()));
    files_tree(&files);
    let mesh_config = |mode: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: istio, namespace: istio-system}}\ndata:\n  mesh: |\n    pathNormalization:\n      normalization: {mode}\n"
        )
    };
    let m = up_with(
        131,
        &(guarded_apps(&files) + &mesh_config("DECODE_AND_MERGE_SLASHES")),
    );
    let ingress = |path: &str| {
        curl(&[
            "--path-as-is",
            "-H",
            "host: echo.test",
            &format!("http://{}{path}", m.ingress),
        ])
    };
    let path_of = |r: &crate::common::Reply| -> String {
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["path"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let r = ingress("/public//a%2Fb%5Cc");
    assert_eq!((r.status, path_of(&r)), (200, "/public/a/b/c".to_owned()));
    // Under BASE this would reach the app as `/public/..%2Fsecret.txt`,
    // which an app that decodes %2F resolves to /secret.txt.
    assert_eq!(ingress("/public/..%2Fsecret.txt").status, 403);
    let files_r = curl(&[
        "--path-as-is",
        "-H",
        "host: files.test",
        &format!("http://{}/public/..%2Fsecret.txt", m.ingress),
    ]);
    assert!(!files_r.body.contains("TOP SECRET"), "{}", files_r.body);

    m.write_config("extra.yaml", &(guarded_apps(&files) + &mesh_config("NONE")));
    let started = std::time::Instant::now();
    loop {
        let r = ingress("/public/x/../y");
        if r.status == 200 && path_of(&r) == "/public/x/../y" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "NONE did not take effect: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = std::fs::remove_dir_all(&files);
}
