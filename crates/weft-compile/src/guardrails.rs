//! The platform's guard rails (`weft.dev/v1 Guardrail`), judged over the
//! whole configuration at admission: each rule of a Guardrail in the root
//! namespace holds for every namespace, one elsewhere for its own. A
//! resource that breaks an `Enforce` rule is an error (the control plane
//! refuses it, and its last good version keeps serving); an `Audit` one
//! a warning. Findings name the resource, the field, the Guardrail and
//! the fix, as every other diagnostic does.
//!
//! The rules judge what users write: resources a controller of weft's
//! made (a canary's VirtualService, under the run directory's
//! `managed/`) are not judged.

use std::collections::BTreeSet;

use weft_api::diag::{Diagnostic, Severity};
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_api::types::networking::{ClientTlsMode, Location, TrafficPolicy};
use weft_api::types::security::MtlsMode;
use weft_api::types::weft::{FailureAction, Guardrail};

/// The code every guard-rail finding carries.
pub const CODE: &str = "WEFT0130";

/// One rule of one policy applied to one resource, as Kyverno's
/// PolicyReports list results.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleResult {
    /// A Guardrail or a Kyverno Policy, `namespace/name`; a
    /// ClusterPolicy, `name` (as PolicyReports name them).
    pub policy: String,
    pub rule: String,
    pub kind: ResourceKind,
    pub namespace: String,
    pub name: String,
    /// `pass`, `fail`, `skip` or `error`.
    pub result: &'static str,
    pub message: String,
    /// The finding, when the resource breaks the rule (or the rule could
    /// not be evaluated).
    pub failure: Option<Diagnostic>,
    /// `weft` for a Guardrail, `kyverno` for Kyverno's policies.
    pub source: &'static str,
}

/// What each rule of each Guardrail says of each resource it judges:
/// a pass, or the failure `check` reports.
pub fn results(resources: &[Resource], root: &str) -> Vec<RuleResult> {
    let found = findings(resources, root);
    let mut out = Vec::new();
    for judge in judges_of(resources, root) {
        let rules = &judge.rail.rules;
        let on: [(&'static str, bool); 7] = [
            ("strictMtls", rules.strict_mtls),
            ("noTlsDisable", rules.no_tls_disable),
            ("noInjectionOptOut", rules.no_injection_opt_out),
            ("noCaptureExclusions", rules.no_capture_exclusions),
            (
                "requireAuthorizationPolicy",
                rules.require_authorization_policy,
            ),
            ("noWildcardHosts", rules.no_wildcard_hosts),
            (
                "externalServiceEntryNamespaces",
                rules.external_service_entry_namespaces.is_some(),
            ),
        ];
        for r in resources
            .iter()
            .filter(|r| judge.covers(r) && !made_by_weft(r))
        {
            let shown = r.display_name();
            for (rule, _) in on.iter().filter(|(rule, on)| *on && judges(rule, r)) {
                let failure = found
                    .iter()
                    .find(|f| f.guardrail == judge.name && f.rule == *rule && f.resource == shown)
                    .map(|f| f.diagnostic.clone());
                out.push(RuleResult {
                    policy: judge.name.clone(),
                    rule: (*rule).to_owned(),
                    kind: r.kind(),
                    namespace: r.namespace().to_owned(),
                    name: r.name().to_owned(),
                    result: if failure.is_some() { "fail" } else { "pass" },
                    message: match &failure {
                        Some(d) => d.message.clone(),
                        None => format!("{} keeps to rule {rule}", r.kind().name()),
                    },
                    failure,
                    source: "weft",
                });
            }
        }
    }
    out.extend(crate::kyverno::results(resources));
    out
}

/// The Guardrails whose `noBypass` hold pods, read once from a
/// configuration: `(namespace, namespace/name, enforces)`.
pub struct BypassGuards<'a> {
    root: &'a str,
    guards: Vec<(&'a str, String, bool)>,
}

impl<'a> BypassGuards<'a> {
    pub fn of(resources: &'a [Resource], root: &'a str) -> BypassGuards<'a> {
        let guards = resources
            .iter()
            .filter_map(|g| match &g.spec {
                Spec::Guardrail(rail) if rail.rules.no_bypass => Some((
                    g.namespace(),
                    format!("{}/{}", g.namespace(), g.name()),
                    rail.validation_failure_action == FailureAction::Enforce,
                )),
                _ => None,
            })
            .collect();
        BypassGuards { root, guards }
    }

    /// The Guardrail that holds the pods of `namespace` (`namespace/name`,
    /// and whether it enforces): its namespace's own, else the root
    /// namespace's; of several, an enforcing one.
    pub fn of_namespace(&self, namespace: &str) -> Option<(String, bool)> {
        self.guards
            .iter()
            .filter(|(ns, _, _)| *ns == namespace || *ns == self.root)
            // The first of equals, as written.
            .rev()
            .max_by_key(|(ns, _, enforce)| (*ns == namespace, *enforce))
            .map(|(_, name, enforce)| (name.clone(), *enforce))
    }
}

