//! A VirtualService's gateways, as istioctl's `virtualservice.GatewayAnalyzer`
//! checks them: a gateway that does not exist (IST0101), one that serves
//! none of the VirtualService's hosts (IST0132, which a missing gateway
//! gets too). A reference to the Gateway Istio generates for a Kubernetes
//! Gateway (istioctl's IST0165) is refused by validation, as Istio's
//! webhook refuses it. Gateways named in a match are weft's own check
//! (WEFT0105): istioctl does not look at them.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::types::networking::Gateway;

use super::{Findings, Input};
use crate::compile::routes_support::qualify_gateway;
use crate::host;

fn find<'a>(input: &Input<'a>, qualified: &str) -> Option<(&'a str, &'a Gateway)> {
    input
        .index
        .gateways
        .iter()
        .find(|(g, _)| format!("{}/{}", g.namespace(), g.name()) == qualified)
        .map(|(g, gw)| (g.namespace(), *gw))
}

/// The gateway's server hosts a VirtualService in `vs_ns` may bind, as
/// Istio reads them: `./h` is the gateway's namespace, `*/h` any, `*/*`
/// everything, and `ns/h` only for VirtualServices in `ns`.
fn hosts_for(gw_ns: &str, gw: &Gateway, vs_ns: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in gw.servers.iter().flat_map(|s| s.hosts.iter()) {
        let (ns, name) = match h.split_once('/') {
            Some((".", name)) => (Some(gw_ns), name),
            Some(("*", "*")) => return vec!["*".to_owned()],
            Some(("*", name)) => (None, name),
            Some((ns, name)) => (Some(ns), name),
            None => (None, h.as_str()),
        };
        if ns.is_none_or(|ns| ns == vs_ns) {
            out.push(name.to_owned());
        }
    }
    out
}

pub fn gateways(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        let vs_name = format!("{}/{}", r.namespace(), r.name());
        for (i, g) in vs.gateways.iter().enumerate() {
            if g == "mesh" {
                continue;
            }
            let field = FieldPath::root().key("spec").key("gateways").index(i);
            let q = qualify_gateway(g, r.namespace());
            let found = find(input, &q);
            if found.is_none() {
                out.add(
                    Severity::Error,
                    "IST0101",
                    r,
                    &field,
                    format!("Referenced gateway not found: {g:?}"),
                    "define the Gateway, or refer to it as namespace/name when it lives in another namespace",
                );
            }
            let served = found
                .map(|(ns, gw)| hosts_for(ns, gw, r.namespace()))
                .unwrap_or_default();
            let bound = served
                .iter()
                .any(|gh| vs.hosts.iter().any(|vh| host::overlaps(gh, vh)));
            if !bound {
                out.add(
                    Severity::Warning,
                    "IST0132",
                    r,
                    &field,
                    format!("one or more host [{}] defined in VirtualService {vs_name} not found in Gateway {q}.", vs.hosts.join(" ")),
                    "add one of the VirtualService's hosts to a server of the Gateway (or export it to this namespace with ns/host)",
                );
            }
        }
    }
}

/// Gateways named in an HTTP match that do not exist: the match can never
/// hold. istioctl leaves these unchecked.
pub fn match_gateways(input: &Input<'_>, out: &mut Findings) {
    for (r, vs) in &input.index.virtual_services {
        for (i, h) in vs.http.iter().enumerate() {
            for (j, m) in h.matches.iter().enumerate() {
                for (k, g) in m.gateways.iter().enumerate() {
                    if g == "mesh" || find(input, &qualify_gateway(g, r.namespace())).is_some() {
                        continue;
                    }
                    let field = FieldPath::root()
                        .key("spec")
                        .key("http")
                        .index(i)
                        .key("match")
                        .index(j)
                        .key("gateways")
                        .index(k);
                    out.add(
                        Severity::Warning,
                        "WEFT0105",
                        r,
                        &field,
                        format!("Gateway {g:?} named in this match does not exist; the match never applies"),
                        "define the Gateway, or refer to it as namespace/name when it lives in another namespace",
                    );
                }
            }
        }
    }
}

/// The first header key of a VirtualService's matches that routes on a
/// JWT claim (`@request.auth.claims.…`), as Istio recognizes one.
fn claim_route_key(vs: &weft_api::types::networking::VirtualService) -> Option<&str> {
    vs.http.iter().flat_map(|h| h.matches.iter()).find_map(|m| {
        m.headers
            .keys()
            .chain(m.without_headers.keys())
            .find(|k| k.starts_with("@request.auth.claims"))
            .map(String::as_str)
    })
}

/// IST0149, as istioctl's JWTClaimRouteAnalyzer: a gateway VirtualService
/// routes on a JWT claim, but a workload of that gateway has no
/// RequestAuthentication (in its namespace or the root namespace) to
/// validate the token and read the claims.
pub fn claim_routes(input: &Input<'_>, out: &mut Findings) {
    use crate::registry::labels_match;
    let root = input.mesh.root_namespace.as_str();
    for (r, vs) in &input.index.virtual_services {
        let Some(key) = claim_route_key(vs) else {
            continue;
        };
        for g in vs.gateways.iter().filter(|g| *g != "mesh") {
            let q = qualify_gateway(g, r.namespace());
            let Some((_, gw)) = find(input, &q) else {
                continue;
            };
            // The gateway's workloads: weft's own gateways and the mesh's.
            let pods = super::workloads::every_workload(input)
                .filter(|w| labels_match(&gw.selector, w.labels));
            for super::workloads::Workload {
                name: pod,
                namespace: ns,
                labels,
            } in pods
            {
                let authenticated = input
                    .index
                    .request_authentications
                    .iter()
                    .any(|(ra_r, ra)| {
                        (ra_r.namespace() == root || ra_r.namespace() == ns)
                            && ra
                                .selector
                                .as_ref()
                                .is_none_or(|s| labels_match(&s.match_labels, labels))
                    });
                if !authenticated {
                    out.add(
                        Severity::Error,
                        "IST0149",
                        r,
                        &FieldPath::root().key("spec").key("gateways"),
                        format!("The virtual service uses the JWT claim based routing (key: {key}) but found no request authentication for the gateway ({q}) pod ({pod}). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing."),
                        "apply a RequestAuthentication that selects the gateway's workloads (in their namespace or the root namespace)",
                    );
                }
            }
        }
    }
}
