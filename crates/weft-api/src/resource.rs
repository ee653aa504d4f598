//! A loaded resource: its kind, metadata, typed spec, and where it came from.

use std::fmt;
use std::sync::Arc;

use crate::diag::Origin;
use crate::path::FieldPath;
use crate::types::{flagger, kube, kyverno, networking, security, telemetry, weft};
use crate::yaml::{NodeId, Tree};

/// Every kind weft reads, with the API group and versions it is served at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKind {
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    Sidecar,
    WorkloadEntry,
    WorkloadGroup,
    PeerAuthentication,
    RequestAuthentication,
    AuthorizationPolicy,
    Telemetry,
    Service,
    Deployment,
    Pod,
    Canary,
    MetricTemplate,
    AlertProvider,
    Workload,
    Guardrail,
    ConfigMap,
    Namespace,
    Node,
    Secret,
    ClusterPolicy,
    Policy,
    NetworkPolicy,
}

impl ResourceKind {
    pub const ALL: [ResourceKind; 26] = [
        ResourceKind::VirtualService,
        ResourceKind::DestinationRule,
        ResourceKind::Gateway,
        ResourceKind::ServiceEntry,
        ResourceKind::Sidecar,
        ResourceKind::WorkloadEntry,
        ResourceKind::WorkloadGroup,
        ResourceKind::PeerAuthentication,
        ResourceKind::RequestAuthentication,
        ResourceKind::AuthorizationPolicy,
        ResourceKind::Telemetry,
        ResourceKind::Service,
        ResourceKind::Deployment,
        ResourceKind::Pod,
        ResourceKind::Canary,
        ResourceKind::MetricTemplate,
        ResourceKind::AlertProvider,
        ResourceKind::Workload,
        ResourceKind::Guardrail,
        ResourceKind::ConfigMap,
        ResourceKind::Namespace,
        ResourceKind::Node,
        ResourceKind::Secret,
        ResourceKind::ClusterPolicy,
        ResourceKind::Policy,
        ResourceKind::NetworkPolicy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ResourceKind::VirtualService => "VirtualService",
            ResourceKind::DestinationRule => "DestinationRule",
            ResourceKind::Gateway => "Gateway",
            ResourceKind::ServiceEntry => "ServiceEntry",
            ResourceKind::Sidecar => "Sidecar",
            ResourceKind::WorkloadEntry => "WorkloadEntry",
            ResourceKind::WorkloadGroup => "WorkloadGroup",
            ResourceKind::PeerAuthentication => "PeerAuthentication",
            ResourceKind::RequestAuthentication => "RequestAuthentication",
            ResourceKind::AuthorizationPolicy => "AuthorizationPolicy",
            ResourceKind::Telemetry => "Telemetry",
            ResourceKind::Service => "Service",
            ResourceKind::Deployment => "Deployment",
            ResourceKind::Pod => "Pod",
            ResourceKind::Canary => "Canary",
            ResourceKind::MetricTemplate => "MetricTemplate",
            ResourceKind::AlertProvider => "AlertProvider",
            ResourceKind::Workload => "Workload",
            ResourceKind::Guardrail => "Guardrail",
            ResourceKind::ConfigMap => "ConfigMap",
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Node => "Node",
            ResourceKind::Secret => "Secret",
            ResourceKind::ClusterPolicy => "ClusterPolicy",
            ResourceKind::Policy => "Policy",
            ResourceKind::NetworkPolicy => "NetworkPolicy",
        }
    }

    /// The `apiVersion`s this kind is accepted at.
    pub fn api_versions(self) -> &'static [&'static str] {
        use ResourceKind::*;
        match self {
            VirtualService | DestinationRule | Gateway | ServiceEntry | Sidecar | WorkloadEntry
            | WorkloadGroup => &[
                "networking.istio.io/v1",
                "networking.istio.io/v1beta1",
                "networking.istio.io/v1alpha3",
            ],
            PeerAuthentication | RequestAuthentication | AuthorizationPolicy => {
                &["security.istio.io/v1", "security.istio.io/v1beta1"]
            }
            Telemetry => &["telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"],
            Service | Pod | ConfigMap | Namespace | Node | Secret => &["v1"],
            Deployment => &["apps/v1"],
            Canary | MetricTemplate | AlertProvider => &["flagger.app/v1beta1"],
            Workload | Guardrail => &["weft.dev/v1"],
            ClusterPolicy | Policy => &["kyverno.io/v1", "kyverno.io/v2beta1"],
            NetworkPolicy => &["networking.k8s.io/v1"],
        }
    }

    /// Kinds that live in no namespace (Kubernetes' cluster-scoped kinds).
    pub fn cluster_scoped(self) -> bool {
        matches!(
            self,
            ResourceKind::Namespace | ResourceKind::Node | ResourceKind::ClusterPolicy
        )
    }

    pub fn from_name(name: &str) -> Option<ResourceKind> {
        ResourceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Kinds accepted in a `Sidecar`-style short form (`weft get vs`).
    pub fn from_cli_name(name: &str) -> Option<ResourceKind> {
        let lower = name.to_ascii_lowercase();
        let short = match lower.as_str() {
            "vs" | "virtualservices" => Some(ResourceKind::VirtualService),
            "dr" | "destinationrules" => Some(ResourceKind::DestinationRule),
            "gw" | "gateways" => Some(ResourceKind::Gateway),
            "se" | "serviceentries" => Some(ResourceKind::ServiceEntry),
            "svc" | "services" => Some(ResourceKind::Service),
            "pa" | "peerauthentications" => Some(ResourceKind::PeerAuthentication),
            "ra" | "requestauthentications" => Some(ResourceKind::RequestAuthentication),
            "ap" | "authorizationpolicies" => Some(ResourceKind::AuthorizationPolicy),
            "we" | "workloadentries" => Some(ResourceKind::WorkloadEntry),
            "wg" | "workloadgroups" => Some(ResourceKind::WorkloadGroup),
            "canaries" => Some(ResourceKind::Canary),
            "alertproviders" => Some(ResourceKind::AlertProvider),
            "workloads" => Some(ResourceKind::Workload),
            "guardrails" => Some(ResourceKind::Guardrail),
            "ns" | "namespaces" => Some(ResourceKind::Namespace),
            "no" | "nodes" => Some(ResourceKind::Node),
            "secrets" => Some(ResourceKind::Secret),
            "cpol" | "clusterpolicies" => Some(ResourceKind::ClusterPolicy),
            "pol" | "policies" => Some(ResourceKind::Policy),
            "netpol" | "networkpolicies" => Some(ResourceKind::NetworkPolicy),
            _ => None,
        };
        short.or_else(|| {
            ResourceKind::ALL.into_iter().find(|k| {
                k.name().eq_ignore_ascii_case(&lower)
                    || format!("{}s", k.name()).eq_ignore_ascii_case(&lower)
            })
        })
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The typed body of a resource.
///
/// Variants differ in size; resources are loaded once and number in the
/// hundreds, so the space is irrelevant. Canary alone is boxed because it
/// embeds whole VirtualService fragments and tripled the enum.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    VirtualService(networking::VirtualService),
    DestinationRule(networking::DestinationRule),
    Gateway(networking::Gateway),
    ServiceEntry(networking::ServiceEntry),
    Sidecar(networking::Sidecar),
    WorkloadEntry(networking::WorkloadEntry),
    WorkloadGroup(networking::WorkloadGroup),
    PeerAuthentication(security::PeerAuthentication),
    RequestAuthentication(security::RequestAuthentication),
    AuthorizationPolicy(security::AuthorizationPolicy),
    Telemetry(telemetry::Telemetry),
    Service(kube::ServiceSpec),
    Deployment(kube::DeploymentSpec),
    Pod(kube::PodSpec),
    Canary(Box<flagger::Canary>),
    MetricTemplate(flagger::MetricTemplate),
    AlertProvider(flagger::AlertProvider),
    Workload(weft::Workload),
    Guardrail(weft::Guardrail),
    ConfigMap(kube::ConfigMap),
    /// A namespace: weft reads its labels (injection, ambient enrolment)
    /// and that it exists.
    Namespace(kube::NamespaceSpec),
    Node(kube::NodeSpec),
    Secret(kube::Secret),
    /// Kyverno's policies, cluster-wide and namespaced: one shape.
    ClusterPolicy(kyverno::PolicySpec),
    Policy(kyverno::PolicySpec),
    NetworkPolicy(kube::NetworkPolicySpec),
}

impl Spec {
    pub fn kind(&self) -> ResourceKind {
        match self {
            Spec::VirtualService(_) => ResourceKind::VirtualService,
            Spec::DestinationRule(_) => ResourceKind::DestinationRule,
            Spec::Gateway(_) => ResourceKind::Gateway,
            Spec::ServiceEntry(_) => ResourceKind::ServiceEntry,
            Spec::Sidecar(_) => ResourceKind::Sidecar,
            Spec::WorkloadEntry(_) => ResourceKind::WorkloadEntry,
            Spec::WorkloadGroup(_) => ResourceKind::WorkloadGroup,
            Spec::PeerAuthentication(_) => ResourceKind::PeerAuthentication,
            Spec::RequestAuthentication(_) => ResourceKind::RequestAuthentication,
            Spec::AuthorizationPolicy(_) => ResourceKind::AuthorizationPolicy,
            Spec::Telemetry(_) => ResourceKind::Telemetry,
            Spec::Service(_) => ResourceKind::Service,
            Spec::Deployment(_) => ResourceKind::Deployment,
            Spec::Pod(_) => ResourceKind::Pod,
            Spec::Canary(_) => ResourceKind::Canary,
            Spec::MetricTemplate(_) => ResourceKind::MetricTemplate,
            Spec::AlertProvider(_) => ResourceKind::AlertProvider,
            Spec::Workload(_) => ResourceKind::Workload,
            Spec::Guardrail(_) => ResourceKind::Guardrail,
            Spec::ConfigMap(_) => ResourceKind::ConfigMap,
            Spec::Namespace(_) => ResourceKind::Namespace,
            Spec::Node(_) => ResourceKind::Node,
            Spec::Secret(_) => ResourceKind::Secret,
            Spec::ClusterPolicy(_) => ResourceKind::ClusterPolicy,
            Spec::Policy(_) => ResourceKind::Policy,
            Spec::NetworkPolicy(_) => ResourceKind::NetworkPolicy,
        }
    }
}

/// Where a resource was written: the file, its parsed tree and the node of
/// the object inside it, so that any field can be located later.
#[derive(Clone)]
pub struct SourceRef {
    pub file: Arc<str>,
    pub tree: Arc<Tree>,
    pub node: NodeId,
}

/// The file and where in it: never the tree, which holds every value as
/// written (a Secret's among them).
impl fmt::Debug for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.tree.node(self.node).mark;
        write!(f, "SourceRef({}:{}:{})", self.file, at.line, at.column)
    }
}

