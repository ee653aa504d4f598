//! Cross-resource analysis, with Istio's analyzer codes and wording where
//! the meaning is the same (`istioctl analyze`), and `WEFT01xx` codes for
//! checks Istio does not have.
//!
//! Each analyzer is a function from the whole configuration to findings;
//! they share the registry and the compiler's index so that "what applies
//! to what" is decided in one place.

mod annotations;
mod conditions;
mod conflicts;
mod deployments;
mod deprecation;
mod destinations;
mod gateways;
mod policy;
mod references;
mod routing;
mod selectors;
mod traffic_loss;
mod vs_gateways;
mod workloads;

use std::collections::BTreeSet;
use std::path::PathBuf;

use weft_api::diag::{Diagnostic, Severity};
use weft_api::path::FieldPath;
use weft_api::resource::Resource;

use crate::compile::Index;
use crate::registry::{MeshConfig, Registry};

/// What the analyzers look at.
pub struct Input<'a> {
    pub resources: &'a [Resource],
    pub registry: &'a Registry,
    pub mesh: &'a MeshConfig,
    pub index: Index<'a>,
    /// Where `credentialName` secrets live; unchecked when unknown.
    pub secrets_dir: Option<PathBuf>,
    /// Whether a credential in `secrets_dir` can be served with (parsed,
    /// keyed, in date): the identity crate's check, passed in so that
    /// analysis stays free of X.509.
    pub credential_check: Option<CredentialCheck>,
    /// The same check for a Secret resource's certificate and key.
    pub pem_check: Option<PemCheck>,
    /// Resources that exist but were refused by validation, as
    /// `Kind ns/name`: a reference to one is not "not found" (its own
    /// error says what is wrong).
    pub refused: BTreeSet<String>,
    /// Whether Secret resources count as credentials: for files analyzed
    /// as istioctl analyzes them, yes; for what weft serves, not yet (its
    /// proxies take credentials from the secrets directory only).
    pub secret_resources_served: bool,
    /// Whether the Guardrails were judged before analysis (at admission).
    pub guardrails_judged: bool,
}

impl<'a> Input<'a> {
    /// What analysis looks at: `resources`, and what `options` add.
    pub fn new(
        resources: &'a [Resource],
        registry: &'a Registry,
        mesh: &'a MeshConfig,
        options: Options<'_>,
    ) -> Input<'a> {
        let mut index = Index::new(resources);
        if let Some(mc) = options.mesh_config {
            index.mesh_config = mc;
        }
        Input {
            resources,
            registry,
            mesh,
            index,
            secrets_dir: options.secrets_dir.map(std::path::Path::to_owned),
            credential_check: options.credential_check,
            pem_check: options.pem_check,
            refused: options.refused,
            secret_resources_served: options.secret_resources_served,
            guardrails_judged: options.guardrails_judged,
        }
    }
}

/// `(secrets dir, credentialName)` → why the credential cannot serve.
pub type CredentialCheck = fn(&std::path::Path, &str) -> Result<(), String>;

/// `(name, certificate chain, private key)` → why they cannot serve.
pub type PemCheck = fn(&str, &str, &str) -> Result<(), String>;

/// One analyzer: a stable name (for `--list` and tests) and its function.
pub struct Analyzer {
    pub name: &'static str,
    /// The name of the analyzer of istioctl's that checks the same thing
    /// (`istioctl analyze --list-analyzers`), where there is one.
    pub istio: Option<&'static str>,
    pub codes: &'static [&'static str],
    pub run: fn(&Input<'_>, &mut Findings),
}

