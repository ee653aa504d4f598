//! `weft.dev/v1` kinds: what weft needs that Istio has no word for.

use std::collections::BTreeMap;

use serde::{de, Deserialize, Deserializer};

/// A local process that joins the mesh: the local-mode stand-in for a Pod.
/// Its labels and namespace come from `metadata`, as for a Pod.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workload {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Env,
    /// Shorthand for a single HTTP port named `http`.
    pub port: Option<u32>,
    #[serde(default)]
    pub ports: Vec<WorkloadPort>,
    #[serde(default)]
    pub service_account: String,
    pub replicas: Option<u32>,
    pub working_dir: Option<String>,
    /// `region/zone/subzone`, for locality-aware load balancing; by
    /// default its node's.
    #[serde(default)]
    pub locality: String,
    /// The labels of the nodes its replicas may run on (Kubernetes'
    /// `nodeSelector`); they spread across those nodes.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
}

impl Workload {
    /// Every port, with the `port:` shorthand expanded.
    pub fn all_ports(&self) -> Vec<WorkloadPort> {
        let mut ports = self.ports.clone();
        if let Some(p) = self.port {
            if !ports.iter().any(|x| x.port == p) {
                ports.insert(
                    0,
                    WorkloadPort {
                        name: "http".into(),
                        port: p,
                        protocol: None,
                        app_protocol: None,
                    },
                );
            }
        }
        ports
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadPort {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub port: u32,
    pub protocol: Option<String>,
    pub app_protocol: Option<String>,
}

/// Environment variables as a mapping (`{A: b}`) or as Kubernetes'
/// list of `{name, value}`; kept in a deterministic order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Env(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Var {
            name: String,
            #[serde(default)]
            value: String,
        }
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Env;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping of NAME: value or a list of {name, value}")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Env, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.insert(k, v);
                }
                Ok(Env(out))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Env, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(v) = s.next_element::<Var>()? {
                    out.insert(v.name, v.value);
                }
                Ok(Env(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Env, E> {
                Ok(Env::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A platform team's guard rails for the mesh (weft's own kind, in the
/// manner of Kyverno's policies for Istio): in the root namespace it
/// holds mesh-wide, elsewhere in its own namespace. Each rule judges what
/// users write; `Enforce` refuses a resource that breaks one, `Audit`
/// (the default, as Kyverno's) reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Guardrail {
    #[serde(default)]
    pub validation_failure_action: FailureAction,
    #[serde(default)]
    pub rules: GuardrailRules,
}

/// Kyverno's `validationFailureAction`, in either case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureAction {
    #[default]
    Audit,
    Enforce,
}

impl<'de> Deserialize<'de> for FailureAction {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "audit" => Ok(FailureAction::Audit),
            "enforce" => Ok(FailureAction::Enforce),
            _ => Err(de::Error::custom(format!("{s:?} is not Audit or Enforce"))),
        }
    }
}

/// The rules of Kyverno's published Istio policies, each on when `true`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GuardrailRules {
    /// PeerAuthentication mTLS is STRICT (or unset): not PERMISSIVE or
    /// DISABLE, here or on a port (`enforce-strict-mtls`).
    #[serde(default)]
    pub strict_mtls: bool,
    /// No DestinationRule turns TLS off (`tls.mode: DISABLE`).
    #[serde(default)]
    pub no_tls_disable: bool,
    /// No workload or namespace opts out of the mesh
    /// (`sidecar.istio.io/inject: "false"`, `prevent-disabling-injection-pods`).
    #[serde(default)]
    pub no_injection_opt_out: bool,
    /// No workload opts out of capture
    /// (`traffic.sidecar.istio.io/exclude*` annotations).
    #[serde(default)]
    pub no_capture_exclusions: bool,
    /// Every namespace with workloads has an AuthorizationPolicy (or the
    /// root namespace has one for the mesh).
    #[serde(default)]
    pub require_authorization_policy: bool,
    /// With `requireAuthorizationPolicy`: the control plane makes an
    /// allow-nothing AuthorizationPolicy (`allow-nothing`) in each such
    /// namespace that has none of its users', until they write one.
    #[serde(default)]
    pub generate_default_deny: bool,
    /// No VirtualService host is or holds `*`
    /// (`restrict-virtual-service-wildcard`).
    #[serde(default)]
    pub no_wildcard_hosts: bool,
    /// Under capture, each pod is held to the mesh in its own namespace:
    /// a filter lets its traffic out and in only by its proxy's ways, and
    /// what tries another way is counted and logged (and dropped, when
    /// the Guardrail enforces).
    #[serde(default)]
    pub no_bypass: bool,
    /// Mesh-wide (in the root namespace), under capture: nothing leaves
    /// the mesh's network but through the egress gateway. What a pod
    /// sends beyond the mesh's ranges another way is counted and logged
    /// where the mesh meets the outside (and dropped, when the Guardrail
    /// enforces), whatever the pod does in its own namespace.
    #[serde(default)]
    pub egress_through_gateway: bool,
    /// The only namespaces that may declare MESH_EXTERNAL ServiceEntries
    /// (where egress is allowed); unset: any.
    pub external_service_entry_namespaces: Option<Vec<String>>,
}
