//! Policies that select nothing, and DestinationRule TLS that disagrees
//! with the destination's PeerAuthentication or skips verification.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Spec;
use weft_api::types::common::Labels;
use weft_api::types::networking::{ClientTlsMode, ClientTlsSettings};

use super::workloads::every_workload;
use super::{selector_text, Findings, Input};
use crate::compile::Compiler;
use crate::host;
use crate::registry::labels_match;

/// Whether any workload of the mesh in `ns` (any namespace when `None`)
/// matches `sel`; weft's own gateways count, in their namespace.
fn selects_something(input: &Input<'_>, ns: Option<&str>, sel: &Labels) -> bool {
    every_workload(input)
        .any(|w| ns.is_none_or(|ns| ns == w.namespace) && labels_match(sel, w.labels))
}

/// IST0127, as istioctl's AuthorizationPoliciesAnalyzer: a policy in the
/// root namespace with a selector must match a workload somewhere in the
/// mesh (and without one applies to the whole mesh); elsewhere a policy
/// with a selector must match a workload of its namespace, and one without
/// needs its namespace to have a workload at all.
pub fn authorization_policy_workloads(input: &Input<'_>, out: &mut Findings) {
    for (r, ap) in &input.index.authorization_policies {
        let selector = ap.selector.as_ref().map(|s| &s.match_labels);
        let ns = r.namespace();
        let root = ns == input.mesh.root_namespace;
        let unmatched = match (root, selector) {
            (true, Some(sel)) => !selects_something(input, None, sel),
            (true, None) => false,
            (false, Some(sel)) => !selects_something(input, Some(ns), sel),
            (false, None) => !selects_something(input, Some(ns), &Labels::default()),
        };
        if unmatched {
            let text = selector.map(selector_text).unwrap_or_default();
            out.add(
                Severity::Warning,
                "IST0127",
                r,
                &FieldPath::root().key("spec").key("selector"),
                format!("No matching workloads for this resource with the following labels: {text}"),
                "check the labels against the workloads in this namespace; a policy that selects nothing has no effect",
            );
        }
    }
}

/// weft's own check for the policies istioctl does not look at: a
/// PeerAuthentication, RequestAuthentication or DestinationRule whose
/// workload selector picks no workload of its namespace has no effect.
pub fn no_matching_workloads(input: &Input<'_>, out: &mut Findings) {
    for r in input.resources {
        let (sel, field): (Option<&Labels>, FieldPath) = match &r.spec {
            Spec::PeerAuthentication(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::RequestAuthentication(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::DestinationRule(p) => (
                p.workload_selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("workloadSelector"),
            ),
            _ => continue,
        };
        let Some(sel) = sel.filter(|s| !s.is_empty()) else {
            continue;
        };
        let ns = (r.namespace() != input.mesh.root_namespace).then(|| r.namespace());
        if !selects_something(input, ns, sel) {
            out.add(
                Severity::Warning,
                "WEFT0104",
                r,
                &field,
                format!("No workload matches this {}'s selector: {}", r.kind(), selector_text(sel)),
                "check the labels against the workloads in this namespace; a selector that picks nothing has no effect",
            );
        }
    }
}

pub fn mtls_conflicts(input: &Input<'_>, out: &mut Findings) {
    let compiler = Compiler::new(input.resources, input.registry, input.mesh);
    for (r, dr) in &input.index.destination_rules {
        let Some(mode) = dr
            .traffic_policy
            .as_ref()
            .and_then(|t| t.tls.as_ref())
            .and_then(|t| t.mode)
        else {
            continue;
        };
        let wants_mtls = match mode {
            ClientTlsMode::IstioMutual => true,
            ClientTlsMode::Disable => false,
            _ => continue,
        };
        let h = host::resolve(&dr.host, r.namespace(), &input.mesh.domain_suffix);
        let Some(svc) = input.registry.service(&h) else {
            continue;
        };
        for inst in input.registry.instances_of(svc) {
            let policy = compiler.peer_policy_of(inst);
            let conflict = match policy.mode {
                weft_model::MtlsMode::Strict => !wants_mtls,
                weft_model::MtlsMode::Disable => wants_mtls,
                weft_model::MtlsMode::Permissive => false,
            };
            if conflict {
                let pa = policy.origin.last().cloned().unwrap_or_default();
                out.add(
                    Severity::Error,
                    "WEFT0103",
                    r,
                    &FieldPath::root().key("spec").key("trafficPolicy").key("tls").key("mode"),
                    format!("A DestinationRule and Policy are in conflict with regards to mTLS for host {h}. The DestinationRule {:?} specifies that mTLS must be {wants_mtls} but the Policy object {pa:?} specifies {}.", format!("{}/{}", r.namespace(), r.name()), mode_name(policy.mode)),
                    if wants_mtls { "the workloads refuse mTLS: set PeerAuthentication to PERMISSIVE or STRICT, or the DestinationRule to DISABLE" } else { "the workloads require mTLS: remove tls.mode DISABLE (weft uses mTLS automatically)" },
                );
                break;
            }
        }
    }
}

/// The TLS mode when it originates TLS without a CA to verify the server.
/// A `credentialName` stands in for `caCertificates` only on a rule that
/// selects workloads: without one, Istio's sidecars (and weft's) leave
/// the credential to gateways, as istioctl says.
fn lacks_ca(tls: &ClientTlsSettings, selects_workloads: bool) -> Option<&'static str> {
    let mode = match tls.mode {
        Some(ClientTlsMode::Simple) => "SIMPLE",
        Some(ClientTlsMode::Mutual) => "MUTUAL",
        _ => return None,
    };
    let verified = tls
        .ca_certificates
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        || (selects_workloads
            && tls
                .credential_name
                .as_deref()
                .is_some_and(|c| !c.is_empty()));
    (!verified).then_some(mode)
}

pub fn server_verification(input: &Input<'_>, out: &mut Findings) {
    for (r, dr) in &input.index.destination_rules {
        let Some(tp) = &dr.traffic_policy else {
            continue;
        };
        let spec = FieldPath::root().key("spec").key("trafficPolicy");
        let ns = r.namespace();
        let name = format!("{ns}/{}", r.name());
        let selects = dr.workload_selector.is_some();
        if let Some(mode) = tp.tls.as_ref().and_then(|t| lacks_ca(t, selects)) {
            out.add(Severity::Warning, "IST0128", r, &spec.key("tls"), format!("DestinationRule {name} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {}", dr.host), "set caCertificates so the server's certificate can be verified (or a credentialName whose secret holds ca.crt)");
        }
        for (i, pl) in tp.port_level_settings.iter().enumerate() {
            if let Some(mode) = pl.tls.as_ref().and_then(|t| lacks_ca(t, selects)) {
                let port = pl.port.map(|p| p.number.to_string()).unwrap_or_default();
                out.add(Severity::Warning, "IST0129", r, &spec.key("portLevelSettings").index(i).key("tls"), format!("DestinationRule {name} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {} at port {port}", dr.host), "set caCertificates for this port");
            }
        }
    }
}

fn mode_name(m: weft_model::MtlsMode) -> &'static str {
    match m {
        weft_model::MtlsMode::Strict => "STRICT",
        weft_model::MtlsMode::Permissive => "PERMISSIVE",
        weft_model::MtlsMode::Disable => "DISABLE",
    }
}