/// All analyzers, in the order they run.
pub const ANALYZERS: &[Analyzer] = &[
    Analyzer {
        name: "virtualservice.destinationhost",
        istio: Some("virtualservice.DestinationHostAnalyzer"),
        codes: &["IST0101", "IST0112", "IST0140"],
        run: destinations::destination_hosts,
    },
    Analyzer {
        name: "virtualservice.destinationsubset",
        istio: Some("virtualservice.DestinationRuleAnalyzer"),
        codes: &["IST0101"],
        run: references::destination_subsets,
    },
    Analyzer {
        name: "virtualservice.gateway",
        istio: Some("virtualservice.GatewayAnalyzer"),
        codes: &["IST0101", "IST0132", "IST0165"],
        run: vs_gateways::gateways,
    },
    Analyzer {
        name: "virtualservice.jwtclaimroute",
        istio: Some("virtualservice.JWTClaimRouteAnalyzer"),
        codes: &["IST0149"],
        run: vs_gateways::claim_routes,
    },
    Analyzer {
        name: "virtualservice.matchgateway",
        istio: None,
        codes: &["WEFT0105"],
        run: vs_gateways::match_gateways,
    },
    Analyzer {
        name: "gateway.secret",
        istio: Some("gateway.SecretAnalyzer"),
        codes: &["IST0101", "IST0161"],
        run: references::gateway_secrets,
    },
    Analyzer {
        name: "authorizationpolicy.namespace",
        istio: Some("auth.AuthorizationPoliciesAnalyzer"),
        codes: &["IST0101"],
        run: references::authz_namespaces,
    },
    Analyzer {
        name: "sidecar.egresshost",
        istio: None,
        codes: &["IST0101"],
        run: references::sidecar_egress_hosts,
    },
    Analyzer {
        name: "canary.target",
        istio: None,
        codes: &["IST0101", "WEFT0111"],
        run: references::canary_targets,
    },
    Analyzer {
        name: "meshconfig.extensionprovider",
        istio: None,
        codes: &["IST0101"],
        run: references::extension_providers,
    },
    Analyzer {
        name: "virtualservice.conflictingmeshgatewayhosts",
        istio: Some("virtualservice.ConflictingMeshGatewayHostsAnalyzer"),
        codes: &["IST0109"],
        run: conflicts::mesh_virtual_services,
    },
    Analyzer {
        name: "sidecar.selector",
        istio: Some("sidecar.SelectorAnalyzer"),
        codes: &["IST0101", "IST0110", "IST0111", "IST0167"],
        run: selectors::sidecars,
    },
    Analyzer {
        name: "telemetry.selector",
        istio: Some("telemetry.SelectorAnalyzer"),
        codes: &["IST0101", "IST0159"],
        run: selectors::telemetries,
    },
    Analyzer {
        name: "telemetry.defaultselector",
        istio: Some("telemetry.DefaultSelectorAnalyzer"),
        codes: &["IST0160"],
        run: selectors::telemetry_defaults,
    },
    Analyzer {
        name: "destinationrule.subsets",
        istio: Some("destinationrule.SubsetSelectPodAnalyzer"),
        codes: &["IST0173", "IST0174"],
        run: destinations::destination_rule_hosts,
    },
    Analyzer {
        name: "destinationrule.conflict",
        istio: None,
        codes: &["WEFT0101"],
        run: conflicts::destination_rules,
    },
    Analyzer {
        name: "serviceentry.address",
        istio: Some("serviceentry.Analyzer"),
        codes: &["IST0134"],
        run: conflicts::service_entry_addresses,
    },
    Analyzer {
        name: "serviceentry.sharedaddress",
        istio: None,
        codes: &["WEFT0102"],
        run: conflicts::service_entry_shared_addresses,
    },
    Analyzer {
        name: "serviceentry.protocol",
        istio: Some("serviceentry.ConflictingServiceEntryProtocolAnalyzer"),
        codes: &["IST0177"],
        run: conflicts::service_entry_protocols,
    },
    Analyzer {
        name: "gateway.conflictinggateways",
        istio: Some("gateway.ConflictingGatewayAnalyzer"),
        codes: &["IST0145"],
        run: conflicts::gateways,
    },
    Analyzer {
        name: "gateway.certificate",
        istio: Some("gateway.CertificateAnalyzer"),
        codes: &["IST0138"],
        run: conflicts::duplicate_certificates,
    },
    Analyzer {
        name: "virtualservice.unreachablerule",
        istio: Some("schema.ValidationAnalyzer.VirtualService"),
        codes: &["IST0130", "IST0131"],
        run: routing::unreachable_rules,
    },
    Analyzer {
        name: "service.portname",
        istio: Some("service.PortNameAnalyzer"),
        codes: &["IST0118", "IST0150"],
        run: routing::port_names,
    },
    Analyzer {
        name: "deployment.multiservice",
        istio: Some("deployment.MultiServiceAnalyzer"),
        codes: &["IST0116", "IST0137"],
        run: deployments::multiple_services,
    },
    Analyzer {
        name: "deployment.proxyuid",
        istio: Some("applicationUID.Analyzer"),
        codes: &["IST0144"],
        run: deployments::proxy_uid,
    },
    Analyzer {
        name: "authorizationpolicy.workloads",
        istio: Some("auth.AuthorizationPoliciesAnalyzer"),
        codes: &["IST0127"],
        run: policy::authorization_policy_workloads,
    },
    Analyzer {
        name: "policy.noworkload",
        istio: None,
        codes: &["WEFT0104"],
        run: policy::no_matching_workloads,
    },
    Analyzer {
        name: "destinationrule.mtlsconflict",
        istio: None,
        codes: &["WEFT0103"],
        run: policy::mtls_conflicts,
    },
    Analyzer {
        name: "destinationrule.cacertificates",
        istio: Some("destinationrule.CaCertificateAnalyzer"),
        codes: &["IST0128", "IST0129"],
        run: policy::server_verification,
    },
    Analyzer {
        name: "gateway.port",
        istio: Some("gateway.IngressGatewayPortAnalyzer"),
        codes: &["IST0101", "IST0162"],
        run: gateways::ports,
    },
    Analyzer {
        name: "deprecation.fields",
        istio: Some("deprecation.DeprecationAnalyzer"),
        codes: &["IST0002"],
        run: deprecation::deprecated_fields,
    },
    Analyzer {
        name: "telemetry.providers",
        istio: Some("telemetry.ProviderAnalyzer"),
        codes: &["IST0157"],
        run: deprecation::empty_access_log_providers,
    },
    Analyzer {
        name: "conditions",
        istio: Some("conditions.ConditionAnalyzer"),
        codes: &["IST0171"],
        run: conditions::negative_conditions,
    },
    Analyzer {
        name: "telemetry.lightstep",
        istio: Some("telemetry.LightstepAnalyzer"),
        codes: &["IST0002"],
        run: deprecation::lightstep_providers,
    },
    Analyzer {
        name: "annotations.k8s",
        istio: Some("annotations.K8sAnalyzer"),
        codes: &["IST0107", "IST0108", "IST0125", "IST0135"],
        run: annotations::annotations,
    },
    Analyzer {
        name: "cluster.only",
        istio: None,
        codes: &["WEFT0110"],
        run: annotations::cluster_only,
    },
    Analyzer {
        name: "guardrails",
        istio: None,
        codes: &[crate::guardrails::CODE],
        run: guardrails,
    },
    Analyzer {
        name: "guardrails.egress",
        istio: None,
        codes: &[traffic_loss::CODE],
        run: traffic_loss::egress_outside_the_gateway,
    },
    Analyzer {
        name: "guardrails.bypass",
        istio: None,
        codes: &[traffic_loss::CODE],
        run: traffic_loss::bypass_around_the_proxy,
    },
];

