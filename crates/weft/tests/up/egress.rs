//! Istio's egress tasks under `weft up --capture`, their YAML unchanged,
//! against an external host the test makes (a namespace outside the mesh
//! network, 192.0.2.10) whose names a resolver of the test's answers.
//! Root only.

use std::time::{Duration, Instant};

use super::capture::{
    can_capture, in_netns, netns_ending, status_as_proxy_uid, status_from, OutsideHost,
};
use super::common;

/// Istio's "Accessing External Services" task's ServiceEntry.
const HTTPBIN_EXT: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts:
  - httpbin.org
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: DNS
  location: MESH_EXTERNAL
";

/// The same task's VirtualService: a 3 s timeout on calls to httpbin.org.
const HTTPBIN_EXT_TIMEOUT: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-ext
spec:
  hosts:
    - httpbin.org
  http:
  - timeout: 3s
    route:
      - destination:
          host: httpbin.org
        weight: 100
";

/// Istio's "Egress Gateways" task, HTTP traffic: the ServiceEntry, the
/// Gateway on the egress gateway, its DestinationRule subset and the
/// two-leg VirtualService.
const CNN_THROUGH_EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 80
      weight: 100
";

/// Istio's "Egress TLS Origination" task: the application speaks HTTP
/// to port 80, its sidecar TLS to the host's port 443.
const CNN_TLS_ORIGINATION: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: edition-cnn-com
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http-port
    protocol: HTTP
    targetPort: 443
  - number: 443
    name: https-port
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port:
        number: 80
      tls:
        mode: SIMPLE # initiates HTTPS when accessing edition.cnn.com
";

/// Istio's egress gateway task for HTTPS: the sidecar and the gateway
/// pass the application's TLS through by SNI.
const CNN_HTTPS_THROUGH_EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 443
    name: tls
    protocol: TLS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: tls
      protocol: TLS
    hosts:
    - edition.cnn.com
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 443
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - edition.cnn.com
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
";

/// Istio's "Egress Gateways with TLS Origination" task: the sidecar
/// speaks mesh mTLS (ISTIO_MUTUAL) to the egress gateway, which
/// originates TLS (SIMPLE) to the external host.
const CNN_TLS_AT_EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts:
  - edition.cnn.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 80
      name: https-port-for-tls-origination
      protocol: HTTPS
    hosts:
    - edition.cnn.com
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-cnn
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: cnn
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 80
        tls:
          mode: ISTIO_MUTUAL
          sni: edition.cnn.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts:
  - edition.cnn.com
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: cnn
        port:
          number: 80
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 80
    route:
    - destination:
        host: edition.cnn.com
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-tls-for-edition-cnn-com
spec:
  host: edition.cnn.com
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE # initiates HTTPS for connections to edition.cnn.com
";

/// The same task's mutual TLS origination: the egress gateway presents
/// the client certificate of the `client-credential` secret to an nginx
/// outside the mesh. The nginx is the test's outside host, known to the
/// mesh by a ServiceEntry (Istio's task deploys it with a Service).
const NGINX_MTLS_AT_EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: my-nginx
  namespace: mesh-external
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  location: MESH_EXTERNAL
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - my-nginx.mesh-external.svc.cluster.local
    tls:
      mode: ISTIO_MUTUAL
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-nginx
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: nginx
    trafficPolicy:
      loadBalancer:
        simple: ROUND_ROBIN
      portLevelSettings:
      - port:
          number: 443
        tls:
          mode: ISTIO_MUTUAL
          sni: my-nginx.mesh-external.svc.cluster.local
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-nginx-through-egress-gateway
spec:
  hosts:
  - my-nginx.mesh-external.svc.cluster.local
  gateways:
  - istio-egressgateway
  - mesh
  http:
  - match:
    - gateways:
      - mesh
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: nginx
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
    route:
    - destination:
        host: my-nginx.mesh-external.svc.cluster.local
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: originate-mtls-for-nginx
spec:
  host: my-nginx.mesh-external.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: MUTUAL
        credentialName: client-credential # this must match the secret created earlier to hold client certs
        sni: my-nginx.mesh-external.svc.cluster.local
";

/// Istio's "Egress using Wildcard Hosts" task, direct: a ServiceEntry
/// for `*.wikipedia.org` (resolution NONE) lets every Wikipedia site out.
const WIKIPEDIA_DIRECT: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wikipedia
spec:
  hosts:
  - \"*.wikipedia.org\"
  ports:
  - number: 443
    name: https
    protocol: HTTPS
";

