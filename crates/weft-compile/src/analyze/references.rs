//! IST0101 ReferencedResourceNotFound, for every kind of reference.

use std::collections::BTreeSet;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_api::types::networking::{Destination, VirtualService};

use super::{Findings, Input};
use crate::host;

/// Every destination of a VirtualService with its field path.
pub(crate) fn destinations(vs: &VirtualService) -> Vec<(FieldPath, &Destination)> {
    let spec = FieldPath::root().key("spec");
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        let p = spec.key("http").index(i);
        for (j, d) in r.route.iter().enumerate() {
            if let Some(dest) = &d.destination {
                out.push((p.key("route").index(j).key("destination"), dest));
            }
        }
        if let Some(m) = &r.mirror {
            out.push((p.key("mirror"), m));
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            if let Some(dest) = &m.destination {
                out.push((p.key("mirrors").index(j).key("destination"), dest));
            }
        }
    }
    for (field, routes) in [
        ("tcp", vs.tcp.iter().map(|t| &t.route).collect::<Vec<_>>()),
        ("tls", vs.tls.iter().map(|t| &t.route).collect()),
    ] {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, d) in route.iter().enumerate() {
                if let Some(dest) = &d.destination {
                    out.push((
                        spec.key(field)
                            .index(i)
                            .key("route")
                            .index(j)
                            .key("destination"),
                        dest,
                    ));
                }
            }
        }
    }
    out
}

pub fn destination_subsets(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        for (path, dest) in destinations(vs) {
            if dest.subset.is_empty() {
                continue;
            }
            let h = host::resolve(&dest.host, r.namespace(), &input.mesh.domain_suffix);
            let defined = input.index.destination_rules.iter().any(|(dr_r, dr)| {
                host::matches(
                    &host::resolve(&dr.host, dr_r.namespace(), &input.mesh.domain_suffix),
                    &h,
                ) && dr.subsets.iter().any(|s| s.name == dest.subset)
            });
            if !defined {
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &path.key("subset"),
                    format!("Referenced host+subset in destinationrule not found: \"{}+{}\"", dest.host, dest.subset),
                    "define the subset in a DestinationRule for this host; requests to an undefined subset get 503 (NR)",
                );
            }
        }
    }
}

/// The namespace of the workload a Gateway selects (weft's own gateways
/// live in the root namespace), where Istio looks for its secrets.
fn gateway_workload_namespace<'a>(
    input: &Input<'a>,
    gw: &weft_api::types::networking::Gateway,
) -> Option<&'a str> {
    super::workloads::every_workload(input)
        .find(|w| crate::registry::labels_match(&gw.selector, w.labels))
        .map(|w| w.namespace)
}