/// The platform's Guardrails, unless the caller judged them already (the
/// control plane does, at admission, to refuse what breaks one).
fn guardrails(input: &Input<'_>, findings: &mut Findings) {
    if input.guardrails_judged {
        return;
    }
    for mut d in crate::guardrails::check(input.resources, &input.mesh.root_namespace) {
        d.analyzer = findings.analyzer;
        findings.found.push(d);
    }
}

/// Collected findings, each marked with the analyzer that found it.
#[derive(Default)]
pub struct Findings {
    found: Vec<Diagnostic>,
    analyzer: Option<&'static str>,
}

impl Findings {
    /// Reports `message` on `resource`, positioned at `field`.
    pub fn add(
        &mut self,
        severity: Severity,
        code: &str,
        resource: &Resource,
        field: &FieldPath,
        message: String,
        fix: &str,
    ) {
        if suppressed_by_annotation(resource, code)
            || IGNORED_NAMESPACES.contains(&resource.namespace())
        {
            return;
        }
        let mut d = Diagnostic::new(severity, code, resource.locate(field), message)
            .with_resource(resource.display_name())
            .with_fix(fix);
        d.analyzer = self.analyzer;
        if !field.segments().is_empty() {
            d = d.with_field(field);
        }
        self.found.push(d);
    }
}

/// Namespaces istioctl analyze leaves out, as the sidecar injector does:
/// the cluster's own.
pub const IGNORED_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Istio's annotation that leaves codes out of analysis for one resource:
/// a comma-separated list of codes, or `*` for all.
pub const SUPPRESS_ANNOTATION: &str = "galley.istio.io/analyze-suppress";

