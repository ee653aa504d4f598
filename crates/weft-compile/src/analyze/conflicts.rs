//! Resources that fight over the same thing: hosts, workloads, addresses,
//! gateway ports.

use std::collections::BTreeMap;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, Spec};
use weft_api::types::common::Labels;

use super::{export_scopes, join, selector_text, Findings, Input};
use crate::host;
use crate::registry::labels_match;

/// A mesh VirtualService's host as istioctl keys it: the namespaces it is
/// exported to (`*` for all) and the host, made a FQDN only when it is a
/// short name (no dot, no wildcard).
fn scoped_hosts(
    r: &Resource,
    vs: &weft_api::types::networking::VirtualService,
    domain_suffix: &str,
) -> Vec<(String, String)> {
    let scopes = export_scopes(&vs.export_to, r.namespace());
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
        if !crate::compile::routes_support::binds_mesh(vs) {
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

/// IST0134, as istioctl's ServiceEntry analyzer: each TCP port (or port
/// without a protocol) of a ServiceEntry without addresses, unless the mesh
/// allocates addresses (DNS capture with auto-allocation).
pub fn service_entry_addresses(input: &Input<'_>, out: &mut Findings) {
    if input.index.mesh_config.allocates_addresses() {
        return;
    }
    for r in input.resources {
        let Spec::ServiceEntry(se) = &r.spec else {
            continue;
        };
        if !se.addresses.is_empty() || allocated_in_status(r) {
            continue;
        }
        for (i, p) in se.ports.iter().enumerate() {
            if p.protocol.is_empty() || p.protocol.eq_ignore_ascii_case("TCP") {
                out.add(Severity::Warning, "IST0134", r, &FieldPath::root().key("spec").key("ports").index(i), "ServiceEntry addresses are required for this protocol.".into(), "TCP traffic is routed by destination address: give the service a virtual IP in addresses, or let the mesh allocate one (ISTIO_META_DNS_CAPTURE and ISTIO_META_DNS_AUTO_ALLOCATE in defaultConfig.proxyMetadata)");
            }
        }
    }
}

/// Whether the ServiceEntry's `status.addresses` lists addresses Istio
/// allocated (a ServiceEntry read back from a cluster carries them).
fn allocated_in_status(r: &Resource) -> bool {
    use weft_api::yaml::Kind;
    let tree = &r.source.tree;
    tree.get(r.source.node, "status")
        .and_then(|s| tree.get(s, "addresses"))
        .is_some_and(|a| matches!(&tree.node(a).kind, Kind::Seq(items) if !items.is_empty()))
}

/// weft's own check: ServiceEntries that claim one address, whose TCP
/// traffic cannot be told apart.
pub fn service_entry_shared_addresses(input: &Input<'_>, out: &mut Findings) {
    let mut owners: BTreeMap<String, Vec<&Resource>> = BTreeMap::new();
    for r in input.resources {
        let Spec::ServiceEntry(se) = &r.spec else {
            continue;
        };
        for a in &se.addresses {
            owners.entry(a.clone()).or_default().push(r);
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

/// `(namespaces it is exported to, host, port)`; `*` for everywhere.
type ScopedHostPort = (String, String, u32);

/// IST0177, as istioctl's ConflictingServiceEntryProtocolAnalyzer: one
/// host and port given different protocols by ServiceEntries visible in the
/// same namespaces.
pub fn service_entry_protocols(input: &Input<'_>, out: &mut Findings) {
    // (scope, host, port) → [(protocol, resource)]
    let mut index: BTreeMap<ScopedHostPort, Vec<(String, &Resource)>> = BTreeMap::new();
    for r in input.resources {
        let Spec::ServiceEntry(se) = &r.spec else {
            continue;
        };
        let scopes = export_scopes(&se.export_to, r.namespace());
        for scope in &scopes {
            for h in &se.hosts {
                for p in &se.ports {
                    index
                        .entry((scope.clone(), h.clone(), p.number))
                        .or_default()
                        .push((p.protocol.to_ascii_uppercase(), r));
                }
            }
        }
    }
    let mut reported: Vec<&Resource> = Vec::new();
    for ((scope, h, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != "*" {
            if let Some(all) = index.get(&("*".to_owned(), h.clone(), *port)) {
                entries.extend(all.iter().cloned());
            }
        }
        let mut protocols: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        protocols.sort();
        protocols.dedup();
        if protocols.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = entries
            .iter()
            .map(|(_, r)| format!("{}/{}", r.namespace(), r.name()))
            .collect();
        names.sort();
        names.dedup();
        for (_, r) in &entries {
            if reported.iter().any(|x| std::ptr::eq(*x, *r)) {
                continue;
            }
            reported.push(r);
            out.add(
                Severity::Warning,
                "IST0177",
                r,
                &FieldPath::root(),
                format!("Multiple ServiceEntries ({}) define the same host {h:?} and port {port} with conflicting protocols ({}).", names.join(", "), protocols.join(", ")),
                "give the host and port one protocol in every ServiceEntry that defines them",
            );
        }
    }
}

/// Whether a workload of the mesh (or one of weft's gateways) carries both
/// selectors' labels.
fn same_workload(input: &Input<'_>, a: &Labels, b: &Labels) -> bool {
    super::workloads::every_workload(input)
        .any(|w| labels_match(a, w.labels) && labels_match(b, w.labels))
}

/// IST0145, as istioctl's ConflictingGatewayAnalyzer: another Gateway with
/// the same selector (or one whose selector text contains this one's, or
/// is contained in it, and that picks a workload this one picks) serves one
/// of a server's hosts, written the same, on the same port and bind.
pub fn gateways(input: &Input<'_>, out: &mut Findings) {
    let gws = &input.index.gateways;
    for (r, gw) in gws {
        let sel = selector_text(&gw.selector);
        let peers: Vec<(&Resource, &weft_api::types::networking::Gateway)> = gws
            .iter()
            .filter(|(o, other)| {
                if std::ptr::eq(*o, *r) {
                    return false;
                }
                let other_sel = selector_text(&other.selector);
                other_sel == sel
                    || ((other_sel.contains(&sel) || sel.contains(&other_sel))
                        && same_workload(input, &gw.selector, &other.selector))
            })
            .map(|(o, other)| (*o, *other))
            .collect();
        for (i, s) in gw.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let mut names: Vec<String> = Vec::new();
            for (o, other) in &peers {
                let clash = other.servers.iter().any(|os| {
                    os.port.as_ref().is_some_and(|p| p.number == port.number)
                        && os.bind == s.bind
                        && os.hosts.iter().any(|h| s.hosts.contains(h))
                });
                if clash {
                    names.push(format!("{}/{}", o.namespace(), o.name()));
                }
            }
            if names.is_empty() {
                continue;
            }
            names.sort();
            out.add(
                Severity::Error,
                "IST0145",
                r,
                &FieldPath::root().key("spec").key("servers").index(i),
                format!(
                    "Conflict with gateways {} (workload selector {sel}, port {}, hosts {}).",
                    names.join(","),
                    port.number,
                    s.hosts.join(",")
                ),
                "serve each host on a port from one Gateway only",
            );
        }
    }
}

/// IST0138, as istioctl's CertificateAnalyzer: two Gateways whose
/// selectors overlap (this one's is a subset of the other's, or empty)
/// serve TLS with the same credential (or the same certificate and key
/// files). Clients that reuse an HTTP/2 connection for the other host get
/// 404s.
pub fn duplicate_certificates(input: &Input<'_>, out: &mut Findings) {
    use weft_api::types::networking::ServerTlsSettings;
    fn same(a: &ServerTlsSettings, b: &ServerTlsSettings) -> bool {
        let (an, bn) = (
            a.credential_name.as_deref().unwrap_or(""),
            b.credential_name.as_deref().unwrap_or(""),
        );
        if !an.is_empty() && !bn.is_empty() {
            return an == bn;
        }
        if an.is_empty() && bn.is_empty() {
            let (ac, bc) = (
                a.server_certificate.as_deref().unwrap_or(""),
                b.server_certificate.as_deref().unwrap_or(""),
            );
            let (ak, bk) = (
                a.private_key.as_deref().unwrap_or(""),
                b.private_key.as_deref().unwrap_or(""),
            );
            return !ac.is_empty() && ac == bc && !ak.is_empty() && ak == bk;
        }
        false
    }
    let gws = &input.index.gateways;
    for (r, gw) in gws {
        for (o, other) in gws {
            if std::ptr::eq(*o, *r) {
                continue;
            }
            let subset = gw
                .selector
                .iter()
                .all(|(k, v)| other.selector.get(k) == Some(v));
            if !subset {
                continue;
            }
            for s in &gw.servers {
                for os in &other.servers {
                    let (Some(a), Some(b)) = (&s.tls, &os.tls) else {
                        continue;
                    };
                    if same(a, b) {
                        out.add(
                            Severity::Warning,
                            "IST0138",
                            r,
                            &FieldPath::root(),
                            format!(
                                "Duplicate certificate in multiple gateways [{}/{} {}/{}] may cause 404s if clients re-use HTTP2 connections.",
                                r.namespace(), r.name(), o.namespace(), o.name()
                            ),
                            "give each Gateway's hosts their own certificate, or serve them from one Gateway",
                        );
                    }
                }
            }
        }
    }
}
