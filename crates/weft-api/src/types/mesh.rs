//! Istio's MeshConfig, as users keep it: the `istio` ConfigMap in the root
//! namespace, key `mesh`, a YAML text. Only what weft acts on is typed;
//! MeshConfig's many other fields are accepted and left alone.
//!
//! Istio reads MeshConfig with unknown fields allowed. weft accepts the
//! top level's unknown fields too (most of MeshConfig is not weft's
//! business), but refuses an unknown field inside the blocks it acts on
//! (a provider, path normalization), with a did-you-mean: there it is a
//! typo that would otherwise be silently ignored, as `prot: 8000`.

use serde::Deserialize;

use crate::path::FieldPath;
use crate::resource::{Resource, Spec};
use crate::yaml::{self, DeError, Limits, Mark};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeshConfig {
    #[serde(default)]
    pub extension_providers: Vec<ExtensionProvider>,
    #[serde(default)]
    pub default_providers: DefaultProviders,
    /// Istio's switch for tracing as a whole (on by default).
    pub enable_tracing: Option<bool>,
    pub path_normalization: Option<PathNormalizationConfig>,
    #[serde(default)]
    pub default_config: ProxyConfigDefaults,
    /// Other trust domains this mesh's identities answer to in
    /// AuthorizationPolicies (a mesh moving from one to another).
    #[serde(default)]
    pub trust_domain_aliases: Vec<String>,
    /// The mesh's trust domain, as written (Istio's default:
    /// cluster.local). Read for validation only.
    pub trust_domain: Option<String>,
    /// `UPGRADE` speaks HTTP/2 to every port declared HTTP, unless a
    /// DestinationRule says otherwise; `DO_NOT_UPGRADE` is the default.
    pub h2_upgrade_policy: Option<String>,
    /// What sidecars do with traffic to hosts outside the registry
    /// (`ALLOW_ANY` unless set); a Sidecar may say otherwise for its
    /// workloads.
    pub outbound_traffic_policy: Option<crate::types::networking::OutboundTrafficPolicy>,
}

/// `defaultConfig`: the proxies' defaults. weft reads `proxyMetadata`
/// (the DNS capture and address allocation switches); the rest is left
/// alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfigDefaults {
    #[serde(default)]
    pub proxy_metadata: std::collections::BTreeMap<String, String>,
}

impl MeshConfig {
    /// Whether MeshConfig upgrades HTTP/1.1 to HTTP/2 between proxies.
    pub fn h2_upgrade(&self) -> bool {
        self.h2_upgrade_policy.as_deref() == Some("UPGRADE")
    }

    /// Whether ServiceEntries without addresses get one allocated, as
    /// Istio's DNS proxy does with `ISTIO_META_DNS_CAPTURE` and
    /// `ISTIO_META_DNS_AUTO_ALLOCATE` (or `PILOT_ENABLE_IP_AUTOALLOCATE`).
    pub fn allocates_addresses(&self) -> bool {
        let on = |k: &str| {
            self.default_config
                .proxy_metadata
                .get(k)
                .is_some_and(|v| v == "true")
        };
        on("ISTIO_META_DNS_CAPTURE")
            && (on("ISTIO_META_DNS_AUTO_ALLOCATE") || on("PILOT_ENABLE_IP_AUTOALLOCATE"))
    }
}

/// `pathNormalization`: how proxies normalize a request's path before
/// routing and authorization.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PathNormalizationConfig {
    #[serde(default)]
    pub normalization: Normalization,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Normalization {
    /// Istio's default: `BASE`.
    #[default]
    Default,
    None,
    Base,
    MergeSlashes,
    DecodeAndMergeSlashes,
}

impl MeshConfig {
    /// The path normalization proxies apply (`DEFAULT` is `BASE`).
    pub fn path_normalization(&self) -> weft_model::PathNormalization {
        use weft_model::PathNormalization as P;
        match self.path_normalization.as_ref().map(|p| p.normalization) {
            None | Some(Normalization::Default) | Some(Normalization::Base) => P::Base,
            Some(Normalization::None) => P::None,
            Some(Normalization::MergeSlashes) => P::MergeSlashes,
            Some(Normalization::DecodeAndMergeSlashes) => P::DecodeAndMergeSlashes,
        }
    }
}

/// The providers used where no Telemetry resource names one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DefaultProviders {
    #[serde(default)]
    pub tracing: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub access_logging: Vec<String>,
}

/// `opentelemetry`: a collector that takes spans over OTLP, over
/// HTTP/protobuf with an `http` block, else over gRPC (Istio's default).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OpenTelemetryProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    pub max_tag_length: Option<u32>,
    pub http: Option<OtlpHttp>,
    pub grpc: Option<OtlpGrpc>,
    pub resource_detectors: Option<serde_json::Value>,
    pub dynatrace_sampler: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtlpHttp {
    pub path: Option<String>,
    pub timeout: Option<String>,
    #[serde(default)]
    pub headers: Vec<OtlpHeader>,
}