/// The root namespace's Guardrail that holds the mesh's egress to the
/// egress gateway (`namespace/name`, and whether it enforces); of
/// several, an enforcing one.
pub fn egress_guard(resources: &[Resource], root: &str) -> Option<(String, bool)> {
    resources
        .iter()
        .filter(|g| g.namespace() == root)
        .filter_map(|g| match &g.spec {
            Spec::Guardrail(rail) if rail.rules.egress_through_gateway => Some((
                format!("{}/{}", g.namespace(), g.name()),
                rail.validation_failure_action == FailureAction::Enforce,
            )),
            _ => None,
        })
        .rev()
        .max_by_key(|(_, enforce)| *enforce)
}

/// Whether `rule` judges resources of `r`'s kind.
fn judges(rule: &str, r: &Resource) -> bool {
    let workload = pod_metadata(r).is_some();
    match rule {
        "strictMtls" => r.kind() == ResourceKind::PeerAuthentication,
        "noTlsDisable" => r.kind() == ResourceKind::DestinationRule,
        "noWildcardHosts" => r.kind() == ResourceKind::VirtualService,
        "externalServiceEntryNamespaces" => r.kind() == ResourceKind::ServiceEntry,
        "noInjectionOptOut" => workload || r.kind() == ResourceKind::Namespace,
        "noCaptureExclusions" | "requireAuthorizationPolicy" => workload,
        _ => false,
    }
}

/// One rule broken by one resource.
struct Finding {
    /// The Guardrail, `namespace/name`.
    guardrail: String,
    rule: &'static str,
    /// The resource, `Kind namespace/name`.
    resource: String,
    diagnostic: Diagnostic,
}

/// The Guardrails among `resources`, each with its judge.
fn judges_of<'a>(resources: &'a [Resource], root: &'a str) -> impl Iterator<Item = Judge<'a>> {
    resources.iter().filter_map(move |g| match &g.spec {
        Spec::Guardrail(rail) => Some(Judge {
            rail,
            name: format!("{}/{}", g.namespace(), g.name()),
            scope: (g.namespace() != root).then(|| g.namespace().to_owned()),
            root,
        }),
        _ => None,
    })
}

/// What every Guardrail finds over `resources`.
fn findings(resources: &[Resource], root: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    for judge in judges_of(resources, root) {
        for r in resources
            .iter()
            .filter(|r| judge.covers(r) && !made_by_weft(r))
        {
            judge.resource(r, &mut out);
        }
        if judge.rail.rules.require_authorization_policy {
            judge.authorization_policies(resources, &mut out);
        }
    }
    out
}

/// Every guard-rail finding over `resources`; `root` is the mesh's root
/// namespace.
pub fn check(resources: &[Resource], root: &str) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = findings(resources, root)
        .into_iter()
        .map(|f| f.diagnostic)
        .chain(crate::kyverno::check(resources))
        .collect();
    out.sort_by(|a, b| (&a.origin, &a.message).cmp(&(&b.origin, &b.message)));
    out.dedup();
    out
}

/// Made by a controller of weft's (the source's managed layer says so),
/// not written by a user.
pub fn made_by_weft(r: &Resource) -> bool {
    r.managed_by.is_some()
}

struct Judge<'a> {
    rail: &'a Guardrail,
    /// `namespace/name`, as findings name it.
    name: String,
    /// The one namespace it holds in; `None`: the mesh.
    scope: Option<String>,
    root: &'a str,
}

