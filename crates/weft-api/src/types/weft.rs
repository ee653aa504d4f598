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
