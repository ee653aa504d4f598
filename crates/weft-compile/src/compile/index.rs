//! Resources grouped by kind, with the lookups the compiler and analyzers
//! share: which policy selects a workload, which DestinationRule applies to
//! a host, which Sidecar scopes a proxy.

use weft_api::resource::{Resource, Spec};
use weft_api::types::common::{Labels, WorkloadSelector};
use weft_api::types::networking::{DestinationRule, Gateway, Sidecar, VirtualService};
use weft_api::types::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_api::types::telemetry::Telemetry;

use crate::registry::labels_match;

pub struct Index<'a> {
    pub all: &'a [Resource],
    pub virtual_services: Vec<(&'a Resource, &'a VirtualService)>,
    pub destination_rules: Vec<(&'a Resource, &'a DestinationRule)>,
    pub gateways: Vec<(&'a Resource, &'a Gateway)>,
    pub sidecars: Vec<(&'a Resource, &'a Sidecar)>,
    pub peer_authentications: Vec<(&'a Resource, &'a PeerAuthentication)>,
    pub request_authentications: Vec<(&'a Resource, &'a RequestAuthentication)>,
    pub authorization_policies: Vec<(&'a Resource, &'a AuthorizationPolicy)>,
    pub telemetries: Vec<(&'a Resource, &'a Telemetry)>,
    /// MeshConfig from Istio's `istio` ConfigMap (validation already
    /// reported it if it does not parse).
    pub mesh_config: weft_api::types::mesh::MeshConfig,
}

impl<'a> Index<'a> {
    pub fn new(all: &'a [Resource]) -> Self {
        let mut ix = Index {
            all,
            virtual_services: Vec::new(),
            destination_rules: Vec::new(),
            gateways: Vec::new(),
            sidecars: Vec::new(),
            peer_authentications: Vec::new(),
            request_authentications: Vec::new(),
            authorization_policies: Vec::new(),
            telemetries: Vec::new(),
            mesh_config: Default::default(),
        };
        if let Some(r) = all
            .iter()
            .find(|r| weft_api::types::mesh::is_mesh_config(r, "istio-system"))
        {
            ix.mesh_config = weft_api::types::mesh::parse(r).unwrap_or_default();
        }
        for r in all {
            match &r.spec {
                Spec::VirtualService(s) => ix.virtual_services.push((r, s)),
                Spec::DestinationRule(s) => ix.destination_rules.push((r, s)),
                Spec::Gateway(s) => ix.gateways.push((r, s)),
                Spec::Sidecar(s) => ix.sidecars.push((r, s)),
                Spec::PeerAuthentication(s) => ix.peer_authentications.push((r, s)),
                Spec::RequestAuthentication(s) => ix.request_authentications.push((r, s)),
                Spec::AuthorizationPolicy(s) => ix.authorization_policies.push((r, s)),
                Spec::Telemetry(s) => ix.telemetries.push((r, s)),
                _ => {}
            }
        }
        // Deterministic order whatever the file order: namespace, then name.
        // (Istio breaks ties by creation time, which files do not have.)
        fn sort<T>(v: &mut [(&Resource, &T)]) {
            v.sort_by(|a, b| (a.0.namespace(), a.0.name()).cmp(&(b.0.namespace(), b.0.name())));
        }
        sort(&mut ix.virtual_services);
        sort(&mut ix.destination_rules);
        sort(&mut ix.gateways);
        sort(&mut ix.sidecars);
        sort(&mut ix.peer_authentications);
        sort(&mut ix.request_authentications);
        sort(&mut ix.authorization_policies);
        sort(&mut ix.telemetries);
        ix
    }
}

/// How a namespaced policy applies to a workload, most specific last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PolicyScope {
    Mesh,
    Namespace,
    Workload,
}

/// Whether a policy (security or telemetry style, with `selector`) in
/// `policy_ns` applies to a workload, and at which level.
pub fn policy_scope(
    policy_ns: &str,
    selector: Option<&WorkloadSelector>,
    root_ns: &str,
    ns: &str,
    labels: &Labels,
) -> Option<PolicyScope> {
    let sel = selector.filter(|s| !s.match_labels.is_empty());
    match sel {
        None if policy_ns == root_ns => Some(PolicyScope::Mesh),
        None if policy_ns == ns => Some(PolicyScope::Namespace),
        None => None,
        Some(s) if policy_ns == ns && labels_match(&s.match_labels, labels) => {
            Some(PolicyScope::Workload)
        }
        Some(_) => None,
    }
}
