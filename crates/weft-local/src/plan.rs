//! Where everything of a local mesh listens.
//!
//! Every workload replica has its own loopback address (the compiler's
//! plan: 127.0.10.1, .2, …), so it keeps its declared ports. Its sidecar
//! owns that address: inbound listeners on the declared ports, the
//! outbound HTTP proxy on 15001, the admin port on 15020, and a loopback
//! listener per reachable TCP service. The application itself listens on
//! the twin address one step up in the third octet (127.0.11.x), reached
//! only through the sidecar.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use weft_api::resource::{Resource, Spec};
use weft_api::types::weft::Workload;
use weft_compile::registry::Instance;
use weft_compile::ProxyRef;
use weft_model::{Direction, ListenerTarget};

use weft_control::store::Config;

pub const OUTBOUND_PORT: u16 = 15001;
pub const PROXY_ADMIN_PORT: u16 = 15020;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarPlan {
    /// `namespace/instance`.
    pub name: String,
    pub instance: String,
    pub workload: String,
    pub namespace: String,
    pub ip: Ipv4Addr,
    pub app_ip: Ipv4Addr,
    /// The node it runs on.
    pub node: Option<String>,
    /// Declared ports (the app listens on `app_ip` with the same numbers).
    pub ports: Vec<u32>,
    /// TCP service listener name → (local address, environment prefix).
    pub tcp: Vec<(String, SocketAddr, String)>,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Worker threads for the sidecar, from Istio's `proxy.istio.io/config`
    /// annotation (`concurrency: N`); `None` takes the proxy's default.
    pub concurrency: Option<u32>,
    /// Under capture, what the pod's annotations ask of it (`None`:
    /// `sidecar.istio.io/interceptionMode: NONE`), or why they cannot be
    /// used.
    pub capture: Result<Option<weft_capture::Capture>, weft_capture::SettingsError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayPlan {
    pub name: String,
    /// The model's gateway ports and where each binds.
    pub listens: Vec<(u32, SocketAddr)>,
    /// What the proxy is told: ports that bind somewhere other than
    /// `listen_ip:port`, and `listen_ip`, where the others bind with
    /// their own number.
    pub binds: Vec<(u32, SocketAddr)>,
    pub listen_ip: IpAddr,
    pub admin: SocketAddr,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub sidecars: Vec<SidecarPlan>,
    pub gateways: Vec<GatewayPlan>,
    /// Replicas that cannot run (`namespace/name`, why): no node fits
    /// them, or their node has no pod range.
    pub pending: Vec<(String, String)>,
}

impl SidecarPlan {
    pub fn outbound(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), OUTBOUND_PORT)
    }

    pub fn admin(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), PROXY_ADMIN_PORT)
    }

    pub fn app(&self, port: u32) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.app_ip), port as u16)
    }
}

/// `reviews.default.svc.cluster.local` → `REVIEWS`, as Kubernetes names
/// service environment variables.
fn env_prefix(host: &str) -> String {
    host.split('.')
        .next()
        .unwrap_or(host)
        .to_ascii_uppercase()
        .replace('-', "_")
}

/// What a replica runs: a Workload's command, or the command of a
/// Deployment's first container, with its environment.
struct Runnable<'a> {
    command: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    /// The pod's annotations (a Workload's own).
    annotations: &'a BTreeMap<String, String>,
}

/// What `inst` runs, or why it cannot start (a ConfigMap or Secret its
/// environment needs is missing, as Kubernetes' CreateContainerConfigError).
fn runnable_of<'a>(
    resources: &'a [Resource],
    inst: &Instance,
) -> Option<Result<Runnable<'a>, String>> {
    let r = resources.iter().find(|r| r.key() == inst.origin)?;
    match &r.spec {
        Spec::Workload(w) => Some(Ok(workload_runnable(r, w))),
        Spec::Deployment(d) => {
            let c = d.template.spec.local_container()?;
            let lookup =
                |kind: &str, name: &str| config_data(resources, &inst.namespace, kind, name);
            Some(
                c.environment(&lookup)
                    .map(|env| Runnable {
                        command: c.command[0].clone(),
                        args: c.command[1..].iter().chain(&c.args).cloned().collect(),
                        env,
                        annotations: &d.template.metadata.annotations,
                    })
                    .map_err(|e| format!("CreateContainerConfigError: {e}")),
            )
        }
        _ => None,
    }
}

fn workload_runnable<'a>(r: &'a Resource, w: &'a Workload) -> Runnable<'a> {
    Runnable {
        command: w.command.clone(),
        args: w.args.clone(),
        env: w.env.0.clone(),
        annotations: &r.meta.annotations,
    }
}

/// A ConfigMap's data, or a Secret's as text, in `namespace`.
fn config_data(
    resources: &[Resource],
    namespace: &str,
    kind: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    resources.iter().find_map(|r| {
        if r.namespace() != namespace || r.name() != name {
            return None;
        }
        match &r.spec {
            Spec::ConfigMap(c) if kind == "ConfigMap" => Some(c.data.clone()),
            Spec::Secret(s) if kind == "Secret" => Some(
                s.data
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect(),
            ),
            _ => None,
        }
    })
}