/// As istioctl's SecretAnalyzer: a `credentialName` found neither as a
/// Secret resource in the namespace of the gateway's workload nor in
/// weft's secrets directory (IST0101), or one that cannot serve (IST0161:
/// no key, a certificate that does not parse, expired or not yet valid).
/// Where credentials are Secret resources (YAML from a cluster), a gateway
/// whose selector picks no workload is reported as istioctl reports it.
pub fn gateway_secrets(input: &Input<'_>, out: &mut Findings) {
    let secrets: Vec<(&Resource, &weft_api::types::kube::Secret)> = input
        .resources
        .iter()
        .filter(|_| input.secret_resources_served)
        .filter_map(|r| match &r.spec {
            Spec::Secret(s) => Some((r, s)),
            _ => None,
        })
        .collect();
    if secrets.is_empty() && input.secrets_dir.is_none() {
        return;
    }
    for (r, gw) in &input.index.gateways {
        let uses_credentials = gw
            .servers
            .iter()
            .any(|s| s.tls.as_ref().is_some_and(|t| t.credential_name.is_some()));
        let workload_ns = gateway_workload_namespace(input, gw);
        if workload_ns.is_none() && !secrets.is_empty() && uses_credentials {
            let selector = gw
                .selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            out.add(
                Severity::Error,
                "IST0101",
                r,
                &FieldPath::root().key("spec").key("selector"),
                format!("Referenced selector not found: {selector:?}"),
                "no workload carries these labels, so no gateway serves this resource and its credentials cannot be looked up",
            );
            continue;
        }
        let ns = workload_ns.unwrap_or(r.namespace());
        for (i, s) in gw.servers.iter().enumerate() {
            let Some(name) = s.tls.as_ref().and_then(|t| t.credential_name.as_ref()) else {
                continue;
            };
            let field = FieldPath::root()
                .key("spec")
                .key("servers")
                .index(i)
                .key("tls")
                .key("credentialName");
            let invalid = |out: &mut Findings, why: &str, fix: String| {
                out.add(
                    Severity::Error,
                    "IST0161",
                    r,
                    &field,
                    format!("The credential referenced by the Gateway {} in namespace {ns} is invalid, which can cause the traffic not to work as expected.", r.name()),
                    &format!("{why}; {fix}"),
                );
            };
            let secret = secrets
                .iter()
                .find(|(sr, _)| sr.name() == name.as_str() && sr.namespace() == ns);
            if let Some((sr, secret)) = secret {
                let cert = secret.text(&["tls.crt", "cert"]).unwrap_or_default();
                let key = secret.text(&["tls.key", "key"]).unwrap_or_default();
                if let Some(Err(why)) = input.pem_check.map(|check| check(name, &cert, &key)) {
                    invalid(
                        out,
                        &why,
                        format!(
                            "replace tls.crt and tls.key in Secret {}/{}",
                            sr.namespace(),
                            sr.name()
                        ),
                    );
                }
                continue;
            }
            let in_dir = input.secrets_dir.as_ref().filter(|dir| {
                dir.join(name).is_dir()
                    || dir.join(format!("{name}.pem")).is_file()
                    || dir.join(format!("{name}.crt")).is_file()
            });
            let Some(dir) = in_dir else {
                let fix = match (&input.secrets_dir, input.secret_resources_served) {
                    (Some(dir), true) => format!(
                        "put tls.crt and tls.key in {}/{name}/, or define Secret {ns}/{name}",
                        dir.display()
                    ),
                    (Some(dir), false) => format!(
                        "put tls.crt and tls.key in {}/{name}/ (weft's proxies take credentials from there; Secret resources are not served yet)",
                        dir.display()
                    ),
                    (None, _) => format!("define Secret {ns}/{name} with tls.crt and tls.key"),
                };
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &field,
                    format!("Referenced credentialName not found: {name:?}"),
                    &fix,
                );
                continue;
            };
            if let Some(Err(why)) = input.credential_check.map(|check| check(dir, name)) {
                invalid(
                    out,
                    &why,
                    format!("replace tls.crt and tls.key in {}/{name}/", dir.display()),
                );
            }
        }
    }
}

/// Namespaces the configuration knows: its Namespace resources, and every
/// namespace a resource lives in (files seldom carry their Namespaces;
/// istioctl, which reads only Namespace resources, would call them all
/// missing).
fn known_namespaces(input: &Input<'_>) -> BTreeSet<String> {
    let mut ns: BTreeSet<String> = input
        .resources
        .iter()
        .map(|r| {
            if r.kind() == weft_api::resource::ResourceKind::Namespace {
                r.name().to_owned()
            } else {
                r.namespace().to_owned()
            }
        })
        .filter(|n| !n.is_empty())
        .collect();
    ns.insert(input.mesh.root_namespace.clone());
    ns.extend(input.mesh.gateways.iter().map(|g| g.namespace.clone()));
    ns
}

/// An AuthorizationPolicy's namespace expression against a namespace:
/// `*`, a `*suffix`, a `prefix*`, or the name (any case), as Istio's
/// analyzer matches them.
fn namespace_matches(ns: &str, exp: &str) -> bool {
    if exp == "*" {
        return true;
    }
    if let Some(suffix) = exp.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    if let Some(prefix) = exp.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    ns.eq_ignore_ascii_case(exp)
}

