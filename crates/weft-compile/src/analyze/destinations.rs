//! A VirtualService's destinations, as istioctl's
//! `virtualservice.DestinationHostAnalyzer` checks them: a host no service
//! visible from the VirtualService defines (IST0101), a port it does not
//! expose (IST0101 `host:port`), a missing port where it exposes several
//! (IST0112), and, on a gateway's VirtualService, a route without a subset
//! to a host that a mesh VirtualService splits by subset (IST0140).
//!
//! Visibility is Istio's analyzer's: a service exported everywhere is
//! seen from any namespace; one exported to some namespaces is seen from
//! the VirtualService's namespace, or from the namespaces the
//! VirtualService itself is exported to; short names are completed in the
//! VirtualService's namespace and names with a dot are taken as written.

use std::collections::BTreeMap;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Resource;
use weft_api::types::networking::{Destination, VirtualService};

use super::references::destinations;
use super::{Findings, Input};
use crate::registry::{labels_match, Service, ServiceSource};

/// `(scope, fqdn)` → the service; scope `*` is everywhere.
type Visible<'a> = BTreeMap<(String, String), &'a Service>;

fn fqdn(host: &str, ns: &str, domain_suffix: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{ns}.svc.{domain_suffix}")
    }
}

fn visible_services<'a>(input: &Input<'a>) -> Visible<'a> {
    let mut out = Visible::new();
    for svc in input.registry.services.values() {
        let scopes = super::export_scopes(&svc.export_to, &svc.namespace);
        for scope in scopes {
            out.entry((scope, svc.host.clone())).or_insert(svc);
        }
    }
    out
}

/// The service `host` names, as seen by a resource in `ns` exported to
/// `export_to`; `None` when none is visible.
fn lookup<'a>(
    visible: &Visible<'a>,
    ns: &str,
    export_to: &[String],
    host: &str,
    domain_suffix: &str,
) -> Option<&'a Service> {
    let fq = fqdn(host, ns, domain_suffix);
    if let Some(p) = visible.get(&("*".to_owned(), fq.clone())) {
        return Some(*p);
    }
    let scopes: Vec<&str> = if export_to.is_empty() {
        vec![ns]
    } else {
        export_to
            .iter()
            .map(|e| if e == "." { ns } else { e.as_str() })
            .collect()
    };
    for scope in scopes {
        if let Some(p) = visible.get(&(scope.to_owned(), fq.clone())) {
            return Some(*p);
        }
    }
    let bare = host.trim_start_matches('*');
    visible.iter().find_map(|((scope, se_host), p)| {
        let suffix = se_host.strip_prefix('*')?;
        ((scope == "*" || scope == ns) && bare.ends_with(suffix)).then_some(*p)
    })
}

