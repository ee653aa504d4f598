//! The objects a Canary owns, named as Flagger names them: the primary
//! copy of the target (`<target>-primary`), the Services `<svc>` (the
//! apex, onto the primary), `<svc>-primary` and `<svc>-canary`, the
//! DestinationRules `<svc>-primary` and `<svc>-canary`, and the
//! VirtualService `<svc>` whose only moving parts are the weights, the
//! mirror and the A/B match. Rendered as JSON documents from the
//! objects' own trees, so every field the user wrote carries over.

use serde_json::{json, Map, Value};

use weft_canary::machine::Routes;
use weft_canary::settings::{Settings, Strategy};

/// The labels Flagger selects a target's pods by, in its order.
const SELECTOR_LABELS: [&str; 3] = ["app", "name", "app.kubernetes.io/name"];

/// The label the target's pods are told apart by, and its value: a
/// Deployment's selector (else its pods' labels), a Workload's labels.
pub fn selector(target: &Value) -> Option<(String, String)> {
    let find = |labels: &Value| {
        SELECTOR_LABELS
            .iter()
            .find_map(|k| labels[*k].as_str().map(|v| ((*k).to_owned(), v.to_owned())))
    };
    if is_deployment(target) {
        return find(&target["spec"]["selector"]["matchLabels"])
            .or_else(|| find(&target["spec"]["template"]["metadata"]["labels"]));
    }
    find(&target["metadata"]["labels"])
}

fn is_deployment(target: &Value) -> bool {
    target["kind"] == "Deployment"
}

/// The ConfigMaps and Secrets a Deployment's containers read
/// (`env[].valueFrom`, `envFrom`): Flagger's tracked configs, as
/// `(kind, name)`.
pub fn config_refs(target: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |kind: &str, name: &Value| {
        if let Some(n) = name.as_str() {
            out.push((kind.to_owned(), n.to_owned()));
        }
    };
    for c in target["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for e in c["env"].as_array().into_iter().flatten() {
            add("ConfigMap", &e["valueFrom"]["configMapKeyRef"]["name"]);
            add("Secret", &e["valueFrom"]["secretKeyRef"]["name"]);
        }
        for e in c["envFrom"].as_array().into_iter().flatten() {
            add("ConfigMap", &e["configMapRef"]["name"]);
            add("Secret", &e["secretRef"]["name"]);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A tracked config's copy for the primary, `<name>-primary`, with the
/// data it has now (Flagger copies them on promotion).
pub fn primary_config(config: &Value, namespace: &str) -> Value {
    let mut c = json!({
        "apiVersion": "v1",
        "kind": config["kind"],
        "metadata": {
            "name": format!("{}-primary", config["metadata"]["name"].as_str().unwrap_or_default()),
            "namespace": namespace,
        },
    });
    for field in ["data", "stringData", "binaryData", "type"] {
        if !config[field].is_null() {
            c[field] = config[field].clone();
        }
    }
    c
}

/// A Deployment's pod spec reading `<name>-primary` for every tracked
/// config in `tracked` (left alone where it already does).
fn rename_config_refs(spec: &mut Value, tracked: &[(String, String)]) {
    // Through `pointer_mut`: indexing a Value mutably would add the
    // fields it looks for.
    let renamed = |kind: &str, name: Option<&mut Value>| {
        let Some(name) = name else { return };
        if let Some(n) = name.as_str() {
            if tracked.iter().any(|(k, t)| k == kind && t == n) {
                *name = json!(format!("{n}-primary"));
            }
        }
    };
    let Some(containers) = spec
        .pointer_mut("/template/spec/containers")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for c in containers {
        if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
            for e in env {
                renamed(
                    "ConfigMap",
                    e.pointer_mut("/valueFrom/configMapKeyRef/name"),
                );
                renamed("Secret", e.pointer_mut("/valueFrom/secretKeyRef/name"));
            }
        }
        if let Some(from) = c.get_mut("envFrom").and_then(Value::as_array_mut) {
            for e in from {
                renamed("ConfigMap", e.pointer_mut("/configMapRef/name"));
                renamed("Secret", e.pointer_mut("/secretRef/name"));
            }
        }
    }
}

/// The target's spec with what does not make a revision left out (the
/// replicas, which the canary itself scales).
pub fn revision_spec(target: &Value) -> Value {
    let mut spec = target["spec"].clone();
    if let Some(m) = spec.as_object_mut() {
        m.remove("replicas");
    }
    spec
}

/// The primary: the target's object under `<target>-primary`, its pods
/// labelled `<value>-primary`, running `spec` (the promoted one). A
/// Deployment's selector and pod labels say `<value>-primary` too, and
/// its pods read the `-primary` copies of the configs in `tracked`.
pub fn primary(s: &Settings, target: &Value, spec: &Value, tracked: &[(String, String)]) -> Value {
    let mut p = json!({
        "apiVersion": target["apiVersion"],
        "kind": target["kind"],
        "metadata": {
            "name": s.primary(),
            "namespace": s.namespace,
            "labels": target["metadata"]["labels"].clone(),
        },
        "spec": spec,
    });
    if let Some((k, v)) = selector(target) {
        let value = json!(format!("{v}-primary"));
        if is_deployment(target) {
            p["spec"]["selector"]["matchLabels"][&k] = value.clone();
            p["spec"]["template"]["metadata"]["labels"][&k] = value.clone();
            if !p["metadata"]["labels"][&k].is_null() {
                p["metadata"]["labels"][&k] = value;
            }
        } else {
            p["metadata"]["labels"][k] = value;
        }
    }
    if is_deployment(target) {
        rename_config_refs(&mut p["spec"], tracked);
    }
    if let Some(r) = target["spec"]["replicas"].as_u64() {
        p["spec"]["replicas"] = json!(r);
    }
    p
}

fn service(s: &Settings, canary: &Value, name: &str, selector: (&str, &str)) -> Value {
    let svc = &canary["spec"]["service"];
    let port = svc["port"].clone();
    let mut p = json!({
        "name": svc["portName"].as_str().unwrap_or("http"),
        "port": port,
        "targetPort": if svc["targetPort"].is_null() { port.clone() } else { svc["targetPort"].clone() },
    });
    if let Some(ap) = svc["appProtocol"].as_str() {
        p["appProtocol"] = json!(ap);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": s.namespace},
        "spec": {"selector": {selector.0: selector.1}, "ports": [p]},
    })
}

