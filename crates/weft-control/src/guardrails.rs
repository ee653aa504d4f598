//! What the platform's Guardrails make on request: with
//! `requireAuthorizationPolicy` and `generateDefaultDeny`, an
//! allow-nothing AuthorizationPolicy in each namespace of the Guardrail's
//! scope that runs workloads and has no AuthorizationPolicy of its
//! users' (as Kyverno's generate rules make one). They are written
//! through the source's managed layer, owned by the Guardrail, and go
//! when the Guardrail (or its request) goes or the users write their own.
//!
//! Kyverno's `generate` rules make theirs the same way, owned by their
//! ClusterPolicy or Policy: for each resource a rule selects, and for
//! each namespace that runs workloads without a Namespace written for it
//! (Kubernetes would have one, and Kyverno would generate for it).

use std::collections::{BTreeMap, BTreeSet};

use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_compile::guardrails::{made_by_weft, runs_pods};

use crate::source::{ConfigSource, Managed};

/// The name of each policy made.
pub const DEFAULT_DENY: &str = "allow-nothing";

/// Brings the managed layer in line with what the Guardrails among
/// `resources` ask to be made; `root` is the mesh's root namespace.
pub fn reconcile(source: &dyn ConfigSource, resources: &[Resource], root: &str) {
    let wanted = wanted(resources, root);
    for (owner, documents) in &wanted {
        if source.managed(owner).documents != *documents {
            let managed = Managed {
                documents: documents.clone(),
                scale: BTreeMap::new(),
            };
            match source.manage(owner, &managed) {
                Ok(()) => eprintln!("weft: {owner} made what it generates"),
                Err(e) => eprintln!("weft: {owner}: cannot make what it generates: {e}"),
            }
        }
    }
    for owner in source.managed_owners() {
        let ours = ["Guardrail/", "ClusterPolicy/", "Policy/"]
            .iter()
            .any(|k| owner.starts_with(k));
        if ours && !wanted.contains_key(&owner) {
            if let Err(e) = source.unmanage(&owner) {
                eprintln!("weft: {owner}: cannot remove what it made: {e}");
            }
        }
    }
}

/// Owner (`Guardrail/namespace/name`) → the documents it makes.
fn wanted(resources: &[Resource], root: &str) -> BTreeMap<String, String> {
    let users_policies: BTreeSet<&str> = resources
        .iter()
        .filter(|r| r.kind() == ResourceKind::AuthorizationPolicy && !made_by_weft(r))
        .map(Resource::namespace)
        .collect();
    let mut out = generated_by_kyverno(resources, root);
    if users_policies.contains(root) {
        // A mesh-wide policy of the users' already holds everywhere.
        return out;
    }
    for g in resources {
        let Spec::Guardrail(rail) = &g.spec else {
            continue;
        };
        if !(rail.rules.require_authorization_policy && rail.rules.generate_default_deny) {
            continue;
        }
        let in_scope = |ns: &str| g.namespace() == root || g.namespace() == ns;
        let namespaces: BTreeSet<&str> = resources
            .iter()
            .filter(|r| runs_pods(r) && !made_by_weft(r) && in_scope(r.namespace()))
            .map(Resource::namespace)
            .filter(|ns| !users_policies.contains(ns))
            .collect();
        if namespaces.is_empty() {
            continue;
        }
        let documents: Vec<String> = namespaces
            .iter()
            .map(|ns| {
                serde_json::json!({
                    "apiVersion": "security.istio.io/v1",
                    "kind": "AuthorizationPolicy",
                    "metadata": {"name": DEFAULT_DENY, "namespace": ns},
                    "spec": {},
                })
                .to_string()
            })
            .collect();
        out.insert(
            format!("Guardrail/{}/{}", g.namespace(), g.name()),
            documents.join("\n---\n"),
        );
    }
    out
}

/// Owner (`ClusterPolicy/cluster/name`, `Policy/namespace/name`) → what
/// its generate rules make.
fn generated_by_kyverno(resources: &[Resource], root: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let generating: Vec<&Resource> = resources
        .iter()
        .filter(|r| {
            weft_kyverno::engine::policy_spec(r)
                .is_some_and(|(p, _)| p.rules.iter().any(|r| r.generate.is_some()))
        })
        .collect();
    if generating.is_empty() {
        return out;
    }
    let implicit = implicit_namespaces(resources, root);
    let world = weft_kyverno::world::World::new(resources);
    let triggers: Vec<&Resource> = resources
        .iter()
        .filter(|r| !made_by_weft(r))
        .chain(implicit.iter())
        .collect();
    for policy in generating {
        let owner = match policy.kind() {
            ResourceKind::ClusterPolicy => format!("ClusterPolicy/cluster/{}", policy.name()),
            _ => format!("Policy/{}/{}", policy.namespace(), policy.name()),
        };
        let mut documents = Vec::new();
        for trigger in &triggers {
            let (made, errors) = weft_kyverno::generate::for_trigger(policy, trigger, &world);
            for e in errors {
                tracing::warn!(policy = %owner, trigger = %trigger.display_name(), "cannot generate: {e}");
            }
            documents.extend(made.into_iter().map(|g| g.object.to_string()));
        }
        documents.sort();
        documents.dedup();
        if !documents.is_empty() {
            out.insert(owner, documents.join("\n---\n"));
        }
    }
    out
}

