//! One policy over one resource: each rule that selects it gives a
//! response (pass, fail, skip or error) with Kyverno's message; rules
//! that do not select it give none.

use serde_json::{json, Value};
use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_api::types::kyverno::{
    Conditions, ContextEntry, FailureActionOverride, ForEachValidation, PolicySpec, Rule,
    Validation,
};
use weft_api::types::weft::FailureAction;

use crate::matcher::{self, Candidate};
use crate::pattern::{self, Outcome};
use crate::vars::{self, VarError};
use crate::world::World;
use crate::{autogen, wildcard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Error,
}

impl Status {
    /// As PolicyReports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
}

/// One rule's verdict on one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// As Kyverno names it (`autogen-<rule>` for a Deployment).
    pub rule: String,
    pub status: Status,
    pub message: String,
    /// Where a pattern failed (`/spec/mtls/mode/`), in the judged object.
    pub path: Option<String>,
    /// What the pattern asks at `path`, when it is a leaf.
    pub wanted: Option<Value>,
    /// What a failure or an error does: refuse the change, or report it.
    pub action: FailureAction,
}

/// A change being admitted.
pub struct Request<'a> {
    pub object: &'a Resource,
    /// `CREATE` (also what Kyverno's background scans and CLI use) or
    /// `UPDATE`, with the version it replaces.
    pub operation: &'a str,
    pub old: Option<&'a Resource>,
}

/// A policy's spec and whether it is namespaced (a `Policy`).
pub fn policy_spec(policy: &Resource) -> Option<(&PolicySpec, Option<&str>)> {
    match &policy.spec {
        Spec::ClusterPolicy(s) => Some((s, None)),
        Spec::Policy(s) => Some((s, Some(policy.namespace()))),
        _ => None,
    }
}

/// How the resource is shown to rules: its apiVersion, kind and object.
/// A weft Workload is the local stand-in for a Pod, so rules see it as
/// one: its metadata, and a container that runs its command.
fn view(world: &World<'_>, r: &Resource) -> (String, String, Value) {
    let object = world.json(r);
    match &r.spec {
        Spec::Workload(w) => {
            let mut container =
                json!({"name": r.name(), "image": format!("weft.dev/local/{}", r.name())});
            if !w.command.is_empty() {
                container["command"] = json!([w.command]);
            }
            if !w.args.is_empty() {
                container["args"] = json!(w.args);
            }
            let pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
                "spec": {
                    "serviceAccountName": if w.service_account.is_empty() { "default" } else { &w.service_account },
                    "containers": [container],
                },
            });
            ("v1".into(), "Pod".into(), pod)
        }
        _ => (r.api_version.clone(), r.kind().name().to_owned(), object),
    }
}

/// The namespace whose labels a resource's `namespaceSelector` reads:
/// its own, or a Namespace's own name.
fn namespace_of(target: &Resource) -> &str {
    if target.kind() == ResourceKind::Namespace {
        target.name()
    } else {
        target.namespace()
    }
}

fn candidate<'a>(
    api_version: &'a str,
    kind: &'a str,
    target: &'a Resource,
    operation: &'a str,
    world: &World<'a>,
) -> Candidate<'a> {
    Candidate {
        api_version,
        kind,
        name: target.name(),
        namespace: target.namespace(),
        labels: &target.meta.labels,
        annotations: &target.meta.annotations,
        operation,
        namespace_labels: if target.kind() == ResourceKind::Namespace {
            None
        } else {
            world.namespace_labels(namespace_of(target))
        },
    }
}

