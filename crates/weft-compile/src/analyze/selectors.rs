//! Sidecars and Telemetries by their selectors, as istioctl's
//! `sidecar.SelectorAnalyzer`, `telemetry.SelectorAnalyzer` and
//! `telemetry.DefaultSelectorAnalyzer` check them: a selector that picks
//! no workload in its namespace (IST0101), several resources picking one
//! workload (IST0110, IST0159) or none picking any in one namespace
//! (IST0111, IST0160), and Sidecars on ambient workloads, which have no
//! sidecar to configure (IST0167).

use std::collections::BTreeMap;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Resource;
use weft_api::types::common::Labels;

use super::workloads::{namespace_in_ambient_mode, selected};
use super::{join, selector_text, Findings, Input};

/// A Sidecar or a Telemetry, by what the checks need of it.
struct Selecting<'a> {
    resource: &'a Resource,
    /// `None` when the resource has no selector field at all.
    selector: Option<&'a Labels>,
    field: FieldPath,
}

/// IST0101 for each selector that picks nothing; the workloads picked,
/// by (namespace, name), with the resources that pick them.
fn pick<'a>(
    input: &Input<'a>,
    out: &mut Findings,
    items: &[Selecting<'a>],
) -> BTreeMap<(String, String), (bool, Vec<&'a Resource>)> {
    let mut picked: BTreeMap<(String, String), (bool, Vec<&'a Resource>)> = BTreeMap::new();
    for it in items {
        let Some(sel) = it.selector.filter(|s| !s.is_empty()) else {
            continue;
        };
        let found = selected(input, it.resource.namespace(), sel);
        if found.is_empty() {
            out.add(
                Severity::Error,
                "IST0101",
                it.resource,
                &it.field,
                format!("Referenced selector not found: {:?}", selector_text(sel)),
                "check the labels against the workloads in this namespace; a selector that picks nothing has no effect",
            );
        }
        for inst in found {
            picked
                .entry((inst.namespace.clone(), inst.name.clone()))
                .or_insert_with(|| (inst.ambient, Vec::new()))
                .1
                .push(it.resource);
        }
    }
    picked
}

pub fn sidecars(input: &Input<'_>, out: &mut Findings) {
    let items: Vec<Selecting<'_>> = input
        .index
        .sidecars
        .iter()
        .map(|(r, s)| Selecting {
            resource: r,
            selector: s.workload_selector.as_ref().map(|w| &w.labels),
            field: FieldPath::root().key("spec").key("workloadSelector"),
        })
        .collect();
    let mut ineffective: Vec<(&Resource, &str)> = Vec::new();
    for ((ns, pod), (ambient, list)) in pick(input, out, &items) {
        if ambient {
            ineffective.extend(list.iter().map(|r| {
                (
                    *r,
                    "selected workload is in ambient mode, the policy has no impact",
                )
            }));
            continue;
        }
        if list.len() > 1 {
            let names = join(list.iter().map(|r| r.name()));
            for r in &list {
                out.add(Severity::Error, "IST0110", r, &FieldPath::root(), format!("The Sidecars [{names}] in namespace {ns:?} select the same workload pod {pod:?}, which can lead to undefined behavior."), "narrow the selectors so each workload is selected once");
            }
        }
    }
    let mut namespace_wide: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for it in &items {
        if it.selector.is_none_or(|s| s.is_empty()) {
            namespace_wide
                .entry(it.resource.namespace())
                .or_default()
                .push(it.resource);
        }
    }
    for (ns, list) in namespace_wide {
        if namespace_in_ambient_mode(input, ns) {
            ineffective.extend(
                list.iter()
                    .map(|r| (*r, "namespace is in ambient mode, the policy has no impact")),
            );
            continue;
        }
        if list.len() > 1 {
            let names = join(list.iter().map(|r| r.name()));
            for r in &list {
                out.add(Severity::Error, "IST0111", r, &FieldPath::root(), format!("The Sidecars [{names}] in namespace {ns:?} have no workload selector, which can lead to undefined behavior."), "keep one namespace-wide Sidecar and give the others a workload selector");
            }
        }
    }
    // Once per Sidecar, whichever way it was found ineffective.
    let mut reported: Vec<&Resource> = Vec::new();
    for (r, why) in ineffective {
        if reported.iter().any(|x| std::ptr::eq(*x, r)) {
            continue;
        }
        reported.push(r);
        out.add(
            Severity::Warning,
            "IST0167",
            r,
            &FieldPath::root(),
            format!("The policy has no impact: {why}."),
            "ambient workloads have no sidecar; scope their egress with a waypoint, or remove this Sidecar",
        );
    }
}

pub fn telemetries(input: &Input<'_>, out: &mut Findings) {
    let items: Vec<Selecting<'_>> = input
        .index
        .telemetries
        .iter()
        .map(|(r, t)| Selecting {
            resource: r,
            selector: t.selector.as_ref().map(|w| &w.match_labels),
            field: FieldPath::root().key("spec").key("selector"),
        })
        .collect();
    for ((ns, pod), (_, list)) in pick(input, out, &items) {
        if list.len() > 1 {
            let names = join(list.iter().map(|r| r.name()));
            for r in &list {
                out.add(Severity::Error, "IST0159", r, &FieldPath::root(), format!("The Telemetries [{names}] in namespace {ns:?} select the same workload pod {pod:?}, which can lead to undefined behavior."), "narrow the selectors so each workload is selected once");
            }
        }
    }
}

/// Several Telemetries without a `selector` field in one namespace (one
/// with an empty selector is not counted, as istioctl counts).
pub fn telemetry_defaults(input: &Input<'_>, out: &mut Findings) {
    let mut namespace_wide: BTreeMap<&str, Vec<&Resource>> = BTreeMap::new();
    for (r, t) in &input.index.telemetries {
        if t.selector.is_none() {
            namespace_wide.entry(r.namespace()).or_default().push(r);
        }
    }
    for (ns, list) in namespace_wide {
        if list.len() > 1 {
            let names = join(list.iter().map(|r| r.name()));
            for r in &list {
                out.add(Severity::Error, "IST0160", r, &FieldPath::root(), format!("The Telemetries [{names}] in namespace {ns:?} have no workload selector, which can lead to undefined behavior."), "keep one namespace-wide Telemetry and give the others a selector");
            }
        }
    }
}
