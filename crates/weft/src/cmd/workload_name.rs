//! Which running workload a name on the command line means, as istioctl
//! and kubectl users write one: a replica (`reviews-v1-0`,
//! `default/reviews-v1-0`), a workload or Deployment (`reviews-v1`,
//! `deploy/reviews-v1`, `deployment/default/reviews-v1`), a pod
//! (`pod/reviews-v1-0`), or an app (`productpage`: the `app` label) when it
//! names one workload. A name that fits several workloads is refused with
//! the candidates, never guessed.

use anyhow::bail;
use serde_json::Value;

/// `kind/` prefixes kubectl and istioctl accept before a name.
const KIND_PREFIXES: &[&str] = &[
    "deploy/",
    "deployment/",
    "deployments/",
    "pod/",
    "pods/",
    "workload/",
];

/// One running replica, by the names it answers to.
struct Entry<'a> {
    value: &'a Value,
    /// `namespace/instance`.
    full: &'a str,
    namespace: &'a str,
    instance: &'a str,
    /// The resource it was declared by (`reviews-v1`).
    workload: &'a str,
    app: Option<&'a str>,
}

impl<'a> Entry<'a> {
    fn of(value: &'a Value) -> Entry<'a> {
        let full = value["name"].as_str().unwrap_or("");
        let (namespace, instance) = full.split_once('/').unwrap_or(("default", full));
        // Older status documents lack `workload`: a replica is `name-N`.
        let workload = value["workload"].as_str().unwrap_or_else(|| {
            instance
                .rsplit_once('-')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(instance, |(base, _)| base)
        });
        Entry {
            value,
            full,
            namespace,
            instance,
            workload,
            app: value["labels"]["app"].as_str(),
        }
    }
}

/// The status entry (`/api/status`'s `workloads`) that `name` means.
pub fn resolve(status: &Value, name: &str) -> anyhow::Result<Value> {
    let entries: Vec<Entry<'_>> = status["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Entry::of)
        .collect();
    let bare = KIND_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let (ns, short) = match bare.split_once('/') {
        Some((ns, short)) => (Some(ns), short),
        None => (None, bare),
    };
    let in_ns = |e: &&Entry<'_>| ns.is_none_or(|ns| e.namespace == ns);
    let first = |mut hits: Vec<&Entry<'_>>| {
        hits.sort_by_key(|e| e.full);
        hits.first().map(|e| e.value.clone())
    };

    // A replica by its own name.
    if let Some(e) = entries
        .iter()
        .filter(in_ns)
        .find(|e| e.instance == short || e.full == bare)
    {
        return Ok(e.value.clone());
    }
    // A workload or Deployment: its first replica.
    let by_workload: Vec<&Entry<'_>> = entries
        .iter()
        .filter(in_ns)
        .filter(|e| e.workload == short)
        .collect();
    if let Some(v) = first(by_workload) {
        return Ok(v);
    }
    // An app: only when one workload carries it.
    let by_app: Vec<&Entry<'_>> = entries
        .iter()
        .filter(in_ns)
        .filter(|e| e.app == Some(short))
        .collect();
    let mut workloads: Vec<String> = by_app
        .iter()
        .map(|e| format!("{}/{}", e.namespace, e.workload))
        .collect();
    workloads.sort();
    workloads.dedup();
    match workloads.len() {
        0 => {
            let mut known: Vec<String> = entries
                .iter()
                .map(|e| format!("{}/{}", e.namespace, e.workload))
                .collect();
            known.sort();
            known.dedup();
            bail!("no workload {name}; known workloads: {}", known.join(", "))
        }
        1 => Ok(first(by_app).unwrap_or_default()),
        _ => bail!(
            "{name} is the app of several workloads ({}); name one of them",
            workloads.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Value {
        let w = |name: &str, workload: &str, app: &str| serde_json::json!({"name": name, "workload": workload, "labels": {"app": app}});
        serde_json::json!({"workloads": [
            w("default/productpage-v1-0", "productpage-v1", "productpage"),
            w("default/reviews-v1-0", "reviews-v1", "reviews"),
            w("default/reviews-v2-0", "reviews-v2", "reviews"),
            w("default/reviews-v2-1", "reviews-v2", "reviews"),
            w("prod/details-v1-0", "details-v1", "details"),
            // An older status without workload or labels.
            {"name": "default/ratings-v1-0"},
        ]})
    }

    fn name_of(q: &str) -> String {
        resolve(&status(), q).unwrap()["name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn replicas_workloads_deployments_and_apps_are_found() {
        assert_eq!(name_of("reviews-v2-1"), "default/reviews-v2-1");
        assert_eq!(name_of("default/reviews-v2-1"), "default/reviews-v2-1");
        assert_eq!(name_of("reviews-v2"), "default/reviews-v2-0");
        assert_eq!(name_of("deploy/reviews-v2"), "default/reviews-v2-0");
        assert_eq!(
            name_of("deployment/default/reviews-v1"),
            "default/reviews-v1-0"
        );
        assert_eq!(name_of("pod/productpage-v1-0"), "default/productpage-v1-0");
        assert_eq!(name_of("productpage"), "default/productpage-v1-0");
        assert_eq!(name_of("prod/details"), "prod/details-v1-0");
        assert_eq!(name_of("ratings-v1"), "default/ratings-v1-0");
    }

    #[test]
    fn an_ambiguous_or_unknown_name_is_refused_with_the_candidates() {
        let e = resolve(&status(), "reviews").unwrap_err().to_string();
        assert!(e.contains("default/reviews-v1, default/reviews-v2"), "{e}");
        let e = resolve(&status(), "nothing").unwrap_err().to_string();
        assert!(
            e.contains(
                "no workload nothing; known workloads: default/productpage-v1, default/ratings-v1"
            ),
            "{e}"
        );
        assert!(resolve(&status(), "other/reviews-v1").is_err());
    }
}
