//! Istio's per-resource validation rules, reported with positions.

mod authorization_policy;
pub mod checks;
mod destination_rule;
mod gateway;
mod header_value;
mod kyverno;
mod mesh_config;
mod metadata;
mod other;
mod security;
mod security_checks;
mod service_entry;
mod sidecar;
mod telemetry;
mod unimplemented;
mod virtual_service;
mod written;

pub use security::CONDITION_KEYS;
pub use virtual_service::{GRPC_STATUS, RETRY_ON};

use crate::diag::{codes, Diagnostic, Severity};
use crate::path::FieldPath;
use crate::resource::{Resource, Spec};

/// Collects diagnostics for one resource.
pub struct Ctx<'a> {
    pub resource: &'a Resource,
    pub out: Vec<Diagnostic>,
}

impl<'a> Ctx<'a> {
    fn new(resource: &'a Resource) -> Self {
        Ctx {
            resource,
            out: Vec::new(),
        }
    }

    fn push(&mut self, severity: Severity, path: &FieldPath, msg: String, fix: String) {
        let d = Diagnostic::new(severity, codes::INVALID, self.resource.locate(path), msg)
            .with_field(path)
            .with_resource(self.resource.display_name())
            .with_fix(fix);
        self.out.push(d);
    }

    pub fn error(&mut self, path: &FieldPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Error, path, msg.into(), fix.into());
    }

    /// How many errors this resource has so far, so a check can tell
    /// whether its part was sound.
    pub fn error_count(&self) -> usize {
        self.out
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn warn(&mut self, path: &FieldPath, msg: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Warning, path, msg.into(), fix.into());
    }

    /// A valid value weft accepts but does not act on (WEFT0006), where
    /// the value, not the field, is what is not implemented.
    pub fn unimplemented(
        &mut self,
        path: &FieldPath,
        msg: impl Into<String>,
        fix: impl Into<String>,
    ) {
        let d = Diagnostic::new(
            Severity::Warning,
            codes::UNIMPLEMENTED,
            self.resource.locate(path),
            msg.into(),
        )
        .with_field(path)
        .with_resource(self.resource.display_name())
        .with_fix(fix.into());
        self.out.push(d);
    }
}

/// Validates one resource on its own; cross-resource checks are analysis
/// (`weft-compile`).
pub fn validate(resource: &Resource) -> Vec<Diagnostic> {
    let mut ctx = Ctx::new(resource);
    let spec = FieldPath::root().key("spec");
    let meta = FieldPath::root().key("metadata");
    if !resource.kind().cluster_scoped() && !checks::is_dns_label(resource.namespace()) {
        ctx.error(
            &meta.key("namespace"),
            format!("namespace {:?} is not a valid name", resource.namespace()),
            "namespaces are lowercase DNS labels such as bookinfo",
        );
    }
    let name_ok = if resource.kind() == crate::resource::ResourceKind::Namespace {
        // A namespace's name is one DNS label, as the names in it are.
        checks::is_dns_label(resource.name())
    } else {
        resource.name().len() <= 253 && resource.name().split('.').all(checks::is_dns_label)
    };
    if !name_ok {
        ctx.error(
            &meta.key("name"),
            format!("name {:?} is not a valid resource name", resource.name()),
            "names are lowercase letters, digits, '-' and '.', e.g. reviews-v2",
        );
    }
    checks::labels(&mut ctx, &meta.key("labels"), &resource.meta.labels);
    metadata::check(&mut ctx);
    match &resource.spec {
        Spec::VirtualService(s) => virtual_service::virtual_service(&mut ctx, s, &spec),
        Spec::DestinationRule(s) => destination_rule::destination_rule(&mut ctx, s, &spec),
        Spec::Gateway(s) => gateway::gateway(&mut ctx, s, &spec),
        Spec::ServiceEntry(s) => service_entry::service_entry(&mut ctx, s, &spec),
        Spec::Sidecar(s) => sidecar::sidecar(&mut ctx, s, &spec),
        Spec::WorkloadEntry(s) => service_entry::workload_entry(&mut ctx, s, &spec),
        Spec::WorkloadGroup(s) => service_entry::workload_group(&mut ctx, s, &spec),
        Spec::PeerAuthentication(s) => security::peer_authentication(&mut ctx, s, &spec),
        Spec::RequestAuthentication(s) => security::request_authentication(&mut ctx, s, &spec),
        Spec::AuthorizationPolicy(s) => {
            authorization_policy::authorization_policy(&mut ctx, s, &spec)
        }
        Spec::Telemetry(s) => telemetry::telemetry(&mut ctx, s, &spec),
        Spec::Service(s) => other::service(&mut ctx, s, &spec),
        Spec::Deployment(s) => other::deployment(&mut ctx, s, &spec),
        Spec::Node(s) => other::node(&mut ctx, s, &spec),
        // A Guardrail's shape is its type's (unknown rules are refused
        // with the ones there are); what it judges is judged across
        // resources, at admission.
        Spec::Pod(_) | Spec::Namespace(_) | Spec::Secret(_) | Spec::Guardrail(_) => {}
        Spec::ClusterPolicy(p) | Spec::Policy(p) => kyverno::policy(&mut ctx, p, &spec),
        Spec::NetworkPolicy(p) => other::network_policy(&mut ctx, p, &spec),
        Spec::Canary(s) => other::canary(&mut ctx, s, &spec),
        Spec::MetricTemplate(s) => other::metric_template(&mut ctx, s, &spec),
        Spec::AlertProvider(s) => other::alert_provider(&mut ctx, s, &spec),
        Spec::Workload(s) => other::workload(&mut ctx, s, &spec),
        Spec::ConfigMap(_) => mesh_config::config_map(&mut ctx),
    }
    let mut out = ctx.out;
    out.extend(unimplemented::check(resource));
    out
}
