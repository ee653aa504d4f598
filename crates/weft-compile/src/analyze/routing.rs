//! Routing mistakes: ambiguous ports, rules that can never match, hosts a
//! gateway does not serve, port names the mesh cannot read.

use std::collections::BTreeMap;
use weft_api::diag::Severity;
use weft_api::path::FieldPath;

use weft_api::resource::{Resource, Spec};
use weft_api::types::common::StringMatch;
use weft_api::types::networking::{HttpMatchRequest, VirtualService};

use super::{Findings, Input};

fn without_name(m: &HttpMatchRequest) -> HttpMatchRequest {
    let mut m = m.clone();
    m.name.clear();
    m
}

/// One route's matches, compared whole (an HTTP match's name aside).
struct Rule<'a, M> {
    /// `"name"` for a named HTTP route, else `#index`.
    label: String,
    matches: Vec<(String, &'a M)>,
    field: FieldPath,
}

/// Istio's unreachable-rule analysis (its VirtualService validation, which
/// istioctl reports as IST0130 and IST0131): a rule after one without
/// matches, a rule whose every match an earlier rule has, and a match seen
/// before (in this rule or an earlier one).
fn unreachable<M: PartialEq>(r: &Resource, rules: &[Rule<'_, M>], out: &mut Findings) {
    let not_used = |out: &mut Findings, rule: &Rule<'_, M>, why: &str, fix: &str| {
        out.add(
            Severity::Warning,
            "IST0130",
            r,
            &rule.field,
            format!("VirtualService rule {} not used ({why}).", rule.label),
            fix,
        );
    };
    let move_it = "move the rule without matches to the end";
    let mut seen: Vec<(&M, usize)> = Vec::new();
    let mut catch_all = false;
    for (i, rule) in rules.iter().enumerate() {
        if rule.matches.is_empty() {
            if catch_all {
                not_used(out, rule, "only the last rule can have no matches", move_it);
            }
            catch_all = true;
            continue;
        }
        if catch_all {
            // Istio says so once per match; findings are deduplicated.
            not_used(out, rule, "route without matches defined before", move_it);
            continue;
        }
        let mut duplicates = 0;
        for (k, (name, m)) in rule.matches.iter().enumerate() {
            if let Some((_, prior)) = seen.iter().find(|(x, _)| *x == *m) {
                out.add(Severity::Info, "IST0131", r, &rule.field.key("match").index(k), format!("VirtualService rule {} match {name} is not used (duplicate/overlapping match in rule {}).", rule.label, rules[*prior].label), "remove the duplicate match");
                duplicates += 1;
            } else {
                seen.push((m, i));
            }
        }
        if duplicates == rule.matches.len() {
            not_used(
                out,
                rule,
                "all matches used by prior rules",
                "remove the rule or change its matches",
            );
        }
    }
}

/// `exact:v` or `prefix:v`, as Istio's overlap check writes a match.
fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m {
        Some(StringMatch { exact: Some(e), .. }) if !e.is_empty() => format!("exact:{e}"),
        Some(StringMatch {
            prefix: Some(p), ..
        }) if !p.is_empty() => format!("prefix:{p}"),
        _ => String::new(),
    }
}

/// A prefix match as Istio's overlap check sees it.
struct PrefixMatch<'a> {
    rule: &'a str,
    name: String,
    prefix: &'a str,
    port: Option<u32>,
    method: String,
    authority: String,
    headers: BTreeMap<&'a str, String>,
    query: BTreeMap<&'a str, String>,
    without: BTreeMap<&'a str, String>,
    field: FieldPath,
}

