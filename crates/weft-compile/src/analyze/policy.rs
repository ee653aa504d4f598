//! Policies that select nothing, and DestinationRule TLS that disagrees
//! with the destination's PeerAuthentication or skips verification.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Spec;
use weft_api::types::common::Labels;
use weft_api::types::networking::{ClientTlsMode, ClientTlsSettings};

use super::{selector_text, Findings, Input};
use crate::compile::Compiler;
use crate::host;
use crate::registry::labels_match;

fn selects_something(input: &Input<'_>, ns: &str, sel: &Labels) -> bool {
    input
        .registry
        .instances
        .iter()
        .any(|i| i.namespace == ns && labels_match(sel, &i.labels))
        || input.mesh.gateways.iter().any(|g| {
            (g.namespace == ns || ns == input.mesh.root_namespace) && labels_match(sel, &g.labels)
        })
}

pub fn no_matching_workloads(input: &Input<'_>, out: &mut Findings) {
    for r in input.resources {
        let (sel, field): (Option<&Labels>, FieldPath) = match &r.spec {
            Spec::AuthorizationPolicy(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::PeerAuthentication(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::RequestAuthentication(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::Telemetry(p) => (
                p.selector.as_ref().map(|s| &s.match_labels),
                FieldPath::root().key("spec").key("selector"),
            ),
            Spec::Sidecar(p) => (
                p.workload_selector.as_ref().map(|s| &s.labels),
                FieldPath::root().key("spec").key("workloadSelector"),
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
        if !selects_something(input, r.namespace(), sel) {
            out.add(
                Severity::Warning,
                "IST0127",
                r,
                &field,
                format!("No matching workloads for this resource with the following labels: {}", selector_text(sel)),
                "check the labels against the workloads in this namespace; a policy that selects nothing has no effect",
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
                    "IST0113",
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

fn lacks_ca(tls: &ClientTlsSettings) -> Option<&'static str> {
    match tls.mode {
        Some(ClientTlsMode::Simple)
            if tls.ca_certificates.is_none() && tls.credential_name.is_none() =>
        {
            Some("SIMPLE")
        }
        Some(ClientTlsMode::Mutual)
            if tls.ca_certificates.is_none() && tls.credential_name.is_none() =>
        {
            Some("MUTUAL")
        }
        _ => None,
    }
}

pub fn server_verification(input: &Input<'_>, out: &mut Findings) {
    for (r, dr) in &input.index.destination_rules {
        let Some(tp) = &dr.traffic_policy else {
            continue;
        };
        let spec = FieldPath::root().key("spec").key("trafficPolicy");
        let ns = r.namespace();
        if let Some(mode) = tp.tls.as_ref().and_then(lacks_ca) {
            out.add(Severity::Warning, "IST0128", r, &spec.key("tls"), format!("DestinationRule {} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {}", r.name(), dr.host), "set caCertificates (or credentialName) so the server's certificate can be verified; weft then trusts only that CA");
        }
        for (i, pl) in tp.port_level_settings.iter().enumerate() {
            if let Some(mode) = pl.tls.as_ref().and_then(lacks_ca) {
                let port = pl.port.map(|p| p.number.to_string()).unwrap_or_default();
                out.add(Severity::Warning, "IST0129", r, &spec.key("portLevelSettings").index(i).key("tls"), format!("DestinationRule {} in namespace {ns} has TLS mode set to {mode} but no caCertificates are set to validate server identity for host: {} at port {port}", r.name(), dr.host), "set caCertificates (or credentialName) for this port");
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
