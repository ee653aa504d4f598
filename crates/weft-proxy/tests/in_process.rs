//! The proxy in the test's own process, through the `testing` harness:
//! models compiled from YAML, fake upstreams, and an in-process control
//! plane pushing models. No `weft` process and no hand-picked address.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use weft_model::{ProxyKind, ProxyModel};
use weft_proxy::testing::{self, ControlPlane, TempDir, TestProxy, Upstream};

/// A ServiceEntry `echo.test` whose two endpoints are `a` and `b`.
fn echo_service(a: &Upstream, b: &Upstream) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}}}
  - {{address: 127.0.0.1, ports: {{http: {}}}}}
",
        a.addr.port(),
        b.addr.port()
    )
}

/// A Gateway server on `port` whose requests go to `echo.test`.
fn gateway_port(name: &str, port: u16) -> String {
    format!(
        "---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: {port}, name: http-{name}, protocol: HTTP}}, hosts: [\"*\"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [\"*\"]
  gateways: [{name}]
  http: [{{route: [{{destination: {{host: echo.test}}}}]}}]
"
    )
}

fn models(dir: &TempDir, extra: &str) -> BTreeMap<String, ProxyModel> {
    let f = dir.write("extra.yaml", extra);
    testing::compile(&[testing::examples().join("bookinfo"), f])
}

fn named(models: &BTreeMap<String, ProxyModel>, kind: ProxyKind, prefix: &str) -> String {
    models
        .iter()
        .find(|(n, m)| m.proxy.kind == kind && n.contains(prefix))
        .map(|(n, _)| n.clone())
        .expect("the proxy is in the configuration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_balances_over_fake_upstreams() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let dir = TempDir::new("sidecar");
    let models = models(&dir, &echo_service(&a, &b));
    let name = named(&models, ProxyKind::Sidecar, "productpage");
    let sidecar = TestProxy::sidecar(models[&name].clone())
        .await
        .expect("starts");
    let mut served: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..20 {
        let r = testing::get(Some(sidecar.outbound()), "http://echo.test/hello")
            .await
            .expect("answered");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.body.starts_with("GET /hello echo.test"), "{}", r.body);
        *served.entry(r.served_by().to_owned()).or_default() += 1;
    }
    assert_eq!(served.len(), 2, "both endpoints serve: {served:?}");
    assert_eq!(a.hits() + b.hits(), 20);
    sidecar.proxy.shutdown().await;
}

/// Waits until `proxy` has acknowledged what the control plane serves it.
async fn synced(cp: &ControlPlane, proxy: &str) {
    let started = Instant::now();
    while cp
        .served_version(proxy)
        .is_none_or(|v| cp.acked(proxy) != v)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{proxy} never ACKed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_ports_follow_the_models_the_control_plane_pushes() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let dir = TempDir::new("gateway");
    let ip = testing::loopback();
    let base = echo_service(&a, &b) + &gateway_port("first", 8080);
    let one = models(&dir, &base);
    let two = models(&dir, &(base.clone() + &gateway_port("second", 9090)));
    let gw = named(&one, ProxyKind::Gateway, "ingressgateway");

    let mut cp = ControlPlane::start().await;
    cp.publish(&one);
    let gateway = TestProxy::gateway(one[&gw].clone(), ip.ip)
        .await
        .expect("starts");
    let _follow = gateway.proxy.follow(cp.client(&gw));
    synced(&cp, &gw).await;
    let first = format!("http://{}:8080/", ip.ip);
    let second = format!("http://{}:9090/", ip.ip);
    assert_eq!(testing::get(None, &first).await.expect("8080").status, 200);
    assert!(
        testing::get(None, &second).await.is_err(),
        "9090 before it is configured"
    );

    cp.publish(&two);
    synced(&cp, &gw).await;
    let r = testing::get(None, &second)
        .await
        .expect("9090 serves once pushed");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!r.served_by().is_empty());

    cp.publish(&one);
    synced(&cp, &gw).await;
    let started = Instant::now();
    while testing::get(None, &second).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "9090 still accepts"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(testing::get(None, &first).await.expect("8080").status, 200);
    gateway.proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_sent_in_parts_is_put_back_together_and_applied() {
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let dir = TempDir::new("parts");
    let models = models(&dir, &echo_service(&a, &b));
    let name = named(&models, ProxyKind::Sidecar, "productpage");
    let json = serde_json::to_vec(&models[&name]).expect("serializes");
    let mut cp = ControlPlane::start().await;
    // Parts of 256 bytes: the model comes in dozens of them.
    cp.split_models_in_parts_of(256);
    assert!(json.len() > 16 * 256, "the model is {} bytes", json.len());
    // The proxy starts from bookinfo alone, where echo.test is unknown,
    // and gets the model with it in parts.
    let before = TempDir::new("parts-before");
    let empty = self::models(&before, "")[&name].clone();
    let sidecar = TestProxy::sidecar(empty).await.expect("starts");
    let unknown = testing::get(Some(sidecar.outbound()), "http://echo.test/")
        .await
        .expect("answered");
    assert_eq!(unknown.status, 404, "{unknown:?}");
    cp.publish(&models);
    let _follow = sidecar.proxy.follow(cp.client(&name));
    synced(&cp, &name).await;
    assert_eq!(Some(sidecar.proxy.version()), cp.served_version(&name));
    let r = testing::get(Some(sidecar.outbound()), "http://echo.test/")
        .await
        .expect("answered");
    assert_eq!(r.status, 200, "{r:?}");
    sidecar.proxy.shutdown().await;
}

