//! The dashboard (`/`) and the JSON API behind it: `/api/graph` (the
//! service graph over a time window, in one of Kiali's views) and
//! `/api/node` (one node's traffic over time, the Istio resources that
//! apply to it, its proxies). The front end is built from `dashboard/`
//! with `npm run build`; its output is committed and embedded here, so
//! building weft needs no Node.js.

use std::time::Duration;

use serde_json::{json, Value};

use crate::telemetry::{Traffic, View};

// The page and its style need no build step: they are embedded from the
// sources; only the bundled script and uPlot's style come from dist/.
const INDEX: &str = include_str!("../dashboard/src/index.html");
const APP_JS: &str = include_str!("../dashboard/dist/app.js");
const APP_CSS: &str = include_str!("../dashboard/src/style.css");
const UPLOT_CSS: &str = include_str!("../dashboard/dist/uplot.css");

/// A static file of the dashboard: (content type, body).
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    match path {
        "/" | "/dashboard" | "/dashboard/" => Some(("text/html; charset=utf-8", INDEX)),
        "/dashboard/app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "/dashboard/app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        "/dashboard/uplot.css" => Some(("text/css; charset=utf-8", UPLOT_CSS)),
        _ => None,
    }
}

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then_some(v)
    })
}

fn window(query: &str) -> Duration {
    let secs = param(query, "window")
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(300)
        .clamp(10, crate::telemetry::KEEP.as_secs());
    Duration::from_secs(secs)
}

/// `/api/graph?view=versionedApp|app|workload|service&window=SECONDS`.
pub fn graph(traffic: &Traffic, resources: &[Value], query: &str) -> Value {
    let view = View::parse(param(query, "view").unwrap_or("versionedApp"));
    let mut g = traffic.graph(window(query), view);
    let badges = service_badges(resources);
    if let Some(nodes) = g["nodes"].as_array_mut() {
        for n in nodes {
            if let Some(b) = n["service"].as_str().and_then(|s| badges.get(s)) {
                n["badges"] = json!(b);
            }
        }
    }
    g
}

/// `/api/node?id=ID&window=SECONDS`.
pub fn node(traffic: &Traffic, resources: &[Value], status: &Value, query: &str) -> Value {
    let id = param(query, "id").map(percent_decode).unwrap_or_default();
    let series = traffic.series(&id, window(query));
    json!({
        "id": id,
        "series": series,
        "resources": applying(resources, &id),
        "proxies": proxies_of(resources, status, &id),
    })
}