fn destination_rule(s: &Settings, canary: &Value, host: &str) -> Value {
    let mut dr = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": host, "namespace": s.namespace},
        "spec": {"host": host},
    });
    let policy = &canary["spec"]["service"]["trafficPolicy"];
    if !policy.is_null() {
        dr["spec"]["trafficPolicy"] = policy.clone();
    }
    dr
}

/// The VirtualService `<svc>` at `routes`: the service's `hosts` with the
/// apex added when missing, its `gateways` or `mesh`; none of either for
/// a delegate (`delegation`), which may not name any.
fn virtual_service(
    s: &Settings,
    canary: &Value,
    routes: Routes,
    cookies: &Cookies,
) -> Result<Value, String> {
    let svc = &canary["spec"]["service"];
    let (primary, canary_host) = (
        format!("{}-primary", s.service),
        format!("{}-canary", s.service),
    );
    let mut hosts = svc["hosts"].as_array().cloned().unwrap_or_default();
    let mut gateways = svc["gateways"].as_array().cloned().unwrap_or_default();
    let delegation = svc["delegation"].as_bool().unwrap_or(false);
    if delegation && !(hosts.is_empty() && gateways.is_empty()) {
        return Err(format!(
            "VirtualService {}.{} cannot have hosts and gateways when delegation enabled",
            s.service, s.namespace
        ));
    }
    if !hosts.iter().any(|h| h == s.service.as_str() || h == "*") {
        hosts.push(json!(s.service));
    }
    if gateways.is_empty() {
        gateways.push(json!("mesh"));
    }
    if delegation {
        hosts.clear();
        gateways.clear();
    }
    let weighted = |p: u32, c: u32| {
        json!([
            {"destination": {"host": primary}, "weight": p},
            {"destination": {"host": canary_host}, "weight": c},
        ])
    };
    if is_tcp(canary) {
        // Flagger's TCP canary: one weighted TCP route, matched by the
        // ports `service.match` names; no HTTP features, no A/B.
        let mut route = Map::new();
        let ports: Vec<Value> = svc["match"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["port"].as_u64())
            .map(|p| json!({"port": p}))
            .collect();
        if !ports.is_empty() {
            route.insert("match".into(), json!(ports));
        }
        route.insert("route".into(), weighted(routes.primary, routes.canary));
        let mut vs = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": s.service, "namespace": s.namespace},
            "spec": {"tcp": [route]},
        });
        if !hosts.is_empty() {
            vs["spec"]["hosts"] = json!(hosts);
        }
        if !gateways.is_empty() {
            vs["spec"]["gateways"] = json!(gateways);
        }
        return Ok(vs);
    }
    // What the service says of every route, as Flagger copies it.
    let mut base = Map::new();
    for field in ["retries", "timeout", "headers", "corsPolicy", "rewrite"] {
        if !svc[field].is_null() {
            base.insert(field.to_owned(), svc[field].clone());
        }
    }
    let service_match = svc["match"].as_array().cloned().unwrap_or_default();
    let mut weighted_route = base.clone();
    if !service_match.is_empty() {
        weighted_route.insert("match".into(), json!(service_match));
    }
    weighted_route.insert("route".into(), weighted(routes.primary, routes.canary));
    let mut http = vec![weighted_route.clone()];
    if let Some(sa) = &s.session_affinity {
        http = affinity_rules(
            sa,
            cookies,
            routes.canary,
            weighted_route,
            &service_match,
            (&primary, &canary_host),
            interval_secs(canary),
        );
    }
    if routes.mirrored {
        http[0].insert("mirror".into(), json!({"host": canary_host}));
        if let Some(w) = canary["spec"]["analysis"]["mirrorWeight"].as_u64() {
            http[0].insert("mirrorPercentage".into(), json!({"value": w}));
        }
    }
    if s.strategy == Strategy::AbTesting {
        // The analysis' matches, each merged with the service's, go where
        // the weights say; everything else stays on the primary.
        let analysis_match = canary["spec"]["analysis"]["match"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut ab = base.clone();
        ab.insert(
            "match".into(),
            json!(merge_matches(&analysis_match, &service_match)),
        );
        ab.insert("route".into(), weighted(routes.primary, routes.canary));
        let mut rest = base.clone();
        if !service_match.is_empty() {
            rest.insert("match".into(), json!(service_match));
        }
        rest.insert("route".into(), weighted(100, 0));
        http = vec![ab, rest];
    }
    let http: Vec<Value> = http.into_iter().map(Value::Object).collect();
    let mut vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": s.service, "namespace": s.namespace},
        "spec": {"http": http},
    });
    if !hosts.is_empty() {
        vs["spec"]["hosts"] = json!(hosts);
    }
    if !gateways.is_empty() {
        vs["spec"]["gateways"] = json!(gateways);
    }
    Ok(vs)
}

