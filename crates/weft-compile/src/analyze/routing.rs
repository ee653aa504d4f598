//! Routing mistakes: ambiguous ports, rules that can never match, hosts a
//! gateway does not serve, port names the mesh cannot read.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Spec;
use weft_api::types::networking::HttpMatchRequest;

use super::{Findings, Input};

fn without_name(m: &HttpMatchRequest) -> HttpMatchRequest {
    let mut m = m.clone();
    m.name.clear();
    m
}

pub fn unreachable_rules(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        let http = FieldPath::root().key("spec").key("http");
        let mut catch_all: Option<usize> = None;
        let mut seen: Vec<(HttpMatchRequest, usize)> = Vec::new();
        for (i, rule) in vs.http.iter().enumerate() {
            let label = if rule.name.is_empty() {
                i.to_string()
            } else {
                rule.name.clone()
            };
            if let Some(j) = catch_all {
                out.add(Severity::Warning, "IST0130", r, &http.index(i), format!("VirtualService rule {label} not used (only the last rule can have no matches; rule {j} has none)."), "move the rule without matches to the end");
                continue;
            }
            if rule.matches.is_empty() {
                catch_all = Some(i);
                continue;
            }
            let mut unused = 0;
            for (k, m) in rule.matches.iter().enumerate() {
                let key = without_name(m);
                if let Some((_, prior)) = seen.iter().find(|(x, _)| *x == key) {
                    unused += 1;
                    if *prior != i {
                        out.add(Severity::Info, "IST0131", r, &http.index(i).key("match").index(k), format!("VirtualService rule {label} match {k} is not used (duplicate/overlapping match in rule {prior})."), "remove the duplicate match");
                    }
                } else {
                    seen.push((key, i));
                }
            }
            if unused == rule.matches.len() {
                out.add(
                    Severity::Warning,
                    "IST0130",
                    r,
                    &http.index(i),
                    format!(
                        "VirtualService rule {label} not used (all matches used by prior rules)."
                    ),
                    "remove the rule or change its matches",
                );
            }
        }
    }
}

/// Whether Istio's protocol selection (`ConvertProtocol`) finds a protocol
/// for a Service port: UDP by the port's protocol; else `appProtocol` when
/// set (Kubernetes' `kubernetes.io/h2c`, `ws`, `wss` included), else the
/// port name's prefix (`grpc-web` whole, otherwise up to the first `-`);
/// else TCP for the well-known ports protocol sniffing would break (SMTP,
/// DNS, MySQL, MongoDB).
fn istio_knows_protocol(
    port: i64,
    name: &str,
    protocol: Option<&str>,
    app_protocol: Option<&str>,
) -> bool {
    if protocol == Some("UDP") {
        return true;
    }
    let name = match app_protocol {
        Some("kubernetes.io/h2c" | "kubernetes.io/ws" | "kubernetes.io/wss") => return true,
        Some(app) => app,
        None => name,
    };
    if name.len() >= 8 && name[..8].eq_ignore_ascii_case("grpc-web") {
        return true;
    }
    let prefix = name.split('-').next().unwrap_or(name).to_ascii_lowercase();
    let known = matches!(
        prefix.as_str(),
        "tcp"
            | "udp"
            | "grpc"
            | "grpc-web"
            | "http"
            | "http_proxy"
            | "http2"
            | "https"
            | "tls"
            | "mongo"
            | "redis"
            | "mysql"
    );
    known || matches!(port, 25 | 53 | 3306 | 27017)
}

/// Values of `gateway.istio.io/managed` on the Services Istio makes for
/// Gateway API gateways and waypoints: not the user's to name.
const MANAGED_GATEWAY_CONTROLLERS: &[&str] = &[
    "istio.io-gateway-controller",
    "istio.io-mesh-controller",
    "istio.io-eastwest-controller",
];

pub fn port_names(input: &Input<'_>, out: &mut Findings) {
    for r in input.resources {
        let Spec::Service(s) = &r.spec else { continue };
        // As istioctl: the control plane's own Services (labelled `istio`
        // or `release: istio`) and gateway-managed ones are not checked.
        let labels = &r.meta.labels;
        if labels.contains_key("istio")
            || labels.get("release").is_some_and(|v| v == "istio")
            || labels
                .get("gateway.istio.io/managed")
                .is_some_and(|v| MANAGED_GATEWAY_CONTROLLERS.contains(&v.as_str()))
        {
            continue;
        }
        let external_name = s.service_type == "ExternalName";
        for (i, p) in s.ports.iter().enumerate() {
            let known = istio_knows_protocol(
                p.port,
                &p.name,
                p.protocol.as_deref(),
                p.app_protocol.as_deref(),
            );
            if known && !(external_name && p.name == "tcp") {
                continue;
            }
            let field = FieldPath::root()
                .key("spec")
                .key("ports")
                .index(i)
                .key("name");
            if external_name {
                out.add(
                    Severity::Warning,
                    "IST0150",
                    r,
                    &field,
                    "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly".to_owned(),
                    "name the port after the protocol it carries (http, https, tls, ...), not tcp or a name without a protocol",
                );
                continue;
            }
            let target = match &p.target_port {
                Some(weft_api::types::common::IntOrString::Int(n)) => n.to_string(),
                Some(weft_api::types::common::IntOrString::Str(s)) => s.clone(),
                None => p.port.to_string(),
            };
            out.add(
                Severity::Info,
                "IST0118",
                r,
                &field,
                format!("Port name {} (port: {}, targetPort: {target}) doesn't follow the naming convention of Istio port.", p.name, p.port),
                "name it <protocol>[-<suffix>] (http, http2, grpc, tcp, tls, https) or set appProtocol; otherwise the protocol is sniffed",
            );
        }
    }
}
