//! Resources + registry + one proxy's identity → that proxy's model.
//!
//! The compiler is pure: no sockets, no clock, no randomness. The same
//! inputs give byte-identical models, so golden tests can pin them and the
//! control plane can tell when a push changes nothing.

mod carry;
mod clusters;
mod delegation;
mod index;
mod network_policy;
mod routes;
mod security;
mod telemetry;
mod trust_domain;

use std::collections::BTreeSet;
use std::sync::Arc;

use weft_api::resource::Resource;
use weft_api::types::common::Labels;
use weft_model::{
    names, Direction, Listener, ListenerTarget, ProxyIdentity, ProxyKind, ProxyModel, MODEL_VERSION,
};

use crate::registry::{labels_match, MeshConfig, Registry};

pub use carry::{Carry, Reuse};
pub use index::Index;

/// Which proxy to compile for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRef {
    /// The sidecar of a workload instance (`reviews-v1-0`) or of every
    /// instance of a workload (`reviews-v1`: the first replica).
    Sidecar { namespace: String, name: String },
    /// A gateway from the mesh configuration (`istio-ingressgateway`).
    Gateway { namespace: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    #[error("{0}")]
    UnknownProxy(String),
}

/// Everything compilation needs, built once per configuration and shared by
/// every proxy's compile.
pub struct Compiler<'a> {
    pub mesh: &'a MeshConfig,
    pub registry: &'a Registry,
    pub index: Index<'a>,
    /// Clusters and sidecars' virtual hosts built so far, shared by every
    /// proxy compiled from this configuration, with what the last one
    /// built (see `carry`).
    carry: Carry,
    revisions: carry::Revisions,
    /// Sidecars' outbound sides built so far, by what they depend on.
    views: routes::ViewMemo,
    rules_select_workloads: std::sync::OnceLock<bool>,
    /// The mesh's VirtualServices by host, built on first use.
    mesh_routes: std::sync::OnceLock<routes::MeshRoutes>,
}

/// Who the proxy is, as the compiler needs it.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub kind: ProxyKind,
    pub workload: String,
    pub namespace: String,
    pub labels: Labels,
    pub service_account: String,
    pub ports: Vec<(String, u32)>,
    pub locality: String,
}

impl Me {
    pub(crate) fn sidecar(inst: &crate::registry::Instance) -> Me {
        Me {
            kind: ProxyKind::Sidecar,
            workload: inst.workload.clone(),
            namespace: inst.namespace.clone(),
            labels: inst.labels.clone(),
            service_account: inst.service_account.clone(),
            ports: inst.ports.clone(),
            locality: inst.locality.clone(),
        }
    }
}

impl<'a> Compiler<'a> {
    pub fn new(resources: &'a [Resource], registry: &'a Registry, mesh: &'a MeshConfig) -> Self {
        Compiler::carrying(resources, registry, mesh, Carry::one_off())
    }

    /// A compiler that takes what `carry`'s compile built wherever its
    /// inputs are unchanged ([`Compiler::into_carry`] hands it on).
    pub fn carrying(
        resources: &'a [Resource],
        registry: &'a Registry,
        mesh: &'a MeshConfig,
        mut carry: Carry,
    ) -> Self {
        let index = Index::new(resources);
        let revisions = carry.revise(&index, registry, mesh);
        Compiler {
            mesh,
            registry,
            index,
            carry,
            revisions,
            views: routes::ViewMemo::default(),
            rules_select_workloads: std::sync::OnceLock::new(),
            mesh_routes: std::sync::OnceLock::new(),
        }
    }

    /// What this compile built so far, and took from the last.
    pub fn reuse(&self) -> Reuse {
        self.carry.counts()
    }

    /// What this compile built and used, for the next configuration's.
    pub fn into_carry(self) -> Carry {
        self.carry.hand_on()
    }

    /// Every proxy this configuration implies: one sidecar per replica
    /// the mesh runs (a Workload's, a Deployment's that names a local
    /// command) and per VM registered by its proxy, and every configured
    /// gateway.
    pub fn proxies(&self) -> Vec<ProxyRef> {
        let mut out: Vec<ProxyRef> = self
            .registry
            .instances
            .iter()
            .filter(|i| i.meshed && (i.runs_locally || i.auto_registered))
            .map(|i| ProxyRef::Sidecar {
                namespace: i.namespace.clone(),
                name: i.name.clone(),
            })
            .collect();
        out.extend(self.mesh.gateways.iter().map(|g| ProxyRef::Gateway {
            namespace: g.namespace.clone(),
            name: g.name.clone(),
        }));
        out
    }