impl<'a> PrefixMatch<'a> {
    fn of(rule: &'a str, name: String, m: &'a HttpMatchRequest, field: FieldPath) -> Option<Self> {
        let prefix = m
            .uri
            .as_ref()?
            .prefix
            .as_deref()
            .filter(|p| !p.is_empty())?;
        let method = match exact_or_prefix(m.method.as_ref()) {
            s if s.is_empty() => "exact:GET".to_owned(),
            s => s,
        };
        let each = |map: &'a BTreeMap<String, StringMatch>| {
            map.iter()
                .map(|(k, v)| (k.as_str(), exact_or_prefix(Some(v))))
                .collect()
        };
        Some(PrefixMatch {
            rule,
            name,
            prefix,
            port: m.port,
            method,
            authority: exact_or_prefix(m.authority.as_ref()),
            headers: each(&m.headers),
            query: each(&m.query_params),
            without: each(&m.without_headers),
            field,
        })
    }

    /// Whether this earlier match takes every request `later` would.
    fn covers(&self, later: &PrefixMatch<'_>) -> bool {
        let within = |a: &str, b: &str| a == b || a.starts_with(b);
        let maps = |a: &BTreeMap<&str, String>, b: &BTreeMap<&str, String>| {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| within(v, w)))
        };
        later.prefix.starts_with(self.prefix)
            && later.port == self.port
            && within(&self.method, &later.method)
            && within(&self.authority, &later.authority)
            && maps(&self.headers, &later.headers)
            && maps(&self.query, &later.query)
            && maps(&self.without, &later.without)
    }
}

/// The HTTP rules, labelled by `vs` and matching `matches` (the rules'
/// matches as given, or copies without their names).
fn http_rules<'a>(
    vs: &VirtualService,
    matches: &'a [Vec<HttpMatchRequest>],
) -> Vec<Rule<'a, HttpMatchRequest>> {
    let http = FieldPath::root().key("spec").key("http");
    vs.http
        .iter()
        .zip(matches)
        .enumerate()
        .map(|(i, (rule, ms))| Rule {
            label: if rule.name.is_empty() {
                format!("#{i}")
            } else {
                format!("{:?}", rule.name)
            },
            matches: rule
                .matches
                .iter()
                .zip(ms)
                .enumerate()
                .map(|(k, (named, m))| {
                    (
                        if named.name.is_empty() {
                            format!("#{k}")
                        } else {
                            format!("{:?}", named.name)
                        },
                        m,
                    )
                })
                .collect(),
            field: http.index(i),
        })
        .collect()
}

/// TCP or TLS routes as rules: they have no names, so `#index` labels them.
fn l4_rules<'a, M: 'a>(
    routes: impl Iterator<Item = &'a Vec<M>>,
    field: FieldPath,
) -> Vec<Rule<'a, M>> {
    routes
        .enumerate()
        .map(|(i, matches)| Rule {
            label: format!("#{i}"),
            matches: matches
                .iter()
                .enumerate()
                .map(|(k, m)| (format!("#{k}"), m))
                .collect(),
            field: field.index(i),
        })
        .collect()
}

pub fn unreachable_rules(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        // HTTP matches compare without their names.
        let unnamed: Vec<Vec<HttpMatchRequest>> = vs
            .http
            .iter()
            .map(|h| h.matches.iter().map(without_name).collect())
            .collect();
        let http = http_rules(vs, &unnamed);
        unreachable(r, &http, out);
        overlapping_prefixes(r, &http, out);
        let spec = FieldPath::root().key("spec");
        unreachable(
            r,
            &l4_rules(vs.tcp.iter().map(|t| &t.matches), spec.key("tcp")),
            out,
        );
        unreachable(
            r,
            &l4_rules(vs.tls.iter().map(|t| &t.matches), spec.key("tls")),
            out,
        );
    }
}

/// IST0131 for a prefix match that an earlier, shorter prefix with the
/// same (or wider) other conditions already takes, as Istio checks it.
fn overlapping_prefixes(r: &Resource, rules: &[Rule<'_, HttpMatchRequest>], out: &mut Findings) {
    let mut seen: Vec<&HttpMatchRequest> = Vec::new();
    let mut prefixes: Vec<PrefixMatch<'_>> = Vec::new();
    for rule in rules {
        for (k, (name, m)) in rule.matches.iter().enumerate() {
            // Whole duplicates are reported by `unreachable` and not
            // looked at again.
            if seen.contains(m) {
                continue;
            }
            seen.push(m);
            if let Some(p) = PrefixMatch::of(
                &rule.label,
                name.clone(),
                m,
                rule.field.key("match").index(k),
            ) {
                prefixes.push(p);
            }
        }
    }
    for (i, a) in prefixes.iter().enumerate() {
        for b in &prefixes[i + 1..] {
            if b.prefix != a.prefix && a.covers(b) {
                out.add(
                    Severity::Info,
                    "IST0131",
                    r,
                    &b.field,
                    format!("VirtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {}).", b.rule, b.name, b.prefix, a.name, a.prefix, a.rule),
                    "put the longer prefix first, or remove it",
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
