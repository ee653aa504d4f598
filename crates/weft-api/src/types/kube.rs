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
    /// The labels of the nodes its pods may run on.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
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
    /// In local mode, the container that runs: the first, when it names a
    /// command.
    pub fn local_container(&self) -> Option<&Container> {
        self.containers.first().filter(|c| !c.command.is_empty())
    }

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
    /// In local mode, the program the container runs (its image is not
    /// pulled): a Deployment whose first container names one runs as a
    /// Workload does.
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub env_from: Vec<EnvFromSource>,
    pub working_dir: Option<String>,
}

/// A container's environment variable: a value, or a key of a ConfigMap
/// or Secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    #[serde(default)]
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub config_map_key_ref: Option<KeyRef>,
    pub secret_key_ref: Option<KeyRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub key: String,
    pub optional: Option<bool>,
}

/// Every key of a ConfigMap or Secret as variables (`envFrom`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvFromSource {
    pub prefix: Option<String>,
    pub config_map_ref: Option<NameRef>,
    pub secret_ref: Option<NameRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NameRef {
    #[serde(default)]
    pub name: String,
    pub optional: Option<bool>,
}

/// A ConfigMap's or Secret's data as text, by kind and name.
pub type ConfigLookup<'a> = dyn Fn(&str, &str) -> Option<BTreeMap<String, String>> + 'a;

impl Container {
    /// The ConfigMaps and Secrets its environment reads, as
    /// `("ConfigMap" | "Secret", name)`: what Flagger tracks.
    pub fn config_refs(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for e in &self.env {
            if let Some(from) = &e.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    out.push(("ConfigMap", r.name.as_str()));
                }
                if let Some(r) = &from.secret_key_ref {
                    out.push(("Secret", r.name.as_str()));
                }
            }
        }
        for f in &self.env_from {
            if let Some(r) = &f.config_map_ref {
                out.push(("ConfigMap", r.name.as_str()));
            }
            if let Some(r) = &f.secret_ref {
                out.push(("Secret", r.name.as_str()));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The environment as Kubernetes would set it, reading referenced
    /// keys through `lookup(kind, name)` (a ConfigMap's or Secret's data
    /// as text). `envFrom` first, then `env`, later ones winning; a
    /// reference to something missing that is not `optional` is the
    /// error Kubernetes gives the pod (CreateContainerConfigError).
    pub fn environment(
        &self,
        lookup: &ConfigLookup<'_>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        for f in &self.env_from {
            let (kind, r) = match (&f.config_map_ref, &f.secret_ref) {
                (Some(r), _) => ("ConfigMap", r),
                (None, Some(r)) => ("Secret", r),
                (None, None) => continue,
            };
            match lookup(kind, &r.name) {
                Some(data) => {
                    let prefix = f.prefix.as_deref().unwrap_or("");
                    for (k, v) in data {
                        out.insert(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("{kind} {:?} not found", r.name)),
            }
        }
        for e in &self.env {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(from)) => {
                    let (kind, r) = match (&from.config_map_key_ref, &from.secret_key_ref) {
                        (Some(r), _) => ("ConfigMap", r),
                        (None, Some(r)) => ("Secret", r),
                        (None, None) => continue,
                    };
                    match lookup(kind, &r.name).and_then(|d| d.get(&r.key).cloned()) {
                        Some(v) => v,
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(format!("couldn't find key {} in {kind} {}", r.key, r.name))
                        }
                    }
                }
                (None, None) => String::new(),
            };
            out.insert(e.name.clone(), value);
        }
        Ok(out)
    }
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

/// `networking.k8s.io/v1` NetworkPolicy: which pods may talk to the
/// pods it selects (ingress) and to whom those pods may talk (egress), by
/// pod and namespace labels, address blocks and ports, as a CNI enforces
/// it. In weft the pods' proxies enforce it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// The pods of the policy's namespace it isolates; empty: all of them.
    #[serde(default)]
    pub pod_selector: NetworkSelector,
    /// `Ingress`, `Egress`; unset: Ingress, and Egress when egress rules
    /// are written.
    pub policy_types: Option<Vec<String>>,
    #[serde(default)]
    pub ingress: Vec<NetworkPolicyRule>,
    #[serde(default)]
    pub egress: Vec<NetworkPolicyRule>,
}