/// Flagger's `isTcp`: the service's `appProtocol` is `tcp`.
fn is_tcp(canary: &Value) -> bool {
    canary["spec"]["service"]["appProtocol"]
        .as_str()
        .is_some_and(|p| p.eq_ignore_ascii_case("tcp"))
}

/// Flagger's `mergeMatchConditions`: each of the canary's matches over
/// each of the service's, the canary's `headers` and `sourceLabels`
/// taking the place of the service's.
fn merge_matches(canary: &[Value], defaults: &[Value]) -> Vec<Value> {
    if defaults.is_empty() {
        return canary.to_vec();
    }
    let mut out = Vec::new();
    for c in canary {
        for d in defaults {
            let mut m = d.clone();
            for field in ["headers", "sourceLabels"] {
                if !c[field].is_null() {
                    m[field] = c[field].clone();
                }
            }
            out.push(m);
        }
    }
    out
}

/// `analysis.interval` in seconds, the primary cookie's lifetime.
fn interval_secs(canary: &Value) -> i64 {
    canary["spec"]["analysis"]["interval"]
        .as_str()
        .and_then(|i| weft_api::types::common::parse_duration(i).ok())
        .map_or(60, |d| d.as_secs() as i64)
}

/// The session cookies a run holds (`name=value`), from its status.
#[derive(Debug, Clone, Default)]
pub struct Cookies {
    pub canary: String,
    pub previous: String,
    pub primary: String,
}

