//! The service registry: which services exist, on which ports, and which
//! workload instances back them. Built from Services, ServiceEntries,
//! WorkloadEntries, WorkloadGroups, Deployments, Pods and weft Workloads.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use weft_api::resource::{Resource, ResourceKey, Spec};
use weft_api::types::common::{IntOrString, Labels};
use weft_api::types::networking::{Location, Resolution};
use weft_model::Protocol;

/// Mesh-wide settings (Istio's MeshConfig, the parts weft uses).
#[derive(Debug, Clone)]
pub struct MeshConfig {
    pub trust_domain: String,
    /// Policies here apply mesh-wide (Istio's `istio-system`).
    pub root_namespace: String,
    pub domain_suffix: String,
    /// Local mode gives every workload replica its own loopback address,
    /// counting up from here, so each can keep its declared ports.
    pub local_address_base: Ipv4Addr,
    /// Where replicas' addresses are remembered, so that they stay put
    /// while the mesh changes; without one (offline, `weft proxy-config`)
    /// they are given in name order.
    pub addresses: Option<std::sync::Arc<dyn AddressBook>>,
    /// The gateways local mode runs, as Istio installs them.
    pub gateways: Vec<GatewayInstance>,
    /// Under transparent capture, services that declare no address (a
    /// Service without `clusterIP`, a ServiceEntry without `addresses`,
    /// as Istio's DNS auto-allocation) get one counting up from here, so
    /// a connection can be routed by where it was going and DNS can
    /// answer for the name. `None` (loopback mode): no addresses.
    pub service_address_base: Option<Ipv4Addr>,
    /// Where services' addresses are remembered, as replicas' are.
    pub service_addresses: Option<std::sync::Arc<dyn AddressBook>>,
    /// Under transparent capture, each node's pods take addresses from
    /// its pod range (see [`crate::nodes`]); `None` (loopback mode): from
    /// `local_address_base`.
    pub pod_ranges: Option<crate::nodes::PodRanges>,
}

/// Gives each local replica (`namespace/name`) its address for as long as
/// the mesh lives: an address, once given, belongs to that replica alone.
pub trait AddressBook: std::fmt::Debug + Send + Sync {
    /// The addresses of `replicas` (in name order) from `pool`, those seen
    /// before keeping theirs while it still holds them.
    fn assign(&self, pool: &Pool, replicas: &[String]) -> BTreeMap<String, Ipv4Addr>;
}

/// Where a kind of address comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pool {
    /// Counting up from a base as [`local_address`] does (loopback
    /// replicas, service addresses).
    Local(Ipv4Addr),
    /// A node's pods: the hosts of its range from the third address on
    /// (the second is the node's bridge).
    Hosts(Ipv4Net),
    /// Nodes' pod ranges: ranges of `first`'s size one after another
    /// within its /16, skipping those that overlap `avoid` (ranges nodes
    /// declare).
    Subnets { first: Ipv4Net, avoid: Vec<Ipv4Net> },
}

impl Pool {
    /// Its `n`th address, whether or not it may be given; `None` past its
    /// end.
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        match self {
            Pool::Local(base) => (n < 64 * 254).then(|| local_address(*base, n)),
            Pool::Hosts(net) => {
                let ip = u32::from(net.network()).checked_add(2)?.checked_add(n)?;
                (ip < u32::from(net.broadcast())).then(|| Ipv4Addr::from(ip))
            }
            Pool::Subnets { first, .. } => {
                let size = 1u32.checked_shl(32 - u32::from(first.prefix_len()))?;
                let ip = u32::from(first.network()).checked_add(n.checked_mul(size)?)?;
                let block = u32::from(first.network()) & 0xffff_0000;
                (ip & 0xffff_0000 == block).then(|| Ipv4Addr::from(ip))
            }
        }
    }

    /// Whether `ip` may be given from it.
    pub fn allows(&self, ip: Ipv4Addr) -> bool {
        match self {
            Pool::Local(base) => {
                let ([a, b, c, d], [ba, bb, bc, bd]) = (ip.octets(), base.octets());
                a == ba
                    && b >= bb
                    && (c, d) >= (bc, bd.max(1))
                    && d != 0
                    && d != 255
                    && (u32::from(b) * 256 + u32::from(c) - u32::from(bc)) % 2 == 0
            }
            Pool::Hosts(net) => {
                net.contains(&ip)
                    && u32::from(ip) >= u32::from(net.network()) + 2
                    && ip != net.broadcast()
            }
            Pool::Subnets { first, avoid } => {
                let Ok(net) = Ipv4Net::new(ip, first.prefix_len()) else {
                    return false;
                };
                net.network() == ip
                    && u32::from(ip) & 0xffff_0000 == u32::from(first.network()) & 0xffff_0000
                    && ip >= first.network()
                    && !avoid
                        .iter()
                        .any(|a| a.contains(&net.network()) || net.contains(&a.network()))
            }
        }
    }

    /// Addresses for `names` in name order, as without a book.
    pub fn in_order(&self, names: &[String]) -> BTreeMap<String, Ipv4Addr> {
        let mut free = (0..)
            .map_while(|n| self.nth(n))
            .filter(|ip| self.allows(*ip));
        names
            .iter()
            .map_while(|r| Some((r.clone(), free.next()?)))
            .collect()
    }
}