pub fn authz_namespaces(input: &Input<'_>, out: &mut Findings) {
    let known = known_namespaces(input);
    for (r, ap) in &input.index.authorization_policies {
        for (i, rule) in ap.rules.iter().flatten().enumerate() {
            for (j, f) in rule.from.iter().enumerate() {
                let Some(src) = &f.source else { continue };
                for (field, list) in [
                    ("namespaces", &src.namespaces),
                    ("notNamespaces", &src.not_namespaces),
                ] {
                    for (k, ns) in list.iter().enumerate() {
                        if !known.iter().any(|k| namespace_matches(k, ns)) {
                            let path = FieldPath::root()
                                .key("spec")
                                .key("rules")
                                .index(i)
                                .key("from")
                                .index(j)
                                .key("source")
                                .key(field)
                                .index(k);
                            out.add(Severity::Error, "IST0101", r, &path, format!("Referenced namespace not found: {ns:?}"), "check the namespace name; no resource in the configuration lives there");
                        }
                    }
                }
            }
        }
    }
}

pub fn sidecar_egress_hosts(input: &Input<'_>, out: &mut Findings) {
    for (r, sc) in &input.index.sidecars {
        for (i, e) in sc.egress.iter().enumerate() {
            for (j, entry) in e.hosts.iter().enumerate() {
                let (ns, h) = entry.split_once('/').unwrap_or(("*", entry));
                if h.contains('*') || ns == "~" {
                    continue;
                }
                let found = input.registry.services.values().any(|s| {
                    crate::compile::routes_support::egress_host_covers(
                        entry,
                        r.namespace(),
                        &s.namespace,
                        &s.host,
                    )
                });
                if !found {
                    let path = FieldPath::root()
                        .key("spec")
                        .key("egress")
                        .index(i)
                        .key("hosts")
                        .index(j);
                    out.add(Severity::Error, "IST0101", r, &path, format!("Referenced egress host not found: {entry:?}"), "egress hosts are namespace/FQDN, e.g. ./reviews.default.svc.cluster.local or */*.example.com");
                }
            }
        }
    }
}