/// Every response of `policy`'s rules to `req`.
pub fn evaluate(policy: &Resource, req: &Request<'_>, world: &World<'_>) -> Vec<Response> {
    let Some((spec, namespace)) = policy_spec(policy) else {
        return Vec::new();
    };
    let target = req.object;
    if namespace.is_some_and(|ns| ns != target.namespace()) {
        return Vec::new();
    }
    let (api_version, kind, object) = view(world, target);
    let mut rules: Vec<std::borrow::Cow<'_, Rule>> =
        spec.rules.iter().map(std::borrow::Cow::Borrowed).collect();
    if target.kind() == ResourceKind::Deployment
        && autogen::for_deployments(spec, &policy.meta.annotations)
    {
        rules.extend(
            spec.rules
                .iter()
                .filter_map(autogen::deployment_rule)
                .map(std::borrow::Cow::Owned),
        );
    }
    let ns_of_target = namespace_of(target);
    let candidate = candidate(&api_version, &kind, target, req.operation, world);
    let old = req.old.map(|o| view(world, o).2);
    let mut out = Vec::new();
    for rule in &rules {
        if !matcher::selects(&rule.match_, &candidate)
            || rule
                .exclude
                .as_ref()
                .is_some_and(|e| matcher::excludes(e, &candidate))
        {
            continue;
        }
        let Some(validation) = &rule.validate else {
            continue;
        };
        let action = action_of(spec, validation, ns_of_target, world);
        let data = request_data(&object, old.as_ref(), req.operation, target.namespace());
        let Some(mut response) = judge(rule, validation, data, world) else {
            continue;
        };
        // An enforced rule that an update still breaks, as the version it
        // replaces did, lets the update through (Kyverno's
        // allowExistingViolations, on unless turned off).
        if response.status == Status::Fail
            && action == FailureAction::Enforce
            && req.operation == "UPDATE"
            && validation.allow_existing_violations != Some(false)
        {
            if let Some(old) = &old {
                let before = request_data(old, None, "CREATE", target.namespace());
                if judge(rule, validation, before, world).is_some_and(|r| r.status == Status::Fail)
                {
                    response.status = Status::Skip;
                    response.message =
                        "skipping the rule evaluation as pre-existing violations are allowed"
                            .into();
                }
            }
        }
        response.action = action;
        out.push(response);
    }
    out
}

/// The request data a rule's variables read when `rule` selects the
/// request's resource and its context and preconditions hold; `None`
/// otherwise (what a generate rule is made from).
pub fn selected_data(
    policy: &Resource,
    rule: &Rule,
    req: &Request<'_>,
    world: &World<'_>,
) -> Option<Value> {
    let (_, namespace) = policy_spec(policy)?;
    let target = req.object;
    if namespace.is_some_and(|ns| ns != target.namespace()) {
        return None;
    }
    let (api_version, kind, object) = view(world, target);
    let candidate = candidate(&api_version, &kind, target, req.operation, world);
    if !matcher::selects(&rule.match_, &candidate)
        || rule
            .exclude
            .as_ref()
            .is_some_and(|e| matcher::excludes(e, &candidate))
    {
        return None;
    }
    let mut data = request_data(&object, None, req.operation, target.namespace());
    load_context(&rule.context, &mut data, world).ok()?;
    if let Some(pre) = &rule.preconditions {
        if !conditions(pre, &data).ok()?.0 {
            return None;
        }
    }
    Some(data)
}

fn request_data(object: &Value, old: Option<&Value>, operation: &str, namespace: &str) -> Value {
    let service_account = object
        .pointer("/spec/serviceAccountName")
        .cloned()
        .unwrap_or(Value::Null);
    let mut request = json!({
        "object": object,
        "operation": operation,
        "namespace": namespace,
        "userInfo": {},
    });
    if let Some(old) = old {
        request["oldObject"] = old.clone();
    }
    json!({"request": request, "serviceAccountName": service_account})
}

/// The rule's own action, then the policy's; overrides first, each.
fn action_of(
    spec: &PolicySpec,
    v: &Validation,
    namespace: &str,
    world: &World<'_>,
) -> FailureAction {
    let overridden = |overrides: &[FailureActionOverride]| {
        overrides
            .iter()
            .find(|o| {
                (o.namespaces.is_empty()
                    || o.namespaces.iter().any(|n| wildcard::matches(n, namespace)))
                    && o.namespace_selector.as_ref().is_none_or(|s| {
                        world
                            .namespace_labels(namespace)
                            .is_some_and(|l| matcher::label_selects(s, l))
                    })
            })
            .map(|o| o.action)
    };
    overridden(&v.failure_action_overrides)
        .or(v.failure_action)
        .or_else(|| overridden(&spec.validation_failure_action_overrides))
        .unwrap_or(spec.validation_failure_action)
}