/// The same task through the egress gateway, to a single hosting server.
const WIKIPEDIA_THROUGH_EGRESS_GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio-egressgateway
spec:
  selector:
    istio: egressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - \"*.wikipedia.org\"
    tls:
      mode: PASSTHROUGH
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: egressgateway-for-wikipedia
spec:
    host: istio-egressgateway.istio-system.svc.cluster.local
    subsets:
    - name: wikipedia
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-wikipedia-through-egress-gateway
spec:
  hosts:
  - \"*.wikipedia.org\"
  gateways:
  - mesh
  - istio-egressgateway
  tls:
  - match:
    - gateways:
      - mesh
      port: 443
      sniHosts:
      - \"*.wikipedia.org\"
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: wikipedia
        port:
          number: 443
      weight: 100
  - match:
    - gateways:
      - istio-egressgateway
      port: 443
      sniHosts:
      - \"*.wikipedia.org\"
    route:
    - destination:
        host: www.wikipedia.org
        port:
          number: 443
      weight: 100
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: www-wikipedia
spec:
  hosts:
  - www.wikipedia.org
  ports:
  - number: 443
    name: https
    protocol: HTTPS
  resolution: DNS
";

/// A resolver of the test's on the mesh network (198.19.0.1, which `weft
/// up --dns-upstream` names to pods and gateways) answering the tasks'
/// external names with the outside host's address.
fn test_resolver(mesh_net: &str, pid_file: &std::path::Path) -> common::Proc {
    common::Proc {
        child: std::process::Command::new("ip")
            .args(["netns", "exec", mesh_net, "dnsmasq", "--keep-in-foreground"])
            .args([
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--user=root",
                "--listen-address=198.19.0.1",
                "--bind-interfaces",
                "--port=53",
            ])
            .arg(format!("--pid-file={}", pid_file.display()))
            .args([
                "--address=/httpbin.org/192.0.2.10",
                "--address=/edition.cnn.com/192.0.2.10",
                "--address=/my-nginx.mesh-external.svc.cluster.local/192.0.2.11",
                "--address=/wikipedia.org/192.0.2.12",
            ])
            .spawn()
            .expect("dnsmasq (Debian's dnsmasq-base)"),
        name: "dnsmasq".into(),
    }
}