/// Istio task YAML the property test below applies and takes away: one
/// routing task at a time (several define the same VirtualService).
const ROUTING: &[&str] = &[
    "virtual-service-all-v1.yaml",
    "virtual-service-reviews-80-20.yaml",
    "virtual-service-reviews-50-v3.yaml",
    "virtual-service-reviews-test-v2.yaml",
    "virtual-service-reviews-v3.yaml",
    "virtual-service-ratings-test-abort.yaml",
    "virtual-service-ratings-test-delay.yaml",
];

const AUTHZ: &[&str] = &[
    "authorization-allow-nothing.yaml",
    "authorization-details-viewer.yaml",
    "authorization-productpage-viewer.yaml",
    "authorization-ratings-viewer.yaml",
];

/// A configuration drawn at random: bookinfo, a routing task, a policy,
/// and resources of its own that add and take away services, endpoints,
/// listeners and a Sidecar's scope.
fn draw(rng: &mut fastrand::Rng, dir: &TempDir) {
    let tasks = testing::examples().join("bookinfo-tasks");
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).expect("the config dir");
    let bookinfo = testing::examples().join("bookinfo");
    for f in std::fs::read_dir(&bookinfo).expect("bookinfo").flatten() {
        std::fs::copy(f.path(), dir.0.join(f.file_name())).expect("a copy");
    }
    let mut copy = |list: &[&str]| {
        if let Some(f) = list.get(rng.usize(..=list.len())) {
            std::fs::copy(tasks.join(f), dir.0.join(f)).expect("a copy");
        }
    };
    copy(ROUTING);
    copy(AUTHZ);
    let mut extra = String::new();
    if rng.bool() {
        let endpoints: String = (0..rng.usize(1..4))
            .map(|i| format!("  - {{address: 127.0.0.{}, ports: {{http: 80}}}}\n", 10 + i))
            .collect();
        extra += &format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: echo, namespace: default}}\nspec:\n  hosts: [echo.test]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints:\n{endpoints}"
        );
    }
    if rng.bool() {
        extra += "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: db, namespace: default}\nspec:\n  hosts: [db.test]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  ports: [{number: 5432, name: tcp, protocol: TCP}]\n  endpoints: [{address: 127.0.0.20}]\n";
    }
    if rng.u8(..4) == 0 {
        extra += "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: default}\nspec:\n  egress: [{hosts: [\"./reviews.default.svc.cluster.local\", \"./ratings.default.svc.cluster.local\"]}]\n";
    }
    if rng.bool() {
        // A root that delegates, and a delegate that changes on its own.
        extra += &format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: details-root, namespace: default}}\nspec:\n  hosts: [details]\n  http:\n  - match: [{{uri: {{prefix: /details}}}}]\n    delegate: {{name: details-routes}}\n  - route: [{{destination: {{host: details}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: details-routes, namespace: default}}\nspec:\n  http:\n  - match: [{{uri: {{prefix: /details/{}}}}}]\n    route: [{{destination: {{host: details}}}}]\n    timeout: {}s\n",
            rng.u8(0..3),
            rng.u8(1..4)
        );
    }
    if rng.bool() {
        // A rule that changes one service's clusters.
        extra += &format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: ratings-pool, namespace: default}}\nspec:\n  host: ratings\n  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {}}}}}}}\n",
            rng.u8(1..4)
        );
    }
    if rng.bool() {
        // Replicas come and go: endpoints change, and the proxies with them.
        extra += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: extra, namespace: default}}\nspec:\n  selector: {{app: extra}}\n  ports: [{{name: http, port: 9080}}]\n---\napiVersion: weft.dev/v1\nkind: Workload\nmetadata: {{name: extra, namespace: default, labels: {{app: extra}}}}\nspec:\n  command: sleep\n  replicas: {}\n  ports: [{{name: http, port: 9080}}]\n",
            rng.u8(1..4)
        );
    }
    if rng.bool() {
        extra += &format!(
            "---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: mesh-default, namespace: istio-system}}\nspec:\n  tracing: [{{randomSamplingPercentage: {}}}]\n",
            rng.u8(1..100)
        );
    }
    std::fs::write(dir.0.join("extra.yaml"), extra).expect("extra.yaml");
}