impl NetworkPolicySpec {
    pub fn isolates_ingress(&self) -> bool {
        match &self.policy_types {
            Some(t) => t.iter().any(|t| t == "Ingress"),
            None => true,
        }
    }

    pub fn isolates_egress(&self) -> bool {
        match &self.policy_types {
            Some(t) => t.iter().any(|t| t == "Egress"),
            None => !self.egress.is_empty(),
        }
    }
}

/// One ingress (`from`) or egress (`to`) rule: any of its peers, on any of
/// its ports. No peers: every peer; no ports: every port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyRule {
    #[serde(default)]
    pub from: Vec<NetworkPolicyPeer>,
    #[serde(default)]
    pub to: Vec<NetworkPolicyPeer>,
    #[serde(default)]
    pub ports: Vec<NetworkPolicyPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyPeer {
    pub pod_selector: Option<NetworkSelector>,
    pub namespace_selector: Option<NetworkSelector>,
    pub ip_block: Option<IpBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpBlock {
    pub cidr: String,
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkPolicyPort {
    /// TCP (the default), UDP or SCTP.
    pub protocol: Option<String>,
    /// A number or a container port's name; unset: every port.
    pub port: Option<IntOrString>,
    pub end_port: Option<u32>,
}

/// Kubernetes' label selector with match expressions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSelector {
    #[serde(default)]
    pub match_labels: Labels,
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl NetworkSelector {
    /// Whether `labels` meet every label and expression.
    pub fn selects(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|e| e.holds(labels))
    }
}

impl SelectorRequirement {
    /// Whether `labels` meet this expression; an operator Kubernetes does
    /// not have holds for none.
    pub fn holds(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => v.is_some_and(|v| self.values.contains(v)),
            "NotIn" => v.is_none_or(|v| !self.values.contains(v)),
            "Exists" => v.is_some(),
            "DoesNotExist" => v.is_none(),
            _ => false,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml_env: serde_json::Value) -> Container {
        serde_json::from_value(yaml_env).unwrap()
    }

    /// A container's environment is set as Kubernetes sets it: envFrom
    /// first (with its prefix), then env, later ones winning; a missing
    /// reference fails unless optional.
    #[test]
    fn the_environment_reads_configmaps_and_secrets_as_kubernetes_does() {
        let c = container(serde_json::json!({
            "name": "app",
            "command": ["app"],
            "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"},
                        {"secretRef": {"name": "gone", "optional": true}}],
            "env": [
                {"name": "APP_COLOR", "value": "red"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}},
                {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope", "optional": true}}},
                {"name": "EMPTY"}
            ]
        }));
        let lookup = |kind: &str, name: &str| -> Option<BTreeMap<String, String>> {
            match (kind, name) {
                ("ConfigMap", "settings") => Some(
                    [
                        ("COLOR".to_owned(), "blue".to_owned()),
                        ("SIZE".to_owned(), "2".to_owned()),
                    ]
                    .into(),
                ),
                ("Secret", "token") => Some([("t".to_owned(), "s3cret".to_owned())].into()),
                _ => None,
            }
        };
        let env = c.environment(&lookup).unwrap();
        assert_eq!(env.get("APP_COLOR").map(String::as_str), Some("red"));
        assert_eq!(env.get("APP_SIZE").map(String::as_str), Some("2"));
        assert_eq!(env.get("TOKEN").map(String::as_str), Some("s3cret"));
        assert_eq!(env.get("EMPTY").map(String::as_str), Some(""));
        assert!(!env.contains_key("MAYBE"));
        assert_eq!(
            c.config_refs(),
            [
                ("ConfigMap", "settings"),
                ("Secret", "gone"),
                ("Secret", "token")
            ]
        );
        let missing = container(serde_json::json!({
            "command": ["app"],
            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]
        }));
        assert_eq!(
            missing.environment(&lookup).unwrap_err(),
            "couldn't find key nope in ConfigMap settings"
        );
        let gone = container(
            serde_json::json!({"command": ["app"], "envFrom": [{"secretRef": {"name": "gone"}}]}),
        );
        assert_eq!(
            gone.environment(&lookup).unwrap_err(),
            "Secret \"gone\" not found"
        );
    }
}