impl Judge<'_> {
    fn covers(&self, r: &Resource) -> bool {
        self.scope.as_deref().is_none_or(|ns| r.namespace() == ns)
    }

    fn severity(&self) -> Severity {
        match self.rail.validation_failure_action {
            FailureAction::Enforce => Severity::Error,
            FailureAction::Audit => Severity::Warning,
        }
    }

    fn find(
        &self,
        out: &mut Vec<Finding>,
        r: &Resource,
        field: &FieldPath,
        rule: &'static str,
        what: String,
        fix: &str,
    ) {
        let action = match self.rail.validation_failure_action {
            FailureAction::Enforce => "refused",
            FailureAction::Audit => "audited",
        };
        out.push(Finding {
            guardrail: self.name.clone(),
            rule,
            resource: r.display_name(),
            diagnostic: Diagnostic::new(
                self.severity(),
                CODE,
                r.locate(field),
                format!("{what} ({action} by Guardrail {}, rule {rule})", self.name),
            )
            .with_field(field)
            .with_resource(r.display_name())
            .with_fix(fix),
        });
    }

    /// The rules that judge one resource on its own.
    fn resource(&self, r: &Resource, out: &mut Vec<Finding>) {
        let rules = &self.rail.rules;
        let spec = FieldPath::root().key("spec");
        match &r.spec {
            Spec::PeerAuthentication(pa) if rules.strict_mtls => {
                let weak = |m: Option<MtlsMode>| {
                    matches!(m, Some(MtlsMode::Permissive | MtlsMode::Disable))
                };
                if weak(pa.mtls.as_ref().and_then(|m| m.mode)) {
                    self.find(
                        out,
                        r,
                        &spec.key("mtls").key("mode"),
                        "strictMtls",
                        "mTLS must be STRICT: this PeerAuthentication lets plain text in".into(),
                        "set mtls.mode to STRICT (or leave it unset to inherit the mesh's)",
                    );
                }
                for (port, m) in &pa.port_level_mtls {
                    if weak(m.mode) {
                        self.find(
                            out,
                            r,
                            &spec.key("portLevelMtls").key(&port.to_string()).key("mode"),
                            "strictMtls",
                            format!("mTLS must be STRICT: port {port} lets plain text in"),
                            "set the port's mode to STRICT, or remove it",
                        );
                    }
                }
            }
            Spec::DestinationRule(dr) if rules.no_tls_disable => {
                let mut policies: Vec<(FieldPath, &TrafficPolicy)> = Vec::new();
                if let Some(tp) = &dr.traffic_policy {
                    policies.push((spec.key("trafficPolicy"), tp));
                }
                for (i, sub) in dr.subsets.iter().enumerate() {
                    if let Some(tp) = &sub.traffic_policy {
                        policies.push((spec.key("subsets").index(i).key("trafficPolicy"), tp));
                    }
                }
                for (at, tp) in policies {
                    if tp.tls.as_ref().and_then(|t| t.mode) == Some(ClientTlsMode::Disable) {
                        self.find(
                            out,
                            r,
                            &at.key("tls").key("mode"),
                            "noTlsDisable",
                            "TLS must not be turned off: this DestinationRule sends plain text"
                                .into(),
                            "remove tls.mode: DISABLE (ISTIO_MUTUAL is what the mesh speaks)",
                        );
                    }
                    for (j, p) in tp.port_level_settings.iter().enumerate() {
                        if p.tls.as_ref().and_then(|t| t.mode) == Some(ClientTlsMode::Disable) {
                            self.find(
                                out,
                                r,
                                &at.key("portLevelSettings").index(j).key("tls").key("mode"),
                                "noTlsDisable",
                                "TLS must not be turned off: this port sends plain text".into(),
                                "remove tls.mode: DISABLE from the port",
                            );
                        }
                    }
                }
            }
            Spec::VirtualService(vs) if rules.no_wildcard_hosts => {
                for (i, h) in vs.hosts.iter().enumerate() {
                    if h.contains('*') {
                        self.find(out, r, &spec.key("hosts").index(i), "noWildcardHosts",
                            format!("VirtualService hosts must not hold '*': {h:?} would take traffic for every matching host"),
                            "name each host the VirtualService routes");
                    }
                }
            }
            Spec::ServiceEntry(se) => {
                let external = se.location.is_none_or(|l| l == Location::MeshExternal);
                if let Some(allowed) = &rules.external_service_entry_namespaces {
                    if external && !allowed.iter().any(|n| n == r.namespace()) {
                        self.find(out, r, &spec.key("hosts"), "externalServiceEntryNamespaces",
                            format!("external hosts may be declared only where egress is allowed ({}); {} is not such a namespace", allowed.join(", "), r.namespace()),
                            "declare the ServiceEntry in a namespace the Guardrail allows, or ask the platform team to allow this one");
                    }
                }
            }
            _ => {}
        }
        if let Some((labels_at, labels, annotations_at, annotations)) = pod_metadata(r) {
            if rules.no_injection_opt_out {
                for (at, map) in [(&annotations_at, annotations), (&labels_at, labels)] {
                    if map
                        .get("sidecar.istio.io/inject")
                        .is_some_and(|v| v == "false")
                    {
                        self.find(
                            out,
                            r,
                            &at.key("sidecar.istio.io/inject"),
                            "noInjectionOptOut",
                            "workloads may not opt out of the mesh".into(),
                            "remove sidecar.istio.io/inject: \"false\"",
                        );
                    }
                }
            }
            if rules.no_capture_exclusions {
                for key in annotations.keys().filter(|k| excludes_from_capture(k)) {
                    self.find(
                        out,
                        r,
                        &annotations_at.key(key),
                        "noCaptureExclusions",
                        format!("workloads may not take traffic out of capture ({key})"),
                        "remove the annotation: the mesh must see every connection",
                    );
                }
            }
        }
        if let Spec::Namespace(_) = &r.spec {
            if rules.no_injection_opt_out
                && r.meta
                    .labels
                    .get("istio-injection")
                    .is_some_and(|v| v == "disabled")
            {
                self.find(
                    out,
                    r,
                    &FieldPath::root()
                        .key("metadata")
                        .key("labels")
                        .key("istio-injection"),
                    "noInjectionOptOut",
                    "namespaces may not opt out of the mesh".into(),
                    "remove istio-injection: disabled",
                );
            }
        }
    }

    /// `requireAuthorizationPolicy`: a workload in a namespace with no
    /// AuthorizationPolicy (and none in the root namespace) breaks it.
    fn authorization_policies(&self, resources: &[Resource], out: &mut Vec<Finding>) {
        let guarded: BTreeSet<&str> = resources
            .iter()
            .filter(|r| r.kind() == ResourceKind::AuthorizationPolicy)
            .map(Resource::namespace)
            .collect();
        if guarded.contains(self.root) {
            return;
        }
        for r in resources
            .iter()
            .filter(|r| self.covers(r) && !made_by_weft(r) && pod_metadata(r).is_some())
            .filter(|r| !guarded.contains(r.namespace()))
        {
            self.find(out, r, &FieldPath::root().key("metadata").key("namespace"), "requireAuthorizationPolicy",
                format!("namespace {} has no AuthorizationPolicy", r.namespace()),
                "add one to the namespace, at least an allow-nothing policy (spec: {}) with the rules the workloads need");
        }
    }
}