fn response(rule: &str, status: Status, message: String) -> Response {
    Response {
        rule: rule.to_owned(),
        status,
        message,
        path: None,
        wanted: None,
        action: FailureAction::Audit,
    }
}

/// Context, preconditions, then the rule's one check.
fn judge(rule: &Rule, v: &Validation, mut data: Value, world: &World<'_>) -> Option<Response> {
    let name = rule.name.as_str();
    if let Err(e) = load_context(&rule.context, &mut data, world) {
        return Some(response(
            name,
            Status::Error,
            format!("failed to load context: {e}"),
        ));
    }
    if let Some(pre) = &rule.preconditions {
        match conditions(pre, &data) {
            Err(e) => {
                return Some(response(
                    name,
                    Status::Error,
                    format!("failed to evaluate preconditions: {e}"),
                ))
            }
            Ok((false, messages)) => {
                let mut m = "preconditions not met".to_owned();
                if !messages.is_empty() {
                    m = format!("{m}; {}", messages.join("; "));
                }
                return Some(response(name, Status::Skip, m));
            }
            Ok((true, _)) => {}
        }
    }
    if let Some(deny) = &v.deny {
        return Some(judge_deny(
            name,
            &v.message,
            deny.conditions.as_ref(),
            &data,
        ));
    }
    let object = data
        .pointer("/request/object")
        .cloned()
        .unwrap_or(Value::Null);
    if v.pattern.is_some() || v.any_pattern.is_some() {
        return Some(judge_patterns(
            name,
            &v.message,
            v.pattern.as_ref(),
            v.any_pattern.as_deref(),
            &object,
            &data,
        ));
    }
    if let Some(list) = &v.foreach {
        return judge_foreach(name, &v.message, list, &mut data, world, 0);
    }
    let what = if v.cel.is_some() {
        "validate.cel"
    } else if v.pod_security.is_some() {
        "validate.podSecurity"
    } else if v.manifests.is_some() {
        "validate.manifests"
    } else if v.assert.is_some() {
        "validate.assert"
    } else {
        "a validate rule with no check"
    };
    Some(response(
        name,
        Status::Error,
        format!("weft does not evaluate {what}; the rule cannot pass, so it fails closed"),
    ))
}

/// Evaluates `any` and `all`: whether they hold, and the messages of the
/// conditions that decided it.
fn conditions(c: &Conditions, data: &Value) -> Result<(bool, Vec<String>), VarError> {
    let mut decided = Vec::new();
    let eval =
        |cond: &weft_api::types::kyverno::Condition| -> Result<(bool, Option<String>), VarError> {
            let key = vars::substitute(&cond.key, data)?;
            let value = vars::substitute(&cond.value, data)?;
            let holds = crate::operators::holds(cond.operator, &key, &value);
            let message = match &cond.message {
                Some(m) => match vars::substitute_str(m, data)? {
                    Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                },
                None => None,
            };
            Ok((holds, message))
        };
    let mut any_true = !c.any_written;
    let mut any_messages = Vec::new();
    for cond in &c.any {
        let (holds, message) = eval(cond)?;
        if holds {
            any_true = true;
            any_messages = message.into_iter().collect();
            break;
        }
        any_messages.extend(message);
    }
    let mut all_true = true;
    let mut all_messages = Vec::new();
    for cond in &c.all {
        let (holds, message) = eval(cond)?;
        if !holds {
            all_true = false;
            all_messages = message.into_iter().collect();
            break;
        }
        all_messages.extend(message);
    }
    let result = any_true && all_true;
    if result {
        decided.extend(any_messages);
        decided.extend(all_messages);
    } else if !any_true {
        decided.extend(any_messages);
    } else {
        decided.extend(all_messages);
    }
    Ok((result, decided))
}