/// The `n`th local replica address from `base`. Replicas take every other
/// /24 counting from `base`'s (127.0.10.x, 127.0.12.x, …) and skip `.0`
/// and `.255`: each one's application listens on its twin one up in the
/// third octet (127.0.11.x), which must never be another replica's.
pub fn local_address(base: Ipv4Addr, n: u32) -> Ipv4Addr {
    let [a, b, c, d] = base.octets();
    let first = u32::from(d.max(1));
    let per_block = 255 - first;
    let block = n / per_block;
    let third = u32::from(c) + 2 * block;
    Ipv4Addr::new(
        a,
        b.saturating_add(u8::try_from(third / 256).unwrap_or(u8::MAX)),
        (third % 256) as u8,
        (first + n % per_block) as u8,
    )
}

#[derive(Debug, Clone)]
pub struct GatewayInstance {
    pub name: String,
    pub namespace: String,
    pub labels: Labels,
    pub service_account: String,
    /// Ports a Gateway server may name for it: its container ports
    /// (Istio's 8080/8443) and the ports of Istio's default gateway Service
    /// in front of them (80→8080, 443→8443, and 15021 for status).
    pub ports: Vec<u32>,
    /// Where it listens, when the mesh runs it (`weft up`); otherwise a
    /// running loopback mesh gives it an address after its replicas'.
    pub address: Option<Ipv4Addr>,
}

/// The ports of the Service Istio's install puts in front of each gateway
/// (`istio-ingressgateway`, `istio-egressgateway`): name, port, the
/// gateway's container port.
const GATEWAY_SERVICE_PORTS: [(&str, u32, u32); 2] = [("http2", 80, 8080), ("https", 443, 8443)];

impl MeshConfig {
    /// The mesh with its gateways at the addresses `given` names them
    /// (`istio-egressgateway` → IP); the others have none given.
    pub fn with_gateway_addresses(mut self, given: &[(String, Ipv4Addr)]) -> MeshConfig {
        for g in &mut self.gateways {
            g.address = given
                .iter()
                .find(|(name, _)| *name == g.name)
                .map(|(_, ip)| *ip);
        }
        self
    }
}

