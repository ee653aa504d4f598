//! Load balancing: consistent hashing, least request and locality.

use super::*;

/// Consistent hashing: a user (header) always reaches the same replica and
/// users spread over replicas; with a cookie policy and no cookie, the
/// proxy sets one and the client then sticks to a replica.
#[test]
fn consistent_hash_by_header_and_generated_cookie() {
    let mut w = World::any();
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: weft, ports: [{name: http, port: 8000}], replicas: 3}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, ports: [{name: http, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop}
spec:
  host: shop
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: affinity, ttl: 3600s}}}}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap();
    for e in cluster["endpoints"].as_array().unwrap() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        w.httpbin(e["instance"].as_str().unwrap(), addr, &[]);
    }
    let outbound = w.addr(1, 1, 15001);
    let (m, o) = (model_path.display().to_string(), outbound.to_string());
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    let mut chosen = std::collections::BTreeSet::new();
    for user in ["ann", "bob", "cid", "dee", "eve", "fay", "gus", "hal"] {
        let header = format!("x-user: {user}");
        let replicas = served_by(&p, "http://web:8000/get", 6, &["-H", &header]);
        assert_eq!(
            replicas.len(),
            1,
            "{user} moved between replicas: {replicas:?}"
        );
        chosen.extend(replicas.into_keys());
    }
    assert!(chosen.len() >= 2, "eight users all hashed to {chosen:?}");
    // Cookie affinity.
    let first = curl(&["-x", &p, "http://shop:8000/get"]);
    let cookie = first
        .header("set-cookie")
        .expect("a generated affinity cookie");
    assert!(
        cookie.starts_with("affinity=") && cookie.contains("Max-Age=3600"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let who = first.header("x-served-by").unwrap();
    let again = served_by(&p, "http://shop:8000/get", 6, &["-b", &pair]);
    assert_eq!(
        again,
        BTreeMap::from([(who, 6)]),
        "the cookie did not stick"
    );
}

/// LEAST_REQUEST (two random choices) steers concurrent requests away from
/// a slow replica that round robin would give a third; RANDOM spreads
/// requests over every replica.
#[test]
fn least_request_avoids_a_slow_replica_and_random_spreads() {
    let mut w = World::any();
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: lr}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: rnd}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web, labels: {app: web}}
spec: {command: weft, ports: [{name: http, port: 8000}], replicas: 3}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, ports: [{name: http, port: 9000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lr}
spec:
  host: lr
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rnd}
spec:
  host: rnd
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "lr.default.svc.cluster.local")
        .unwrap();
    let mut slow = String::new();
    for (i, e) in cluster["endpoints"].as_array().unwrap().iter().enumerate() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        let name = e["instance"].as_str().unwrap();
        let flags: &[&str] = if i == 0 {
            slow = name.to_owned();
            &["--latency-ms", "100"]
        } else {
            &[]
        };
        w.httpbin(name, addr, flags);
    }
    let outbound = w.addr(1, 1, 15001);
    let (m, o) = (model_path.display().to_string(), outbound.to_string());
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    // Six clients, 25 requests each, all at once.
    let lr = served_by_concurrently(&p, "http://lr:8000/get", 6, 25);
    let total: usize = lr.values().sum();
    assert_eq!(total, 150, "{lr:?}");
    let to_slow = lr.get(&slow).copied().unwrap_or(0);
    // Round robin would send it 50; least request sends it few.
    assert!(
        to_slow <= 35,
        "the slow replica got {to_slow} of 150: {lr:?}"
    );
    assert_eq!(lr.len(), 3, "{lr:?}");
    eprintln!("least request: {lr:?}");
    let rnd = served_by_concurrently(&p, "http://rnd:8000/get", 6, 25);
    assert_eq!(rnd.len(), 3, "{rnd:?}");
    for (who, n) in &rnd {
        // Binomial(150, 1/3): mean 50, sd 5.8; 25..75 is over 4 sd.
        assert!((25..=75).contains(n), "{who} got {n} of 150: {rnd:?}");
    }
}

/// Locality: a client in us-east/zone1 stays in its zone, fails over to
/// its region (not across the ocean) when its zone's host dies, and a
/// `distribute` rule splits traffic across regions by weight.
#[test]
fn locality_preference_failover_and_distribute() {
    let mut w = World::any();
    let cfg = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: Service
metadata: {name: web2}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8000}]
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec: {command: weft, locality: us-east/zone1/a, ports: [{name: http, port: 9000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-a, labels: {app: web}}
spec: {command: weft, locality: us-east/zone1/a, ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-b, labels: {app: web}}
spec: {command: weft, locality: us-east/zone2/a, ports: [{name: http, port: 8000}]}
---
apiVersion: weft.dev/v1
kind: Workload
metadata: {name: web-c, labels: {app: web}}
spec: {command: weft, locality: eu-west/zone1/a, ports: [{name: http, port: 8000}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web2}
spec:
  host: web2
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-east/zone1/*
          to: {"us-east/zone1/*": 80, "eu-west/*": 20}
"#;
    let f = w.write("web.yaml", cfg);
    let model_path = w.model("client", &[f], "model.json");
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model_path).unwrap()).unwrap();
    let cluster = model["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "web.default.svc.cluster.local")
        .unwrap();
    for e in cluster["endpoints"].as_array().unwrap() {
        let addr: std::net::SocketAddr = e["address"].as_str().unwrap().parse().unwrap();
        let name = e["workload"].as_str().unwrap().to_owned();
        w.httpbin(&name, addr, &[]);
    }
    let outbound = w.addr(1, 1, 15001);
    let (m, o) = (model_path.display().to_string(), outbound.to_string());
    w.spawn(
        "proxy",
        &[
            "proxy",
            "--model",
            &m,
            "--outbound",
            &o,
            "--access-log",
            "off",
        ],
        Some(outbound),
    );
    let p = format!("http://{outbound}");
    assert_eq!(
        served_by(&p, "http://web:8000/get", 20, &[]),
        BTreeMap::from([("web-a".to_owned(), 20)])
    );
    let split = served_by(&p, "http://web2:8000/get", 200, &[]);
    let a = split.get("web-a").copied().unwrap_or(0);
    let c = split.get("web-c").copied().unwrap_or(0);
    assert_eq!(a + c, 200, "{split:?}");
    assert!((140..=185).contains(&a), "{split:?}");
    // web-a dies: one failed request ejects it, then its region takes over.
    w.procs.retain(|p| p.name != "web-a");
    let after = served_by(&p, "http://web:8000/get", 20, &[]);
    assert!(after.get("web-b").copied().unwrap_or(0) >= 19, "{after:?}");
    assert!(
        !after.contains_key("web-c"),
        "failed over across regions: {after:?}"
    );
}