fn judge_deny(name: &str, message: &str, c: Option<&Conditions>, data: &Value) -> Response {
    let empty = Conditions::default();
    match conditions(c.unwrap_or(&empty), data) {
        Err(e) => response(
            name,
            Status::Error,
            format!("failed to check deny conditions: {e}"),
        ),
        Ok((false, _)) => response(
            name,
            Status::Pass,
            format!("validation rule '{name}' passed."),
        ),
        Ok((true, messages)) => {
            let mut parts: Vec<String> = Vec::new();
            if !message.is_empty() {
                parts.push(message.to_owned());
            }
            parts.extend(messages);
            let text = if parts.is_empty() {
                format!("validation error: rule {name} failed")
            } else {
                match vars::substitute_str(&parts.join("; "), data) {
                    Ok(Value::String(s)) => s,
                    Ok(_) => "the produced message didn't resolve to a string, check your policy definition.".into(),
                    Err(e) => format!(
                        "validation error: variables substitution error in rule {name} execution error: {e}"
                    ),
                }
            };
            response(name, Status::Fail, text)
        }
    }
}

fn with_period(message: &str) -> String {
    if message.ends_with('.') {
        message.to_owned()
    } else {
        format!("{message}.")
    }
}

fn substituted_message(message: &str, data: &Value) -> String {
    match vars::substitute_str(message, data) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => message.to_owned(),
    }
}

fn judge_patterns(
    name: &str,
    message: &str,
    single: Option<&Value>,
    any: Option<&[Value]>,
    object: &Value,
    data: &Value,
) -> Response {
    let message = substituted_message(message, data);
    if let Some(p) = single {
        let p = match vars::substitute(p, data) {
            Ok(p) => p,
            Err(e) => return response(name, Status::Error, e.to_string()),
        };
        return match pattern::validate(object, &p) {
            Outcome::Pass => response(
                name,
                Status::Pass,
                format!("validation rule '{name}' passed."),
            ),
            Outcome::Skip(why) => response(name, Status::Skip, why),
            Outcome::Fail { path, reason } if path.is_empty() => {
                let lead = if message.is_empty() {
                    String::new()
                } else {
                    format!("{} ", with_period(&message))
                };
                response(
                    name,
                    Status::Error,
                    format!("validation error: {lead}rule {name} execution error: {reason}"),
                )
            }
            Outcome::Fail { path, .. } => {
                let text = if message.is_empty() {
                    format!("validation error: rule {name} failed at path {path}")
                } else {
                    format!(
                        "validation error: {} rule {name} failed at path {path}",
                        with_period(&message)
                    )
                };
                Response {
                    wanted: wanted_at(&p, &path),
                    path: Some(path),
                    ..response(name, Status::Fail, text)
                }
            }
        };
    }
    let patterns = any.unwrap_or_default();
    let mut failures = Vec::new();
    let mut skips = Vec::new();
    let mut first_failure: Option<(String, Option<Value>)> = None;
    for (i, p) in patterns.iter().enumerate() {
        let p = match vars::substitute(p, data) {
            Ok(p) => p,
            Err(e) => return response(name, Status::Error, e.to_string()),
        };
        match pattern::validate(object, &p) {
            Outcome::Pass => {
                return response(
                    name,
                    Status::Pass,
                    format!("validation rule '{name}' anyPattern[{i}] passed."),
                )
            }
            Outcome::Skip(why) => skips.push(format!("rule {name}[{i}] skipped: {why}")),
            Outcome::Fail { path, reason } => {
                if path.is_empty() {
                    failures.push(format!("rule {name}[{i}] failed: {reason}"));
                } else {
                    if first_failure.is_none() {
                        first_failure = Some((path.clone(), wanted_at(&p, &path)));
                    }
                    failures.push(format!("rule {name}[{i}] failed at path {path}"));
                }
            }
        }
    }
    if failures.is_empty() {
        return response(name, Status::Skip, skips.join(" "));
    }
    let text = if message.is_empty() {
        format!("validation error: {}", failures.join(" "))
    } else {
        format!(
            "validation error: {} {}",
            with_period(&message),
            failures.join(" ")
        )
    };
    let (path, wanted) = first_failure.map_or((None, None), |(p, w)| (Some(p), w));
    Response {
        path,
        wanted,
        ..response(name, Status::Fail, text)
    }
}

