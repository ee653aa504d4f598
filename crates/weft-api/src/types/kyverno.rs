//! `kyverno.io/v1` ClusterPolicy and Policy: the platform's existing
//! Kyverno policies, read as Kyverno reads them. weft evaluates their
//! `validate` rules at admission (weft-kyverno); the parts Kyverno
//! itself keeps free-form (patterns, condition keys and values, context
//! values) stay JSON, as they are in Kyverno's own types.

use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer};
use serde_json::Value;

use super::weft::FailureAction;

/// A ClusterPolicy's or a Policy's `spec`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    /// Audit (the default) or Enforce, for every rule that does not say.
    #[serde(default)]
    pub validation_failure_action: FailureAction,
    #[serde(default)]
    pub validation_failure_action_overrides: Vec<FailureActionOverride>,
    /// Whether background scans (PolicyReports) judge existing resources.
    pub background: Option<bool>,
    /// Whether the policy judges admission requests at all.
    pub admission: Option<bool>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    // Accepted as Kyverno accepts them; they tune its webhook, which
    // weft does not have.
    pub failure_policy: Option<String>,
    pub webhook_timeout_seconds: Option<u32>,
    pub apply_rules: Option<String>,
    pub emit_warning: Option<bool>,
    pub schema_validation: Option<bool>,
    pub use_server_side_apply: Option<bool>,
    pub mutate_existing_on_policy_update: Option<bool>,
    pub generate_existing: Option<bool>,
    pub generate_existing_on_policy_update: Option<bool>,
    pub webhook_configuration: Option<Value>,
}

