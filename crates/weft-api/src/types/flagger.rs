//! Flagger's `flagger.app/v1beta1` Canary and MetricTemplate.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::networking::{
    CorsPolicy, Headers, HttpMatchRequest, HttpRetry, HttpRewrite, TrafficPolicy,
};

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Canary {
    #[serde(default)]
    pub provider: String,
    /// The Prometheus the built-in metrics are asked of.
    pub metrics_server: Option<String>,
    pub target_ref: Option<CrossNamespaceRef>,
    pub autoscaler_ref: Option<serde_json::Value>,
    pub ingress_ref: Option<CrossNamespaceRef>,
    pub route_ref: Option<CrossNamespaceRef>,
    pub upstream_ref: Option<CrossNamespaceRef>,
    pub progress_deadline_seconds: Option<i64>,
    pub service: Option<CanaryService>,
    pub analysis: Option<CanaryAnalysis>,
    /// Flagger's older name for `analysis`.
    pub canary_analysis: Option<CanaryAnalysis>,
    #[serde(default)]
    pub skip_analysis: bool,
    #[serde(default)]
    pub revert_on_deletion: bool,
    #[serde(default)]
    pub suspend: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CrossNamespaceRef {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryService {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub port: u32,
    pub port_name: Option<String>,
    pub target_port: Option<super::common::IntOrString>,
    pub app_protocol: Option<String>,
    pub traffic_distribution: Option<String>,
    pub port_discovery: Option<bool>,
    pub headless: Option<bool>,
    pub backend_timeout: Option<String>,
    #[serde(default)]
    pub gateway_refs: Vec<serde_json::Value>,
    #[serde(default)]
    pub gateways: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub traffic_policy: Option<TrafficPolicy>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    pub retries: Option<HttpRetry>,
    pub timeout: Option<String>,
    pub headers: Option<Headers>,
    pub cors_policy: Option<CorsPolicy>,
    pub rewrite: Option<HttpRewrite>,
    /// Gateway API request mirrors.
    #[serde(default)]
    pub mirror: Vec<serde_json::Value>,
    pub delegation: Option<bool>,
    pub apex: Option<serde_json::Value>,
    pub primary: Option<serde_json::Value>,
    pub canary: Option<serde_json::Value>,
    #[serde(default)]
    pub backends: Vec<String>,
    pub mesh_name: Option<String>,
    pub unmanaged_metadata: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryAnalysis {
    #[serde(default)]
    pub interval: String,
    pub iterations: Option<i64>,
    pub threshold: Option<i64>,
    pub max_weight: Option<i64>,
    pub step_weight: Option<i64>,
    #[serde(default)]
    pub step_weights: Vec<i64>,
    pub step_weight_promotion: Option<i64>,
    pub mirror: Option<bool>,
    pub mirror_weight: Option<i64>,
    #[serde(default, rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    pub primary_ready_threshold: Option<i64>,
    pub canary_ready_threshold: Option<i64>,
    #[serde(default)]
    pub metrics: Vec<CanaryMetric>,
    #[serde(default)]
    pub webhooks: Vec<CanaryWebhook>,
    #[serde(default)]
    pub alerts: Vec<serde_json::Value>,
    pub session_affinity: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryMetric {
    #[serde(default)]
    pub name: String,
    pub interval: Option<String>,
    /// Deprecated single threshold.
    pub threshold: Option<f64>,
    pub threshold_range: Option<ThresholdRange>,
    pub query: Option<String>,
    pub template_ref: Option<CrossNamespaceRef>,
    #[serde(default)]
    pub template_variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ThresholdRange {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryWebhook {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub hook_type: String,
    #[serde(default)]
    pub url: String,
    pub timeout: Option<String>,
    pub mute_alert: Option<bool>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub retries: Option<i64>,
    #[serde(rename = "disableTLS")]
    pub disable_tls: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricTemplate {
    pub provider: Option<MetricProvider>,
    #[serde(default)]
    pub query: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricProvider {
    #[serde(default, rename = "type")]
    pub provider_type: String,
    #[serde(default)]
    pub address: String,
    pub headers: Option<serde_json::Value>,
    pub secret_ref: Option<serde_json::Value>,
    pub insecure_skip_verify: Option<bool>,
    pub region: Option<String>,
}

/// Flagger's `AlertProvider`: where a canary's alerts go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AlertProvider {
    /// slack, msteams, discord, rocket, gchat.
    #[serde(default, rename = "type")]
    pub provider_type: String,
    #[serde(default)]
    pub channel: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub proxy: String,
    pub secret_ref: Option<serde_json::Value>,
}
