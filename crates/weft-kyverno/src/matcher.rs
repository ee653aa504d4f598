//! `match` and `exclude`: which resources a rule judges.

use std::collections::BTreeMap;

use weft_api::types::kyverno::{
    LabelSelector, MatchResources, ResourceDescription, ResourceFilter,
};

use crate::wildcard;

/// A resource as a rule's filters see it.
pub struct Candidate<'a> {
    /// `group/version` or `version` (`v1`).
    pub api_version: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    /// Empty for cluster-scoped resources.
    pub namespace: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    /// `CREATE`, `UPDATE`, or empty in a background scan.
    pub operation: &'a str,
    /// The labels of the resource's namespace (of the Namespace itself
    /// for a Namespace), when it was written.
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
}

/// Whether `m` selects `c`: any of `any`, all of `all`, and the legacy
/// inline filter.
pub fn selects(m: &MatchResources, c: &Candidate<'_>) -> bool {
    let legacy = legacy_selects(m, c);
    if m.any.is_empty() && m.all.is_empty() && legacy.is_none() {
        return false;
    }
    (m.any.is_empty() || m.any.iter().any(|f| filter_selects(f, c)))
        && m.all.iter().all(|f| filter_selects(f, c))
        && legacy.unwrap_or(true)
}

/// Whether an `exclude` holds for `c`: any of `any`, all of a written
/// `all`, or the legacy inline filter.
pub fn excludes(m: &MatchResources, c: &Candidate<'_>) -> bool {
    (!m.any.is_empty() && m.any.iter().any(|f| filter_selects(f, c)))
        || (!m.all.is_empty() && m.all.iter().all(|f| filter_selects(f, c)))
        || legacy_selects(m, c) == Some(true)
}

/// The legacy filter written inline (`match.resources`), when there is one.
fn legacy_selects(m: &MatchResources, c: &Candidate<'_>) -> Option<bool> {
    let d = m.resources.as_ref()?;
    Some(!names_users(&m.subjects, &m.roles, &m.cluster_roles) && description_selects(d, c))
}

fn filter_selects(f: &ResourceFilter, c: &Candidate<'_>) -> bool {
    !names_users(&f.subjects, &f.roles, &f.cluster_roles) && description_selects(&f.resources, c)
}

/// weft's admissions have no requesting user: a filter that names
/// users, groups or roles holds for none.
fn names_users<T>(subjects: &Option<T>, roles: &Option<T>, cluster_roles: &Option<T>) -> bool {
    subjects.is_some() || roles.is_some() || cluster_roles.is_some()
}

fn description_selects(d: &ResourceDescription, c: &Candidate<'_>) -> bool {
    let is_namespace = c.kind == "Namespace" && c.api_version == "v1";
    // A Namespace is matched by `namespaces` on its own name, as in Kyverno.
    let namespace = if is_namespace { c.name } else { c.namespace };
    (d.kinds.is_empty() || d.kinds.iter().any(|k| kind_selects(k, c)))
        && d.name
            .as_deref()
            .is_none_or(|n| wildcard::matches(n, c.name))
        && (d.names.is_empty() || d.names.iter().any(|n| wildcard::matches(n, c.name)))
        && (d.namespaces.is_empty() || d.namespaces.iter().any(|n| wildcard::matches(n, namespace)))
        && d.annotations.iter().all(|(k, v)| {
            c.annotations
                .iter()
                .any(|(ak, av)| wildcard::matches(k, ak) && wildcard::matches(v, av))
        })
        && d.selector
            .as_ref()
            .is_none_or(|s| label_selects(s, c.labels))
        && d.namespace_selector.as_ref().is_none_or(|s| {
            c.namespace_labels
                .is_some_and(|labels| label_selects(s, labels))
        })
        && (d.operations.is_empty()
            || c.operation.is_empty()
            || d.operations.iter().any(|o| o == c.operation))
}

/// `Kind`, `version/Kind`, `group/version/Kind` (each part may hold
/// wildcards); a `/subresource` suffix never matches a whole object.
fn kind_selects(spec: &str, c: &Candidate<'_>) -> bool {
    let (group, version) = match c.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", c.api_version),
    };
    let parts: Vec<&str> = spec.split('/').collect();
    match parts.as_slice() {
        [kind] => wildcard::matches(kind, c.kind),
        [version_or_kind, kind_or_sub] => {
            // `Pod/status` is a subresource; `v1/Pod` a version and kind.
            if kind_or_sub.chars().next().is_some_and(char::is_lowercase) {
                false
            } else {
                wildcard::matches(version_or_kind, version)
                    && wildcard::matches(kind_or_sub, c.kind)
            }
        }
        [g, v, kind] => {
            wildcard::matches(g, group)
                && wildcard::matches(v, version)
                && wildcard::matches(kind, c.kind)
        }
        [g, v, kind, _sub] => {
            let _ = (g, v, kind);
            false
        }
        _ => false,
    }
}

/// Kubernetes' label selector, with Kyverno's wildcards in values.
pub fn label_selects(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    s.match_labels.iter().all(|(k, v)| {
        labels
            .iter()
            .any(|(lk, lv)| wildcard::matches(k, lk) && wildcard::matches(v, lv))
    }) && s.match_expressions.iter().all(|e| e.holds(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate<'a>(
        api_version: &'a str,
        kind: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> Candidate<'a> {
        Candidate {
            api_version,
            kind,
            name: "reviews",
            namespace: "bookinfo",
            labels,
            annotations: labels,
            operation: "CREATE",
            namespace_labels: None,
        }
    }

    #[test]
    fn kinds_in_every_written_form() {
        let none = BTreeMap::new();
        let vs = candidate("networking.istio.io/v1", "VirtualService", &none);
        for (spec, want) in [
            ("VirtualService", true),
            ("Virtual*", true),
            ("v1/VirtualService", true),
            ("networking.istio.io/v1/VirtualService", true),
            ("networking.istio.io/*/VirtualService", true),
            ("security.istio.io/v1/VirtualService", false),
            ("VirtualService/status", false),
            ("Pod", false),
        ] {
            assert_eq!(kind_selects(spec, &vs), want, "{spec}");
        }
    }

    #[test]
    fn selectors_hold_with_expressions_and_wildcards() {
        let labels: BTreeMap<String, String> = [("app".to_owned(), "reviews".to_owned())].into();
        let s = LabelSelector {
            match_labels: [("app".to_owned(), "rev*".to_owned())].into(),
            match_expressions: vec![weft_api::types::kube::SelectorRequirement {
                key: "version".into(),
                operator: "DoesNotExist".into(),
                values: vec![],
            }],
        };
        assert!(label_selects(&s, &labels));
        let mut other = s.clone();
        other.match_expressions[0].operator = "Exists".into();
        assert!(!label_selects(&other, &labels));
    }
}