/// The leaf the pattern asks for at a failure's path, anchors read
/// through and list elements by the pattern's first.
fn wanted_at(pattern: &Value, path: &str) -> Option<Value> {
    let mut at = pattern;
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut i = 0;
    while i < segments.len() {
        match at {
            Value::Object(m) => {
                // Keys may hold `/` (annotations): take the longest that fits.
                let mut found = None;
                for end in (i + 1..=segments.len()).rev() {
                    let key = segments[i..end].join("/");
                    if let Some((_, v)) = m.iter().find(|(k, _)| {
                        k.as_str() == key
                            || pattern::parse_anchor(k).is_some_and(|(_, inner)| inner == key)
                    }) {
                        found = Some((v, end));
                        break;
                    }
                }
                let (v, end) = found?;
                at = v;
                i = end;
            }
            Value::Array(items) => {
                at = items.first()?;
                i += 1;
            }
            _ => return None,
        }
    }
    (!at.is_object() && !at.is_array()).then(|| at.clone())
}

fn judge_foreach(
    name: &str,
    message: &str,
    list: &[ForEachValidation],
    data: &mut Value,
    world: &World<'_>,
    depth: usize,
) -> Option<Response> {
    let mut applied = 0;
    let mut list_error: Option<String> = None;
    for fe in list {
        let elements = match vars::query(&fe.list, data) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => vec![Value::Null],
            Ok(one) => vec![one],
            Err(VarError::UnknownKey { .. }) => continue,
            Err(e) => {
                list_error = Some(e.to_string());
                continue;
            }
        };
        for (index, element) in elements.into_iter().enumerate() {
            if element.is_null() {
                continue;
            }
            let scoped = fe.element_scope.unwrap_or(element.is_object());
            if fe.element_scope == Some(true) && !element.is_object() {
                return Some(response(
                    name,
                    Status::Error,
                    "failed to evaluate element: elementScope is set but the element is not a map"
                        .into(),
                ));
            }
            let mut scope = data.clone();
            if let Value::Object(m) = &mut scope {
                m.insert("element".into(), element.clone());
                m.insert("elementIndex".into(), json!(index));
                m.insert(format!("element{depth}"), element.clone());
                m.insert(format!("elementIndex{depth}"), json!(index));
            }
            let outcome = judge_element(
                name, message, fe, &element, scoped, &mut scope, world, depth,
            );
            let Some(outcome) = outcome else { continue };
            match outcome.status {
                Status::Pass => applied += 1,
                Status::Skip => {}
                Status::Error if outcome.message.contains("failed to evaluate preconditions") => {}
                _ => {
                    let path = element_path(&fe.list, index).map(|at| match &outcome.path {
                        Some(inner) if scoped => format!("{at}{}", inner.trim_start_matches('/')),
                        _ => at,
                    });
                    return Some(Response {
                        message: format!("validation failure: {}", outcome.message),
                        path: path.or(outcome.path.clone()),
                        ..outcome
                    });
                }
            }
        }
    }
    if applied == 0 {
        return list_error
            .map(|e| response(name, Status::Error, format!("failed to evaluate list: {e}")));
    }
    Some(response(name, Status::Pass, "rule passed".into()))
}

/// Where element `index` of a foreach list is in the judged object, when
/// the list is a plain path in it (`request.object.spec.hosts`,
/// `request.object.spec.initContainers[]`): `/spec/hosts/0/`.
fn element_path(list: &str, index: usize) -> Option<String> {
    let rest = list.trim().strip_prefix("request.object.")?;
    let rest = rest.strip_suffix("[]").unwrap_or(rest);
    if rest.is_empty()
        || !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return None;
    }
    Some(format!("/{}/{index}/", rest.replace('.', "/")))
}