impl Default for MeshConfig {
    fn default() -> Self {
        let gw = |name: &str, istio: &str| GatewayInstance {
            name: name.into(),
            namespace: "istio-system".into(),
            labels: [("app", name), ("istio", istio)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            service_account: format!("{name}-service-account"),
            ports: vec![15021, 80, 8080, 443, 8443],
            address: None,
        };
        MeshConfig {
            trust_domain: "cluster.local".into(),
            root_namespace: "istio-system".into(),
            domain_suffix: "cluster.local".into(),
            local_address_base: Ipv4Addr::new(127, 0, 10, 1),
            addresses: None,
            service_address_base: None,
            service_addresses: None,
            pod_ranges: None,
            gateways: vec![
                gw("istio-ingressgateway", "ingressgateway"),
                gw("istio-egressgateway", "egressgateway"),
            ],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    Number(u32),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    pub name: String,
    pub number: u32,
    pub protocol: Protocol,
    pub target: TargetPort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSource {
    Kubernetes,
    ServiceEntry {
        external: bool,
        resolution: ResolutionKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolutionKind {
    None,
    Static,
    Dns,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Fully qualified host: `reviews.default.svc.cluster.local`.
    pub host: String,
    pub name: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    /// Pods/workloads selected; `None` when endpoints are listed instead.
    pub selector: Option<Labels>,
    pub export_to: Vec<String>,
    pub addresses: Vec<String>,
    pub source: ServiceSource,
    /// Endpoints written in a ServiceEntry.
    pub listed_endpoints: Vec<ListedEndpoint>,
    pub origin: ResourceKey,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListedEndpoint {
    pub address: String,
    /// The workload behind it when the mesh knows one (a gateway's).
    pub workload: String,
    /// Whether Istio's auto mTLS may choose mutual TLS for it (its pod
    /// would carry `security.istio.io/tlsMode: istio`). A gateway's does
    /// not: it is reached in plain text unless a DestinationRule asks for
    /// ISTIO_MUTUAL.
    pub auto_mtls: bool,
    pub ports: BTreeMap<String, u32>,
    pub labels: Labels,
    pub locality: String,
    pub weight: u32,
    pub service_account: String,
}

/// One running copy of a workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `reviews-v1-0` for a replica, or the resource name.
    pub name: String,
    /// The resource that declared it (`reviews-v1`).
    pub workload: String,
    pub namespace: String,
    pub labels: Labels,
    pub service_account: String,
    /// Declared ports, by name where they have one.
    pub ports: Vec<(String, u32)>,
    /// Its IP, when known before run time.
    pub ip: Option<String>,
    pub locality: String,
    pub weight: u32,
    /// Runs a weft sidecar (Workload, Pod, Deployment, WorkloadEntry).
    pub meshed: bool,
    /// Its pod carries `ambient.istio.io/redirection: enabled`, as Istio's
    /// CNI marks a pod whose traffic the node proxy takes (no sidecar).
    pub ambient: bool,
    /// The node it runs on (a Workload replica, a Pod with `nodeName`).
    pub node: Option<String>,
    /// A WorkloadEntry a VM's proxy registered (Istio's
    /// `istio.io/autoRegistrationGroup`): that proxy is served a model.
    pub auto_registered: bool,
    /// Why a Workload replica cannot run (no node fits it, its node has
    /// no pod range): it is pending, as a Kubernetes pod, and has no
    /// address.
    pub pending: Option<String>,
    /// A process this mesh runs itself, with a sidecar of its own: a
    /// Workload replica, or a Deployment's whose first container names a
    /// local command.
    pub runs_locally: bool,
    pub origin: ResourceKey,
}

impl Instance {
    pub fn selected_by(&self, namespace: &str, selector: &Labels) -> bool {
        self.namespace == namespace && labels_match(selector, &self.labels)
    }
}

/// A ServiceEntry address as the proxies match it: a prefix of one host
/// (`198.51.100.7/32`, `2001:db8::7/128`) is that host's address; a wider
/// range stays a range.
fn one_host(address: &str) -> String {
    match address.split_once('/') {
        Some((ip, "32")) if ip.parse::<std::net::Ipv4Addr>().is_ok() => ip.to_owned(),
        Some((ip, "128")) if ip.parse::<std::net::Ipv6Addr>().is_ok() => ip.to_owned(),
        _ => address.to_owned(),
    }
}

/// Every `key: value` of `selector` is in `labels`. An empty selector
/// matches everything, as in Kubernetes.
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Istio's protocol selection: `appProtocol` first, then the port name's
/// prefix (`http`, `http-web`, `grpc-api`, …), else unknown (sniffed).
pub fn protocol_of(name: &str, app_protocol: Option<&str>) -> Protocol {
    let from = |p: &str| match p.to_ascii_lowercase().as_str() {
        "http" | "http-web" | "kubernetes.io/http" => Some(Protocol::Http),
        "http2" | "kubernetes.io/h2c" => Some(Protocol::Http2),
        "grpc" | "grpc-web" => Some(Protocol::Grpc),
        "https" => Some(Protocol::Https),
        "tls" => Some(Protocol::Tls),
        "tcp" | "mongo" | "mysql" | "redis" => Some(Protocol::Tcp),
        _ => None,
    };
    if let Some(p) = app_protocol.and_then(from) {
        return p;
    }
    let prefix = name.split('-').next().unwrap_or(name);
    from(prefix).unwrap_or(Protocol::Unknown)
}

/// Addresses for `names` (in name order) from `pool`: those `book`
/// remembers, or, without one (offline), in name order.
fn assign(
    book: Option<&dyn AddressBook>,
    pool: &Pool,
    names: &[String],
) -> BTreeMap<String, Ipv4Addr> {
    match book {
        Some(book) => book.assign(pool, names),
        None => pool.in_order(names),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Where Workload replicas run (the implicit node when none is
    /// declared), in name order.
    pub nodes: Vec<crate::nodes::Node>,
    /// By fully qualified host.
    pub services: BTreeMap<String, Service>,
    pub instances: Vec<Instance>,
    /// Namespace → positions in `instances`, so that finding a service's
    /// endpoints or a proxy's instance looks at one namespace rather than
    /// the whole mesh (every compile asks, for every service it sees).
    by_namespace: std::collections::HashMap<String, Vec<usize>>,
    /// Hosts that declare no address and may be given one (see
    /// [`MeshConfig::service_address_base`]), as services are added.
    unaddressed: Vec<String>,
    /// The gateways' Services of those, given theirs last.
    unaddressed_gateways: Vec<String>,
    /// Each gateway's address (`namespace/name`), given or assigned.
    pub gateway_addresses: BTreeMap<String, Ipv4Addr>,
}

impl Registry {
    pub fn build(resources: &[Resource], mesh: &MeshConfig) -> Registry {
        let mut reg = Registry::default();
        for r in resources {
            reg.add_service(r, mesh);
        }
        reg.add_gateway_services(mesh);
        match mesh.service_address_base {
            Some(base) => reg.allocate_service_addresses(mesh, base),
            None => {
                reg.unaddressed = Vec::new();
                reg.unaddressed_gateways = Vec::new();
            }
        }
        reg.nodes = crate::nodes::nodes(
            resources,
            mesh.pod_ranges.as_ref(),
            mesh.addresses.as_deref(),
        );
        for r in resources {
            reg.add_instances(r);
        }
        reg.instances
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        reg.assign_replica_addresses(mesh);
        reg.add_gateway_endpoints(mesh);
        for (i, inst) in reg.instances.iter().enumerate() {
            reg.by_namespace
                .entry(inst.namespace.clone())
                .or_default()
                .push(i);
        }
        reg
    }

    /// Gives each placed Workload replica its address: under capture from
    /// its node's pod range, else a loopback one from
    /// `local_address_base` (and after them, the gateways given none).
    /// The address book keeps each where it was.
    fn assign_replica_addresses(&mut self, mesh: &MeshConfig) {
        let local = |i: &Instance| i.ip.is_none() && i.pending.is_none() && i.runs_locally;
        // Positions in `instances`, by the pool their addresses come from.
        let mut pools: Vec<(Pool, Vec<usize>)> = Vec::new();
        let placed = |instances: &[Instance], node: Option<&str>| -> Vec<usize> {
            instances
                .iter()
                .enumerate()
                .filter(|(_, i)| local(i) && (node.is_none() || i.node.as_deref() == node))
                .map(|(n, _)| n)
                .collect()
        };
        // In loopback mode, gateways without a given address take theirs
        // from the replicas' pool, after the replicas.
        let unaddressed_gateways: Vec<String> = mesh
            .gateways
            .iter()
            .filter(|g| g.address.is_none())
            .map(|g| format!("{}/{}", g.namespace, g.name))
            .collect();
        match &mesh.pod_ranges {
            None => pools.push((
                Pool::Local(mesh.local_address_base),
                placed(&self.instances, None),
            )),
            Some(_) => {
                for node in &self.nodes {
                    let on_node = placed(&self.instances, Some(&node.name));
                    match &node.pod_range {
                        Some(Ok(range)) => pools.push((Pool::Hosts(*range), on_node)),
                        Some(Err(why)) => {
                            for n in on_node {
                                self.instances[n].pending =
                                    Some(format!("its node {}: {why}", node.name));
                            }
                        }
                        None => {}
                    }
                }
            }
        }
        for (pool, members) in pools {
            let mut names: Vec<String> = members
                .iter()
                .map(|n| {
                    let i = &self.instances[*n];
                    format!("{}/{}", i.namespace, i.name)
                })
                .collect();
            let gateways = match pool {
                Pool::Local(_) => unaddressed_gateways.as_slice(),
                _ => &[],
            };
            names.extend(gateways.iter().cloned());
            let assigned = assign(mesh.addresses.as_deref(), &pool, &names);
            for (n, name) in members.into_iter().zip(&names) {
                let inst = &mut self.instances[n];
                match assigned.get(name) {
                    Some(ip) => inst.ip = Some(ip.to_string()),
                    None => inst.pending = Some(
                        "no address is left in its pool; fix: give its node a larger spec.podCIDR"
                            .into(),
                    ),
                }
            }
            for g in gateways {
                if let Some(ip) = assigned.get(g) {
                    self.gateway_addresses.insert(g.clone(), *ip);
                }
            }
        }
    }

    /// Istio's install puts a Service in front of each gateway it deploys;
    /// the mesh has them too (http2 80→8080, https 443→8443), so the
    /// egress tasks' VirtualServices can send to
    /// `istio-egressgateway.istio-system.svc.cluster.local`. A Service the
    /// configuration declares under the same name is kept as written.
    fn add_gateway_services(&mut self, mesh: &MeshConfig) {
        for g in &mesh.gateways {
            let host = format!("{}.{}.svc.{}", g.name, g.namespace, mesh.domain_suffix);
            if self.services.contains_key(&host) {
                continue;
            }
            self.unaddressed_gateways.push(host.clone());
            self.services.insert(
                host.clone(),
                Service {
                    host,
                    name: g.name.clone(),
                    namespace: g.namespace.clone(),
                    ports: GATEWAY_SERVICE_PORTS
                        .iter()
                        .map(|(name, port, target)| ServicePort {
                            name: (*name).to_owned(),
                            number: *port,
                            protocol: protocol_of(name, None),
                            target: TargetPort::Number(*target),
                        })
                        .collect(),
                    selector: Some(g.labels.clone()),
                    export_to: Vec::new(),
                    addresses: Vec::new(),
                    source: ServiceSource::Kubernetes,
                    listed_endpoints: Vec::new(),
                    origin: ResourceKey {
                        kind: weft_api::resource::ResourceKind::Service,
                        namespace: g.namespace.clone(),
                        name: g.name.clone(),
                    },
                },
            );
        }
    }

    /// Each gateway with an address is an endpoint of the Services in its
    /// namespace that select it, with its identity. Auto mTLS leaves it
    /// out, as Istio's gateway pods carry no `security.istio.io/tlsMode`
    /// label: plain text unless a DestinationRule says ISTIO_MUTUAL.
    fn add_gateway_endpoints(&mut self, mesh: &MeshConfig) {
        for g in &mesh.gateways {
            let key = format!("{}/{}", g.namespace, g.name);
            let Some(ip) = g
                .address
                .or_else(|| self.gateway_addresses.get(&key).copied())
            else {
                continue;
            };
            self.gateway_addresses.insert(key, ip);
            for svc in self.services.values_mut() {
                let selects = svc.namespace == g.namespace
                    && svc
                        .selector
                        .as_ref()
                        .is_some_and(|sel| !sel.is_empty() && labels_match(sel, &g.labels));
                if selects {
                    svc.listed_endpoints.push(ListedEndpoint {
                        address: ip.to_string(),
                        workload: g.name.clone(),
                        auto_mtls: false,
                        ports: BTreeMap::new(),
                        labels: g.labels.clone(),
                        locality: String::new(),
                        weight: 1,
                        service_account: g.service_account.clone(),
                    });
                }
            }
        }
    }

    /// Gives every service that declares no address one of its own (see
    /// [`MeshConfig::service_address_base`]). A headless Service
    /// (`clusterIP: None`), a wildcard host and a ServiceEntry with
    /// resolution NONE get none, as in Istio.
    fn allocate_service_addresses(&mut self, mesh: &MeshConfig, base: Ipv4Addr) {
        let mut hosts = std::mem::take(&mut self.unaddressed);
        hosts.sort();
        hosts.dedup();
        // The gateways' Services after the configuration's, so that
        // adding them moved no address a mesh gave before.
        hosts.extend(std::mem::take(&mut self.unaddressed_gateways));
        for (host, ip) in assign(
            mesh.service_addresses.as_deref(),
            &Pool::Local(base),
            &hosts,
        ) {
            if let Some(s) = self.services.get_mut(&host) {
                s.addresses = vec![ip.to_string()];
            }
        }
    }

    /// Where gateway `g` of the mesh listens, when it has an address.
    pub fn gateway_address(&self, g: &GatewayInstance) -> Option<Ipv4Addr> {
        self.gateway_addresses
            .get(&format!("{}/{}", g.namespace, g.name))
            .copied()
    }

    /// The instances in `namespace`, in registry order.
    pub fn instances_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Instance> + 'a {
        self.by_namespace
            .get(namespace)
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| self.instances.get(*i))
    }

    pub fn service(&self, host: &str) -> Option<&Service> {
        self.services.get(host)
    }

    /// Instances backing `svc` (selector match in its namespace).
    pub fn instances_of<'a>(&'a self, svc: &'a Service) -> impl Iterator<Item = &'a Instance> + 'a {
        let selector = svc.selector.as_ref().filter(|s| !s.is_empty());
        self.instances_in(&svc.namespace)
            .filter(move |i| selector.is_some_and(|sel| i.selected_by(&svc.namespace, sel)))
    }

    fn add_service(&mut self, r: &Resource, mesh: &MeshConfig) {
        match &r.spec {
            Spec::Service(s) => {
                let host = format!("{}.{}.svc.{}", r.name(), r.namespace(), mesh.domain_suffix);
                let export_to = r
                    .meta
                    .annotations
                    .get("networking.istio.io/exportTo")
                    .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                    .unwrap_or_default();
                let ports = s
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        name: p.name.clone(),
                        number: u32::try_from(p.port).unwrap_or(0),
                        protocol: protocol_of(&p.name, p.app_protocol.as_deref()),
                        target: match &p.target_port {
                            Some(IntOrString::Int(n)) => {
                                TargetPort::Number(u32::try_from(*n).unwrap_or(0))
                            }
                            Some(IntOrString::Str(s)) => TargetPort::Name(s.clone()),
                            None => TargetPort::Number(u32::try_from(p.port).unwrap_or(0)),
                        },
                    })
                    .collect();
                // A headless Service (`clusterIP: None`) gets none.
                if s.cluster_ip.is_none() && s.cluster_ips.is_empty() {
                    self.unaddressed.push(host.clone());
                }
                self.services.insert(
                    host.clone(),
                    Service {
                        host,
                        name: r.name().to_owned(),
                        namespace: r.namespace().to_owned(),
                        ports,
                        selector: if s.selector.is_empty() {
                            None
                        } else {
                            Some(s.selector.clone())
                        },
                        export_to,
                        addresses: s
                            .cluster_ip
                            .iter()
                            .filter(|ip| ip.as_str() != "None")
                            .cloned()
                            .collect(),
                        source: ServiceSource::Kubernetes,
                        listed_endpoints: Vec::new(),
                        origin: r.key(),
                    },
                );
            }
            Spec::ServiceEntry(se) => {
                let resolution = match se.resolution.unwrap_or(Resolution::None) {
                    Resolution::None => ResolutionKind::None,
                    Resolution::Static => ResolutionKind::Static,
                    Resolution::Dns | Resolution::DnsRoundRobin => ResolutionKind::Dns,
                    // Validation warns: the request goes where the
                    // application sent it, as with NONE.
                    Resolution::DynamicDns => ResolutionKind::None,
                };
                let external = se.location != Some(Location::MeshInternal);
                let ports: Vec<ServicePort> = se
                    .ports
                    .iter()
                    .map(|p| ServicePort {
                        name: p.name.clone(),
                        number: p.number,
                        protocol: protocol_of(
                            if p.protocol.is_empty() {
                                &p.name
                            } else {
                                &p.protocol
                            },
                            None,
                        ),
                        target: TargetPort::Number(p.target_port.unwrap_or(p.number)),
                    })
                    .collect();
                let listed: Vec<ListedEndpoint> = se
                    .endpoints
                    .iter()
                    .map(|e| ListedEndpoint {
                        address: e.address.clone(),
                        workload: String::new(),
                        auto_mtls: true,
                        ports: e.ports.clone(),
                        labels: e.labels.clone(),
                        locality: e.locality.clone(),
                        weight: e.weight.unwrap_or(1).max(1),
                        service_account: e.service_account.clone(),
                    })
                    .collect();
                for h in &se.hosts {
                    // ServiceEntry hosts are taken as written (short names
                    // resolve like any other host).
                    let host = crate::host::resolve(h, r.namespace(), &mesh.domain_suffix);
                    // Istio's auto-allocation: not for a wildcard host, nor
                    // with resolution NONE.
                    if se.addresses.is_empty()
                        && !h.starts_with('*')
                        && !matches!(se.resolution, None | Some(Resolution::None))
                        && !self.services.contains_key(&host)
                    {
                        self.unaddressed.push(host.clone());
                    }
                    self.services
                        .entry(host.clone())
                        .or_insert_with(|| Service {
                            host,
                            name: r.name().to_owned(),
                            namespace: r.namespace().to_owned(),
                            ports: ports.clone(),
                            selector: se.workload_selector.as_ref().map(|s| s.labels.clone()),
                            export_to: se.export_to.clone(),
                            addresses: se.addresses.iter().map(|a| one_host(a)).collect(),
                            source: ServiceSource::ServiceEntry {
                                external,
                                resolution,
                            },
                            listed_endpoints: listed.clone(),
                            origin: r.key(),
                        });
                }
            }
            _ => {}
        }
    }

    fn add_instances(&mut self, r: &Resource) {
        let nodes = crate::nodes::by_name(&self.nodes);
        let base = |name: String, labels: Labels, sa: &str, ports: Vec<(String, u32)>| Instance {
            name,
            workload: r.name().to_owned(),
            namespace: r.namespace().to_owned(),
            labels,
            service_account: if sa.is_empty() {
                "default".into()
            } else {
                sa.to_owned()
            },
            ports,
            ip: None,
            locality: String::new(),
            weight: 1,
            meshed: true,
            ambient: false,
            node: None,
            auto_registered: false,
            pending: None,
            runs_locally: false,
            origin: r.key(),
        };
        let redirected = |annotations: &std::collections::BTreeMap<String, String>| {
            annotations
                .get("ambient.istio.io/redirection")
                .is_some_and(|v| v == "enabled")
        };
        match &r.spec {
            Spec::Workload(w) => {
                let ports = w
                    .all_ports()
                    .into_iter()
                    .map(|p| (p.name, p.port))
                    .collect::<Vec<_>>();
                let key = format!("{}/{}", r.namespace(), r.name());
                for i in 0..w.replicas.unwrap_or(1) {
                    let mut inst = base(
                        format!("{}-{i}", r.name()),
                        r.meta.labels.clone(),
                        &w.service_account,
                        ports.clone(),
                    );
                    inst.runs_locally = true;
                    match crate::nodes::place(&self.nodes, &w.node_selector, &key, i) {
                        Ok(node) => {
                            on_node(&mut inst, node);
                            // The Workload's own locality wins over its node's.
                            if !w.locality.is_empty() {
                                set_locality(&mut inst, &w.locality);
                            }
                        }
                        Err(why) => inst.pending = Some(why),
                    }
                    self.instances.push(inst);
                }
            }
            Spec::Deployment(d) => {
                let ports = container_ports(&d.template.spec);
                let replicas = d.replicas.unwrap_or(1).max(0);
                let runs_locally = d.template.spec.local_container().is_some();
                let key = format!("{}/{}", r.namespace(), r.name());
                for i in 0..replicas {
                    let mut inst = base(
                        format!("{}-{i}", r.name()),
                        d.template.metadata.labels.clone(),
                        d.template.spec.service_account(),
                        ports.clone(),
                    );
                    inst.ambient = redirected(&d.template.metadata.annotations);
                    // A Deployment that names a local command runs here,
                    // placed on nodes as a Workload's replicas are.
                    if runs_locally {
                        inst.runs_locally = true;
                        let replica = u32::try_from(i).unwrap_or(0);
                        match crate::nodes::place(
                            &self.nodes,
                            &d.template.spec.node_selector,
                            &key,
                            replica,
                        ) {
                            Ok(node) => on_node(&mut inst, node),
                            Err(why) => inst.pending = Some(why),
                        }
                    }
                    self.instances.push(inst);
                }
            }
            Spec::Pod(p) => {
                let mut inst = base(
                    r.name().to_owned(),
                    r.meta.labels.clone(),
                    p.service_account(),
                    container_ports(p),
                );
                inst.ambient = redirected(&r.meta.annotations);
                // As Istio's registry does (AugmentLabels), a pod carries
                // its node's name and its locality's non-empty parts as
                // topology labels, on which subsets may select; the
                // locality is the pod's `istio-locality` label, else its
                // node's topology labels.
                let node = p.node_name.as_deref().filter(|n| !n.is_empty());
                match node.and_then(|n| nodes.get(n)) {
                    Some(known) if known.declared => on_node(&mut inst, known),
                    _ => {
                        if let Some(n) = node {
                            inst.labels
                                .insert(crate::nodes::HOSTNAME.into(), n.to_owned());
                            inst.node = Some(n.to_owned());
                        }
                    }
                }
                if let Some(l) = r.meta.labels.get("istio-locality") {
                    set_locality(&mut inst, &l.replace('.', "/"));
                }
                self.instances.push(inst);
            }
            Spec::WorkloadEntry(we) => {
                let mut inst = base(
                    r.name().to_owned(),
                    we.labels.clone(),
                    &we.service_account,
                    we.ports.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                );
                // WorkloadEntry labels may also sit in metadata, as Istio allows.
                for (k, v) in &r.meta.labels {
                    inst.labels.entry(k.clone()).or_insert_with(|| v.clone());
                }
                inst.ip = Some(we.address.clone()).filter(|a| !a.is_empty());
                inst.auto_registered = r
                    .meta
                    .annotations
                    .contains_key("istio.io/autoRegistrationGroup");
                inst.locality = we.locality.clone();
                inst.weight = we.weight.unwrap_or(1).max(1);
                self.instances.push(inst);
            }
            _ => {}
        }
    }
}

/// Places `inst` on `node`: its name and topology become the instance's
/// labels (as Istio's registry augments a pod's), and its locality the
/// instance's.
fn on_node(inst: &mut Instance, node: &crate::nodes::Node) {
    inst.node = Some(node.name.clone());
    // The implicit node is no Node of the user's: it lends no label.
    if node.declared {
        inst.labels
            .insert(crate::nodes::HOSTNAME.into(), node.name.clone());
    }
    if !node.locality.is_empty() {
        set_locality(inst, &node.locality);
    }
}

/// `region/zone/subzone` as the instance's locality and its non-empty
/// parts as its topology labels, replacing any from its node.
fn set_locality(inst: &mut Instance, locality: &str) {
    use crate::nodes::{REGION, SUBZONE, ZONE};
    let mut parts = locality.splitn(3, '/');
    for k in [REGION, ZONE, SUBZONE] {
        match parts.next() {
            Some(v) if !v.is_empty() => {
                inst.labels.insert(k.into(), v.to_owned());
            }
            _ => {
                inst.labels.remove(k);
            }
        }
    }
    inst.locality = locality.to_owned();
}

fn container_ports(spec: &weft_api::types::kube::PodSpec) -> Vec<(String, u32)> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter())
        .map(|p| (p.name.clone(), u32::try_from(p.container_port).unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod on a node takes the node's topology as labels and locality.
    #[test]
    fn pods_take_their_nodes_topology() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: a}}\nspec: {nodeName: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: z1, other: x}}\n";
        let loaded = weft_api::load::load_bytes("t.yaml", yaml.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let reg = Registry::build(&loaded.resources, &MeshConfig::default());
        let pod = &reg.instances[0];
        assert_eq!(pod.locality, "r1/z1");
        assert_eq!(
            pod.labels
                .get("topology.kubernetes.io/zone")
                .map(String::as_str),
            Some("z1")
        );
        assert_eq!(
            pod.labels.get("kubernetes.io/hostname").map(String::as_str),
            Some("n1")
        );
        assert!(
            !pod.labels.contains_key("other"),
            "only topology labels carry over"
        );

        // The pod's own istio-locality label wins; the beta labels count.
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {istio-locality: r9.z9}}\nspec: {nodeName: n1}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {failure-domain.beta.kubernetes.io/region: r1}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {nodeName: n1}\n";
        let loaded = weft_api::load::load_bytes("t.yaml", yaml.as_bytes());
        let reg = Registry::build(&loaded.resources, &MeshConfig::default());
        let locality = |name: &str| {
            reg.instances
                .iter()
                .find(|i| i.name == name)
                .map(|i| i.locality.clone())
        };
        assert_eq!(locality("p").as_deref(), Some("r9/z9"));
        assert_eq!(locality("q").as_deref(), Some("r1"));
    }

    #[test]
    fn protocol_selection() {
        assert_eq!(protocol_of("http", None), Protocol::Http);
        assert_eq!(protocol_of("http-web", None), Protocol::Http);
        assert_eq!(protocol_of("grpc-api", None), Protocol::Grpc);
        assert_eq!(protocol_of("web", Some("http2")), Protocol::Http2);
        assert_eq!(protocol_of("tcp-db", None), Protocol::Tcp);
        assert_eq!(protocol_of("metrics", None), Protocol::Unknown);
    }
}

