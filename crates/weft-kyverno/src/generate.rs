//! Kyverno's `generate` rules with `data` or `clone`: for each resource a
//! rule selects (its trigger), the resource the rule describes, with the
//! trigger's variables filled in and Kyverno's labels on it. weft's
//! control plane writes them through its managed layer, so they follow
//! their trigger and their policy (Kyverno's `synchronize: true`).

use serde_json::{json, Map, Value};
use weft_api::resource::{Resource, ResourceKind};

use crate::engine::{self, policy_spec, Request};
use crate::vars;
use crate::world::World;

/// One resource a generate rule makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub rule: String,
    /// The object, as JSON.
    pub object: Value,
}

/// What `policy`'s generate rules make for `trigger`; the errors say
/// which rule could not make its resource, and why.
pub fn for_trigger(
    policy: &Resource,
    trigger: &Resource,
    world: &World<'_>,
) -> (Vec<Generated>, Vec<String>) {
    let mut made = Vec::new();
    let mut errors = Vec::new();
    let Some((spec, _)) = policy_spec(policy) else {
        return (made, errors);
    };
    for rule in spec.rules.iter().filter(|r| r.generate.is_some()) {
        let req = Request {
            object: trigger,
            operation: "CREATE",
            old: None,
        };
        let Some(data) = engine::selected_data(policy, rule, &req, world) else {
            continue;
        };
        let generate = rule.generate.as_ref().unwrap_or(&Value::Null);
        match make(policy, &rule.name, generate, &data, world) {
            Ok(Some(object)) => made.push(Generated {
                rule: rule.name.clone(),
                object,
            }),
            Ok(None) => {}
            Err(e) => errors.push(format!("rule {}: {e}", rule.name)),
        }
    }
    (made, errors)
}

fn text(v: &Value, field: &str, data: &Value) -> Result<String, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(raw) => match vars::substitute(raw, data).map_err(|e| e.to_string())? {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        },
    }
}

fn make(
    policy: &Resource,
    rule: &str,
    generate: &Value,
    data: &Value,
    world: &World<'_>,
) -> Result<Option<Value>, String> {
    let api_version = text(generate, "apiVersion", data)?;
    let kind = text(generate, "kind", data)?;
    let name = text(generate, "name", data)?;
    let namespace = text(generate, "namespace", data)?;
    if kind.is_empty() || name.is_empty() {
        return Err("generate needs a kind and a name".into());
    }
    let Some(target_kind) = ResourceKind::from_name(&kind) else {
        return Err(format!("weft does not read {kind}, so it cannot make one"));
    };
    // A resource the users wrote under that name stays theirs.
    let taken = world.resources().iter().any(|r| {
        r.kind() == target_kind
            && r.name() == name
            && r.namespace() == namespace
            && r.managed_by.is_none()
    });
    if taken {
        return Ok(None);
    }
    let mut object = if let Some(body) = generate.get("data") {
        vars::substitute(body, data).map_err(|e| e.to_string())?
    } else if let Some(clone) = generate.get("clone") {
        let from_name = text(clone, "name", data)?;
        let from_namespace = text(clone, "namespace", data)?;
        let source = world
            .resources()
            .iter()
            .find(|r| {
                r.kind() == target_kind && r.name() == from_name && r.namespace() == from_namespace
            })
            .ok_or_else(|| format!("clone source {kind} {from_namespace}/{from_name} not found"))?;
        let mut copy = world.json(source);
        if let Value::Object(m) = &mut copy {
            m.remove("status");
        }
        copy
    } else {
        return Err("weft makes resources from generate.data or generate.clone".into());
    };
    let Value::Object(body) = &mut object else {
        return Err("generate.data is not a mapping".into());
    };
    let mut meta: Map<String, Value> = match body.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert("name".into(), json!(name));
    if !namespace.is_empty() {
        meta.insert("namespace".into(), json!(namespace));
    }
    for k in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(k);
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("metadata.labels is not a mapping")?;
    labels.insert("app.kubernetes.io/managed-by".into(), json!("kyverno"));
    labels.insert(
        "generate.kyverno.io/policy-name".into(),
        json!(policy.name()),
    );
    labels.insert("generate.kyverno.io/rule-name".into(), json!(rule));
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        json!(if api_version.is_empty() {
            target_kind.api_versions()[0].to_owned()
        } else {
            api_version
        }),
    );
    out.insert("kind".into(), json!(kind));
    out.insert("metadata".into(), Value::Object(meta));
    for (k, v) in std::mem::take(body) {
        if !matches!(k.as_str(), "apiVersion" | "kind") {
            out.insert(k, v);
        }
    }
    Ok(Some(Value::Object(out)))
}