/// A proxy's model put together from sections, change after change, is
/// exactly the model the compiler makes whole from nothing: after every
/// one of a random sequence of configurations, whether the proxy was sent
/// only what changed, restarted and was sent all, or missed a change and
/// asked for all again. The control plane compiles each configuration
/// from what it built for the last (and serves it from the sections it
/// kept), and the model is compared with a compile that starts afresh.
/// Seeds are printed; `WEFT_SEED` replays one.
#[test]
fn models_put_together_from_changes_are_the_compiled_models() {
    use std::sync::Arc;
    use weft_control::served::{SectionCache, Served};
    use weft_proxy::held::Held;

    let seeds: Vec<u64> = match std::env::var("WEFT_SEED") {
        Ok(s) => vec![s.parse().expect("WEFT_SEED is a number")],
        Err(_) => (0..3).map(|_| fastrand::u64(..)).collect(),
    };
    let roots = vec!["-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".to_owned()];
    for seed in seeds {
        eprintln!("seed {seed} (WEFT_SEED={seed} replays it)");
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = TempDir::new("sections");
        let mut store = weft_control::store::Store::of_files(
            vec![dir.0.clone()],
            weft_compile::MeshConfig::default(),
        );
        let mut last: Option<weft_control::store::Config> = None;
        let cache = SectionCache::default();
        let mut kept = 0;
        // Per proxy: what it holds, and what the control plane last sent it.
        let mut proxies: BTreeMap<String, (Held, Option<Arc<Served>>)> = BTreeMap::new();
        let (mut changes, mut fulls, mut resyncs) = (0, 0, 0);
        for step in 0..25 {
            draw(&mut rng, &dir);
            let config = store.load(last.as_ref());
            assert!(
                config.refused.is_empty(),
                "step {step}: {:?}",
                config.refused
            );
            kept += config.timings.reuse.hosts_taken + config.timings.reuse.clusters_taken;
            let afresh = weft_control::store::Store::of_files(
                vec![dir.0.clone()],
                weft_compile::MeshConfig::default(),
            )
            .load(None);
            assert_eq!(
                afresh.models.keys().collect::<Vec<_>>(),
                config.models.keys().collect::<Vec<_>>(),
                "step {step}"
            );
            cache.next_round();
            for (name, compiled) in &config.models {
                assert_eq!(
                    serde_json::to_string(&compiled.model).expect("serializes"),
                    serde_json::to_string(&afresh.models[name].model).expect("serializes"),
                    "seed {seed}, step {step}, {name}: compiled from the last compile's"
                );
                let mut security = compiled.model.security.clone();
                security.trust_bundle = roots.clone();
                let mut whole = afresh.models[name].model.clone();
                whole.security = security.clone();
                let expected = serde_json::to_vec(&whole).expect("serializes");
                let served =
                    Arc::new(Served::of_model(&compiled.model, &security, &cache).expect("served"));
                assert!(served.in_sections(), "{name}");
                assert_eq!(served.whole_json(), expected, "step {step}, {name}: whole");
                let (held, sent) = proxies.entry(name.clone()).or_default();
                let what = rng.u8(..10);
                if what == 0 {
                    // Restarted: holds nothing, is sent all.
                    *held = Held::default();
                    *sent = None;
                }
                let mut payload = match sent.as_ref() {
                    Some(s) => served.change_from(s).expect("both in sections"),
                    None => served.full(),
                };
                *sent = Some(served.clone());
                if what == 1 {
                    // The change is lost on the way; the next is on top of it.
                    continue;
                }
                let (model, next) = match held.take(&served.version, &payload) {
                    Ok(done) => {
                        if held.version.is_empty() {
                            fulls += 1;
                        } else {
                            changes += 1;
                        }
                        done
                    }
                    Err(r) if r.resync => {
                        resyncs += 1;
                        payload = served.full();
                        held.take(&served.version, &payload)
                            .unwrap_or_else(|r| panic!("step {step}, {name}: {}", r.error))
                    }
                    Err(r) => panic!("step {step}, {name}: {}", r.error),
                };
                assert_eq!(
                    String::from_utf8(serde_json::to_vec(&model).expect("serializes")).unwrap(),
                    String::from_utf8(expected).unwrap(),
                    "seed {seed}, step {step}, {name}: put together from sections"
                );
                assert_eq!(next.version, served.version);
                *held = next;
            }
            proxies.retain(|name, _| config.models.contains_key(name));
            last = Some(config);
        }
        eprintln!("{changes} changes, {fulls} whole models, {resyncs} asked for again; {kept} hosts and clusters kept from a compile to the next");
        assert!(changes > 0 && fulls > 0 && resyncs > 0 && kept > 0);
    }
}