    pub(crate) fn me(&self, proxy: &ProxyRef) -> Result<Me, CompileError> {
        match proxy {
            ProxyRef::Sidecar { namespace, name } => {
                let inst = self
                    .registry
                    .instances_in(namespace)
                    .find(|i| &i.name == name || &i.workload == name)
                    .ok_or_else(|| {
                        let known: Vec<String> = self
                            .registry
                            .instances
                            .iter()
                            .map(|i| format!("{}/{}", i.namespace, i.workload))
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                            .collect();
                        CompileError::UnknownProxy(format!(
                            "no workload {namespace}/{name}; known workloads: {}",
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ))
                    })?;
                Ok(Me::sidecar(inst))
            }
            ProxyRef::Gateway { namespace, name } => {
                let gw = self
                    .mesh
                    .gateways
                    .iter()
                    .find(|g| &g.namespace == namespace && &g.name == name)
                    .ok_or_else(|| {
                        CompileError::UnknownProxy(format!("no gateway {namespace}/{name}"))
                    })?;
                Ok(Me {
                    kind: ProxyKind::Gateway,
                    workload: gw.name.clone(),
                    namespace: gw.namespace.clone(),
                    labels: gw.labels.clone(),
                    service_account: gw.service_account.clone(),
                    ports: gw.ports.iter().map(|p| (String::new(), *p)).collect(),
                    locality: String::new(),
                })
            }
        }
    }

    /// What a proxy's model depends on: replicas of one workload share it
    /// (identity, labels, ports, locality), so the control plane compiles
    /// each shape once rather than once per replica.
    pub fn shape(&self, proxy: &ProxyRef) -> Result<String, CompileError> {
        Ok(format!("{:?}", self.me(proxy)?))
    }