/// A match on a session cookie, as Flagger writes it.
fn cookie_match(cookie: &str, service_match: &[Value]) -> Vec<Value> {
    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
    let m = json!({"headers": {"Cookie": {"regex": format!(".*{name}.*{value}.*")}}});
    merge_matches(&[m], service_match)
}

fn add_response_header(dest: &mut Value, name: &str, value: String) {
    dest["headers"]["response"]["add"][name] = json!(value);
}

/// Flagger's session affinity rules: during a run a client the canary
/// served gets its cookie and stays there (and, with a primary cookie,
/// one the primary served stays there); between runs the last run's
/// cookie is expired on sight.
#[allow(clippy::too_many_arguments)]
fn affinity_rules(
    sa: &weft_canary::settings::SessionAffinity,
    cookies: &Cookies,
    canary_weight: u32,
    mut weighted: Map<String, Value>,
    service_match: &[Value],
    (primary, canary): (&str, &str),
    interval_secs: i64,
) -> Vec<Map<String, Value>> {
    let mut sticky_canary = weighted.clone();
    let dest = |host: &str, w: u32| json!({"destination": {"host": host}, "weight": w});
    if canary_weight != 0 {
        if let Some(Value::Array(route)) = weighted.get_mut("route") {
            for d in route.iter_mut() {
                if d["destination"]["host"] == canary {
                    add_response_header(
                        d,
                        "Set-Cookie",
                        sa.build_cookie(&cookies.canary, sa.max_age()),
                    );
                } else if !sa.primary_cookie_name.is_empty() {
                    add_response_header(
                        d,
                        "Set-Cookie",
                        sa.build_cookie(&cookies.primary, interval_secs),
                    );
                }
            }
        }
        sticky_canary.insert(
            "match".into(),
            json!(cookie_match(&cookies.canary, service_match)),
        );
        sticky_canary.insert("route".into(), json!([dest(primary, 0), dest(canary, 100)]));
        if !sa.primary_cookie_name.is_empty() {
            let mut sticky_primary = sticky_canary.clone();
            sticky_primary.insert(
                "match".into(),
                json!(cookie_match(&cookies.primary, service_match)),
            );
            sticky_primary.insert("route".into(), json!([dest(primary, 100), dest(canary, 0)]));
            return vec![sticky_canary, sticky_primary, weighted];
        }
        return vec![sticky_canary, weighted];
    }
    if !cookies.previous.is_empty() {
        sticky_canary.insert(
            "match".into(),
            json!(cookie_match(&cookies.previous, service_match)),
        );
        let mut headers = sticky_canary.get("headers").cloned().unwrap_or(json!({}));
        headers["response"]["add"]["Set-Cookie"] =
            json!(format!("{}; Max-Age=-1", cookies.previous));
        sticky_canary.insert("headers".into(), headers);
    }
    vec![sticky_canary, weighted]
}