/// A proxy older than sections (its Hello does not say it takes them,
/// nor parts) is sent whole models, each exactly the model's JSON, so a
/// control plane can be upgraded before its proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_older_than_sections_is_sent_whole_models() {
    use weft_model::wire::{proxy_message::Kind, Ack, ProxyMessage};
    let (a, b) = (Upstream::start("a").await, Upstream::start("b").await);
    let dir = TempDir::new("older");
    let models = models(&dir, &echo_service(&a, &b));
    let name = named(&models, ProxyKind::Sidecar, "productpage");
    let mut cp = ControlPlane::start().await;
    cp.publish(&models);
    let cfg = cp.client(&name);
    let mut hello = weft_proxy::control::hello(&cfg, "");
    hello.takes_parts = false;
    hello.takes_sections = false;
    let (tx, mut stream) = weft_proxy::control::open_with(&cfg, hello)
        .await
        .expect("the stream opens");
    let update = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a model within 5 s")
        .expect("the stream")
        .expect("a message");
    assert!(!update.in_sections, "an older proxy is sent no sections");
    assert!(update.parts <= 1, "nor parts");
    let model: ProxyModel = serde_json::from_slice(&update.model_json).expect("the model's JSON");
    assert_eq!(model, models[&name]);
    assert_eq!(
        update.model_json,
        serde_json::to_vec(&models[&name]).expect("serializes"),
        "byte for byte what serializing the model gives"
    );
    tx.send(ProxyMessage {
        kind: Some(Kind::Ack(Ack {
            nonce: update.nonce,
            version: update.version.clone(),
            error: String::new(),
            resync: false,
        })),
    })
    .await
    .expect("the ACK goes");
    synced(&cp, &name).await;
    assert_eq!(cp.served_version(&name), Some(update.version));
}