/// The access log entries of `file` in the run's logs.
fn access_log(run: &std::path::Path, file: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("logs").join(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn istios_egress_tasks_work_unchanged_and_egress_leaves_only_through_the_gateway() {
    if !can_capture() {
        return;
    }
    let w = common::World::any();
    let cfg = w.dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    // Istio's `sleep` sample's part here: a pod to run curl in.
    std::fs::write(
        cfg.join("sleep.yaml"),
        "apiVersion: weft.dev/v1\nkind: Workload\nmetadata:\n  name: sleep\n  labels: {app: sleep}\nspec:\n  command: weft\n  args: [sample-app, httpbin]\n  ports: [{name: http, port: 8000}]\n",
    )
    .unwrap();
    // The external host's certificate, from a CA the proxies trust by
    // `--external-roots` alone.
    let certs = w.dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let ca = common::certs::ca(&certs, "egress-ca", "weft e2e egress CA");
    common::certs::leaf(&certs, "cnn", &["edition.cnn.com"], &ca);
    common::certs::leaf(
        &certs,
        "nginx",
        &["my-nginx.mesh-external.svc.cluster.local"],
        &ca,
    );
    common::certs::leaf(&certs, "client", &["client.example.com"], &ca);
    common::certs::leaf(&certs, "wikipedia", &["*.wikipedia.org"], &ca);
    // Istio's task's `client-credential` secret, in the secrets directory.
    let credential = w.dir.join("config/secrets/client-credential");
    std::fs::create_dir_all(&credential).unwrap();
    for (from, to) in [
        ("client.pem", "tls.crt"),
        ("client.key", "tls.key"),
        ("egress-ca.pem", "ca.crt"),
    ] {
        std::fs::copy(certs.join(from), credential.join(to)).unwrap();
    }
    let (ca_pem, cnn_pem, cnn_key) = (
        certs.join("egress-ca.pem").display().to_string(),
        certs.join("cnn.pem").display().to_string(),
        certs.join("cnn.key").display().to_string(),
    );
    let m = common::mesh::start(
        w,
        &[
            "--capture",
            "--dns-upstream",
            "198.19.0.1",
            "--external-roots",
            &ca_pem,
        ],
        &[],
    );
    let sleep = netns_ending("-default-sleep-0").pop().expect("sleep's pod");
    let mesh_net = format!("{}-mesh", sleep.split("-default-").next().unwrap());
    let _resolver = test_resolver(&mesh_net, &m.w.dir.join("dnsmasq.pid"));
    let outside = OutsideHost::attach_on(&mesh_net, 80);
    // HTTPS on the outside host's 443: openssl's status page.
    let _https = outside.spawn(
        "https",
        &[
            "openssl",
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            "192.0.2.10:443",
            "-cert",
            &cnn_pem,
            "-key",
            &cnn_key,
        ],
    );
    let run = m.w.dir.join("run");
    let get = |url: &str, secs: u32| status_from(&sleep, url, secs);

    // Egress control. ALLOW_ANY (Istio's default): the pod reaches the
    // host through its sidecar's passthrough.
    common::wait_until(
        Duration::from_secs(15),
        || get("http://httpbin.org/headers", 5) == "200",
        || format!("ALLOW_ANY: {}", get("http://httpbin.org/headers", 5)),
    );
    // REGISTRY_ONLY: 502 from the sidecar.
    std::fs::write(
        cfg.join("mesh.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    outboundTrafficPolicy:\n      mode: REGISTRY_ONLY\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || get("http://httpbin.org/headers", 5) == "502",
        || format!("REGISTRY_ONLY: {}", get("http://httpbin.org/headers", 5)),
    );
    // The task's ServiceEntry (resolution: DNS) lets the one host out.
    std::fs::write(cfg.join("httpbin-ext.yaml"), HTTPBIN_EXT).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || get("http://httpbin.org/headers", 5) == "200",
        || format!("the ServiceEntry: {}", get("http://httpbin.org/headers", 5)),
    );
    // Its VirtualService's 3 s timeout: /delay/5 is 504 after 3 s.
    std::fs::write(
        cfg.join("httpbin-ext.yaml"),
        format!("{HTTPBIN_EXT}---\n{HTTPBIN_EXT_TIMEOUT}"),
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(20),
        || {
            let started = Instant::now();
            let code = get("http://httpbin.org/delay/5", 10);
            let took = started.elapsed();
            code == "504" && took >= Duration::from_millis(2900) && took < Duration::from_secs(5)
        },
        || "the VirtualService's 3 s timeout does not hold".into(),
    );

    // TLS origination at the sidecar: HTTP to edition.cnn.com:80 leaves
    // the pod as verified TLS to its port 443.
    std::fs::write(cfg.join("cnn.yaml"), CNN_TLS_ORIGINATION).unwrap();
    let politics_page = || {
        let out = in_netns(
            &sleep,
            &["curl", "-sS", "-m", "5", "http://edition.cnn.com/politics"],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let originated = || {
        access_log(&run, "sleep-0.access.log").iter().any(|e| {
            e["authority"] == "edition.cnn.com"
                && e["upstream_cluster"] == "outbound|80||edition.cnn.com"
                && e["upstream_host"] == "192.0.2.10:443"
                && e["response_code"] == 200
        })
    };
    common::wait_until(
        Duration::from_secs(20),
        || politics_page().contains("s_server") && originated(),
        || {
            format!(
                "TLS origination at the sidecar: {}\n{:?}",
                politics_page(),
                access_log(&run, "sleep-0.access.log").last()
            )
        },
    );

    // The egress gateway task, HTTP: the sidecar sends edition.cnn.com to
    // the egress gateway, which sends it out; its access log shows the
    // external call.
    std::fs::write(cfg.join("cnn.yaml"), CNN_THROUGH_EGRESS_GATEWAY).unwrap();
    let politics = || {
        let out = in_netns(
            &sleep,
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "-o",
                "/dev/null",
                "-D",
                "-",
                "http://edition.cnn.com/politics",
            ],
        );
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    let through_gateway = || {
        access_log(&run, "istio-egressgateway.access.log")
            .iter()
            .any(|e| {
                e["authority"] == "edition.cnn.com"
                    && e["path"] == "/politics"
                    && e["upstream_cluster"] == "outbound|80||edition.cnn.com"
                    && e["upstream_host"] == "192.0.2.10:80"
            })
    };
    common::wait_until(
        Duration::from_secs(20),
        || politics().contains("x-served-by: outside") && through_gateway(),
        || {
            format!(
                "edition.cnn.com through the egress gateway: {}\n{:?}\n{}",
                politics(),
                access_log(&run, "istio-egressgateway.access.log"),
                m.w.log("up")
            )
        },
    );
    // The sidecar's own log names the gateway as where the call went.
    common::wait_until(
        Duration::from_secs(5),
        || {
            access_log(&run, "sleep-0.access.log").iter().any(|e| {
                e["authority"] == "edition.cnn.com"
                    && e["upstream_cluster"]
                        == "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local"
                    && e["upstream_host"] == "198.19.0.3:8080"
            })
        },
        || format!("{:?}", access_log(&run, "sleep-0.access.log")),
    );

    // The egress gateway task, HTTPS: the application's own TLS passes
    // through the sidecar and the gateway by SNI.
    std::fs::write(cfg.join("cnn.yaml"), CNN_HTTPS_THROUGH_EGRESS_GATEWAY).unwrap();
    let https_politics = || {
        let out = in_netns(
            &sleep,
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "--cacert",
                &ca_pem,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "https://edition.cnn.com/politics",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let passed_through = || {
        access_log(&run, "istio-egressgateway.access.log")
            .iter()
            .any(|e| {
                e["protocol"] == "TCP"
                    && e["authority"] == "edition.cnn.com"
                    && e["upstream_cluster"] == "outbound|443||edition.cnn.com"
                    && e["upstream_host"] == "192.0.2.10:443"
            })
    };
    common::wait_until(
        Duration::from_secs(20),
        || https_politics() == "200" && passed_through(),
        || {
            format!(
                "HTTPS through the egress gateway: {}\n{:?}",
                https_politics(),
                access_log(&run, "istio-egressgateway.access.log").last()
            )
        },
    );

    // The egress gateway's AuthorizationPolicies judge what it passes
    // through as connections: a DENY closes the way, logged with the
    // policy; gone, the way opens.
    std::fs::write(
        cfg.join("egress-closed.yaml"),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: egress-closed, namespace: istio-system}\nspec:\n  selector: {matchLabels: {istio: egressgateway}}\n  action: DENY\n  rules: [{}]\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || {
            https_politics() == "000"
                && access_log(&run, "istio-egressgateway.access.log")
                    .iter()
                    .any(|e| {
                        e["response_flags"] == "RBAC"
                            && e["reason"].as_str().is_some_and(|r| {
                                r.contains("AuthorizationPolicy istio-system/egress-closed")
                            })
                    })
        },
        || {
            format!(
                "a DENY on the egress gateway does not close its passthrough: {}\n{:?}",
                https_politics(),
                access_log(&run, "istio-egressgateway.access.log").last()
            )
        },
    );
    std::fs::remove_file(cfg.join("egress-closed.yaml")).unwrap();
    common::wait_until(
        Duration::from_secs(15),
        || https_politics() == "200",
        || format!("the DENY outlived its file: {}", https_politics()),
    );

    // TLS origination at the egress gateway: ISTIO_MUTUAL from the
    // sidecar (the gateway refuses its port to anything else), SIMPLE on.
    std::fs::write(cfg.join("cnn.yaml"), CNN_TLS_AT_EGRESS_GATEWAY).unwrap();
    let originated_at_gateway = || {
        access_log(&run, "istio-egressgateway.access.log")
            .iter()
            .any(|e| {
                e["authority"] == "edition.cnn.com"
                    && e["path"] == "/politics"
                    && e["upstream_cluster"] == "outbound|443||edition.cnn.com"
                    && e["upstream_host"] == "192.0.2.10:443"
                    && e["response_code"] == 200
            })
    };
    common::wait_until(
        Duration::from_secs(20),
        || politics_page().contains("s_server") && originated_at_gateway(),
        || {
            format!(
                "TLS origination at the egress gateway: {}\n{:?}",
                politics_page(),
                access_log(&run, "istio-egressgateway.access.log").last()
            )
        },
    );
    // The port is ISTIO_MUTUAL: a plain connection to it is refused.
    assert_eq!(
        status_from(&sleep, "http://198.19.0.3:8080/politics", 5),
        "000",
        "the gateway's ISTIO_MUTUAL port serves plain text"
    );
    // Mutual TLS origination with the client-credential secret.
    let _nginx = outside.spawn(
        "nginx",
        &[
            "openssl",
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            "192.0.2.11:443",
            "-cert",
            &certs.join("nginx.pem").display().to_string(),
            "-key",
            &certs.join("nginx.key").display().to_string(),
            "-Verify",
            "1",
            "-CAfile",
            &ca_pem,
        ],
    );
    std::fs::write(cfg.join("cnn.yaml"), NGINX_MTLS_AT_EGRESS_GATEWAY).unwrap();
    let nginx_page = || {
        let out = in_netns(
            &sleep,
            &[
                "curl",
                "-sS",
                "-m",
                "5",
                "http://my-nginx.mesh-external.svc.cluster.local",
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // openssl's page shows the client certificate it verified.
    common::wait_until(
        Duration::from_secs(20),
        || {
            let page = nginx_page();
            page.contains("s_server") && page.contains("client.example.com")
        },
        || {
            format!(
                "mutual TLS origination at the egress gateway: {}\n{:?}",
                nginx_page(),
                access_log(&run, "istio-egressgateway.access.log").last()
            )
        },
    );
    // Wildcard hosts, direct: under REGISTRY_ONLY a Wikipedia site is
    // unknown until the ServiceEntry for `*.wikipedia.org` names them all;
    // the sidecar sends each where it was going, picked by its SNI.
    let _wikipedia = outside.spawn(
        "wikipedia",
        &[
            "openssl",
            "s_server",
            "-quiet",
            "-www",
            "-accept",
            "192.0.2.12:443",
            "-cert",
            &certs.join("wikipedia.pem").display().to_string(),
            "-key",
            &certs.join("wikipedia.key").display().to_string(),
        ],
    );
    let wiki = |site: &str| {
        let out = in_netns(
            &sleep,
            &[
                "curl",
                "-s",
                "-m",
                "5",
                "--cacert",
                &ca_pem,
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("https://{site}.wikipedia.org/wiki/Main_Page"),
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(wiki("en"), "000", "REGISTRY_ONLY lets an unknown site out");
    std::fs::write(cfg.join("wikipedia.yaml"), WIKIPEDIA_DIRECT).unwrap();
    common::wait_until(
        Duration::from_secs(20),
        || wiki("en") == "200" && wiki("de") == "200",
        || {
            format!(
                "*.wikipedia.org, direct: en {} de {}",
                wiki("en"),
                wiki("de")
            )
        },
    );
    common::wait_until(
        Duration::from_secs(5),
        || {
            access_log(&run, "sleep-0.access.log").iter().any(|e| {
                e["authority"] == "de.wikipedia.org"
                    && e["upstream_cluster"] == "outbound|443||*.wikipedia.org"
                    && e["upstream_host"] == "192.0.2.12:443"
            })
        },
        || format!("{:?}", access_log(&run, "sleep-0.access.log").last()),
    );
    // Through the egress gateway, to one hosting server.
    std::fs::remove_file(cfg.join("wikipedia.yaml")).unwrap();
    std::fs::write(cfg.join("cnn.yaml"), WIKIPEDIA_THROUGH_EGRESS_GATEWAY).unwrap();
    let via_gateway = |site: &str| {
        access_log(&run, "istio-egressgateway.access.log")
            .iter()
            .any(|e| {
                e["authority"] == format!("{site}.wikipedia.org").as_str()
                    && e["upstream_cluster"] == "outbound|443||www.wikipedia.org"
                    && e["upstream_host"] == "192.0.2.12:443"
            })
    };
    common::wait_until(
        Duration::from_secs(20),
        || wiki("en") == "200" && wiki("de") == "200" && via_gateway("en") && via_gateway("de"),
        || {
            format!(
                "*.wikipedia.org through the egress gateway: en {} de {}\n{:?}",
                wiki("en"),
                wiki("de"),
                access_log(&run, "istio-egressgateway.access.log").last()
            )
        },
    );

    // The HTTPS task again, for what follows.
    std::fs::write(cfg.join("cnn.yaml"), CNN_HTTPS_THROUGH_EGRESS_GATEWAY).unwrap();
    common::wait_until(
        Duration::from_secs(20),
        || https_politics() == "200",
        || {
            format!(
                "HTTPS through the egress gateway again: {}",
                https_politics()
            )
        },
    );

    // A process as the proxy's own uid bypasses capture: before the
    // Guardrail, it gets out.
    let bypassing = |url: &str| status_as_proxy_uid(&sleep, url, None);
    assert_eq!(bypassing("http://192.0.2.10/headers"), "200");

    // Egress only through the gateway (a Guardrail, mesh-wide): the pod's
    // own way out is dropped where the mesh meets the outside, even for a
    // host its ServiceEntry names; the gateway's way still gets out.
    std::fs::write(
        cfg.join("egress.yaml"),
        "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: egress, namespace: istio-system}\nspec:\n  validationFailureAction: Enforce\n  rules: {egressThroughGateway: true}\n",
    )
    .unwrap();
    common::wait_until(
        Duration::from_secs(15),
        // Dropped, not refused: the sidecar's connect waits past curl's 3 s.
        || get("http://httpbin.org/headers", 3) == "000",
        || "a pod still leaves the mesh on its own".into(),
    );
    assert_eq!(https_politics(), "200", "the gateway's way is closed too");
    // A process that bypasses its sidecar (as the proxy's own uid, which
    // capture lets through) is dropped all the same.
    assert_eq!(bypassing("http://192.0.2.10/headers"), "000");
}