pub fn canary_targets(input: &Input<'_>, out: &mut Findings) {
    for r in input.resources {
        let Spec::Canary(c) = &r.spec else { continue };
        let spec = FieldPath::root().key("spec");
        for name in [
            weft_canary::settings::MIN_REQUESTS_ANNOTATION,
            weft_canary::settings::PROVIDER_ERRORS_ANNOTATION,
        ] {
            let Some(v) = r.meta.annotations.get(name) else {
                continue;
            };
            if v.trim().parse::<u32>().is_err() {
                out.add(
                    Severity::Error,
                    "WEFT0111",
                    r,
                    &FieldPath::root()
                        .key("metadata")
                        .key("annotations")
                        .key(name),
                    format!("{name} is {v:?}, not a count"),
                    "give a whole number of 0 or more, quoted (\"0\" is Flagger's behaviour)",
                );
            }
        }
        if let Some(t) = &c.target_ref {
            let kind = ResourceKind::from_name(&t.kind);
            let ns = if t.namespace.is_empty() {
                r.namespace()
            } else {
                &t.namespace
            };
            let found = kind.is_some_and(|k| {
                input
                    .resources
                    .iter()
                    .any(|x| x.kind() == k && x.namespace() == ns && x.name() == t.name)
            });
            if !found {
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &spec.key("targetRef").key("name"),
                    format!("Referenced {} not found: {:?}", t.kind, t.name),
                    "point targetRef at an existing Deployment or Workload",
                );
            }
            canary_port(input, r, c, ns, &t.name, &spec, out);
        }
        let analysis = c.analysis.as_ref().or(c.canary_analysis.as_ref());
        if let Some(text) = r.meta.annotations.get(weft_canary::compare::ANNOTATION) {
            let at = FieldPath::root()
                .key("metadata")
                .key("annotations")
                .key(weft_canary::compare::ANNOTATION);
            match weft_canary::compare::parse(text) {
                Err(why) => out.add(
                    Severity::Error,
                    "WEFT0111",
                    r,
                    &at,
                    format!("{} does not parse: {why}", weft_canary::compare::ANNOTATION),
                    "write rules such as \"request-success-rate >= primary - 1, request-duration <= primary * 1.2\"",
                ),
                Ok(rules) => {
                    for rule in rules {
                        let named = analysis
                            .is_some_and(|a| a.metrics.iter().any(|m| m.name == rule.metric));
                        if !named {
                            out.add(
                                Severity::Error,
                                "WEFT0111",
                                r,
                                &at,
                                format!(
                                    "{} compares {}, which the analysis does not judge",
                                    weft_canary::compare::ANNOTATION,
                                    rule.metric
                                ),
                                "name a metric of spec.analysis.metrics",
                            );
                        }
                    }
                }
            }
        }
        let field = if c.analysis.is_some() {
            "analysis"
        } else {
            "canaryAnalysis"
        };
        for (i, a) in analysis
            .map(|a| a.alerts.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let name = a["providerRef"]["name"].as_str().unwrap_or_default();
            let ns = a["providerRef"]["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(r.namespace());
            let found = input.resources.iter().any(|x| {
                x.kind() == ResourceKind::AlertProvider && x.namespace() == ns && x.name() == name
            });
            if !found {
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &spec.key(field).key("alerts").index(i).key("providerRef"),
                    format!("Referenced AlertProvider not found: {name:?}"),
                    "define the AlertProvider, or give its namespace",
                );
            }
        }
        for (i, m) in analysis
            .map(|a| a.metrics.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let settings = weft_canary::settings::Settings::of(r.name(), r.namespace(), c);
            let model = settings
                .template_model(m.interval.as_deref().unwrap_or("1m"), &m.template_variables);
            let at = spec.key(field).key("metrics").index(i);
            if let Some(q) = m.query.as_deref().filter(|q| !q.is_empty()) {
                if let Err(e) = weft_canary::template::render(q, &model) {
                    out.add(
                        Severity::Error,
                        "WEFT0111",
                        r,
                        &at.key("query"),
                        format!("the query does not render: {e}"),
                        "use only Flagger's variables: name, namespace, target, service, ingress, route, interval, variables.KEY",
                    );
                }
            }
            let Some(t) = &m.template_ref else { continue };
            let ns = if t.namespace.is_empty() {
                r.namespace()
            } else {
                &t.namespace
            };
            let template = input.resources.iter().find_map(|x| match &x.spec {
                Spec::MetricTemplate(mt) if x.namespace() == ns && x.name() == t.name => Some(mt),
                _ => None,
            });
            if let Some(Err(e)) =
                template.map(|mt| weft_canary::template::render(&mt.query, &model))
            {
                out.add(
                    Severity::Error,
                    "WEFT0111",
                    r,
                    &at.key("templateRef"),
                    format!("MetricTemplate {ns}/{}'s query does not render for this canary: {e}", t.name),
                    "give the variable in templateVariables, or use only Flagger's template variables",
                );
            }
            let found = template.is_some();
            if !found {
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &spec.key(field).key("metrics").index(i).key("templateRef"),
                    format!("Referenced MetricTemplate not found: {:?}", t.name),
                    "define the MetricTemplate, or give its namespace",
                );
            }
        }
    }
}