/// The graph node a resource-style API path names.
pub fn node_id_of_path(path: &str) -> Option<String> {
    let clean = |s: &str| percent_decode(s.trim_matches('/'));
    if let Some(host) = path.strip_prefix("/api/services/") {
        let host = clean(host);
        return (!host.is_empty() && !host.contains('/')).then(|| format!("svc:{host}"));
    }
    let (kind, rest) = if let Some(r) = path.strip_prefix("/api/workloads/") {
        ("wl", r)
    } else {
        ("app", path.strip_prefix("/api/apps/")?)
    };
    let rest = clean(rest);
    let (ns, name) = rest.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| format!("{kind}:{ns}/{name}"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter().fold(v, |v, k| &v[*k]).as_str().unwrap_or("")
}

/// Whether the host `h` written in namespace `ns` names `service` (FQDN).
fn names(h: &str, ns: &str, service: &str) -> bool {
    let short = service.split('.').next().unwrap_or("");
    let svc_ns = service.split('.').nth(1).unwrap_or("");
    h == service || h == "*" || (h == short && ns == svc_ns) || h == format!("{short}.{svc_ns}")
}

/// Badges per service host, Kiali's: VS, CB (circuit breaker), FI (fault
/// injection), MI (mirroring), TO (timeout).
fn service_badges(resources: &[Value]) -> std::collections::HashMap<String, Vec<&'static str>> {
    let mut out: std::collections::HashMap<String, Vec<&'static str>> = Default::default();
    let mut add = |svc: String, b: &'static str| {
        let v = out.entry(svc).or_default();
        if !v.contains(&b) {
            v.push(b);
        }
    };
    let services: Vec<String> = resources
        .iter()
        .filter(|r| r["kind"] == "Service" || r["kind"] == "ServiceEntry")
        .flat_map(|r| {
            let ns = r["namespace"].as_str().unwrap_or("default").to_owned();
            if r["kind"] == "Service" {
                vec![format!(
                    "{}.{ns}.svc.cluster.local",
                    r["name"].as_str().unwrap_or("")
                )]
            } else {
                r["object"]["spec"]["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_owned))
                    .collect()
            }
        })
        .collect();
    for r in resources {
        let ns = r["namespace"].as_str().unwrap_or("default");
        let spec = &r["object"]["spec"];
        match r["kind"].as_str() {
            Some("VirtualService") => {
                let routes: Vec<&Value> = spec["http"].as_array().into_iter().flatten().collect();
                // `*` hosts are for gateways; they route no mesh service.
                let hosts = spec["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str());
                for h in hosts.filter(|h| *h != "*") {
                    for svc in services.iter().filter(|s| names(h, ns, s)) {
                        add(svc.clone(), "VS");
                        for route in &routes {
                            if !route["fault"].is_null() {
                                add(svc.clone(), "FI");
                            }
                            if !route["mirror"].is_null() || !route["mirrors"].is_null() {
                                add(svc.clone(), "MI");
                            }
                            if !route["timeout"].is_null() {
                                add(svc.clone(), "TO");
                            }
                        }
                    }
                }
            }
            Some("DestinationRule") => {
                let h = spec["host"].as_str().unwrap_or("");
                let policies = std::iter::once(&spec["trafficPolicy"]).chain(
                    spec["subsets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| &s["trafficPolicy"]),
                );
                let breaker = policies
                    .into_iter()
                    .any(|p| !p["connectionPool"].is_null() || !p["outlierDetection"].is_null());
                if breaker {
                    for svc in services.iter().filter(|s| names(h, ns, s)) {
                        add(svc.clone(), "CB");
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The labels of the workloads behind a node id, with their namespace.
fn workloads_of<'a>(resources: &'a [Value], id: &str) -> Vec<(&'a str, &'a Value)> {
    let parts: Vec<&str> = id.splitn(2, ':').collect();
    let (kind, rest) = match parts.as_slice() {
        [k, r] => (*k, *r),
        _ => return Vec::new(),
    };
    let fields: Vec<&str> = rest.split('/').collect();
    resources
        .iter()
        .filter(|r| r["kind"] == "Workload" || r["kind"] == "Deployment")
        .filter(|r| {
            let ns = r["namespace"].as_str().unwrap_or("");
            let labels = &r["object"]["metadata"]["labels"];
            let name = r["name"].as_str().unwrap_or("");
            match (kind, fields.as_slice()) {
                ("wl", [n, w]) => ns == *n && name == *w,
                ("app", [n, a]) => ns == *n && labels["app"] == *a,
                ("vapp", [n, a, v]) => ns == *n && labels["app"] == *a && labels["version"] == *v,
                _ => false,
            }
        })
        .map(|r| (r["name"].as_str().unwrap_or(""), r))
        .collect()
}

/// The Istio resources that apply to a node: for a service, the routing
/// rules for its host; for workloads, the policies that select them.
fn applying(resources: &[Value], id: &str) -> Vec<Value> {
    let summary = |r: &Value| json!({"kind": r["kind"], "namespace": r["namespace"], "name": r["name"], "file": r["file"], "line": r["line"]});
    if let Some(svc) = id.strip_prefix("svc:") {
        return resources
            .iter()
            .filter(|r| {
                let ns = r["namespace"].as_str().unwrap_or("");
                let spec = &r["object"]["spec"];
                match r["kind"].as_str() {
                    Some("VirtualService") | Some("ServiceEntry") => spec["hosts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|h| h.as_str())
                        .any(|h| h != "*" && names(h, ns, svc)),
                    Some("DestinationRule") => names(str_of(spec, &["host"]), ns, svc),
                    Some("Service") => {
                        format!(
                            "{}.{ns}.svc.cluster.local",
                            r["name"].as_str().unwrap_or("")
                        ) == svc
                    }
                    _ => false,
                }
            })
            .map(summary)
            .collect();
    }
    let workloads = workloads_of(resources, id);
    let mut out: Vec<Value> = workloads.iter().map(|(_, r)| summary(r)).collect();
    for r in resources {
        let kind = r["kind"].as_str().unwrap_or("");
        if !matches!(
            kind,
            "AuthorizationPolicy"
                | "PeerAuthentication"
                | "RequestAuthentication"
                | "Sidecar"
                | "Telemetry"
        ) {
            continue;
        }
        let ns = r["namespace"].as_str().unwrap_or("");
        let selector = &r["object"]["spec"]["selector"]["matchLabels"];
        let selects = workloads.iter().any(|(_, w)| {
            let wns = w["namespace"].as_str().unwrap_or("");
            let labels = &w["object"]["metadata"]["labels"];
            let ns_ok = ns == wns || ns == "istio-system";
            let labels_ok = selector
                .as_object()
                .is_none_or(|m| m.iter().all(|(k, v)| labels[k] == *v));
            ns_ok && labels_ok
        });
        if selects {
            out.push(summary(r));
        }
    }
    out
}

/// The proxies of the workloads behind a node: sync state and certificate.
fn proxies_of(resources: &[Value], status: &Value, id: &str) -> Vec<Value> {
    let workloads = workloads_of(resources, id);
    status["proxies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            let name = p["name"].as_str().unwrap_or("");
            workloads.iter().any(|(w, r)| {
                let ns = r["namespace"].as_str().unwrap_or("");
                name.starts_with(&format!("{ns}/{w}-"))
            })
        })
        .map(|p| {
            json!({"name": p["name"], "sync": p["sync"], "certificate": p["stream"]["certificate"]})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::node_id_of_path;

    #[test]
    fn resource_paths_name_graph_nodes() {
        assert_eq!(
            node_id_of_path("/api/services/reviews.default.svc.cluster.local").as_deref(),
            Some("svc:reviews.default.svc.cluster.local")
        );
        assert_eq!(
            node_id_of_path("/api/workloads/default/reviews-v1").as_deref(),
            Some("wl:default/reviews-v1")
        );
        assert_eq!(
            node_id_of_path("/api/apps/default/reviews/").as_deref(),
            Some("app:default/reviews")
        );
        for bad in [
            "/api/services/",
            "/api/workloads/default",
            "/api/workloads/a/b/c",
            "/api/x",
        ] {
            assert_eq!(node_id_of_path(bad), None, "{bad}");
        }
    }
}