    /// Compiles the model of one proxy.
    pub fn compile(&self, proxy: &ProxyRef) -> Result<ProxyModel, CompileError> {
        let me = self.me(proxy)?;
        let mut out = routes::Output::default();
        // A sidecar's outbound side is shared, its route tables (a
        // sidecar has none of its own) and, where it names no cluster of
        // its own, its clusters.
        let mut outbound = None;
        match me.kind {
            ProxyKind::Sidecar => {
                self.inbound_listeners(&me, &mut out);
                let shared = routes::sidecar_outbound_shared(self, &me);
                out.listeners.extend(shared.listeners.iter().cloned());
                outbound = Some(shared);
            }
            ProxyKind::Gateway => routes::gateway(self, &me, &mut out),
        }
        let security = security::build(self, &me);
        let telemetry = telemetry::build(self, &me);
        // Collectors and authorizers the proxy itself calls need clusters
        // even where no route leads to them (a gateway's routes name only
        // what it exposes).
        let providers = telemetry
            .tracing
            .iter()
            .map(|t| t.authority.as_str())
            .chain(security.ext_authz.iter().map(|p| p.authority.as_str()));
        for authority in providers {
            if let Some((host, port)) = authority
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u32>().ok()?)))
            {
                let key = routes::ClusterKey {
                    host: host.to_owned(),
                    port,
                    subset: String::new(),
                };
                let in_outbound = outbound.as_ref().is_some_and(|o| o.clusters.contains(&key));
                if self.registry.service(host).is_some() && !in_outbound {
                    out.clusters.insert(key);
                }
            }
        }
        let clusters = match &outbound {
            // Where no DestinationRule selects workloads, a sidecar's
            // clusters depend only on its namespace, as its outbound side
            // does: built once for every sidecar that shares it.
            Some(shared) if out.clusters.is_empty() && !self.rules_select_workloads() => shared
                .built
                .get_or_init(|| Arc::new(clusters::build(self, &me, &shared.clusters)))
                .clone(),
            Some(shared) => {
                out.clusters.extend(shared.clusters.iter().cloned());
                Arc::new(clusters::build(self, &me, &out.clusters))
            }
            None => Arc::new(clusters::build(self, &me, &out.clusters)),
        };
        out.listeners
            .sort_by(|a, b| (a.direction, a.port, &a.name).cmp(&(b.direction, b.port, &b.name)));
        let route_tables = match &outbound {
            Some(shared) => shared.route_tables.clone(),
            None => {
                out.route_tables.sort_by(|a, b| a.name.cmp(&b.name));
                Arc::new(out.route_tables)
            }
        };
        Ok(ProxyModel {
            model_version: MODEL_VERSION,
            proxy: ProxyIdentity {
                kind: me.kind,
                workload: me.workload.clone(),
                namespace: me.namespace.clone(),
                labels: me.labels.clone(),
                service_account: me.service_account.clone(),
                spiffe_id: names::spiffe_id(
                    &self.mesh.trust_domain,
                    &me.namespace,
                    &me.service_account,
                ),
                locality: me.locality.clone(),
            },
            listeners: out.listeners,
            route_tables,
            clusters,
            security,
            telemetry,
            http: weft_model::HttpSettings {
                path_normalization: self.index.mesh_config.path_normalization(),
                outbound: self.outbound_policy(&me),
            },
        })
    }

    /// Istio's `outboundTrafficPolicy` for a sidecar: the Sidecar's that
    /// scopes it, else MeshConfig's, else ALLOW_ANY. A gateway's is
    /// ALLOW_ANY: it routes only what its Gateways and routes name.
    fn outbound_policy(&self, me: &Me) -> weft_model::OutboundPolicy {
        use weft_api::types::networking::OutboundMode;
        if me.kind != weft_model::ProxyKind::Sidecar {
            return weft_model::OutboundPolicy::AllowAny;
        }
        let mode = routes::sidecar_for(self, me)
            .and_then(|(_, s)| s.outbound_traffic_policy.as_ref()?.mode)
            .or_else(|| {
                self.index
                    .mesh_config
                    .outbound_traffic_policy
                    .as_ref()?
                    .mode
            });
        match mode {
            Some(OutboundMode::RegistryOnly) => weft_model::OutboundPolicy::RegistryOnly,
            _ => weft_model::OutboundPolicy::AllowAny,
        }
    }

    /// Whether any DestinationRule has a workloadSelector (then which rule
    /// applies depends on a proxy's labels, not only its namespace).
    fn rules_select_workloads(&self) -> bool {
        *self.rules_select_workloads.get_or_init(|| {
            self.index
                .destination_rules
                .iter()
                .any(|(_, dr)| dr.workload_selector.is_some())
        })
    }

    /// One inbound listener per declared workload port, delivering to the
    /// application. Its protocol comes from the Service port that targets it.
    fn inbound_listeners(&self, me: &Me, out: &mut routes::Output) {
        for (port_name, port) in &me.ports {
            let mut services: Vec<_> = self
                .registry
                .services
                .values()
                .filter(|s| {
                    s.namespace == me.namespace
                        && s.selector
                            .as_ref()
                            .is_some_and(|sel| !sel.is_empty() && labels_match(sel, &me.labels))
                })
                .flat_map(|s| s.ports.iter().map(move |p| (s, p)))
                .filter(|(_, p)| match &p.target {
                    crate::registry::TargetPort::Number(n) => n == port,
                    crate::registry::TargetPort::Name(n) => n == port_name,
                })
                .collect();
            // Deterministic: the first service by host names the port.
            services.sort_by(|a, b| a.0.host.cmp(&b.0.host));
            let protocol = services
                .first()
                .map(|(_, p)| p.protocol)
                .unwrap_or_else(|| crate::registry::protocol_of(port_name, None));
            let service = services
                .first()
                .map(|(s, _)| s.host.clone())
                .unwrap_or_default();
            out.listeners.push(Listener {
                name: format!("inbound|{port}"),
                direction: Direction::Inbound,
                port: *port,
                service,
                bind: String::new(),
                addresses: Vec::new(),
                protocol,
                target: ListenerTarget::Local { app_port: *port },
                tls: Vec::new(),
            });
        }
    }
}

/// Routing rules the analyzers apply exactly as the compiler does.
pub mod routes_support {
    pub use super::clusters::destination_rule_for_namespace;
    pub use super::routes::{binds_mesh, egress_host_covers, qualify_gateway, server_host_admits};
}

impl Compiler<'_> {
    /// The inbound mTLS policy of a workload instance, for analyzers.
    pub fn peer_policy_of(&self, inst: &crate::registry::Instance) -> weft_model::MtlsPolicy {
        security::peer_mode(self, &Me::sidecar(inst))
    }
}