/// Everything the canary owns, as documents.
pub fn render(
    s: &Settings,
    canary: &Value,
    target: &Value,
    primary_spec: &Value,
    configs: &[Value],
    routes: Routes,
    cookies: &Cookies,
) -> Result<String, String> {
    let (key, value) = selector(target).ok_or_else(|| {
        format!(
            "{} {} has none of the labels {} to select its pods by",
            s.target_kind,
            s.target_ref(),
            SELECTOR_LABELS.join(", ")
        )
    })?;
    let primary_value = format!("{value}-primary");
    // The configs the primary reads its copies of.
    let tracked: Vec<(String, String)> = configs
        .iter()
        .filter_map(|c| {
            let name = c["metadata"]["name"].as_str()?.strip_suffix("-primary")?;
            Some((c["kind"].as_str()?.to_owned(), name.to_owned()))
        })
        .collect();
    let mut docs = vec![
        primary(s, target, primary_spec, &tracked),
        service(s, canary, &s.service, (&key, &primary_value)),
        service(
            s,
            canary,
            &format!("{}-primary", s.service),
            (&key, &primary_value),
        ),
        service(s, canary, &format!("{}-canary", s.service), (&key, &value)),
        destination_rule(s, canary, &format!("{}-primary", s.service)),
        destination_rule(s, canary, &format!("{}-canary", s.service)),
        virtual_service(s, canary, routes, cookies)?,
    ];
    docs.extend(configs.iter().cloned());
    Ok(docs
        .iter()
        .map(|d| serde_json::to_string_pretty(d).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n"))
}

/// The weights of the VirtualService among `docs` (the last route that
/// names both hosts), as Flagger's `GetRoutes` reads them back.
pub fn routes_of(s: &Settings, docs: &[Value]) -> Option<Routes> {
    let (primary, canary) = (
        format!("{}-primary", s.service),
        format!("{}-canary", s.service),
    );
    let vs = docs
        .iter()
        .find(|d| d["kind"] == "VirtualService" && d["metadata"]["name"] == s.service.as_str())?;
    if let Some(tcp) = vs["spec"]["tcp"].as_array() {
        // The TCP route that names the canary; never mirrored.
        let route = tcp.iter().find(|r| {
            r["route"].as_array().is_some_and(|d| {
                d.iter()
                    .any(|d| d["destination"]["host"] == canary.as_str())
            })
        })?;
        return Some(Routes {
            primary: weight_of(route, &primary).unwrap_or(0),
            canary: weight_of(route, &canary).unwrap_or(0),
            mirrored: false,
        });
    }
    let http = vs["spec"]["http"].as_array()?;
    // A/B: the matched route carries the canary's weight.
    let route = if s.strategy == Strategy::AbTesting {
        http.first()?
    } else {
        http.last()?
    };
    Some(Routes {
        primary: weight_of(route, &primary)?,
        canary: weight_of(route, &canary)?,
        // Flagger mirrors on the first rule.
        mirrored: !http.first()?["mirror"].is_null(),
    })
}

/// The weight a route gives `host`, if it names it.
fn weight_of(route: &Value, host: &str) -> Option<u32> {
    route["route"].as_array().and_then(|r| {
        r.iter()
            .find(|d| d["destination"]["host"] == host)
            .map(|d| d["weight"].as_u64().unwrap_or(0) as u32)
    })
}

/// The documents of a rendering, back as JSON.
pub fn parse(docs: &str) -> Vec<Value> {
    docs.split("\n---\n")
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(analysis: &str) -> (Settings, Value) {
        let text = format!("apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {{name: podinfo, namespace: test}}\nspec:\n  targetRef: {{apiVersion: weft.dev/v1, kind: Workload, name: podinfo}}\n  service:\n    port: 9898\n    retries: {{attempts: 3, perTryTimeout: 1s}}\n    trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}\n  analysis: {analysis}\n");
        let loaded = weft_api::load::load_bytes("c.yaml", text.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let r = &loaded.resources[0];
        let json = weft_api::yaml::emit::node_to_json(&r.source.tree, r.source.node);
        match &r.spec {
            weft_api::resource::Spec::Canary(c) => (Settings::of("podinfo", "test", c), json),
            _ => panic!("not a Canary"),
        }
    }

    /// Every document is one weft admits, without an error.
    fn assert_admitted(docs: &str) {
        let loaded = weft_api::load::load_bytes("<managed>", docs.as_bytes());
        assert!(
            loaded
                .diagnostics
                .iter()
                .all(|d| d.severity != weft_api::diag::Severity::Error),
            "{:?}",
            loaded.diagnostics
        );
        assert_eq!(loaded.resources.len(), parse(docs).len());
    }

    fn target() -> Value {
        json!({"apiVersion": "weft.dev/v1", "kind": "Workload",
            "metadata": {"name": "podinfo", "namespace": "test", "labels": {"app": "podinfo", "version": "v1"}},
            "spec": {"command": "podinfo", "args": ["--version", "6.0.1"], "replicas": 2}})
    }

    #[test]
    fn the_objects_are_flaggers_and_the_weights_read_back() {
        let (s, c) = canary("{interval: 1m, maxWeight: 50, stepWeight: 10}");
        let t = target();
        let routes = Routes {
            primary: 70,
            canary: 30,
            mirrored: false,
        };
        let docs = parse(
            &render(
                &s,
                &c,
                &t,
                &revision_spec(&t),
                &[],
                routes,
                &Cookies::default(),
            )
            .unwrap(),
        );
        let names: Vec<String> = docs
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                "Workload podinfo-primary",
                "Service podinfo",
                "Service podinfo-primary",
                "Service podinfo-canary",
                "DestinationRule podinfo-primary",
                "DestinationRule podinfo-canary",
                "VirtualService podinfo"
            ]
        );
        assert_eq!(docs[0]["metadata"]["labels"]["app"], "podinfo-primary");
        assert_eq!(docs[0]["spec"]["replicas"], 2);
        assert_eq!(docs[1]["spec"]["selector"]["app"], "podinfo-primary");
        assert_eq!(docs[3]["spec"]["selector"]["app"], "podinfo");
        assert_eq!(
            docs[4]["spec"]["trafficPolicy"]["tls"]["mode"],
            "ISTIO_MUTUAL"
        );
        assert_eq!(docs[6]["spec"]["http"][0]["retries"]["attempts"], 3);
        assert_eq!(routes_of(&s, &docs), Some(routes));
        // Every document is a resource weft admits.
        let all = render(
            &s,
            &c,
            &t,
            &revision_spec(&t),
            &[],
            routes,
            &Cookies::default(),
        )
        .unwrap();
        let loaded = weft_api::load::load_bytes("<managed>", all.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        assert_eq!(loaded.resources.len(), 7);
    }

    #[test]
    fn ab_testing_sends_the_matched_requests_by_the_weights() {
        let (s, c) = canary(
            "{interval: 1m, iterations: 5, match: [{headers: {x-canary: {exact: insider}}}]}",
        );
        let t = target();
        let docs = parse(
            &render(
                &s,
                &c,
                &t,
                &revision_spec(&t),
                &[],
                Routes {
                    primary: 0,
                    canary: 100,
                    mirrored: false,
                },
                &Cookies::default(),
            )
            .unwrap(),
        );
        let http = &docs[6]["spec"]["http"];
        assert_eq!(
            http[0]["match"][0]["headers"]["x-canary"]["exact"],
            "insider"
        );
        assert_eq!(http[0]["route"][1]["weight"], 100);
        assert_eq!(http[1]["route"][0]["weight"], 100);
        assert_eq!(routes_of(&s, &docs).map(|r| r.canary), Some(100));
    }

    #[test]
    fn hosts_gateways_mirror_and_delegation_are_flaggers() {
        let (s, c) =
            canary("{interval: 1m, maxWeight: 50, stepWeight: 10, mirror: true, mirrorWeight: 20}");
        let t = target();
        let mirrored = Routes {
            primary: 100,
            canary: 0,
            mirrored: true,
        };
        let docs = parse(
            &render(
                &s,
                &c,
                &t,
                &revision_spec(&t),
                &[],
                mirrored,
                &Cookies::default(),
            )
            .unwrap(),
        );
        let vs = &docs[6]["spec"];
        assert_eq!(vs["hosts"], json!(["podinfo"]));
        assert_eq!(vs["gateways"], json!(["mesh"]));
        assert_eq!(vs["http"][0]["mirror"]["host"], "podinfo-canary");
        assert_eq!(vs["http"][0]["mirrorPercentage"]["value"], 20);
        assert_eq!(routes_of(&s, &docs), Some(mirrored));

        let mut c2 = c.clone();
        c2["spec"]["service"]["hosts"] = json!(["app.example.com"]);
        c2["spec"]["service"]["gateways"] = json!(["public-gateway"]);
        let docs = parse(
            &render(
                &s,
                &c2,
                &t,
                &revision_spec(&t),
                &[],
                Routes::PRIMARY,
                &Cookies::default(),
            )
            .unwrap(),
        );
        assert_eq!(
            docs[6]["spec"]["hosts"],
            json!(["app.example.com", "podinfo"])
        );
        assert_eq!(docs[6]["spec"]["gateways"], json!(["public-gateway"]));

        c2["spec"]["service"]["delegation"] = json!(true);
        assert_eq!(
            render(
                &s,
                &c2,
                &t,
                &revision_spec(&t),
                &[],
                Routes::PRIMARY,
                &Cookies::default()
            )
            .unwrap_err(),
            "VirtualService podinfo.test cannot have hosts and gateways when delegation enabled"
        );
        let mut c3 = c.clone();
        c3["spec"]["service"]["delegation"] = json!(true);
        let all = render(
            &s,
            &c3,
            &t,
            &revision_spec(&t),
            &[],
            Routes::PRIMARY,
            &Cookies::default(),
        )
        .unwrap();
        let docs = parse(&all);
        assert!(docs[6]["spec"]["hosts"].is_null() && docs[6]["spec"]["gateways"].is_null());
        assert_admitted(&all);
    }

    #[test]
    fn session_affinity_holds_the_canarys_clients_and_expires_their_cookie_after() {
        let (s, c) = canary("{interval: 1m, maxWeight: 50, stepWeight: 10, sessionAffinity: {cookieName: flagger-cookie, maxAge: 21600}}");
        let t = target();
        let cookies = Cookies {
            canary: "flagger-cookie=abcdefghij".into(),
            ..Cookies::default()
        };
        let during = Routes {
            primary: 90,
            canary: 10,
            mirrored: false,
        };
        let docs = parse(&render(&s, &c, &t, &revision_spec(&t), &[], during, &cookies).unwrap());
        let http = &docs[6]["spec"]["http"];
        assert_eq!(
            http[0]["match"][0]["headers"]["Cookie"]["regex"],
            ".*flagger-cookie.*abcdefghij.*"
        );
        assert_eq!(http[0]["route"][1]["weight"], 100);
        assert_eq!(
            http[1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"],
            "flagger-cookie=abcdefghij; Max-Age=21600"
        );
        assert_eq!(routes_of(&s, &docs), Some(during));
        let after = Cookies {
            previous: "flagger-cookie=abcdefghij".into(),
            ..Cookies::default()
        };
        let docs =
            parse(&render(&s, &c, &t, &revision_spec(&t), &[], Routes::PRIMARY, &after).unwrap());
        let http = &docs[6]["spec"]["http"];
        assert_eq!(
            http[0]["headers"]["response"]["add"]["Set-Cookie"],
            "flagger-cookie=abcdefghij; Max-Age=-1"
        );
        assert_eq!(http[0]["route"][0]["weight"], 100);
        assert_eq!(routes_of(&s, &docs), Some(Routes::PRIMARY));
        assert_admitted(&render(&s, &c, &t, &revision_spec(&t), &[], during, &cookies).unwrap());
    }

    #[test]
    fn a_target_without_a_selector_label_is_refused_with_the_labels_to_add() {
        let (s, c) = canary("{interval: 1m, maxWeight: 50, stepWeight: 10}");
        let mut t = target();
        t["metadata"]["labels"] = json!({"version": "v1"});
        let e = render(
            &s,
            &c,
            &t,
            &revision_spec(&t),
            &[],
            Routes::PRIMARY,
            &Cookies::default(),
        )
        .unwrap_err();
        assert!(e.contains("app, name, app.kubernetes.io/name"), "{e}");
    }

    /// A Deployment target: its primary selects and labels its pods
    /// `<app>-primary` and reads the `-primary` copies of the configs it
    /// tracks; every document is one weft admits.
    #[test]
    fn a_deployments_primary_reads_copies_of_its_configs() {
        let (s, c) = canary("{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}");
        let t = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                "template": {"metadata": {"labels": {"app": "podinfo"}},
                    "spec": {"containers": [{"name": "podinfo", "image": "podinfo:6",
                        "command": ["podinfo", "--port", "9898"],
                        "env": [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "podinfo-config", "key": "color"}}},
                                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "podinfo-token", "key": "token"}}}],
                        "envFrom": [{"configMapRef": {"name": "untracked"}}]}]}}}});
        assert_eq!(
            config_refs(&t),
            [
                ("ConfigMap".to_owned(), "podinfo-config".to_owned()),
                ("ConfigMap".to_owned(), "untracked".to_owned()),
                ("Secret".to_owned(), "podinfo-token".to_owned()),
            ]
        );
        let configs = [
            primary_config(
                &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "podinfo-config", "namespace": "test", "labels": {"a": "b"}},
                "data": {"color": "blue"}}),
                "test",
            ),
            primary_config(
                &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "podinfo-token", "namespace": "test"},
                "type": "Opaque", "data": {"token": "c2VjcmV0"}}),
                "test",
            ),
        ];
        let all = render(
            &s,
            &c,
            &t,
            &revision_spec(&t),
            &configs,
            Routes::PRIMARY,
            &Cookies::default(),
        )
        .unwrap();
        assert_admitted(&all);
        let docs = parse(&all);
        let p = &docs[0];
        assert_eq!(p["kind"], "Deployment");
        assert_eq!(p["metadata"]["name"], "podinfo-primary");
        assert_eq!(p["spec"]["replicas"], 2);
        assert_eq!(
            p["spec"]["selector"]["matchLabels"]["app"],
            "podinfo-primary"
        );
        assert_eq!(
            p["spec"]["template"]["metadata"]["labels"]["app"],
            "podinfo-primary"
        );
        let container = &p["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "podinfo-config-primary"
        );
        assert_eq!(
            container["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "podinfo-token-primary"
        );
        assert_eq!(
            container["envFrom"][0]["configMapRef"]["name"], "untracked",
            "not tracked: not renamed"
        );
        // The Services select the pods by the selector's label.
        assert_eq!(docs[1]["spec"]["selector"]["app"], "podinfo-primary");
        assert_eq!(docs[3]["spec"]["selector"]["app"], "podinfo");
        let copies: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "ConfigMap" || d["kind"] == "Secret")
            .collect();
        assert_eq!(copies.len(), 2);
        assert_eq!(copies[0]["metadata"]["name"], "podinfo-config-primary");
        assert_eq!(copies[0]["data"]["color"], "blue");
        assert_eq!(copies[0]["metadata"]["namespace"], "test");
        assert!(copies[0]["metadata"]["labels"].is_null());
        assert_eq!(copies[1]["type"], "Opaque");
        // Rendered again from the primary read back, nothing changes.
        let again = render(
            &s,
            &c,
            &t,
            &revision_spec(p),
            &configs,
            Routes::PRIMARY,
            &Cookies::default(),
        )
        .unwrap();
        assert_eq!(parse(&again)[0], docs[0]);
    }

    /// Flagger's TCP canary (`service.appProtocol: tcp`): a weighted TCP
    /// route on the ports `service.match` names, read back as rendered.
    #[test]
    fn a_tcp_canary_shifts_a_tcp_route() {
        let (s, mut c) = canary("{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}");
        c["spec"]["service"]["appProtocol"] = json!("tcp");
        c["spec"]["service"]["match"] = json!([{"port": 9898}]);
        let t = target();
        let routes = Routes {
            primary: 70,
            canary: 30,
            mirrored: false,
        };
        let all = render(
            &s,
            &c,
            &t,
            &revision_spec(&t),
            &[],
            routes,
            &Cookies::default(),
        )
        .unwrap();
        assert_admitted(&all);
        let docs = parse(&all);
        let vs = docs.iter().find(|d| d["kind"] == "VirtualService").unwrap();
        assert!(vs["spec"]["http"].is_null(), "{vs}");
        assert_eq!(
            vs["spec"]["tcp"],
            json!([{"match": [{"port": 9898}], "route": [
                {"destination": {"host": "podinfo-primary"}, "weight": 70},
                {"destination": {"host": "podinfo-canary"}, "weight": 30}]}])
        );
        assert_eq!(routes_of(&s, &docs), Some(routes));
        let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
        assert_eq!(svc["spec"]["ports"][0]["appProtocol"], "tcp");
    }
}