/// A Canary's `service.port` (or `targetPort`) is a port its Workload
/// target declares: the generated Services send traffic there.
fn canary_port(
    input: &Input<'_>,
    r: &Resource,
    c: &weft_api::types::flagger::Canary,
    ns: &str,
    target: &str,
    spec: &FieldPath,
    out: &mut Findings,
) {
    let Some(svc) = &c.service else { return };
    let kind = c
        .target_ref
        .as_ref()
        .map_or("Workload", |t| t.kind.as_str());
    let ports: Vec<u32> = match input.resources.iter().find_map(|x| {
        (x.namespace() == ns && x.name() == target && x.kind().name() == kind).then_some(&x.spec)
    }) {
        Some(Spec::Workload(w)) => w.all_ports().iter().map(|p| p.port).collect(),
        Some(Spec::Deployment(d)) => d
            .template
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .filter_map(|p| u32::try_from(p.container_port).ok())
            .collect(),
        _ => return,
    };
    if ports.is_empty() {
        return;
    }
    let wanted = match &svc.target_port {
        Some(weft_api::types::common::IntOrString::Int(p)) => u32::try_from(*p).unwrap_or(0),
        _ => svc.port,
    };
    if !ports.contains(&wanted) {
        out.add(
            Severity::Error,
            "WEFT0111",
            r,
            &spec.key("service").key("port"),
            format!(
                "{kind} {ns}/{target} does not listen on port {wanted}: it declares {}",
                ports
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "set service.port (or targetPort) to a port the target declares",
        );
    }
}

/// A resource of a kind, by namespace and name.
#[allow(dead_code)]
pub(crate) fn find<'a>(
    input: &'a Input<'_>,
    kind: ResourceKind,
    ns: &str,
    name: &str,
) -> Option<&'a Resource> {
    input
        .resources
        .iter()
        .find(|r| r.kind() == kind && r.namespace() == ns && r.name() == name)
}

/// Extension providers whose service is not in the mesh (their spans or
/// checks would go nowhere), and Telemetry naming a provider MeshConfig
/// does not define.
pub fn extension_providers(input: &Input<'_>, out: &mut Findings) {
    let mesh = &input.index.mesh_config;
    if let Some(r) = input
        .resources
        .iter()
        .find(|r| weft_api::types::mesh::is_mesh_config(r, &input.mesh.root_namespace))
    {
        let base = FieldPath::root()
            .key("data")
            .key("mesh")
            .key("extensionProviders");
        for (i, p) in mesh.extension_providers.iter().enumerate() {
            let services = [
                (
                    "opentelemetry",
                    p.opentelemetry.as_ref().map(|o| &o.service),
                ),
                (
                    "envoyExtAuthzHttp",
                    p.envoy_ext_authz_http.as_ref().map(|h| &h.service),
                ),
            ];
            for (field, service) in services {
                let Some(service) = service.filter(|s| !s.is_empty()) else {
                    continue;
                };
                let h = host::resolve(
                    service,
                    &input.mesh.root_namespace,
                    &input.mesh.domain_suffix,
                );
                if input.registry.service(&h).is_none() {
                    out.add(
                        Severity::Warning,
                        "IST0101",
                        r,
                        &base.index(i).key(field).key("service"),
                        format!(
                            "Referenced service not found: {service:?} (extension provider {:?})",
                            p.name
                        ),
                        "declare it as a Kubernetes Service or a ServiceEntry, or the proxies cannot reach it",
                    );
                }
            }
        }
    }
    let defined: BTreeSet<&str> = mesh
        .extension_providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    for (r, t) in &input.index.telemetries {
        let spec = FieldPath::root().key("spec");
        for (i, tr) in t.tracing.iter().enumerate() {
            for (j, p) in tr.providers.iter().enumerate() {
                if !defined.contains(p.name.as_str()) {
                    out.add(
                        Severity::Error,
                        "IST0101",
                        r,
                        &spec
                            .key("tracing")
                            .index(i)
                            .key("providers")
                            .index(j)
                            .key("name"),
                        format!("Referenced extension provider not found: {:?}", p.name),
                        "define it under extensionProviders in the istio ConfigMap's mesh",
                    );
                }
            }
        }
    }
}