#[cfg(test)]
mod service_address_tests {
    use super::*;

    #[test]
    fn under_capture_services_without_an_address_get_one() {
        let yaml = "\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: v1
kind: Service
metadata: {name: fixed}
spec: {clusterIP: 198.18.200.9, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless}
spec: {clusterIP: None, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: [\"*.wild.example.com\"]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints: [{address: 198.18.250.1}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: passthrough}
spec:
  hosts: [none.example.com]
  ports: [{number: 443, name: tls, protocol: TLS}]
  resolution: NONE
";
        let loaded = weft_api::load::load_bytes("t.yaml", yaml.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let addrs = |mesh: &MeshConfig, host: &str| {
            Registry::build(&loaded.resources, mesh)
                .service(host)
                .map(|s| s.addresses.clone())
                .unwrap_or_default()
        };
        let loopback = MeshConfig::default();
        assert!(addrs(&loopback, "reviews.default.svc.cluster.local").is_empty());
        let capture = MeshConfig {
            service_address_base: Some(Ipv4Addr::new(198, 18, 0, 1)),
            ..MeshConfig::default()
        };
        // In name order offline: api.example.com, then reviews.
        assert_eq!(addrs(&capture, "api.example.com"), ["198.18.0.1"]);
        assert_eq!(
            addrs(&capture, "reviews.default.svc.cluster.local"),
            ["198.18.0.2"]
        );
        assert_eq!(
            addrs(&capture, "fixed.default.svc.cluster.local"),
            ["198.18.200.9"]
        );
        for none in [
            "headless.default.svc.cluster.local",
            "*.wild.example.com",
            "none.example.com",
        ] {
            assert!(addrs(&capture, none).is_empty(), "{none}");
        }
    }
}

#[cfg(test)]
mod address_tests {
    use super::local_address;
    use std::net::Ipv4Addr;

    #[test]
    fn replica_addresses_skip_their_applications_twins_and_the_ends() {
        let base = Ipv4Addr::new(127, 0, 10, 1);
        assert_eq!(local_address(base, 0), Ipv4Addr::new(127, 0, 10, 1));
        assert_eq!(local_address(base, 253), Ipv4Addr::new(127, 0, 10, 254));
        // Not 127.0.10.255, nor 127.0.11.x (the applications' twins).
        assert_eq!(local_address(base, 254), Ipv4Addr::new(127, 0, 12, 1));
        let far = local_address(base, 254 * 200);
        assert_eq!(far.octets()[2] % 2, 0, "{far}");
        assert!(far.octets()[1] > 0, "{far}");
    }

    #[test]
    fn a_one_host_prefix_is_that_hosts_address() {
        assert_eq!(super::one_host("198.51.100.7/32"), "198.51.100.7");
        assert_eq!(super::one_host("2001:db8::7/128"), "2001:db8::7");
        assert_eq!(super::one_host("198.51.100.0/24"), "198.51.100.0/24");
        assert_eq!(super::one_host("198.51.100.7"), "198.51.100.7");
        assert_eq!(super::one_host("x/32"), "x/32");
    }
}