fn suppressed_by_annotation(resource: &Resource, code: &str) -> bool {
    resource
        .meta
        .annotations
        .get(SUPPRESS_ANNOTATION)
        .is_some_and(|codes| codes.split(',').any(|c| c == "*" || c == code))
}

/// The resources `diagnostics` refused (an error names them), as
/// `Kind ns/name`.
pub fn refused_by(diagnostics: &[Diagnostic]) -> BTreeSet<String> {
    diagnostics
        .iter()
        .filter(|d| d.is_error())
        .filter_map(|d| d.resource.clone())
        .collect()
}

/// Runs every analyzer over a configuration.
pub fn analyze(resources: &[Resource], registry: &Registry, mesh: &MeshConfig) -> Vec<Diagnostic> {
    analyze_with_options(resources, registry, mesh, Options::default())
}

/// What analysis may look at beyond the resources.
#[derive(Default)]
pub struct Options<'a> {
    /// Where `credentialName` secrets live: a Gateway naming one that is
    /// not there resets every TLS handshake.
    pub secrets_dir: Option<&'a std::path::Path>,
    /// Whether a credential there can serve.
    pub credential_check: Option<CredentialCheck>,
    /// Whether a Secret resource's certificate and key can serve.
    pub pem_check: Option<PemCheck>,
    /// Resources validation refused, as `Kind ns/name`.
    pub refused: BTreeSet<String>,
    /// Whether Secret resources count as credentials (see [`Input`]).
    pub secret_resources_served: bool,
    /// A MeshConfig that replaces the one in the `istio` ConfigMap
    /// (istioctl's `--meshConfigFile`).
    pub mesh_config: Option<weft_api::types::mesh::MeshConfig>,
    /// The Guardrails were judged already (see [`Input`]).
    pub guardrails_judged: bool,
}

/// As [`analyze`], with `options`.
pub fn analyze_with_options(
    resources: &[Resource],
    registry: &Registry,
    mesh: &MeshConfig,
    options: Options<'_>,
) -> Vec<Diagnostic> {
    analyze_with(&Input::new(resources, registry, mesh, options))
}

/// The warnings Istio's validation webhook gives (its VirtualService
/// unreachable rules, which istioctl analyze reports through its
/// ValidationAnalyzer): `weft validate` gives them as the webhook would,
/// from the analyzers that stand for `schema.ValidationAnalyzer.*`.
pub fn webhook_warnings(resources: &[Resource]) -> Vec<Diagnostic> {
    let mesh = MeshConfig::default();
    let registry = Registry::build(resources, &mesh);
    let options = Options {
        secret_resources_served: true,
        ..Options::default()
    };
    let input = Input::new(resources, &registry, &mesh, options);
    run(
        &input,
        ANALYZERS.iter().filter(|a| {
            a.istio
                .is_some_and(|i| i.starts_with("schema.ValidationAnalyzer."))
        }),
    )
}

pub fn analyze_with(input: &Input<'_>) -> Vec<Diagnostic> {
    run(input, ANALYZERS.iter())
}

/// Runs `analyzers` in order; findings sorted, each once.
fn run<'a>(input: &Input<'_>, analyzers: impl Iterator<Item = &'a Analyzer>) -> Vec<Diagnostic> {
    let mut findings = Findings::default();
    for a in analyzers {
        findings.analyzer = Some(a.name);
        (a.run)(input, &mut findings);
    }
    let mut out = findings.found;
    out.sort_by(|a, b| (&a.origin, &a.code, &a.message).cmp(&(&b.origin, &b.code, &b.message)));
    out.dedup();
    out
}

/// The namespaces a resource in `ns` is exported to, as istioctl's
/// analyzers key them: `*` alone when exported everywhere (no `exportTo`,
/// or one that holds `*`), else each entry with `.` read as `ns`, sorted.
pub(crate) fn export_scopes(export_to: &[String], ns: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
        return vec!["*".to_owned()];
    }
    let mut scopes: Vec<String> = export_to
        .iter()
        .map(|e| if e == "." { ns.to_owned() } else { e.clone() })
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// `a, b, c` for messages.
pub(crate) fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `app=reviews,version=v1`, as Istio prints selectors.
pub(crate) fn selector_text(labels: &weft_api::types::common::Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}
