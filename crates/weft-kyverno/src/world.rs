//! What a rule can read beyond the resource it judges, answered from
//! weft's configuration as the Kubernetes API would answer it: lists and
//! objects for `apiCall`, ConfigMaps for `configMap`, namespaces' labels
//! for `namespaceSelector`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};
use weft_api::resource::{Resource, ResourceKind};

/// The configuration being admitted, and the JSON of each of its
/// resources, made once.
pub struct World<'a> {
    resources: &'a [Resource],
    json: RefCell<HashMap<usize, Value>>,
}

impl<'a> World<'a> {
    pub fn new(resources: &'a [Resource]) -> World<'a> {
        World {
            resources,
            json: RefCell::new(HashMap::new()),
        }
    }

    pub fn resources(&self) -> &'a [Resource] {
        self.resources
    }

    /// The object of `r`, one of the world's resources (by address: they
    /// are borrowed, so they stay put while the world lives).
    pub fn json(&self, r: &'a Resource) -> Value {
        self.json
            .borrow_mut()
            .entry(r as *const Resource as usize)
            .or_insert_with(|| r.to_json())
            .clone()
    }

    /// The labels of the Namespace `name`, when one was written.
    pub fn namespace_labels(&self, name: &str) -> Option<&'a BTreeMap<String, String>> {
        self.resources
            .iter()
            .find(|r| r.kind() == ResourceKind::Namespace && r.name() == name)
            .map(|r| &r.meta.labels)
    }

    /// A ConfigMap's object.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<Value> {
        self.resources
            .iter()
            .find(|r| {
                r.kind() == ResourceKind::ConfigMap
                    && r.name() == name
                    && r.namespace() == namespace
            })
            .map(|r| self.json(r))
    }

    /// A GET of the Kubernetes API at `url`: `/api/v1/...` or
    /// `/apis/<group>/<version>/...`, optionally `namespaces/<ns>/`, a
    /// resource's plural, optionally a name.
    pub fn get(&self, url: &str) -> Result<Value, String> {
        let path = url.split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let not_found = || format!("the server could not find the requested resource ({url})");
        let (group_version, rest) = match segments.as_slice() {
            ["api", v, rest @ ..] => (v.to_string(), rest),
            ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
            _ => return Err(not_found()),
        };
        let (namespace, plural, name) = match rest {
            ["namespaces"] => (None, "namespaces", None),
            ["namespaces", n] if group_version == "v1" => (None, "namespaces", Some(*n)),
            ["namespaces", ns, plural] => (Some(*ns), *plural, None),
            ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
            [plural] => (None, *plural, None),
            [plural, name] => (None, *plural, Some(*name)),
            _ => return Err(not_found()),
        };
        let kind = ResourceKind::ALL
            .into_iter()
            .find(|k| plural_of(*k) == plural && k.api_versions().contains(&group_version.as_str()))
            .ok_or_else(not_found)?;
        let mut items = self
            .resources
            .iter()
            .filter(|r| r.kind() == kind && namespace.is_none_or(|ns| r.namespace() == ns));
        match name {
            Some(name) => items
                .find(|r| r.name() == name)
                .map(|r| self.json(r))
                .ok_or_else(|| format!("{plural} \"{name}\" not found")),
            None => Ok(json!({
                "apiVersion": group_version,
                "kind": format!("{}List", kind.name()),
                "metadata": {"resourceVersion": ""},
                "items": items.map(|r| self.json(r)).collect::<Vec<_>>(),
            })),
        }
    }
}

/// The resource name a kind is served under (`authorizationpolicies`).
pub fn plural_of(kind: ResourceKind) -> String {
    let lower = kind.name().to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        if !stem.ends_with(['a', 'e', 'o', 'u']) {
            return format!("{stem}ies");
        }
    }
    if lower.ends_with('s') {
        return format!("{lower}es");
    }
    format!("{lower}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_as_the_api_serves_them() {
        assert_eq!(
            plural_of(ResourceKind::AuthorizationPolicy),
            "authorizationpolicies"
        );
        assert_eq!(plural_of(ResourceKind::ServiceEntry), "serviceentries");
        assert_eq!(plural_of(ResourceKind::Telemetry), "telemetries");
        assert_eq!(plural_of(ResourceKind::Canary), "canaries");
        assert_eq!(plural_of(ResourceKind::Gateway), "gateways");
        assert_eq!(plural_of(ResourceKind::Namespace), "namespaces");
    }

    #[test]
    fn lists_and_gets_from_the_configuration() {
        let text = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: bookinfo}\nspec: {}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bookinfo, labels: {istio-injection: enabled}}\n";
        let loaded = weft_api::load::load_bytes("t.yaml", text.as_bytes());
        let world = World::new(&loaded.resources);
        let list = world
            .get("/apis/security.istio.io/v1beta1/authorizationpolicies")
            .unwrap();
        assert_eq!(
            crate::jmes::search("items[].metadata.namespace", &list).unwrap(),
            serde_json::json!(["bookinfo"])
        );
        assert!(world
            .get("/apis/security.istio.io/v1/namespaces/other/authorizationpolicies/deny")
            .is_err());
        assert_eq!(
            world.get("/api/v1/namespaces/bookinfo").unwrap()["metadata"]["labels"]
                ["istio-injection"],
            "enabled"
        );
        assert!(world.get("/apis/example.com/v1/things").is_err());
        assert_eq!(
            world.namespace_labels("bookinfo").unwrap()["istio-injection"],
            "enabled"
        );
    }
}
