//! The Kubernetes kinds weft reads for labels, ports and service accounts:
//! Service, Deployment and Pod.
//!
//! Service is read strictly (its fields are few and a typo in `selector`
//! silently breaks routing). Deployment and Pod carry many fields that are
//! Kubernetes's business, not the mesh's; only the ones weft uses are read
//! and the rest are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::common::{IntOrString, Labels};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub generate_name: String,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub generation: Option<i64>,
    pub creation_timestamp: Option<serde_json::Value>,
    pub deletion_timestamp: Option<serde_json::Value>,
    pub deletion_grace_period_seconds: Option<i64>,
    pub owner_references: Option<serde_json::Value>,
    pub finalizers: Option<Vec<String>>,
    pub managed_fields: Option<serde_json::Value>,
    pub self_link: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default)]
    pub selector: Labels,
    #[serde(default)]
    pub ports: Vec<KubeServicePort>,
    #[serde(default, rename = "type")]
    pub service_type: String,
    // Kubernetes spells these `IP`, which camelCase would not.
    #[serde(rename = "clusterIP")]
    pub cluster_ip: Option<String>,
    #[serde(default, rename = "clusterIPs")]
    pub cluster_ips: Vec<String>,
    pub external_name: Option<String>,
    #[serde(default, rename = "externalIPs")]
    pub external_ips: Vec<String>,
    pub session_affinity: Option<String>,
    pub session_affinity_config: Option<serde_json::Value>,
    #[serde(rename = "loadBalancerIP")]
    pub load_balancer_ip: Option<String>,
    #[serde(default)]
    pub load_balancer_source_ranges: Vec<String>,
    pub load_balancer_class: Option<String>,
    pub external_traffic_policy: Option<String>,
    pub internal_traffic_policy: Option<String>,
    pub health_check_node_port: Option<i64>,
    pub publish_not_ready_addresses: Option<bool>,
    #[serde(default)]
    pub ip_families: Vec<String>,
    pub ip_family_policy: Option<String>,
    pub allocate_load_balancer_node_ports: Option<bool>,
    pub traffic_distribution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeServicePort {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub port: i64,
    pub target_port: Option<IntOrString>,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
    pub node_port: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: Option<i64>,
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub template: PodTemplate,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: PodTemplateMeta,
    #[serde(default)]
    pub spec: PodSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMeta {
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod runs on, whose topology labels are its locality.
    pub node_name: Option<String>,
    pub service_account_name: Option<String>,
    /// Deprecated spelling still accepted by Kubernetes.
    pub service_account: Option<String>,
    #[serde(default)]
    pub containers: Vec<Container>,
    pub security_context: Option<SecurityContext>,
}

/// What weft reads of a pod's or container's security context: the user
/// it runs as (the sidecar's own UID, 1337, is the one capture exempts).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
}

impl PodSpec {
    pub fn service_account(&self) -> &str {
        self.service_account_name
            .as_deref()
            .or(self.service_account.as_deref())
            .unwrap_or("default")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub security_context: Option<SecurityContext>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub container_port: i64,
    pub protocol: Option<String>,
}

/// A Namespace's spec: only finalizers, which weft has no use for; its
/// labels are in the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSpec {
    #[serde(default)]
    pub finalizers: Vec<String>,
}

/// A Node: its topology labels (`topology.kubernetes.io/region`, `zone`,
/// `topology.istio.io/subzone`) are in the metadata and give its pods'
/// locality; the spec's pod CIDR is read for the nodes weft places
/// workloads on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    #[serde(rename = "podCIDRs", default)]
    pub pod_cidrs: Vec<String>,
}

/// A Secret: weft reads TLS credentials from it (`tls.crt`, `tls.key`,
/// `ca.crt`, `ca.crl`, or Istio's `cert`, `key`, `cacert`). `data` is
/// decoded from base64 and `stringData` laid over it, as the API server
/// does. Its values never reach a log: `Debug` shows the keys only.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret {
    pub secret_type: String,
    pub data: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("type", &self.secret_type)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Secret {
    /// The first of `keys` the secret has, as text.
    pub fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.data.get(*k))
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// A ConfigMap: weft reads the one Istio keeps its mesh configuration in
/// (`istio` in the root namespace, key `mesh`); see `types::mesh`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigMap {
    pub data: BTreeMap<String, String>,
}