impl PolicySpec {
    /// Background scans are on unless turned off, as in Kyverno.
    pub fn background(&self) -> bool {
        self.background.unwrap_or(true)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FailureActionOverride {
    pub action: FailureAction,
    #[serde(default)]
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub name: String,
    #[serde(rename = "match", default)]
    pub match_: MatchResources,
    pub exclude: Option<MatchResources>,
    pub preconditions: Option<Conditions>,
    #[serde(default)]
    pub context: Vec<ContextEntry>,
    pub validate: Option<Validation>,
    /// Read, not applied: weft reports the rule as one it does not run.
    pub mutate: Option<Value>,
    pub generate: Option<Value>,
    pub verify_images: Option<Value>,
    pub image_extractors: Option<Value>,
    pub cel_preconditions: Option<Value>,
    pub skip_background_requests: Option<bool>,
    pub report_properties: Option<BTreeMap<String, String>>,
}

/// `match` and `exclude`: resource filters, any or all of which must hold
/// (or the legacy single filter written inline).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MatchResources {
    #[serde(default)]
    pub any: Vec<ResourceFilter>,
    #[serde(default)]
    pub all: Vec<ResourceFilter>,
    pub resources: Option<ResourceDescription>,
    pub subjects: Option<Value>,
    pub roles: Option<Value>,
    pub cluster_roles: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceFilter {
    #[serde(default)]
    pub resources: ResourceDescription,
    /// Who made the request: weft has no users, so a filter that names
    /// them matches nothing (see weft-kyverno).
    pub subjects: Option<Value>,
    pub roles: Option<Value>,
    pub cluster_roles: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResourceDescription {
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deprecated single name, still honoured.
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub selector: Option<LabelSelector>,
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub operations: Vec<String>,
}

/// Kubernetes' label selector, whole (match labels, with Kyverno's
/// wildcards, and expressions).
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<super::kube::SelectorRequirement>,
}

/// A named value a rule's variables can use.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContextEntry {
    pub name: String,
    pub variable: Option<ContextVariable>,
    pub api_call: Option<ApiCall>,
    pub config_map: Option<ConfigMapReference>,
    pub image_registry: Option<Value>,
    pub global_reference: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContextVariable {
    pub value: Option<Value>,
    pub jmes_path: Option<String>,
    pub default: Option<Value>,
}

/// A read of the Kubernetes API; weft answers it from its configuration.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiCall {
    pub url_path: Option<String>,
    pub method: Option<String>,
    pub data: Option<Value>,
    pub service: Option<Value>,
    pub jmes_path: Option<String>,
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapReference {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Validation {
    #[serde(default)]
    pub message: String,
    /// The rule's own action (Kyverno 1.13), over the policy's.
    pub failure_action: Option<FailureAction>,
    #[serde(default)]
    pub failure_action_overrides: Vec<FailureActionOverride>,
    pub allow_existing_violations: Option<bool>,
    pub pattern: Option<Value>,
    pub any_pattern: Option<Vec<Value>>,
    pub deny: Option<Deny>,
    pub foreach: Option<Vec<ForEachValidation>>,
    /// Not evaluated by weft; a rule that has one is reported as such.
    pub pod_security: Option<Value>,
    pub manifests: Option<Value>,
    pub cel: Option<Value>,
    pub assert: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Deny {
    pub conditions: Option<Conditions>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ForEachValidation {
    /// A JMESPath expression (no braces) giving the elements.
    pub list: String,
    pub element_scope: Option<bool>,
    #[serde(default)]
    pub context: Vec<ContextEntry>,
    pub preconditions: Option<Conditions>,
    pub pattern: Option<Value>,
    pub any_pattern: Option<Vec<Value>>,
    pub deny: Option<Deny>,
    /// Nested foreach: kept as written, evaluated as a list of these.
    pub foreach: Option<Vec<ForEachValidation>>,
}

/// Conditions, `any` and `all` (the legacy plain list is `all`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    pub any: Vec<Condition>,
    pub all: Vec<Condition>,
    /// Whether `any` was written (an empty `any` is then false).
    pub any_written: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Condition {
    #[serde(default)]
    pub key: Value,
    pub operator: Operator,
    #[serde(default)]
    pub value: Value,
    pub message: Option<String>,
}

/// Kyverno's condition operators, by their names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operator {
    Equals,
    Equal,
    NotEquals,
    NotEqual,
    In,
    NotIn,
    AnyIn,
    AllIn,
    AnyNotIn,
    AllNotIn,
    GreaterThan,
    GreaterThanOrEquals,
    LessThan,
    LessThanOrEquals,
    DurationGreaterThan,
    DurationGreaterThanOrEquals,
    DurationLessThan,
    DurationLessThanOrEquals,
}

impl<'de> Deserialize<'de> for Conditions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let parse = |v: Value| -> Result<Vec<Condition>, D::Error> {
            match v {
                Value::Null => Ok(Vec::new()),
                Value::Array(items) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| {
                        serde_json::from_value(c)
                            .map_err(|e| de::Error::custom(format!("condition [{i}]: {e}")))
                    })
                    .collect(),
                other => Err(de::Error::custom(format!(
                    "expected a list of conditions, found {}",
                    json_kind(&other)
                ))),
            }
        };
        match Value::deserialize(d)? {
            Value::Null => Ok(Conditions::default()),
            list @ Value::Array(_) => Ok(Conditions {
                all: parse(list)?,
                ..Conditions::default()
            }),
            Value::Object(map) => {
                let mut out = Conditions::default();
                for (k, v) in map {
                    match k.as_str() {
                        "any" => {
                            out.any =
                                parse(v).map_err(|e| de::Error::custom(format!("any: {e}")))?;
                            out.any_written = true;
                        }
                        "all" => {
                            out.all =
                                parse(v).map_err(|e| de::Error::custom(format!("all: {e}")))?
                        }
                        other => {
                            return Err(de::Error::custom(format!(
                                "unknown field `{other}`, expected `any` or `all`"
                            )))
                        }
                    }
                }
                Ok(out)
            }
            other => Err(de::Error::custom(format!(
                "expected `any`/`all` or a list of conditions, found {}",
                json_kind(&other)
            ))),
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
