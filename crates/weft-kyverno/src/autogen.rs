//! Kyverno's rules for Pods, generated for the controllers that make
//! them: a Deployment is judged by `autogen-<rule>`, whose patterns sit
//! under `spec.template` and whose variables read
//! `request.object.spec.template`. (weft runs no other Pod controller.)

use serde_json::{json, Value};
use weft_api::types::kyverno::{
    Conditions, ContextEntry, ForEachValidation, MatchResources, PolicySpec, Rule,
};

/// The annotation that names the controllers rules are generated for.
pub const CONTROLLERS: &str = "pod-policies.kyverno.io/autogen-controllers";

/// Whether the policy's Pod rules are generated for Deployments.
pub fn for_deployments(
    spec: &PolicySpec,
    annotations: &std::collections::BTreeMap<String, String>,
) -> bool {
    if let Some(list) = annotations.get(CONTROLLERS) {
        if !list.split(',').any(|c| c.trim() == "Deployment") {
            return false;
        }
    }
    let blocks = |m: &MatchResources| {
        let mut filters: Vec<&weft_api::types::kyverno::ResourceDescription> = m
            .any
            .iter()
            .chain(m.all.iter())
            .map(|f| &f.resources)
            .collect();
        filters.extend(m.resources.as_ref());
        filters.iter().any(|d| {
            d.name.is_some()
                || !d.names.is_empty()
                || d.selector.is_some()
                || !d.annotations.is_empty()
                || (d.kinds.len() > 1 && d.kinds.iter().any(|k| k == "Pod"))
        })
    };
    let literal_pod = |m: &MatchResources| kinds_of(m).contains(&"Pod");
    !spec.rules.iter().any(|r| {
        r.generate.is_some()
            || r.mutate
                .as_ref()
                .is_some_and(|m| m.get("patchesJson6902").is_some())
            || blocks(&r.match_)
            || r.exclude.as_ref().is_some_and(blocks)
    }) && spec.rules.iter().any(|r| literal_pod(&r.match_))
}

fn kinds_of(m: &MatchResources) -> Vec<&str> {
    m.any
        .iter()
        .chain(m.all.iter())
        .map(|f| &f.resources)
        .chain(m.resources.iter())
        .flat_map(|d| d.kinds.iter().map(String::as_str))
        .collect()
}

fn is_pod(kind: &str) -> bool {
    kind == "Pod" || kind == "v1/Pod"
}

/// The Deployment rule generated from `rule`, if it judges Pods.
pub fn deployment_rule(rule: &Rule) -> Option<Rule> {
    if !kinds_of(&rule.match_).into_iter().any(is_pod) {
        return None;
    }
    if let Some(ex) = &rule.exclude {
        let kinds = kinds_of(ex);
        if !kinds.is_empty() && !kinds.into_iter().any(is_pod) {
            return None;
        }
    }
    let mut out = rule.clone();
    out.name = format!("autogen-{}", rule.name);
    let retarget = |m: &mut MatchResources| {
        for f in m
            .any
            .iter_mut()
            .chain(m.all.iter_mut())
            .map(|f| &mut f.resources)
            .chain(m.resources.iter_mut())
        {
            if f.kinds.iter().any(|k| is_pod(k)) {
                f.kinds = vec!["apps/v1/Deployment".into()];
            }
        }
    };
    retarget(&mut out.match_);
    if let Some(ex) = out.exclude.as_mut() {
        retarget(ex);
    }
    let rewrite = |s: &str| -> String {
        s.replace("request.object.spec", "request.object.spec.template.spec")
            .replace(
                "request.oldObject.spec",
                "request.oldObject.spec.template.spec",
            )
            .replace(
                "request.object.metadata",
                "request.object.spec.template.metadata",
            )
            .replace(
                "request.oldObject.metadata",
                "request.oldObject.spec.template.metadata",
            )
    };
    if let Some(v) = out.validate.as_mut() {
        v.pattern = v.pattern.take().map(|p| json!({"spec": {"template": p}}));
        v.any_pattern = v.any_pattern.take().map(|ps| {
            ps.into_iter()
                .map(|p| json!({"spec": {"template": p}}))
                .collect()
        });
        v.message = rewrite(&v.message);
        if let Some(d) = v.deny.as_mut() {
            if let Some(c) = d.conditions.as_mut() {
                conditions(c, &rewrite);
            }
        }
        if let Some(fe) = v.foreach.as_mut() {
            foreach(fe, &rewrite);
        }
    }
    if let Some(c) = out.preconditions.as_mut() {
        conditions(c, &rewrite);
    }
    context(&mut out.context, &rewrite);
    Some(out)
}

fn strings(v: &mut Value, f: &dyn Fn(&str) -> String) {
    match v {
        Value::String(s) => *s = f(s),
        Value::Array(items) => items.iter_mut().for_each(|i| strings(i, f)),
        Value::Object(m) => {
            let entries: Vec<(String, Value)> = std::mem::take(m)
                .into_iter()
                .map(|(k, mut v)| {
                    strings(&mut v, f);
                    (f(&k), v)
                })
                .collect();
            m.extend(entries);
        }
        _ => {}
    }
}

fn conditions(c: &mut Conditions, f: &dyn Fn(&str) -> String) {
    for cond in c.any.iter_mut().chain(c.all.iter_mut()) {
        strings(&mut cond.key, f);
        strings(&mut cond.value, f);
        if let Some(m) = cond.message.as_mut() {
            *m = f(m);
        }
    }
}

fn context(entries: &mut [ContextEntry], f: &dyn Fn(&str) -> String) {
    for e in entries {
        if let Some(v) = e.variable.as_mut() {
            if let Some(value) = v.value.as_mut() {
                strings(value, f);
            }
            if let Some(p) = v.jmes_path.as_mut() {
                *p = f(p);
            }
        }
        if let Some(a) = e.api_call.as_mut() {
            if let Some(u) = a.url_path.as_mut() {
                *u = f(u);
            }
            if let Some(p) = a.jmes_path.as_mut() {
                *p = f(p);
            }
        }
    }
}

fn foreach(list: &mut [ForEachValidation], f: &dyn Fn(&str) -> String) {
    for fe in list {
        fe.list = f(&fe.list);
        context(&mut fe.context, f);
        if let Some(c) = fe.preconditions.as_mut() {
            conditions(c, f);
        }
        if let Some(d) = fe.deny.as_mut().and_then(|d| d.conditions.as_mut()) {
            conditions(d, f);
        }
        if let Some(p) = fe.pattern.as_mut() {
            strings(p, f);
        }
        if let Some(ps) = fe.any_pattern.as_mut() {
            ps.iter_mut().for_each(|p| strings(p, f));
        }
        if let Some(inner) = fe.foreach.as_mut() {
            foreach(inner, f);
        }
    }
}