/// `opentelemetry.grpc`: the export call's timeout and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OtlpGrpc {
    pub timeout: Option<String>,
    #[serde(default)]
    pub initial_metadata: Vec<OtlpHeader>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OtlpHeader {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtensionProvider {
    #[serde(default)]
    pub name: String,
    pub envoy_ext_authz_http: Option<ExtAuthzHttp>,
    pub envoy_ext_authz_grpc: Option<ExtAuthzGrpc>,
    pub zipkin: Option<serde_json::Value>,
    pub opentelemetry: Option<OpenTelemetryProvider>,
    pub skywalking: Option<serde_json::Value>,
    pub datadog: Option<serde_json::Value>,
    pub lightstep: Option<serde_json::Value>,
    pub stackdriver: Option<serde_json::Value>,
    pub prometheus: Option<serde_json::Value>,
    pub envoy_file_access_log: Option<serde_json::Value>,
    pub envoy_http_als: Option<serde_json::Value>,
    pub envoy_tcp_als: Option<serde_json::Value>,
    pub envoy_otel_als: Option<serde_json::Value>,
    pub sds: Option<serde_json::Value>,
    /// OpenCensus tracing (deprecated by Istio, still accepted).
    pub opencensus: Option<serde_json::Value>,
}

/// `envoyExtAuthzHttp`: an HTTP service asked about each request a CUSTOM
/// AuthorizationPolicy matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzHttp {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    pub timeout: Option<String>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub fail_open: bool,
    pub status_on_error: Option<String>,
    #[serde(default)]
    pub include_request_headers_in_check: Vec<String>,
    #[serde(default)]
    pub include_additional_headers_in_check: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub headers_to_upstream_on_allow: Vec<String>,
    #[serde(default)]
    pub headers_to_downstream_on_allow: Vec<String>,
    #[serde(default)]
    pub headers_to_downstream_on_deny: Vec<String>,
    pub include_request_body_in_check: Option<serde_json::Value>,
    #[serde(default)]
    pub include_headers_in_check: Vec<String>,
    /// weft routes after the policy stage, so the route always sees the
    /// authorizer's headers, as with `clearRouteCache: true`.
    #[serde(default)]
    pub clear_route_cache: bool,
}

/// `envoyExtAuthzGrpc`: a gRPC service (Envoy's
/// `envoy.service.auth.v3.Authorization`) asked about each request a
/// CUSTOM AuthorizationPolicy matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExtAuthzGrpc {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    pub timeout: Option<String>,
    #[serde(default)]
    pub fail_open: bool,
    /// weft routes after the policy stage, so the route always sees the
    /// authorizer's headers, as with `clearRouteCache: true`.
    #[serde(default)]
    pub clear_route_cache: bool,
    pub status_on_error: Option<String>,
    pub include_request_body_in_check: Option<serde_json::Value>,
}

/// Whether `r` is Istio's mesh ConfigMap (`istio` in `root_namespace`).
pub fn is_mesh_config(r: &Resource, root_namespace: &str) -> bool {
    matches!(r.spec, Spec::ConfigMap(_)) && r.name() == "istio" && r.namespace() == root_namespace
}

/// A MeshConfig written on its own (istioctl's `--meshConfigFile`), with
/// extension providers of one name merged as Istio merges them.
pub fn parse_text(text: &str) -> Result<MeshConfig, DeError> {
    parse_text_as_written(text).map(merged)
}

/// Like [`parse_text`], keeping extension providers as written.
fn parse_text_as_written(text: &str) -> Result<MeshConfig, DeError> {
    let base = FieldPath::root();
    let trees = yaml::parse_documents(text, &Limits::default()).map_err(|e| {
        DeError::at(
            format!("not valid YAML: {}", e.message),
            None,
            e.mark,
            base.clone(),
        )
    })?;
    match trees.first() {
        Some(tree) => yaml::from_node(tree, tree.root_id(), &base),
        None => Ok(MeshConfig::default()),
    }
}

/// Parses the ConfigMap's `mesh` text, extension providers of one name
/// merged as Istio merges them. Errors carry the position inside the
/// embedded text, shifted to where it sits in the file.
pub fn parse(r: &Resource) -> Result<MeshConfig, DeError> {
    parse_as_written(r).map(merged)
}

/// Istio merges extension providers of one name as it applies the mesh
/// config: a later one replaces the body of the first, in the first's
/// place.
fn merged(mut mesh: MeshConfig) -> MeshConfig {
    let mut out: Vec<ExtensionProvider> = Vec::new();
    for p in mesh.extension_providers.drain(..) {
        match out.iter_mut().find(|e| e.name == p.name) {
            Some(e) => *e = p,
            None => out.push(p),
        }
    }
    mesh.extension_providers = out;
    mesh
}

/// The mesh ConfigMap's MeshConfig with its extension providers as
/// written (duplicates kept), for validation to report on.
pub fn parse_as_written(r: &Resource) -> Result<MeshConfig, DeError> {
    let Spec::ConfigMap(cm) = &r.spec else {
        return Ok(MeshConfig::default());
    };
    let Some(text) = cm.data.get("mesh") else {
        return Ok(MeshConfig::default());
    };
    let base = FieldPath::root().key("data").key("mesh");
    // The scalar's mark is where its text starts (for a block scalar, the
    // first content line at its indentation): shift inner positions by it.
    let at = base.locate_from(&r.source.tree, r.source.node, false);
    let shift = |m: Mark| Mark {
        line: at.line + m.line.saturating_sub(1),
        column: at.column + m.column.saturating_sub(1),
    };
    let trees = yaml::parse_documents(text, &Limits::default()).map_err(|e| {
        DeError::at(
            format!("data.mesh is not valid YAML: {}", e.message),
            Some("data.mesh holds Istio's MeshConfig as YAML text".into()),
            shift(e.mark),
            base.clone(),
        )
    })?;
    let Some(tree) = trees.first() else {
        return Ok(MeshConfig::default());
    };
    yaml::from_node(tree, tree.root_id(), &base).map_err(|mut e| {
        e.mark = e.mark.map(shift);
        e
    })
}
