//! What the analyzers ask of workloads and namespaces: which workloads a
//! selector picks, which run in ambient mode, what labels a namespace has.

use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_api::types::common::Labels;

use super::Input;
use crate::registry::{labels_match, Instance};

/// Istio's annotation on a pod whose traffic the node proxy redirects.
const AMBIENT_REDIRECTION: &str = "ambient.istio.io/redirection";

/// The resource that declared `inst` (its Pod, Deployment, Workload, …).
fn declared_by<'a>(input: &Input<'a>, inst: &Instance) -> Option<&'a Resource> {
    input.resources.iter().find(|r| r.key() == inst.origin)
}

/// Whether `inst` runs in ambient mode (no sidecar): its pod carries
/// `ambient.istio.io/redirection: enabled`, as the CNI marks it.
pub fn in_ambient_mode(input: &Input<'_>, inst: &Instance) -> bool {
    let annotations = match declared_by(input, inst).map(|r| (&r.spec, r)) {
        Some((Spec::Pod(_), r)) => &r.meta.annotations,
        Some((Spec::Deployment(d), _)) => &d.template.metadata.annotations,
        _ => return false,
    };
    annotations
        .get(AMBIENT_REDIRECTION)
        .is_some_and(|v| v == "enabled")
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