/// Where a workload's pod labels and annotations are, and what they are:
/// a Workload's and a Pod's own, a Deployment's pod template's.
pub(crate) type PodMeta<'a> = (
    FieldPath,
    &'a std::collections::BTreeMap<String, String>,
    FieldPath,
    &'a std::collections::BTreeMap<String, String>,
);

/// Whether `r` runs pods (a Workload, a Deployment, a Pod).
/// Whether annotation `key` takes traffic out of capture (Istio's
/// `traffic.sidecar.istio.io/exclude*`): what noCaptureExclusions refuses
/// and noBypass drops.
pub(crate) fn excludes_from_capture(key: &str) -> bool {
    key.starts_with("traffic.sidecar.istio.io/exclude")
}

pub fn runs_pods(r: &Resource) -> bool {
    pod_metadata(r).is_some()
}

pub(crate) fn pod_metadata(r: &Resource) -> Option<PodMeta<'_>> {
    let meta = FieldPath::root().key("metadata");
    match &r.spec {
        Spec::Workload(_) | Spec::Pod(_) => Some((
            meta.key("labels"),
            &r.meta.labels,
            meta.key("annotations"),
            &r.meta.annotations,
        )),
        Spec::Deployment(d) => {
            let t = FieldPath::root()
                .key("spec")
                .key("template")
                .key("metadata");
            Some((
                t.key("labels"),
                &d.template.metadata.labels,
                t.key("annotations"),
                &d.template.metadata.annotations,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, text: &str) -> Vec<Resource> {
        let loaded = weft_api::load::load_bytes(file, text.as_bytes());
        assert!(
            loaded.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            loaded.diagnostics
        );
        loaded.resources
    }

    const WILD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: wild, namespace: NS}\nspec: {hosts: [\"*.example.com\"], http: [{route: [{destination: {host: a.example.com}}]}]}\n";

    /// A Guardrail outside the root namespace holds in its own; Audit
    /// warns; what weft's controllers made is not judged.
    #[test]
    fn a_namespaces_guardrail_audits_its_own_namespace_and_not_weft_s_objects() {
        let mut resources = load(
            "rails.yaml",
            "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: team, namespace: team-a}\nspec:\n  rules: {noWildcardHosts: true}\n",
        );
        resources.extend(load("a.yaml", &WILD.replace("NS", "team-a")));
        resources.extend(load("b.yaml", &WILD.replace("NS", "team-b")));
        let mut made = load(
            "run/managed/Canary_team-a_x.yaml",
            &WILD
                .replace("NS", "team-a")
                .replace("name: wild", "name: made"),
        );
        made[0].managed_by = Some("Canary/team-a/x".into());
        resources.extend(made);
        // A user's file in a directory called `managed` is still judged.
        resources.extend(load(
            "config/managed/sneaky.yaml",
            &WILD
                .replace("NS", "team-a")
                .replace("name: wild", "name: sneaky"),
        ));
        let found = check(&resources, "istio-system");
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(
            found[1].resource.as_deref(),
            Some("VirtualService team-a/sneaky")
        );
        assert_eq!(found[0].severity, Severity::Warning);
        assert_eq!(
            found[0].resource.as_deref(),
            Some("VirtualService team-a/wild")
        );
        assert!(found[0]
            .message
            .contains("audited by Guardrail team-a/team"));
        assert_eq!(found[0].origin.line, 4);
    }

    /// Each rule's result for each resource it judges: the passes too.
    #[test]
    fn results_list_passes_and_failures_by_rule() {
        let mut resources = load(
            "rails.yaml",
            "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: team, namespace: team-a}\nspec:\n  rules: {noWildcardHosts: true, strictMtls: true}\n",
        );
        resources.extend(load("a.yaml", &WILD.replace("NS", "team-a")));
        resources.extend(load(
            "b.yaml",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: named, namespace: team-a}\nspec: {hosts: [a.example.com], http: [{route: [{destination: {host: a.example.com}}]}]}\n",
        ));
        let all = results(&resources, "istio-system");
        let got: Vec<(&str, &str, bool)> = all
            .iter()
            .map(|r| (r.rule.as_str(), r.name.as_str(), r.failure.is_none()))
            .collect();
        assert_eq!(
            got,
            [
                ("noWildcardHosts", "wild", false),
                ("noWildcardHosts", "named", true)
            ]
        );
    }

    /// A root-namespace AuthorizationPolicy guards every namespace.
    #[test]
    fn a_mesh_wide_authorization_policy_satisfies_every_namespace() {
        let mut resources = load(
            "rails.yaml",
            "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: platform, namespace: istio-system}\nspec:\n  validationFailureAction: enforce\n  rules: {requireAuthorizationPolicy: true}\n---\napiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: app}\nspec: {command: sleep}\n",
        );
        let found = check(&resources, "istio-system");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].severity, Severity::Error);
        resources.extend(load(
            "ap.yaml",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: istio-system}\nspec: {}\n",
        ));
        assert!(check(&resources, "istio-system").is_empty());
    }
}
