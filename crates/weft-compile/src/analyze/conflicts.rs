//! Resources that fight over the same thing: hosts, workloads, addresses,
//! gateway ports.

use std::collections::BTreeMap;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, Spec};

use super::{join, selector_text, Findings, Input};
use crate::host;

/// A mesh VirtualService's host as istioctl keys it: the namespaces it is
/// exported to (`*` for all) and the host, made a FQDN only when it is a
/// short name (no dot, no wildcard).
fn scoped_hosts(
    r: &Resource,
    vs: &weft_api::types::networking::VirtualService,
    domain_suffix: &str,
) -> Vec<(String, String)> {
    let scopes: Vec<String> = if vs.export_to.is_empty() || vs.export_to.iter().any(|e| e == "*") {
        vec!["*".to_owned()]
    } else {
        let mut s: Vec<String> = vs
            .export_to
            .iter()
            .map(|e| {
                if e == "." {
                    r.namespace().to_owned()
                } else {
                    e.clone()
                }
            })
            .collect();
        s.sort();
        s.dedup();
        s
    };
    let mut out = Vec::new();
    for scope in &scopes {
        for h in &vs.hosts {
            let fqdn = if h.starts_with('*') || h.contains('.') {
                h.clone()
            } else {
                format!("{h}.{}.svc.{domain_suffix}", r.namespace())
            };
            out.push((scope.clone(), fqdn));
        }
    }
    out
}

/// IST0109, as istioctl's ConflictingMeshGatewayHostsAnalyzer: mesh
/// VirtualServices that define the same host for the same namespaces; a
/// host exported to some namespaces also conflicts with a host exported
/// everywhere that overlaps it.
pub fn mesh_virtual_services(input: &Input<'_>, out: &mut Findings) {
    let mut by_host: BTreeMap<(String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, vs) in &input.index.virtual_services {
        let binds_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
        if !binds_mesh {
            continue;
        }
        for key in scoped_hosts(r, vs, &input.mesh.domain_suffix) {
            by_host.entry(key).or_default().push(r);
        }
    }
    let mut reported: Vec<&Resource> = Vec::new();
    for ((scope, fqdn), list) in &by_host {
        let mut list = list.clone();
        if scope != "*" {
            for ((other_scope, other), more) in &by_host {
                if other_scope == "*" && host::overlaps(fqdn, other) {
                    list.extend(more.iter().copied());
                }
            }
        }
        if list.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = list
            .iter()
            .map(|r| format!("{}/{}", r.namespace(), r.name()))
            .collect();
        names.sort();
        let names = names.join(",");
        for r in &list {
            if reported.iter().any(|x| std::ptr::eq(*x, *r)) {
                continue;
            }
            reported.push(r);
            out.add(
                Severity::Error,
                "IST0109",
                r,
                &FieldPath::root().key("spec").key("hosts"),
                format!("The VirtualServices {names} associated with mesh gateway define the same host {scope}/{fqdn} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."),
                "merge them into one VirtualService, or export each to different namespaces; weft uses the first by namespace/name",
            );
        }
    }
}

pub fn destination_rules(input: &Input<'_>, out: &mut Findings) {
    // Several DestinationRules for one host in one namespace: Istio merges
    // only the subsets and silently drops the second traffic policy.
    let mut by_key: BTreeMap<(String, String, String), Vec<&Resource>> = BTreeMap::new();
    for (r, dr) in &input.index.destination_rules {
        let h = host::resolve(&dr.host, r.namespace(), &input.mesh.domain_suffix);
        let sel = dr
            .workload_selector
            .as_ref()
            .map(|s| selector_text(&s.match_labels))
            .unwrap_or_default();
        by_key
            .entry((r.namespace().to_owned(), h, sel))
            .or_default()
            .push(r);
    }
    for ((ns, h, _), list) in by_key {
        if list.len() < 2 {
            continue;
        }
        let names = join(list.iter().map(|r| r.name()));
        for r in &list[1..] {
            out.add(
                Severity::Warning,
                "WEFT0101",
                r,
                &FieldPath::root().key("spec").key("host"),
                format!("The DestinationRules [{names}] in namespace {ns:?} define the same host {h}; only the first one's trafficPolicy applies (subsets are merged)."),
                "merge them into one DestinationRule; the second trafficPolicy is ignored",
            );
        }
    }
}

pub fn service_entry_addresses(input: &Input<'_>, out: &mut Findings) {
    let mut owners: BTreeMap<String, Vec<&Resource>> = BTreeMap::new();
    for r in input.resources {
        let Spec::ServiceEntry(se) = &r.spec else {
            continue;
        };
        for a in &se.addresses {
            owners.entry(a.clone()).or_default().push(r);
        }
        let tcp_port = se
            .ports
            .iter()
            .any(|p| p.protocol.is_empty() || p.protocol.eq_ignore_ascii_case("TCP"));
        let resolution_needs = !matches!(
            se.resolution,
            Some(weft_api::types::networking::Resolution::None) | None
        );
        if tcp_port && se.addresses.is_empty() && resolution_needs {
            out.add(Severity::Warning, "IST0134", r, &FieldPath::root().key("spec").key("addresses"), "ServiceEntry addresses are required for this protocol.".into(), "TCP traffic is routed by destination address: give the service a virtual IP in addresses");
        }
    }
    for (addr, list) in owners {
        if list.len() < 2 {
            continue;
        }
        let names = join(
            list.iter()
                .map(|r| format!("{}/{}", r.namespace(), r.name())),
        );
        for r in &list {
            out.add(Severity::Error, "WEFT0102", r, &FieldPath::root().key("spec").key("addresses"), format!("The ServiceEntries {names} claim the same address {addr}; TCP traffic to it cannot be told apart."), "give each ServiceEntry its own address");
        }
    }
}

pub fn gateways(input: &Input<'_>, out: &mut Findings) {
    // (selector, port) → [(gateway, host)]: two Gateways serving the same
    // host on the same port of the same workloads.
    let mut seen: BTreeMap<(String, u32), Vec<(&Resource, &str)>> = BTreeMap::new();
    for (r, gw) in &input.index.gateways {
        let sel = selector_text(&gw.selector);
        for s in &gw.servers {
            let Some(port) = &s.port else { continue };
            for h in &s.hosts {
                let bare = h.split_once('/').map_or(h.as_str(), |(_, x)| x);
                seen.entry((sel.clone(), port.number))
                    .or_default()
                    .push((r, bare));
            }
        }
    }
    for ((sel, port), entries) in seen {
        for (i, (r, h)) in entries.iter().enumerate() {
            let others: Vec<String> = entries
                .iter()
                .enumerate()
                .filter(|(j, (o, oh))| *j != i && !std::ptr::eq(*o, *r) && host::overlaps(h, oh))
                .map(|(_, (o, _))| format!("{}/{}", o.namespace(), o.name()))
                .collect();
            if !others.is_empty() {
                out.add(Severity::Error, "IST0145", r, &FieldPath::root().key("spec").key("servers"), format!("Conflict with gateways {} (workload selector {sel}, port {port}, hosts {h}).", join(&others)), "serve each host on a port from one Gateway only");
            }
        }
    }
}
