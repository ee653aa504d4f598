//! What the analyzers ask of workloads and namespaces: which workloads a
//! selector picks, which run in ambient mode, what labels a namespace has.

use weft_api::resource::ResourceKind;
use weft_api::types::common::Labels;

use super::Input;
use crate::registry::{labels_match, Instance};

/// A workload of the mesh as the analyzers see one: a replica of the
/// registry, or one of weft's own gateways.
pub struct Workload<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a Labels,
}

/// Every workload: weft's gateways, then the registry's replicas.
pub fn every_workload<'a>(input: &Input<'a>) -> impl Iterator<Item = Workload<'a>> + 'a {
    let gateways = input.mesh.gateways.iter().map(|g| Workload {
        name: &g.name,
        namespace: &g.namespace,
        labels: &g.labels,
    });
    let replicas = input.registry.instances.iter().map(|i| Workload {
        name: &i.name,
        namespace: &i.namespace,
        labels: &i.labels,
    });
    gateways.chain(replicas)
}

/// The labels of the Namespace resource named `ns`, if the configuration
/// has one.
pub fn namespace_labels<'a>(input: &Input<'a>, ns: &str) -> Option<&'a Labels> {
    input
        .resources
        .iter()
        .find(|r| r.kind() == ResourceKind::Namespace && r.name() == ns)
        .map(|r| &r.meta.labels)
}

/// A namespace enrolled in ambient mode, as Istio reads its labels: an
/// injection label or a revision label wins over
/// `istio.io/dataplane-mode: ambient`.
pub fn namespace_in_ambient_mode(input: &Input<'_>, ns: &str) -> bool {
    let Some(labels) = namespace_labels(input, ns) else {
        return false;
    };
    if labels
        .get("istio-injection")
        .is_some_and(|v| v == "enabled")
        || labels.get("istio.io/rev").is_some_and(|v| !v.is_empty())
    {
        return false;
    }
    labels
        .get("istio.io/dataplane-mode")
        .is_some_and(|v| v == "ambient")
}

/// The workloads in `ns` that `selector` picks.
pub fn selected<'a>(input: &Input<'a>, ns: &str, selector: &Labels) -> Vec<&'a Instance> {
    input
        .registry
        .instances
        .iter()
        .filter(|i| i.namespace == ns && labels_match(selector, &i.labels))
        .collect()
}
