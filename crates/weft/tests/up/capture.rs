//! `weft up --capture` and `weft proxy --capture`: pods in network
//! namespaces on nodes, Istio's capture rules, DNS by the mesh. Root only:
//! each test says why it skips without it.

use std::time::{Duration, Instant};

use super::common;
use super::common::curl;

/// Whether this test may make network namespaces and nftables rules; if
/// not, says why on one line.
pub(super) fn can_capture() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: transparent capture needs root (network namespaces, nftables)");
        return false;
    }
    if std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: `nft` is not installed (Debian's nftables package)");
        return false;
    }
    true
}

/// `cmd` inside network namespace `ns`, with its output.
pub(super) fn in_netns(ns: &str, cmd: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .args(cmd)
        .output()
        .unwrap()
}

/// The network namespaces whose names pass `keep`.
/// The HTTP status `curl` gets for `url` from inside `ns` (`000` when
/// it got no answer within `secs`).
pub(super) fn status_from(ns: &str, url: &str, secs: u32) -> String {
    let out = in_netns(
        ns,
        &[
            "curl",
            "-s",
            "-m",
            &secs.to_string(),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The HTTP status `curl` gets for `url` from inside `ns` when it runs as
/// the proxy's own uid and gid (1337), which capture lets go around the
/// proxy, from address `from` when given (`000`: no answer within 3 s).
pub(super) fn status_as_proxy_uid(ns: &str, url: &str, from: Option<&str>) -> String {
    let mut cmd = vec![
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        "curl",
        "-s",
        "-m",
        "3",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    if let Some(ip) = from {
        cmd.extend(["--interface", ip]);
    }
    cmd.push(url);
    String::from_utf8_lossy(&in_netns(ns, &cmd).stdout).into_owned()
}

/// A host outside the mesh: a namespace of the test's own with an
/// httpbin on 192.0.2.10:8000, joined by a veth to the mesh network's
/// namespace only (192.0.2.1 there). Removed when dropped, whatever the
/// test's outcome.
pub(super) struct OutsideHost {
    // Dropped in this order: the server, then its namespace.
    _server: common::Proc,
    _netns: NetnsGone,
}

/// Deletes a namespace of the test's when dropped.
struct NetnsGone(String);

impl Drop for NetnsGone {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

impl OutsideHost {
    /// With its httpbin on port 8000.
    fn attach(mesh_net: &str) -> OutsideHost {
        OutsideHost::attach_on(mesh_net, 8000)
    }

    /// Runs `cmd` on the outside host, stopped when the result drops.
    pub(super) fn spawn(&self, name: &str, cmd: &[&str]) -> common::Proc {
        common::Proc {
            child: std::process::Command::new("ip")
                .args(["netns", "exec", &self._netns.0])
                .args(cmd)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            name: name.into(),
        }
    }

    /// With its httpbin on `port`.
    pub(super) fn attach_on(mesh_net: &str, port: u16) -> OutsideHost {
        let netns = format!("weft-e2e-outside-{}", std::process::id());
        let tag = std::process::id() % 100_000;
        let (inner, outer) = (format!("wxo{tag}"), format!("wxm{tag}"));
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &netns])
            .output();
        ip(&["netns", "add", &netns]);
        let gone = NetnsGone(netns.clone());
        ip(&[
            "link", "add", &inner, "netns", &netns, "type", "veth", "peer", "name", &outer,
            "netns", mesh_net,
        ]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        ip(&["-n", &netns, "addr", "add", "192.0.2.10/24", "dev", &inner]);
        // More servers on the same host (the egress tasks' nginx and
        // Wikipedia).
        ip(&["-n", &netns, "addr", "add", "192.0.2.11/24", "dev", &inner]);
        ip(&["-n", &netns, "addr", "add", "192.0.2.12/24", "dev", &inner]);
        ip(&["-n", &netns, "link", "set", &inner, "up"]);
        ip(&["-n", &netns, "route", "add", "default", "via", "192.0.2.1"]);
        ip(&["-n", mesh_net, "addr", "add", "192.0.2.1/24", "dev", &outer]);
        ip(&["-n", mesh_net, "link", "set", &outer, "up"]);
        let host = OutsideHost {
            _server: common::Proc {
                child: std::process::Command::new("ip")
                    .args(["netns", "exec", &netns, env!("CARGO_BIN_EXE_weft")])
                    .args([
                        "sample-app",
                        "httpbin",
                        "--listen",
                        &format!("192.0.2.10:{port}"),
                        "--name",
                        "outside",
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .unwrap(),
                name: "outside".into(),
            },
            _netns: gone,
        };
        common::wait_until(
            Duration::from_secs(10),
            || status_from(mesh_net, &format!("http://192.0.2.10:{port}/ip"), 2) == "200",
            || "the outside host does not answer".into(),
        );
        host
    }
}

fn netns_where(keep: impl Fn(&str) -> bool) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| keep(n))
                .collect()
        })
        .unwrap_or_default()
}

/// The network namespaces whose names start with `prefix`.
pub(super) fn netns_starting(prefix: &str) -> Vec<String> {
    netns_where(|n| n.starts_with(prefix))
}

/// The network namespaces whose names end with `suffix`.
pub(super) fn netns_ending(suffix: &str) -> Vec<String> {
    netns_where(|n| n.ends_with(suffix))
}

/// `weft up --capture`: each replica in its own network namespace, its
/// traffic captured by Istio's nftables rules. A plain curl and nc in a
/// pod, with no proxy variable, reach services by their addresses over
/// mTLS the application knows nothing of; an excluded port bypasses the
/// caller's proxy; the user still reaches the ingress and admin API on
/// this machine's loopback; and nothing is left behind after SIGTERM.
#[test]
fn capture_puts_pods_in_namespaces_and_hands_their_traffic_to_the_mesh() {
    if !can_capture() {
        return;
    }
    let workload = |name: &str, app: &str, port: &str, annotations: &str| {
        format!(
            "apiVersion: weft.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\n  annotations: {{{annotations}}}\nspec:\n  command: weft\n  args: [sample-app, {app}]\n  ports: [{port}]\n---\n"
        )
    };
    // The server's inbound side is captured with TPROXY: its application
    // sees each client's own address.
    let yaml = workload(
        "server",
        "httpbin",
        "{name: http, port: 8000}",
        "sidecar.istio.io/interceptionMode: TPROXY",
    )
        + &workload("client", "httpbin", "{name: http, port: 8000}", "")
        + &workload(
            "bypass",
            "httpbin",
            "{name: http, port: 8000}",
            "traffic.sidecar.istio.io/excludeOutboundPorts: \"8000\"",
        )
        + &workload("echo", "tcp-echo", "{name: tcp, port: 9000}", "")
        // A pod whose capture cannot be built: refused alone, with the
        // annotation and the fix; the rest of the mesh serves.
        + &workload(
            "broken",
            "httpbin",
            "{name: http, port: 8000}",
            "traffic.sidecar.istio.io/includeInboundPorts: \"http\"",
        )
        + r#"apiVersion: v1
kind: Service
metadata: {name: server}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: tcp, port: 9000}]
"#;
    // Bookinfo beside them, unchanged: its services find each other by
    // name through the proxies' DNS. Names that are not the mesh's go to
    // 198.19.0.1, where the test runs a resolver of its own.
    let m = common::mesh::up_in(
        common::World::any(),
        &yaml,
        &["--capture", "--dns-upstream", "198.19.0.1"],
        &[],
    );
    // Each replica's pod, as `weft status` names it.
    let status: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("http://{}/api/status", m.admin)]).body).unwrap();
    let replica = |name: &str| {
        status["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == format!("default/{name}-0"))
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .clone()
    };
    let pod = |name: &str| {
        let ns = replica(name)["netns"].as_str().unwrap().to_owned();
        assert_eq!(netns_ending(&ns), vec![ns.clone()], "{name}'s pod exists");
        ns
    };
    let (client, server, bypass) = (pod("client"), pod("server"), pod("bypass"));
    let up_log = m.w.log("up");
    assert!(
        up_log.contains("not starting default/broken-0")
            && up_log.contains("traffic.sidecar.istio.io/includeInboundPorts")
            && up_log.contains("list port numbers"),
        "{up_log}"
    );
    let mesh_prefix = client.split("-default-").next().unwrap();
    assert!(netns_ending(&format!("{mesh_prefix}-default-broken-0")).is_empty());
    let mesh_net = format!("{mesh_prefix}-mesh");
    let _resolver = common::Proc {
        child: std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &mesh_net,
                "dnsmasq",
                "--keep-in-foreground",
            ])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--user=root",
            ])
            .args([
                "--listen-address=198.19.0.1",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!(
                "--pid-file={}",
                m.w.dir.join("dnsmasq.pid").display()
            ))
            .arg("--address=/outside.test/198.51.100.7")
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base)"),
        name: "dnsmasq".into(),
    };

    // Istio's rules, as an Istio user reads them.
    let rules = String::from_utf8_lossy(&in_netns(&bypass, &["nft", "list", "ruleset"]).stdout)
        .into_owned();
    for want in [
        "table inet istio-proxy-nat",
        "chain istio-output",
        "redirect to :15001",
        "redirect to :15006",
        "tcp dport 8000 counter",
    ] {
        assert!(rules.contains(want), "{want} missing from\n{rules}");
    }

    // Addresses: the server pod's from the status, the services' as the
    // control plane gave them.
    let pod_ip = |name: &str| {
        replica(name)["listens"][0]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .0
            .to_owned()
    };
    let server_ip = pod_ip("server");
    let services: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(m.w.dir.join("run/service-addresses.json")).unwrap(),
    )
    .unwrap();
    let vip = |host: &str| services["replicas"][host].as_str().unwrap().to_owned();
    let (server_vip, echo_vip) = (
        vip("server.default.svc.cluster.local"),
        vip("echo.default.svc.cluster.local"),
    );

    // HTTP to the service's address, from a plain curl in the client pod
    // (`weft exec`, as `kubectl exec`).
    let got = common::weft()
        .args(["exec", "client", "--admin", &m.admin, "--"])
        .args([
            "curl",
            "-s",
            "-m",
            "10",
            &format!("http://{server_vip}:8000/headers"),
        ])
        .output()
        .unwrap();
    assert!(
        got.status.success(),
        "curl in the client pod: {}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("server-0"),
        "{got:?}"
    );

    // TCP to the service's address, from nc in the client pod.
    let echoed = in_netns(
        &client,
        &[
            "sh",
            "-c",
            &format!("printf 'hello capture\\n' | nc -q 2 -w 5 {echo_vip} 9000"),
        ],
    );
    assert!(
        String::from_utf8_lossy(&echoed.stdout).contains("hello capture"),
        "nc to {echo_vip}:9000: {echoed:?}"
    );

    // An excluded port bypasses the caller's proxy: the server's inbound
    // capture still takes the call, in plain text.
    let direct = in_netns(
        &bypass,
        &[
            "curl",
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{server_ip}:8000/status/200"),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&direct.stdout), "200", "{direct:?}");
    let bypass_log =
        std::fs::read_to_string(m.w.dir.join("run/logs/bypass-0.access.log")).unwrap_or_default();
    assert!(!bypass_log.contains("/status/200"), "{bypass_log}");

    // DNS by the mesh: the pod's resolver (Kubernetes' search path) is
    // answered by its proxy, over UDP and TCP, so names work as in a
    // cluster; other names are asked upstream.
    let dig = |args: &[&str]| {
        let out = in_netns(
            &client,
            &[&["dig", "+short", "+time=2", "+tries=1"], args].concat(),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(dig(&["server.default.svc.cluster.local"]), server_vip);
    assert_eq!(dig(&["+tcp", "echo.default.svc.cluster.local"]), echo_vip);
    assert_eq!(dig(&["+search", "server"]), server_vip);
    // `server.default` is first tried as `server.default.default.svc…`,
    // which the proxy knows does not exist: no trip upstream.
    assert_eq!(dig(&["+search", "server.default"]), server_vip);
    let started = Instant::now();
    while dig(&["outside.test"]) != "198.51.100.7" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "outside.test is not asked upstream: {:?}",
            dig(&["outside.test"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let by_name = common::weft()
        .args(["exec", "client", "--admin", &m.admin, "--"])
        .args(["curl", "-s", "-m", "10", "http://server:8000/headers"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&by_name.stdout).contains("server-0"),
        "{by_name:?}"
    );
    let echoed = in_netns(
        &client,
        &[
            "sh",
            "-c",
            "printf 'hello by name\\n' | nc -q 2 -w 5 echo 9000",
        ],
    );
    assert!(
        String::from_utf8_lossy(&echoed.stdout).contains("hello by name"),
        "nc to echo:9000: {echoed:?}"
    );

    // TPROXY: Istio's mangle rules in the server's pod, and its
    // application sees who called, over mTLS or in plain text.
    let server_rules =
        String::from_utf8_lossy(&in_netns(&server, &["nft", "list", "ruleset"]).stdout)
            .into_owned();
    assert!(
        server_rules.contains("tproxy ip to :15006"),
        "{server_rules}"
    );
    let origin = |pod: &str, url: &str| {
        let out = in_netns(pod, &["curl", "-s", "-m", "10", url]);
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        body["origin"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(origin(&client, "http://server:8000/ip"), pod_ip("client"));
    assert_eq!(
        origin(&bypass, &format!("http://{server_ip}:8000/ip")),
        pod_ip("bypass")
    );

    // The call through capture was mTLS, which neither application knows
    // of; the bypassing one was not.
    let metrics = String::from_utf8_lossy(
        &in_netns(
            &server,
            &["curl", "-s", &format!("http://{server_ip}:15020/metrics")],
        )
        .stdout,
    )
    .into_owned();
    let series = |source: &str, security: &str| {
        metrics.lines().any(|l| {
            l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains(&format!("source_workload=\"{source}\""))
                && l.contains(&format!("connection_security_policy=\"{security}\""))
        })
    };
    assert!(series("client", "mutual_tls"), "{metrics}");
    assert!(series("unknown", "none"), "{metrics}");

    // A NetworkPolicy isolating the server to callers labelled
    // app=client, judged by pod address as a CNI would: the client's call
    // (over the tunnel, from its pod's address) gets in, the bypassing
    // pod's plain call to the server's address does not; with the policy
    // gone, it does again.
    std::fs::write(
        m.cfg.join("netpol.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: server-ingress}\nspec:\n  podSelector: {matchLabels: {app: server}}\n  ingress:\n  - from:\n    - podSelector: {matchLabels: {app: client}}\n    ports:\n    - port: http\n",
    )
    .unwrap();
    let direct = format!("http://{server_ip}:8000/ip");
    common::wait_until(
        Duration::from_secs(15),
        || status_from(&bypass, &direct, 5) == "403",
        || {
            format!(
                "the bypassing pod still gets in: {}",
                status_from(&bypass, &direct, 5)
            )
        },
    );
    assert_eq!(status_from(&client, "http://server:8000/ip", 10), "200");
    std::fs::remove_file(m.cfg.join("netpol.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || status_from(&bypass, &direct, 5) == "200",
        || "the NetworkPolicy outlived its file".into(),
    );

    // An external host outside the mesh network (a namespace of the
    // test's, 192.0.2.10, reached only through the mesh network's
    // namespace, where the gateways run). With a Guardrail holding egress
    // to the egress gateway, a pod's own way out (through its sidecar's
    // passthrough, or bypassing it as root) is dropped where the mesh
    // meets the outside, counted and logged; the gateways' namespace still
    // gets out; audited, it passes and is counted; gone, the table is too.
    let outside = OutsideHost::attach(&mesh_net);
    let outside_url = "http://192.0.2.10:8000/ip";
    assert_eq!(status_from(&client, outside_url, 10), "200");
    let egress_rail = |action: &str| {
        format!("apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {{name: egress, namespace: istio-system}}\nspec:\n  validationFailureAction: {action}\n  rules: {{egressThroughGateway: true}}\n")
    };
    // Switched on under traffic inside the mesh: no call the Guardrail
    // allows fails while it goes in (calls until it is in, at most 400).
    let guard_in = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let calls = {
        let (client, guard_in) = (client.clone(), guard_in.clone());
        std::thread::spawn(move || {
            let mut failed = Vec::new();
            let mut made = 0;
            while made < 400 && !guard_in.load(std::sync::atomic::Ordering::Relaxed) {
                let status = status_from(&client, "http://server:8000/ip", 10);
                if status != "200" {
                    failed.push(status);
                }
                made += 1;
            }
            (made, failed)
        })
    };
    std::fs::write(m.cfg.join("egress.yaml"), egress_rail("Enforce")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || status_from(&client, outside_url, 3) == "000",
        || format!("the client still gets out: {}", m.w.log("up")),
    );
    guard_in.store(true, std::sync::atomic::Ordering::Relaxed);
    let (made, failed) = calls.join().unwrap();
    assert!(
        made > 1 && failed.is_empty(),
        "{made} calls inside the mesh, {failed:?} failed while the guard went in"
    );
    assert_eq!(
        status_from(&bypass, outside_url, 3),
        "000",
        "a bypassing pod got out"
    );
    assert_eq!(
        status_from(&mesh_net, outside_url, 10),
        "200",
        "the gateways' namespace is held too"
    );
    let guard_table = || {
        String::from_utf8_lossy(
            &in_netns(&mesh_net, &["nft", "list", "table", "inet", "weft-egress"]).stdout,
        )
        .into_owned()
    };
    let table = guard_table();
    assert!(
        table.contains("weft-guardrail istio-system/egress egress: ") && table.contains("drop"),
        "{table}"
    );
    let dropped = |t: &str| -> u64 {
        t.lines()
            .find(|l| l.contains("weft-guardrail"))
            .and_then(|l| l.split("packets ").nth(1))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(dropped(&table) > 0, "nothing counted: {table}");
    // `weft status` puts the hits on the Guardrail.
    common::wait_until(
        Duration::from_secs(10),
        || {
            let status: serde_json::Value =
                serde_json::from_str(&curl(&[&format!("http://{}/api/status", m.admin)]).body)
                    .unwrap_or_default();
            status["controlPlane"]["policies"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["name"] == "istio-system/egress" && p["dropped"].as_u64().unwrap_or(0) > 0
                })
        },
        || curl(&[&format!("http://{}/api/status", m.admin)]).body,
    );
    // The control plane serves the guard's counter with its metrics.
    common::wait_until(
        Duration::from_secs(10),
        || {
            curl(&[&format!("http://{}/metrics", m.admin)]).body.lines().any(|l| {
                l.starts_with("weft_policy_dropped_total{policy=\"istio-system/egress\",direction=\"egress\",reason=\"egressThroughGateway\"}")
                    && !l.ends_with(" 0")
            })
        },
        || curl(&[&format!("http://{}/metrics", m.admin)]).body,
    );
    std::fs::write(m.cfg.join("egress.yaml"), egress_rail("Audit")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || status_from(&client, outside_url, 5) == "200",
        || format!("audit still drops: {}", guard_table()),
    );
    assert!(
        guard_table().contains("egress: \" accept"),
        "{}",
        guard_table()
    );
    std::fs::remove_file(m.cfg.join("egress.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || !guard_table().contains("weft-guardrail"),
        || format!("the egress guard outlived its Guardrail: {}", guard_table()),
    );
    drop(outside);

    // The operator's commands reach proxies on the mesh's network as in
    // loopback mode: a pod's by app name, and the gateway.
    for (who, want) in [
        (
            "productpage",
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        ),
        (
            "istio-ingressgateway",
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        ),
    ] {
        let out = common::weft()
            .args(["x509", who, "--admin", &m.admin, "-o", "json"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(want),
            "weft x509 {who}: {out:?}"
        );
    }
    let pc = common::weft()
        .args([
            "proxy-config",
            "client",
            "--admin",
            &m.admin,
            "--section",
            "clusters",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&pc.stdout)
            .contains("outbound|8000||server.default.svc.cluster.local"),
        "weft proxy-config client: {pc:?}"
    );

    // The user on this machine reaches the ingress, and bookinfo works
    // unchanged under capture.
    let (status, page) = m.page(None);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Reviews served by"), "{page}");

    // Istio's bookinfo task YAMLs, unchanged, under capture: routing, then
    // authorization by identity.
    m.apply("virtual-service-reviews-v3.yaml");
    assert_eq!(
        m.served_by(5, None),
        std::collections::BTreeMap::from([("reviews-v3-0".to_owned(), 5)])
    );
    m.apply("authorization-allow-nothing.yaml");
    let (status, body) = m.page(None);
    assert_eq!((status, body.trim()), (403, "RBAC: access denied"));
    m.apply("authorization-allow-nothing.yaml,authorization-productpage-viewer.yaml");
    let (status, body) = m.page(None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Error fetching product details!"), "{body}");
    // reviews-v3 stays routed, so the stars prove ratings is allowed (v1
    // shows none, and without the route a third of the pages are v1's).
    m.apply("virtual-service-reviews-v3.yaml,authorization-allow-nothing.yaml,authorization-productpage-viewer.yaml,authorization-details-viewer.yaml,authorization-reviews-viewer.yaml,authorization-ratings-viewer.yaml");
    let (status, body) = m.page(None);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("Error fetching")
            && body.contains("Reviews served by: <u>reviews-v3-0")
            && body.contains("glyphicon-star"),
        "{body}"
    );

    // A host outside the registry (an httpbin on the mesh network's own
    // address, which no Service or ServiceEntry names): ALLOW_ANY lets a
    // pod reach it, as Istio's PassthroughCluster does; REGISTRY_ONLY,
    // written in MeshConfig, answers HTTP with 502 (block_all) and closes
    // other TCP (BlackHoleCluster), logged and counted as Istio's are.
    let _outside = common::Proc {
        child: std::process::Command::new("ip")
            .args(["netns", "exec", &mesh_net, env!("CARGO_BIN_EXE_weft")])
            .args(["sample-app", "httpbin", "--name", "outside"])
            .args(["--listen", "198.19.0.1:8000"])
            .spawn()
            .unwrap(),
        name: "outside".into(),
    };
    let outside =
        |port: &str| status_from(&client, &format!("http://198.19.0.1:{port}/status/200"), 5);
    common::wait_until(
        Duration::from_secs(10),
        || outside("8000") == "200",
        || {
            format!(
                "ALLOW_ANY: no way out to 198.19.0.1:8000 ({})",
                outside("8000")
            )
        },
    );
    let cfg = m.w.dir.join("config");
    std::fs::write(
        cfg.join("mesh.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || outside("8000") == "502",
        || {
            format!(
                "REGISTRY_ONLY: 198.19.0.1:8000 still answers {}",
                outside("8000")
            )
        },
    );
    // Port 9999 has no route table in the mesh: plain TCP, closed.
    let _other = common::Proc {
        child: std::process::Command::new("ip")
            .args(["netns", "exec", &mesh_net, env!("CARGO_BIN_EXE_weft")])
            .args(["sample-app", "httpbin", "--name", "outside"])
            .args(["--listen", "198.19.0.1:9999"])
            .spawn()
            .unwrap(),
        name: "outside-9999".into(),
    };
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(outside("9999"), "000", "REGISTRY_ONLY lets TCP out");
    // The access log is written as it goes: wait for the last entry.
    let read_log = || {
        std::fs::read_to_string(m.w.dir.join("run/logs/client-0.access.log")).unwrap_or_default()
    };
    let started = Instant::now();
    while !read_log().contains("198.19.0.1:9999") && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let access = read_log();
    let entries: Vec<serde_json::Value> = access
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        entries.iter().any(|e| e["response_code"] == 502
            && e["response_flags"] == "NR"
            && e["route_name"] == "block_all"
            && e["upstream_cluster"] == "BlackHoleCluster"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("REGISTRY_ONLY"))),
        "{access}"
    );
    assert!(
        entries.iter().any(|e| e["protocol"] == "TCP"
            && e["upstream_cluster"] == "BlackHoleCluster"
            && e["upstream_host"] == "198.19.0.1:9999"),
        "{access}"
    );
    let client_ip = pod_ip("client");
    let metrics = String::from_utf8_lossy(
        &in_netns(
            &client,
            &["curl", "-s", &format!("http://{client_ip}:15020/metrics")],
        )
        .stdout,
    )
    .into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_tcp_connections_opened_total")
                && l.contains("destination_service=\"BlackHoleCluster\"")),
        "{metrics}"
    );
    // A ServiceEntry puts the host in the registry: Istio's egress
    // control task, REGISTRY_ONLY then a ServiceEntry for the one host.
    std::fs::write(
        cfg.join("outside.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: outside}\nspec:\n  hosts: [outside.example]\n  addresses: [198.19.0.1/32]\n  ports: [{number: 8000, name: http, protocol: HTTP}, {number: 9999, name: tcp, protocol: TCP}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{address: 198.19.0.1}]\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || (outside("8000"), outside("9999")) == ("200".to_owned(), "200".to_owned()),
        || {
            format!(
                "a ServiceEntry does not let the host through: {} {}",
                outside("8000"),
                outside("9999")
            )
        },
    );
    std::fs::remove_file(cfg.join("outside.yaml")).unwrap();
    // ALLOW_ANY again: the way out opens under traffic.
    std::fs::remove_file(cfg.join("mesh.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || outside("8000") == "200",
        || format!("ALLOW_ANY again: {}", outside("8000")),
    );

    // A pod speaks only from its own address: the client, as root in its
    // pod, takes the bypass pod's address and calls the server around its
    // proxy (as the proxy's uid) from there; its node drops that, while
    // the same call from its own address gets through.
    let as_proxy_from = |from: Option<&str>| {
        status_as_proxy_uid(
            &client,
            &format!("http://{server_ip}:8000/status/200"),
            from,
        )
    };
    let spoofed = pod_ip("bypass");
    let added = in_netns(
        &client,
        &["ip", "addr", "add", &format!("{spoofed}/32"), "dev", "eth0"],
    );
    assert!(added.status.success(), "{added:?}");
    assert_eq!(
        as_proxy_from(Some(&spoofed)),
        "000",
        "a spoofed source got through"
    );
    assert_ne!(
        as_proxy_from(None),
        "000",
        "the pod's own address is refused"
    );
    let node_rules = String::from_utf8_lossy(
        &in_netns(
            &format!("{mesh_prefix}-node.local"),
            &["nft", "list", "table", "bridge", "weft-antispoof"],
        )
        .stdout,
    )
    .into_owned();
    assert!(
        node_rules
            .lines()
            .any(|l| l.contains("weft-antispoof ip: ") && !l.contains("packets 0 ")),
        "nothing counted: {node_rules}"
    );
    let _ = in_netns(
        &client,
        &["ip", "addr", "del", &format!("{spoofed}/32"), "dev", "eth0"],
    );

    // No bypass, held in each pod's own namespace (Guardrail noBypass):
    // the pod that excluded port 8000 from capture no longer reaches the
    // server around the mesh; through the mesh it does. Audit counts and
    // lets it through again.
    let around = || status_from(&bypass, &format!("http://{server_ip}:8000/status/200"), 3);
    let through = || status_from(&client, &format!("http://{server_vip}:8000/status/200"), 5);
    // The bookinfo policies applied above deny the server's callers
    // (403): what counts here is whether the call reaches it at all.
    assert_ne!(around(), "000");
    let no_bypass = |action: &str| {
        std::fs::write(
            cfg.join("no-bypass.yaml"),
            format!("apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {{name: no-bypass}}\nspec:\n  validationFailureAction: {action}\n  rules: {{noBypass: true}}\n"),
        )
        .unwrap();
    };
    no_bypass("Enforce");
    common::wait_until(
        Duration::from_secs(15),
        || around() == "000",
        || format!("noBypass is not enforced: {}", m.w.log("up")),
    );
    let code = through();
    assert_ne!(
        code,
        "000",
        "the mesh's way was closed too: {}",
        String::from_utf8_lossy(
            &in_netns(&client, &["nft", "list", "table", "inet", "weft-guard"]).stdout
        )
    );
    let (dropped, _) = weft_capture::guard::counted(Some(&bypass)).expect("the guard's counters");
    assert!(dropped > 0, "nothing counted");
    // Counted beside the proxy's own metrics.
    let bypass_ip = pod_ip("bypass");
    let metrics = String::from_utf8_lossy(
        &in_netns(
            &bypass,
            &["curl", "-s", &format!("http://{bypass_ip}:15020/metrics")],
        )
        .stdout,
    )
    .into_owned();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("weft_policy_dropped_total{policy=\"default/no-bypass\",direction=\"outbound\",reason=\"noBypass\"}")
        })
        .unwrap_or_else(|| panic!("no weft_policy_dropped_total: {metrics}"));
    assert!(
        line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()) > Some(0),
        "{line}"
    );
    assert!(
        m.w.log("up").contains(
            "default/bypass-0 is held to the mesh by Guardrail default/no-bypass (enforced)"
        ),
        "{}",
        m.w.log("up")
    );
    no_bypass("Audit");
    common::wait_until(
        Duration::from_secs(15),
        || around() != "000",
        || "an audited noBypass still drops".to_string(),
    );
    let (seen, _) = weft_capture::guard::counted(Some(&bypass)).expect("the guard's counters");
    assert!(seen > 0, "audit counts what it lets through");
    std::fs::remove_file(cfg.join("no-bypass.yaml")).unwrap();

    // SIGTERM: every namespace of the mesh goes.
    m.w.proc("up").signal("TERM");
    let started = Instant::now();
    while !m.w.log("up").contains("weft: stopped") && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    for p in [&client, &server, &bypass] {
        assert!(netns_ending(p).is_empty(), "{p} is left behind");
    }
    assert!(
        netns_starting(&format!("{mesh_prefix}-")).is_empty(),
        "the mesh network and its nodes are left behind"
    );
}

/// `weft up --capture` without what it needs stops at once, with one line
/// saying what is missing and how to get it.
#[test]
fn capture_without_root_or_nft_says_what_is_missing() {
    if !can_capture() {
        return;
    }
    let w = common::World::any();
    let cfg = w.write("mesh.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{name: http, port: 80}]}\n");
    // Writable by the user the first run drops to.
    let run = w.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let writable: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(&run, writable).unwrap();
    let (c, r) = (cfg.display().to_string(), run.display().to_string());
    let (ingress, admin) = (
        w.addr(0, 254, 8080).to_string(),
        w.addr(0, 253, 15014).to_string(),
    );
    let up = [
        "up",
        "-f",
        &c,
        "--capture",
        "--run-dir",
        &r,
        "--ingress",
        &ingress,
        "--admin",
        &admin,
    ];
    let one_line = |out: &std::process::Output| {
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };

    let nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .args(up)
        .output()
        .unwrap();
    let err = one_line(&nobody);
    assert!(
        err.contains("--capture needs root") && err.contains("sudo weft up --capture"),
        "{err}"
    );

    // `ip` alone on the PATH: nft is missing.
    let bin = w.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink("/usr/sbin/ip", bin.join("ip")).unwrap();
    let no_nft = common::weft().env("PATH", &bin).args(up).output().unwrap();
    let err = one_line(&no_nft);
    assert!(err.contains("apt-get install nftables"), "{err}");
}

/// A host joining the mesh (a namespace standing in for it): `weft proxy
/// --capture --install-capture` installs Istio's rules there, with the
/// annotations it is given, and removes them when it stops.
#[test]
fn a_host_proxy_installs_its_capture_rules_and_removes_them() {
    if !can_capture() {
        return;
    }
    let w = common::World::any();
    let host = format!("weft-hosttest-{}", std::process::id());
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }
    assert!(std::process::Command::new("ip")
        .args(["netns", "add", &host])
        .status()
        .unwrap()
        .success());
    let _gone = Gone(host.clone());
    in_netns(&host, &["ip", "link", "set", "lo", "up"]);
    let cfg = w.write(
        "vm.yaml",
        "apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: vm, labels: {app: vm}}\nspec:\n  command: weft\n  args: [sample-app, httpbin]\n  ports: [{name: http, port: 8000}]\n",
    );
    let model = w.model("vm", &[cfg], "vm.json");
    let model = model.display().to_string();
    let mut proxy = common::Proc {
        child: std::process::Command::new("ip")
            .args(["netns", "exec", &host])
            .arg(env!("CARGO_BIN_EXE_weft"))
            .args(["proxy", "--model", &model, "--no-mtls", "--capture"])
            .args(["--install-capture", "--interception-mode", "TPROXY"])
            .args([
                "--capture-setting",
                "traffic.sidecar.istio.io/excludeOutboundPorts=5432",
            ])
            .args(["--admin", "127.0.0.1:15020", "--access-log", "off"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        name: "host proxy".into(),
    };
    let ruleset = || {
        String::from_utf8_lossy(&in_netns(&host, &["nft", "list", "ruleset"]).stdout).into_owned()
    };
    let started = Instant::now();
    while !ruleset().contains("tproxy ip to :15006") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no rules: {}",
            ruleset()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let rules = ruleset();
    assert!(rules.contains("table inet istio-proxy-nat"), "{rules}");
    assert!(rules.contains("tcp dport 5432 counter"), "{rules}");
    proxy.signal("TERM");
    let _ = proxy.child.wait();
    assert!(!ruleset().contains("istio-proxy"), "{}", ruleset());
}

/// Several nodes: `v1 Node`s place pods (by `nodeSelector`, or spread),
/// give them addresses from their `podCIDR` (or one weft allocates), and
/// lend them their topology as locality. A client keeps to its zone,
/// fails over to the other zone when its zone's node drops off the mesh
/// network, then to the region `failover` names, and comes back when they
/// return; `failoverPriority` ranks by the client's labels across nodes
/// before locality; a replica no node fits, or
/// whose node's range collides with another's, is pending with the
/// reason while the rest serves; a node lost with pods on it is made
/// again and its pods restarted.
#[test]
fn pods_run_on_nodes_and_fail_over_between_zones() {
    if !can_capture() {
        return;
    }
    let node = |name: &str, region: &str, zone: &str, cidr: &str| {
        format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{topology.kubernetes.io/region: {region}, topology.kubernetes.io/zone: {zone}}}\nspec: {{{cidr}}}\n---\n"
        )
    };
    let workload = |name: &str, labels: &str, selector: &str, replicas: u32| {
        format!(
            "apiVersion: weft.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\nspec:\n  command: weft\n  args: [sample-app, httpbin]\n  ports: [{{name: http, port: 8000}}]\n  replicas: {replicas}\n  nodeSelector: {{{selector}}}\n---\n"
        )
    };
    // Region r1 has zones z1 (the client's) and z2; r2 and r3 are further.
    let yaml = node("node-a1", "r1", "z1", "")
        + &node("node-a2", "r1", "z1", "")
        + &node("node-b", "r1", "z2", "podCIDR: 198.19.7.0/24")
        + &node("node-c", "r1", "z3", "podCIDR: 198.19.7.128/25")
        + &node("node-d", "r2", "z4", "")
        + &node("node-e", "r3", "z5", "")
        + &workload(
            "client",
            "app: client, tier: gold",
            "kubernetes.io/hostname: node-a1",
            1,
        )
        + &workload("web-a", "app: web", "kubernetes.io/hostname: node-a2", 1)
        + &workload("web-b", "app: web", "topology.kubernetes.io/zone: z2", 1)
        + &workload("web-d", "app: web", "topology.kubernetes.io/region: r2", 1)
        + &workload("web-e", "app: web", "topology.kubernetes.io/region: r3", 1)
        + &workload(
            "api-gold",
            "app: api, tier: gold",
            "kubernetes.io/hostname: node-b",
            1,
        )
        + &workload(
            "api-silver",
            "app: api, tier: silver",
            "kubernetes.io/hostname: node-a1",
            1,
        )
        + &workload("spread", "app: spread", "topology.kubernetes.io/zone: z1", 2)
        + &workload("nowhere", "app: nowhere", "topology.kubernetes.io/zone: z9", 1)
        + &workload("collided", "app: collided", "kubernetes.io/hostname: node-c", 1)
        + r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 8000}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 500ms}}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100}
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failover: [{from: r1, to: r3}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api
  trafficPolicy:
    connectionPool: {tcp: {connectTimeout: 500ms}}
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100}
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        enabled: true
        failoverPriority: [tier]
"#
        // A node whose bridge goes down drops packets: a request on a
        // pooled connection waits for an answer that never comes. A
        // per-try timeout ends that try, ejects the endpoint and retries
        // elsewhere, as an Istio user who wants fast failover writes it.
        + &["web", "api"]
            .map(|host| {
                format!(
                    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  http:\n  - route: [{{destination: {{host: {host}}}}}]\n    retries: {{attempts: 3, perTryTimeout: 500ms, retryOn: \"gateway-error,connect-failure,reset\"}}\n"
                )
            })
            .concat();
    let m = common::mesh::up_in(common::World::any(), &yaml, &["--capture"], &[]);
    let status = || -> serde_json::Value {
        serde_json::from_str(&curl(&[&format!("http://{}/api/status", m.admin)]).body).unwrap()
    };
    let replica = |status: &serde_json::Value, name: &str| {
        status["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == format!("default/{name}"))
            .unwrap_or_else(|| panic!("{name} in {status}"))
            .clone()
    };
    let now = status();
    let node_of = |name: &str| {
        replica(&now, name)["node"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let ip_of = |name: &str| {
        replica(&now, name)["listens"][0]
            .as_str()
            .unwrap()
            .rsplit_once(':')
            .unwrap()
            .0
            .to_owned()
    };
    assert_eq!(node_of("client-0"), "node-a1");
    assert_eq!(node_of("web-a-0"), "node-a2");
    assert_eq!(node_of("web-b-0"), "node-b");
    // Spread over the two nodes of zone z1.
    let spread = [node_of("spread-0"), node_of("spread-1")];
    assert!(
        spread.contains(&"node-a1".to_owned()) && spread.contains(&"node-a2".to_owned()),
        "{spread:?}"
    );
    // Addresses from the declared range, and from allocated ones.
    assert!(ip_of("web-b-0").starts_with("198.19.7."), "{now}");
    assert_ne!(
        ip_of("client-0").rsplit_once('.').unwrap().0,
        ip_of("web-a-0").rsplit_once('.').unwrap().0,
        "nodes have ranges of their own"
    );
    // Pending, each with its reason.
    for (name, why) in [
        ("nowhere-0", "no node matches its nodeSelector"),
        ("collided-0", "collides with node node-b's 198.19.7.0/24"),
    ] {
        let exit = replica(&now, name)["process"]["last_exit"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(
            exit.contains("pending") && exit.contains(why),
            "{name}: {exit}"
        );
    }
    let text = common::weft()
        .args(["status", "--admin", &m.admin])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.lines()
            .any(|l| l.contains("default/nowhere-0") && l.contains("Pending")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("default/web-b-0") && l.contains("node-b")),
        "{text}"
    );
    let client = replica(&now, "client-0")["netns"]
        .as_str()
        .unwrap()
        .to_owned();
    let prefix = client.split("-default-").next().unwrap().to_owned();
    let node_ns = |n: &str| format!("{prefix}-node.{n}");
    for n in ["node-a1", "node-a2", "node-b"] {
        assert_eq!(netns_ending(&node_ns(n)), vec![node_ns(n)]);
    }

    // A name that is not the mesh's is asked of this machine's resolver,
    // which the mesh's relays to: the pod hears what the machine hears.
    let status_of = |out: std::process::Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.split("status: ").nth(1))
            .map(|s| s.split(',').next().unwrap_or_default().to_owned())
    };
    let dig = ["dig", "+time=2", "+tries=1", "nonexistent.invalid"];
    match status_of(
        std::process::Command::new(dig[0])
            .args(&dig[1..])
            .output()
            .unwrap(),
    ) {
        Some(machine) => assert_eq!(status_of(in_netns(&client, &dig)), Some(machine)),
        None => eprintln!("this machine's resolver does not answer: the relay is not checked"),
    }

    // Who serves `service` for a plain curl in the client's pod.
    let served = |service: &str| {
        let out = in_netns(
            &client,
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %header{x-served-by}",
                &format!("http://{service}:8000/get"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let until = |service: &str, want: &str, within: Duration| {
        let started = Instant::now();
        loop {
            let got = served(service);
            if got == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "{service}: {want} not reached in {within:?}; last: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let always = |service: &str, want: &str| {
        for _ in 0..8 {
            assert_eq!(served(service), want, "{service}");
        }
    };
    // A node cuts its pods off when its bridge goes down.
    let bridge = |node: &str, state: &str| {
        let out = in_netns(&node_ns(node), &["ip", "link", "set", "weft0", state]);
        assert!(out.status.success(), "{out:?}");
    };
    // Its own zone first (web-a on node-a2), every time; `api` ranks by
    // `failoverPriority: [tier]` before locality, so the client's tier
    // (gold, in zone z2) wins over its own zone's silver replica.
    until("web", "200 web-a-0", Duration::from_secs(10));
    always("web", "200 web-a-0");
    until("api", "200 api-gold-0", Duration::from_secs(10));
    always("api", "200 api-gold-0");
    // Zone z1's web node goes: web-a is ejected, then the region's other
    // zone serves; when it returns, so does the traffic.
    bridge("node-a2", "down");
    let took = until("web", "200 web-b-0", Duration::from_secs(15));
    eprintln!("failed over to zone z2 in {took:?}");
    always("web", "200 web-b-0");
    bridge("node-a2", "up");
    let took = until("web", "200 web-a-0", Duration::from_secs(20));
    eprintln!("came back to zone z1 in {took:?}");
    // Zone z2 goes, with the gold replica: `api` falls back to the other
    // tier. Then z1's web node goes again, leaving region r1 without
    // `web`: `failover: r1 -> r3` picks region r3 over r2.
    bridge("node-b", "down");
    until("api", "200 api-silver-0", Duration::from_secs(15));
    always("api", "200 api-silver-0");
    bridge("node-a2", "down");
    let took = until("web", "200 web-e-0", Duration::from_secs(15));
    eprintln!("failed over to region r3 in {took:?}");
    always("web", "200 web-e-0");
    // Both return: traffic comes back to the nearest replicas.
    bridge("node-a2", "up");
    bridge("node-b", "up");
    let took = until("web", "200 web-a-0", Duration::from_secs(20));
    eprintln!("came back to zone z1 in {took:?}");
    until("api", "200 api-gold-0", Duration::from_secs(20));

    // node-b is lost with web-b on it: weft says so, makes it again, and
    // web-b serves from it once more.
    let del = std::process::Command::new("ip")
        .args(["netns", "del", &node_ns("node-b")])
        .output()
        .unwrap();
    assert!(del.status.success(), "{del:?}");
    let started = Instant::now();
    while !m.w.log("up").contains("node node-b was lost") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            m.w.log("up")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        m.w.log("up").contains("default/web-b-0"),
        "{}",
        m.w.log("up")
    );
    let web_b = ip_of("web-b-0");
    let started = Instant::now();
    loop {
        let out = in_netns(
            &client,
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %header{x-served-by}",
                &format!("http://{web_b}:8000/get"),
            ],
        );
        if String::from_utf8_lossy(&out.stdout).trim() == "200 web-b-0" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "web-b does not serve again: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM: the mesh network, every node and every pod go.
    m.w.proc("up").signal("TERM");
    let started = Instant::now();
    while !m.w.log("up").contains("weft: stopped") && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        netns_starting(&format!("{prefix}-")).is_empty(),
        "left behind: {:?}",
        netns_starting(&format!("{prefix}-"))
    );
}

/// A network namespace standing in for a VM on the mesh network, removed
/// when dropped.
struct Vm {
    netns: String,
}

impl Vm {
    /// Joins a new namespace to mesh network `mesh_net`'s bridge at `ip`.
    fn on(mesh_net: &str, ip: &str) -> Vm {
        let tag = format!("{:06x}", std::process::id() & 0xff_ffff);
        let vm = Vm {
            netns: format!("weftvm-{tag}"),
        };
        let veth = format!("wm{tag}");
        let ip_cmd = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {out:?}");
        };
        ip_cmd(&["netns", "add", &vm.netns]);
        ip_cmd(&["-n", &vm.netns, "link", "set", "lo", "up"]);
        ip_cmd(&[
            "-n", mesh_net, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
            &vm.netns,
        ]);
        ip_cmd(&[
            "-n", mesh_net, "link", "set", &veth, "master", "weft0", "up",
        ]);
        ip_cmd(&[
            "-n",
            &vm.netns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        ip_cmd(&["-n", &vm.netns, "link", "set", "eth0", "up"]);
        ip_cmd(&[
            "-n",
            &vm.netns,
            "route",
            "add",
            "default",
            "via",
            "198.19.0.1",
        ]);
        // Its resolver is the mesh's: the proxy answers port 53.
        let etc = std::path::Path::new("/etc/netns").join(&vm.netns);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("resolv.conf"),
            "nameserver 198.19.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
        )
        .unwrap();
        vm
    }
}

impl Vm {
    /// `weft args…` in the VM, logging to `log`.
    fn spawn(&self, log: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> common::Proc {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, env!("CARGO_BIN_EXE_weft")])
            .args(args)
            .envs(env.iter().copied())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap();
        common::Proc {
            child,
            name: args.first().copied().unwrap_or("weft").to_owned(),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = std::fs::remove_dir_all(std::path::Path::new("/etc/netns").join(&self.netns));
    }
}

/// Mesh expansion: a VM (a namespace on the mesh network) of a
/// WorkloadGroup gets its files from `weft workload configure`, runs
/// `weft proxy --bootstrap … --capture --install-capture`, registers its
/// WorkloadEntry, serves the group's Service over mTLS and calls the mesh
/// by name, all with plain clients; when it leaves, its entry goes after
/// the grace period. The admin API is out of reach of pods and VMs.
#[test]
fn a_vm_joins_by_its_workload_group_and_leaves() {
    if !can_capture() {
        return;
    }
    let yaml = r#"apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: billing}
spec:
  metadata: {labels: {app: billing}}
  template: {serviceAccount: vm-sa, ports: {http: 8000}}
---
apiVersion: v1
kind: Service
metadata: {name: billing}
spec:
  selector: {app: billing}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, args: [sample-app, httpbin], ports: [{name: http, port: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  selector: {app: client}
  ports: [{name: http, port: 8000}]
"#;
    let m = common::mesh::up_in(
        common::World::any(),
        yaml,
        &["--capture"],
        &[("PILOT_WORKLOAD_ENTRY_GRACE_PERIOD", "2s")],
    );
    let status: serde_json::Value =
        serde_json::from_str(&curl(&[&format!("http://{}/api/status", m.admin)]).body).unwrap();
    let client = status["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "default/client-0")
        .and_then(|w| w["netns"].as_str())
        .unwrap()
        .to_owned();
    let prefix = client.split("-default-").next().unwrap().to_owned();
    let mesh_net = format!("{prefix}-mesh");

    // Nothing on the mesh network reaches the admin API, which applies
    // configuration.
    let admin_port = m.admin.rsplit_once(':').unwrap().1.to_owned();
    let from_pod = in_netns(
        &client,
        &[
            "curl",
            "-s",
            "-m",
            "3",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://198.19.0.1:{admin_port}/api/status"),
        ],
    );
    assert_ne!(
        String::from_utf8_lossy(&from_pod.stdout),
        "200",
        "a pod reached the admin API"
    );

    // The files a VM joins with.
    let dir = m.w.dir.join("vm-files");
    let configured = common::weft()
        .args([
            "workload",
            "configure",
            "--name",
            "billing",
            "-n",
            "default",
        ])
        .args(["-o", &dir.display().to_string(), "--admin", &m.admin])
        .arg("--autoregister")
        .output()
        .unwrap();
    assert!(configured.status.success(), "{configured:?}");
    let env = std::fs::read_to_string(dir.join("cluster.env")).unwrap();
    for want in [
        "CA_ADDR='198.19.0.1:15012'",
        "ISTIO_META_AUTO_REGISTER_GROUP='billing'",
        "ISTIO_INBOUND_PORTS='8000'",
        "SERVICE_ACCOUNT='vm-sa'",
        "POD_NAMESPACE='default'",
    ] {
        assert!(env.contains(want), "{want} missing from\n{env}");
    }
    let token_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("istio-token"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(token_mode & 0o777, 0o600);
    for f in ["mesh.yaml", "root-cert.pem", "hosts"] {
        assert!(dir.join(f).exists(), "{f}");
    }
    // Without --autoregister weft says how it enrols.
    let manual = common::weft()
        .args([
            "workload",
            "configure",
            "--name",
            "billing",
            "-o",
            "/nonexistent",
        ])
        .args(["--admin", &m.admin])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&manual.stderr).contains("--autoregister"),
        "{manual:?}"
    );

    // The VM: its application, and its proxy from those files.
    let vm = Vm::on(&mesh_net, "198.19.0.200");
    let d = dir.display().to_string();
    let _vm_app = vm.spawn(
        &m.w.dir.join("vm-app.log"),
        &["sample-app", "httpbin"],
        &[
            ("WEFT_LISTEN", "198.19.0.200:8000"),
            ("WEFT_INSTANCE", "vm-host"),
        ],
    );
    let vm_proxy_log = m.w.dir.join("vm-proxy.log");
    let vm_proxy = vm.spawn(
        &vm_proxy_log,
        &[
            "proxy",
            "--bootstrap",
            &d,
            "--capture",
            "--install-capture",
            "--access-log",
            "off",
        ],
        &[],
    );
    let proxy_log = || std::fs::read_to_string(&vm_proxy_log).unwrap_or_default();
    let cp_log =
        || std::fs::read_to_string(m.w.dir.join("run/logs/control-plane.log")).unwrap_or_default();
    let started = Instant::now();
    while !cp_log().contains("joined: WorkloadEntry default/billing-198.19.0.200") {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the VM did not register:\n{}\n{}",
            cp_log(),
            proxy_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let entries = curl(&[&format!(
        "http://{}/api/resources?kind=WorkloadEntry",
        m.admin
    )])
    .body;
    assert!(
        entries.contains("billing-198.19.0.200")
            && entries.contains("istio.io/autoRegistrationGroup"),
        "{entries}"
    );

    // A pod calls the VM's service by name with a plain curl.
    let call = |netns: &str, url: &str| {
        let out = in_netns(
            netns,
            &[
                "curl",
                "-s",
                "-m",
                "3",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %header{x-served-by}",
                url,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let started = Instant::now();
    while call(&client, "http://billing:8000/get") != "200 vm-host" {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the VM does not serve: {:?}\n{}",
            call(&client, "http://billing:8000/get"),
            proxy_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The VM calls the mesh by name, its DNS and traffic captured.
    assert_eq!(call(&vm.netns, "http://client:8000/get"), "200 client-0");
    // Both ways over mTLS, as the VM's proxy reports it.
    let metrics = String::from_utf8_lossy(
        &in_netns(
            &mesh_net,
            &["curl", "-s", "http://198.19.0.200:15020/metrics"],
        )
        .stdout,
    )
    .into_owned();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains("source_workload=\"client\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")),
        "{metrics}"
    );
    let x509 = common::weft()
        .args([
            "x509",
            "default/billing-198.19.0.200",
            "--admin",
            &m.admin,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&x509.stdout)
            .contains("spiffe://cluster.local/ns/default/sa/vm-sa"),
        "{x509:?}"
    );

    // The VM leaves: its rules go with its proxy, and after the grace
    // period its WorkloadEntry.
    drop(vm_proxy);
    let rules = String::from_utf8_lossy(&in_netns(&vm.netns, &["nft", "list", "ruleset"]).stdout)
        .into_owned();
    assert!(!rules.contains("istio-proxy-nat"), "{rules}");
    let started = Instant::now();
    while !cp_log().contains("default/billing-198.19.0.200 has been gone") {
        assert!(started.elapsed() < Duration::from_secs(15), "{}", cp_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    while curl(&[&format!(
        "http://{}/api/resources?kind=WorkloadEntry",
        m.admin
    )])
    .body
    .contains("billing-198.19.0.200")
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the entry stays"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(call(&client, "http://billing:8000/get").starts_with("503"));
}