#[allow(clippy::too_many_arguments)]
fn judge_element(
    name: &str,
    message: &str,
    fe: &ForEachValidation,
    element: &Value,
    scoped: bool,
    data: &mut Value,
    world: &World<'_>,
    depth: usize,
) -> Option<Response> {
    if let Err(e) = load_context(&fe.context, data, world) {
        return Some(response(
            name,
            Status::Error,
            format!("failed to load context: {e}"),
        ));
    }
    if let Some(pre) = &fe.preconditions {
        match conditions(pre, data) {
            Err(e) => {
                return Some(response(
                    name,
                    Status::Error,
                    format!("failed to evaluate preconditions: {e}"),
                ))
            }
            Ok((false, _)) => {
                return Some(response(name, Status::Skip, "preconditions not met".into()))
            }
            Ok((true, _)) => {}
        }
    }
    if let Some(deny) = &fe.deny {
        return Some(judge_deny(name, message, deny.conditions.as_ref(), data));
    }
    if fe.pattern.is_some() || fe.any_pattern.is_some() {
        let object = if scoped {
            element.clone()
        } else {
            data.pointer("/request/object")
                .cloned()
                .unwrap_or(Value::Null)
        };
        return Some(judge_patterns(
            name,
            message,
            fe.pattern.as_ref(),
            fe.any_pattern.as_deref(),
            &object,
            data,
        ));
    }
    if let Some(inner) = &fe.foreach {
        return judge_foreach(name, message, inner, data, world, depth + 1);
    }
    None
}

/// Adds each context entry's value under its name, in order.
fn load_context(
    entries: &[ContextEntry],
    data: &mut Value,
    world: &World<'_>,
) -> Result<(), String> {
    for e in entries {
        let value = entry_value(e, data, world)?;
        if let Value::Object(m) = data {
            m.insert(e.name.clone(), value);
        }
    }
    Ok(())
}

fn entry_value(e: &ContextEntry, data: &Value, world: &World<'_>) -> Result<Value, String> {
    let sub = |v: &Value| vars::substitute(v, data).map_err(|e| e.to_string());
    let sub_str = |s: &str| match vars::substitute_str(s, data) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Ok(other.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Some(v) = &e.variable {
        let default = v.default.as_ref().map(sub).transpose()?;
        let path = v.jmes_path.as_deref().map(sub_str).transpose()?;
        let found = match (&v.value, &path) {
            (Some(value), path) => {
                let value = sub(value)?;
                match path {
                    Some(p) => match vars::query(p, &value) {
                        Ok(found) => found,
                        Err(err) => default.clone().ok_or_else(|| err.to_string())?,
                    },
                    None => value,
                }
            }
            (None, Some(p)) => match vars::query(p, data) {
                Ok(Value::Null) => default.clone().unwrap_or(Value::Null),
                Ok(found) => found,
                Err(err) => default.clone().ok_or_else(|| err.to_string())?,
            },
            (None, None) => default.clone().unwrap_or(Value::Null),
        };
        if found.is_null() {
            return Err(format!(
                "failed to add context entry for variable {} since it evaluated to nil",
                e.name
            ));
        }
        return Ok(found);
    }
    if let Some(call) = &e.api_call {
        if call
            .method
            .as_deref()
            .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
        {
            return Err(format!("weft answers only GET apiCalls ({})", e.name));
        }
        if call.service.is_some() {
            return Err(format!(
                "weft does not call services from policies ({})",
                e.name
            ));
        }
        let url = sub_str(call.url_path.as_deref().unwrap_or_default())?;
        let body = match world.get(&url) {
            Ok(body) => body,
            Err(err) => match &call.default {
                Some(d) => sub(d)?,
                None => return Err(err),
            },
        };
        return match &call.jmes_path {
            Some(p) => {
                let p = sub_str(p)?;
                vars::query(&p, &body).map_err(|e| e.to_string())
            }
            None => Ok(body),
        };
    }
    if let Some(cm) = &e.config_map {
        let name = sub_str(&cm.name)?;
        let namespace = sub_str(&cm.namespace)?;
        return world
            .config_map(&namespace, &name)
            .ok_or_else(|| format!("configmap {namespace}/{name} not found"));
    }
    Err(format!(
        "context entry {} is of a kind weft does not load (imageRegistry, globalReference)",
        e.name
    ))
}