/// The namespaces that run workloads (the root namespace aside) with no
/// Namespace written for them, as the Namespaces Kubernetes would have.
fn implicit_namespaces(resources: &[Resource], root: &str) -> Vec<Resource> {
    let written: BTreeSet<&str> = resources
        .iter()
        .filter(|r| r.kind() == ResourceKind::Namespace)
        .map(Resource::name)
        .collect();
    let wanted: BTreeSet<&str> = resources
        .iter()
        .filter(|r| runs_pods(r) && !made_by_weft(r))
        .map(Resource::namespace)
        .filter(|ns| *ns != root && !written.contains(ns))
        .collect();
    wanted
        .into_iter()
        .flat_map(|ns| {
            let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
            weft_api::load::load_bytes(&format!("<namespace {ns}>"), text.as_bytes()).resources
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, text: &str) -> Vec<Resource> {
        weft_api::load::load_bytes(file, text.as_bytes()).resources
    }

    #[test]
    fn namespaces_without_a_policy_of_their_own_get_one() {
        let rail = "apiVersion: weft.dev/v1\nkind: Guardrail\nmetadata: {name: platform, namespace: istio-system}\nspec:\n  rules: {requireAuthorizationPolicy: true, generateDefaultDeny: true}\n";
        let app = |ns: &str| {
            format!("apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {{name: app, namespace: {ns}}}\nspec: {{command: sleep}}\n")
        };
        let mut resources = load("rail.yaml", rail);
        resources.extend(load("a.yaml", &app("team-a")));
        resources.extend(load("b.yaml", &app("team-b")));
        resources.extend(load(
            "ap.yaml",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: mine, namespace: team-b}\nspec: {}\n",
        ));
        // The one made before does not count as the users'.
        let mut made = load(
            "run/managed/Guardrail_istio-system_platform.yaml",
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing, namespace: team-a}\nspec: {}\n",
        );
        made[0].managed_by = Some("Guardrail/istio-system/platform".into());
        resources.extend(made);
        let wanted = wanted(&resources, "istio-system");
        let docs = &wanted["Guardrail/istio-system/platform"];
        assert!(docs.contains("\"namespace\":\"team-a\""), "{docs}");
        assert!(!docs.contains("team-b"), "{docs}");
        // Without the request, nothing is made.
        let quiet = load(
            "rail.yaml",
            &rail.replace(", generateDefaultDeny: true", ""),
        );
        assert!(wanted_of(quiet, &resources[1..]).is_empty());
    }

    /// Kyverno's published create-authorizationpolicy, unchanged, makes a
    /// default-deny policy in each namespace, written or implied by its
    /// workloads, and none where the users have one of that name.
    #[test]
    fn kyverno_generate_rules_make_their_resources() {
        let published = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../weft-kyverno/tests/fixtures/kyverno-policies-istio/create-authorizationpolicy.yaml"),
        )
        .unwrap();
        let mut resources = load("policy.yaml", &published);
        resources.extend(load(
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: written}\n---\napiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: app, namespace: implied}\nspec: {command: sleep}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: theirs}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: default-deny, namespace: theirs}\nspec: {action: ALLOW, rules: [{}]}\n",
        ));
        let wanted = wanted(&resources, "istio-system");
        let docs = &wanted["ClusterPolicy/cluster/create-authorizationpolicy"];
        let made: Vec<serde_json::Value> = docs
            .split("\n---\n")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let namespaces: Vec<&str> = made
            .iter()
            .map(|d| d["metadata"]["namespace"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["implied", "written"], "{docs}");
        assert_eq!(made[0]["kind"], "AuthorizationPolicy");
        assert_eq!(made[0]["metadata"]["name"], "default-deny");
        assert_eq!(made[0]["spec"], serde_json::json!({}));
        assert_eq!(
            made[0]["metadata"]["labels"]["generate.kyverno.io/policy-name"],
            "create-authorizationpolicy"
        );
    }

    fn wanted_of(mut rail: Vec<Resource>, rest: &[Resource]) -> BTreeMap<String, String> {
        rail.extend(rest.iter().cloned());
        wanted(&rail, "istio-system")
    }
}