/// Plans every sidecar and gateway of `config`. `ingress` is where the
/// ingress gateway's port 8080 listens; other gateway ports keep their
/// number on the same address.
/// Under `capture`, each replica's application listens on the replica's
/// own address (its pod's) and TCP services are reached at theirs.
pub fn plan(config: &Config, ingress: SocketAddr, capture: bool) -> Plan {
    let mut out = Plan::default();
    for inst in &config.registry.instances {
        let w = match runnable_of(&config.resources, inst) {
            None => continue,
            Some(Ok(w)) => w,
            Some(Err(why)) => {
                out.pending
                    .push((format!("{}/{}", inst.namespace, inst.name), why));
                continue;
            }
        };
        if let Some(why) = &inst.pending {
            out.pending
                .push((format!("{}/{}", inst.namespace, inst.name), why.clone()));
            continue;
        }
        let Some(ip) = inst.ip.as_deref().and_then(|i| i.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        let o = ip.octets();
        let app_ip = if capture {
            ip
        } else {
            Ipv4Addr::new(o[0], o[1], o[2].wrapping_add(1), o[3])
        };
        let name = format!("{}/{}", inst.namespace, inst.name);
        let mut used: BTreeSet<u16> = inst.ports.iter().map(|(_, p)| *p as u16).collect();
        used.insert(OUTBOUND_PORT);
        used.insert(PROXY_ADMIN_PORT);
        let mut tcp = Vec::new();
        if let Some(c) = config.models.get(&name) {
            for l in &c.model.listeners {
                if l.direction == Direction::Outbound && matches!(l.target, ListenerTarget::Tcp(_))
                {
                    if capture {
                        if let Some(vip) = l.addresses.iter().find_map(|a| a.parse::<IpAddr>().ok())
                        {
                            tcp.push((
                                l.name.clone(),
                                SocketAddr::new(vip, l.port as u16),
                                env_prefix(&l.service),
                            ));
                        }
                        continue;
                    }
                    // Loopback mode runs without root: a privileged port
                    // (a gateway Service's 443) moves up as a taken one.
                    let mut port = l.port as u16;
                    while used.contains(&port) || port < 1024 {
                        port = port.wrapping_add(10_000).max(1024);
                    }
                    used.insert(port);
                    tcp.push((
                        l.name.clone(),
                        SocketAddr::new(IpAddr::V4(ip), port),
                        env_prefix(&l.service),
                    ));
                }
            }
        }
        out.sidecars.push(SidecarPlan {
            name,
            instance: inst.name.clone(),
            workload: inst.workload.clone(),
            namespace: inst.namespace.clone(),
            ip,
            app_ip,
            node: inst.node.clone(),
            ports: inst.ports.iter().map(|(_, p)| *p).collect(),
            tcp,
            command: w.command.clone(),
            args: w.args.clone(),
            env: w.env.clone(),
            labels: inst.labels.clone(),
            service_account: inst.service_account.clone(),
            // A malformed annotation is a `weft validate` warning; the
            // proxy's default applies.
            concurrency: weft_api::annotations::proxy_concurrency(w.annotations)
                .ok()
                .flatten(),
            capture: weft_capture::Capture::from_annotations(w.annotations),
        });
    }
    for (name, c) in &config.models {
        if !matches!(c.proxy, ProxyRef::Gateway { .. }) || c.model.listeners.is_empty() {
            continue;
        }
        // The ingress gateway listens where the user reaches it; another
        // on its own address, which the control plane gave it.
        let ip = config
            .registry
            .gateway_addresses
            .get(name)
            .map_or(ingress.ip(), |ip| IpAddr::V4(*ip));
        let http = if ip == ingress.ip() {
            ingress
        } else {
            SocketAddr::new(ip, 8080)
        };
        // As Istio's gateway Services: 80 and 8080 reach the gateway's
        // port 8080, 443 and 8443 its port 8443; other ports bind its
        // address as numbered (`listen_ip`). Fixed, so that a Gateway
        // server added or removed changes the proxy's model, not its
        // command line: it binds and unbinds without a restart.
        let tls = SocketAddr::new(ip, 8443);
        let binds = vec![(80, http), (8080, http), (443, tls), (8443, tls)];
        let listens = c
            .model
            .listeners
            .iter()
            .map(|l| {
                let addr = binds
                    .iter()
                    .find(|(p, _)| *p == l.port)
                    .map_or(SocketAddr::new(ip, l.port as u16), |(_, a)| *a);
                (l.port, addr)
            })
            .collect();
        out.gateways.push(GatewayPlan {
            name: name.clone(),
            listens,
            binds,
            listen_ip: ip,
            admin: SocketAddr::new(ip, 15021),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_names() {
        assert_eq!(
            super::env_prefix("tcp-echo.default.svc.cluster.local"),
            "TCP_ECHO"
        );
    }
}
