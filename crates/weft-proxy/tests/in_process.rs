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