impl SourceRef {
    /// The position of `path` (relative to the object), or of its deepest
    /// existing ancestor.
    pub fn locate(&self, path: &FieldPath, at_key: bool) -> Origin {
        Origin::new(&self.file, path.locate_from(&self.tree, self.node, at_key))
    }
}

impl PartialEq for SourceRef {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file && self.node == other.node && Arc::ptr_eq(&self.tree, &other.tree)
    }
}

/// `(kind, namespace, name)`: what makes a resource unique.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub kind: ResourceKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            // Cluster-scoped, as istioctl names them: `Namespace foo`.
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub api_version: String,
    /// Metadata with `namespace` defaulted to `default`, as kubectl does
    /// (empty for cluster-scoped kinds).
    pub meta: crate::types::kube::ObjectMeta,
    pub spec: Spec,
    pub source: SourceRef,
    /// The controller of weft's that made it (`Canary/ns/name`), when it
    /// comes from the source's managed layer; never from what a user
    /// writes, so a user's resource cannot pass for a controller's.
    pub managed_by: Option<String>,
}

impl Resource {
    pub fn kind(&self) -> ResourceKind {
        self.spec.kind()
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    pub fn namespace(&self) -> &str {
        &self.meta.namespace
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey {
            kind: self.kind(),
            namespace: self.meta.namespace.clone(),
            name: self.meta.name.clone(),
        }
    }

    /// `Kind namespace/name`, as Istio's analyzers name resources.
    pub fn display_name(&self) -> String {
        self.key().to_string()
    }

    /// Where the object starts.
    pub fn origin(&self) -> Origin {
        Origin::new(
            &self.source.file,
            self.source.tree.node(self.source.node).mark,
        )
    }

    /// The object as the Kubernetes API would return it: what was
    /// written, with `metadata.namespace` filled in as kubectl does. A
    /// Secret's values are never in it (each reads `<redacted>`), so that
    /// nothing that quotes this view can print one.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.source.tree.to_json(self.source.node);
        if let serde_json::Value::Object(obj) = &mut v {
            if !self.meta.namespace.is_empty() {
                if let Some(serde_json::Value::Object(meta)) = obj.get_mut("metadata") {
                    meta.insert(
                        "namespace".into(),
                        serde_json::Value::String(self.meta.namespace.clone()),
                    );
                }
            }
            if self.kind() == ResourceKind::Secret {
                // kubectl's copy of the whole object, values and all.
                if let Some(serde_json::Value::Object(meta)) = obj.get_mut("metadata") {
                    if let Some(serde_json::Value::Object(notes)) = meta.get_mut("annotations") {
                        notes.remove(crate::load::LAST_APPLIED);
                    }
                }
                for field in ["data", "stringData"] {
                    if let Some(serde_json::Value::Object(values)) = obj.get_mut(field) {
                        for value in values.values_mut() {
                            *value = serde_json::Value::String("<redacted>".into());
                        }
                    }
                }
            }
        }
        v
    }

    /// Where a field of this resource was written.
    pub fn locate(&self, path: &FieldPath) -> Origin {
        self.source.locate(path, false)
    }
}