fn check(
    input: &Input<'_>,
    out: &mut Findings,
    visible: &Visible<'_>,
    r: &Resource,
    vs: &VirtualService,
    path: &FieldPath,
    dest: &Destination,
) {
    let mirror = path.to_string().contains(".mirror");
    let Some(svc) = lookup(
        visible,
        r.namespace(),
        &vs.export_to,
        &dest.host,
        &input.mesh.domain_suffix,
    ) else {
        let what = if mirror { "mirror host" } else { "host" };
        out.add(
            Severity::Error,
            "IST0101",
            r,
            &path.key("host"),
            format!("Referenced {what} not found: {:?}", dest.host),
            "define the service (a Kubernetes Service or a ServiceEntry) or fix the host name; short names are completed in the VirtualService's namespace, names with a dot are taken as written",
        );
        return;
    };
    let ports: Vec<u32> = svc.ports.iter().map(|p| p.number).collect();
    match dest.port.as_ref().map(|p| p.number) {
        None if ports.len() > 1 => out.add(
            Severity::Error,
            "IST0112",
            r,
            path,
            format!(
                "This VirtualService routes to a service {:?} that exposes multiple ports [{}]. Specifying a port in the destination is required to disambiguate.",
                dest.host,
                ports.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            ),
            "add port: {number: N} to the destination",
        ),
        Some(n) if !ports.contains(&n) => out.add(
            Severity::Error,
            "IST0101",
            r,
            &path.key("port"),
            format!("Referenced host:port not found: \"{}:{n}\"", dest.host),
            &format!(
                "use one of the service's ports: {}",
                ports.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        ),
        _ => {}
    }
}

pub fn destination_hosts(input: &Input<'_>, out: &mut Findings) {
    let visible = visible_services(input);
    for (r, vs) in &input.index.virtual_services {
        for (path, dest) in destinations(vs) {
            check(input, out, &visible, r, vs, &path, dest);
        }
    }
    subsets_at_ingress(input, out);
}

/// IST0140: a gateway's VirtualService routes to a host without a subset,
/// while a VirtualService for that host splits it by subset. The split
/// applies to the mesh, not to the gateway's requests.
fn subsets_at_ingress(input: &Input<'_>, out: &mut Findings) {
    // VirtualServices with subset destinations to one of their own hosts.
    let splitting: Vec<(&Resource, Vec<&str>)> = input
        .index
        .virtual_services
        .iter()
        .map(|(r, vs)| {
            let hosts = vs
                .http
                .iter()
                .flat_map(|h| h.route.iter())
                .filter_map(|d| d.destination.as_ref())
                .filter(|d| !d.subset.is_empty() && vs.hosts.contains(&d.host))
                .map(|d| d.host.as_str())
                .collect();
            (*r, hosts)
        })
        .filter(|(_, hosts): &(&Resource, Vec<&str>)| !hosts.is_empty())
        .collect();
    for (r, vs) in &input.index.virtual_services {
        if vs.gateways.is_empty() {
            continue;
        }
        for (i, h) in vs.http.iter().enumerate() {
            for (j, d) in h.route.iter().enumerate() {
                let Some(dest) = d.destination.as_ref().filter(|d| d.subset.is_empty()) else {
                    continue;
                };
                for (other, hosts) in &splitting {
                    for _ in hosts.iter().filter(|h| **h == dest.host) {
                        out.add(
                            Severity::Warning,
                            "IST0140",
                            r,
                            &FieldPath::root().key("spec").key("http").index(i).key("route").index(j).key("destination").key("host"),
                            format!("Subset in virtual service {}/{} has no effect on ingress gateway {}/{} requests", other.namespace(), other.name(), r.namespace(), r.name()),
                            "route the gateway's requests to the subsets here too, or bind the splitting VirtualService to the gateway as well",
                        );
                    }
                }
            }
        }
    }
}

/// As istioctl's `destinationrule.SubsetSelectPodAnalyzer`: a
/// DestinationRule for a host no visible service defines (IST0174), and a
/// subset whose labels (with a ServiceEntry's workload selector) pick no
/// workload anywhere in the mesh (IST0173). weft counts a ServiceEntry's
/// listed endpoints as workloads too.
pub fn destination_rule_hosts(input: &Input<'_>, out: &mut Findings) {
    let visible = visible_services(input);
    for (r, dr) in &input.index.destination_rules {
        let Some(svc) = lookup(
            &visible,
            r.namespace(),
            &dr.export_to,
            &dr.host,
            &input.mesh.domain_suffix,
        ) else {
            out.add(
                Severity::Warning,
                "IST0174",
                r,
                &FieldPath::root().key("spec").key("host"),
                format!("The host {} defined in the DestinationRule does not match any services in the mesh.", dr.host),
                "define the service (a Kubernetes Service or a ServiceEntry) or fix the host; short names are completed in the DestinationRule's namespace",
            );
            continue;
        };
        let se_selector = match svc.source {
            ServiceSource::ServiceEntry { .. } => svc.selector.clone().unwrap_or_default(),
            ServiceSource::Kubernetes => Default::default(),
        };
        for (i, subset) in dr.subsets.iter().enumerate() {
            let mut selector = se_selector.clone();
            selector.extend(subset.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
            let picked = input
                .registry
                .instances
                .iter()
                .any(|inst| labels_match(&selector, &inst.labels))
                || svc
                    .listed_endpoints
                    .iter()
                    .any(|e| labels_match(&subset.labels, &e.labels));
            if !picked {
                out.add(
                    Severity::Error,
                    "IST0173",
                    r,
                    &FieldPath::root().key("spec").key("subsets").index(i).key("labels"),
                    format!("The Subset {} defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).", subset.name),
                    "check the subset's labels against the workloads' labels (a version label, say)",
                );
            }
        }
    }
}
