//! Listeners and route tables: VirtualServices turned into ordered routes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use weft_api::resource::Resource;
use weft_api::types::common::StringMatch;
use weft_api::types::networking as net;
use weft_model::*;

use super::carry::Revision;
use super::delegation;
use super::{Compiler, Me};
use crate::host;
use crate::registry::{Service, ServiceSource};

/// A cluster the routes refer to: (host, port, subset).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterKey {
    pub host: String,
    pub port: u32,
    pub subset: String,
}

impl ClusterKey {
    pub fn name(&self) -> String {
        names::outbound_cluster(self.port, &self.subset, &self.host)
    }
}

#[derive(Default)]
pub struct Output {
    pub listeners: Vec<Listener>,
    pub route_tables: Vec<RouteTable>,
    pub clusters: BTreeSet<ClusterKey>,
}

/// Whether `me` may reach `svc` (its exportTo and the egress of `scope`,
/// the Sidecar that scopes `me`).
/// Whether `me`'s Sidecar lets it see `host` of a VirtualService in
/// `vs_ns` that names no service (no Sidecar: it does).
fn scope_covers(
    scope: Option<(&Resource, &net::Sidecar)>,
    me: &Me,
    vs_ns: &str,
    host: &str,
) -> bool {
    scope.is_none_or(|(_, sc)| {
        sc.egress.iter().any(|e| {
            e.hosts
                .iter()
                .any(|h| egress_host_covers(h, &me.namespace, vs_ns, host))
        })
    })
}

fn reachable(scope: Option<(&Resource, &net::Sidecar)>, me: &Me, svc: &Service) -> bool {
    if !host::exported_to(&svc.export_to, &svc.namespace, &me.namespace) {
        return false;
    }
    match scope {
        None => true,
        Some((_, sc)) => sc.egress.iter().any(|e| {
            e.hosts
                .iter()
                .any(|h| egress_host_covers(h, &me.namespace, &svc.namespace, &svc.host))
        }),
    }
}

/// The Sidecar resource that scopes `me`: one selecting it in its
/// namespace, else its namespace's default, else the root namespace's.
pub(crate) fn sidecar_for<'a>(
    c: &Compiler<'a>,
    me: &Me,
) -> Option<(&'a Resource, &'a net::Sidecar)> {
    let ix = &c.index;
    ix.sidecars
        .iter()
        .find(|(r, s)| {
            r.namespace() == me.namespace
                && s.workload_selector.as_ref().is_some_and(|w| {
                    !w.labels.is_empty() && crate::registry::labels_match(&w.labels, &me.labels)
                })
        })
        .or_else(|| {
            ix.sidecars
                .iter()
                .find(|(r, s)| r.namespace() == me.namespace && s.workload_selector.is_none())
        })
        .or_else(|| {
            ix.sidecars.iter().find(|(r, s)| {
                r.namespace() == c.mesh.root_namespace && s.workload_selector.is_none()
            })
        })
        .copied()
}

/// `ns/host` from a Sidecar egress listener against a service.
pub fn egress_host_covers(entry: &str, proxy_ns: &str, svc_ns: &str, svc_host: &str) -> bool {
    let (ns, h) = entry.split_once('/').unwrap_or(("*", entry));
    let ns_ok = match ns {
        "*" => true,
        "." => svc_ns == proxy_ns,
        "~" => false,
        other => other == svc_ns,
    };
    ns_ok && host::matches(h, svc_host)
}

/// The VirtualServices bound to the mesh, by the hosts they name: built
/// once per configuration, so finding a service's VirtualService does not
/// read every VirtualService for every service of every proxy.
#[derive(Default)]
pub(crate) struct MeshRoutes {
    /// Lowercase exact host → (VirtualService, position of the host in it).
    exact: HashMap<String, Vec<(usize, usize)>>,
    /// Wildcard hosts: (VirtualService, position, resolved pattern).
    wildcards: Vec<(usize, usize, String)>,
}

impl MeshRoutes {
    fn build(c: &Compiler<'_>) -> MeshRoutes {
        let mut out = MeshRoutes::default();
        for (i, (r, vs)) in c.index.virtual_services.iter().enumerate() {
            if !binds_mesh(vs) {
                continue;
            }
            for (pos, h) in vs.hosts.iter().enumerate() {
                let resolved = host::resolve(h, r.namespace(), &c.mesh.domain_suffix);
                if resolved.contains('*') {
                    out.wildcards.push((i, pos, resolved));
                } else {
                    out.exact
                        .entry(resolved.to_ascii_lowercase())
                        .or_default()
                        .push((i, pos));
                }
            }
        }
        out
    }
}

/// The VirtualService that routes `svc_host` for a proxy in `namespace`,
/// in the mesh context.
fn mesh_virtual_service<'a>(
    c: &Compiler<'a>,
    namespace: &str,
    svc_host: &str,
) -> Option<(&'a Resource, &'a net::VirtualService)> {
    let ix = c.mesh_routes.get_or_init(|| MeshRoutes::build(c));
    // Candidates in the order the VirtualServices and their hosts are
    // listed, so that ties go as they always have: to the first.
    if ix.exact.is_empty() && ix.wildcards.is_empty() {
        return None;
    }
    // Hosts are lowercase but for the odd one: copied only then.
    let lower = if svc_host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(svc_host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(svc_host)
    };
    let mut candidates: Vec<(usize, usize, usize)> = ix
        .exact
        .get(lower.as_ref())
        .into_iter()
        .flatten()
        .map(|&(i, pos)| (i, pos, usize::MAX))
        .chain(
            ix.wildcards
                .iter()
                .enumerate()
                .filter(|(_, (_, _, pattern))| host::matches(pattern, svc_host))
                .map(|(w, &(i, pos, _))| (i, pos, w)),
        )
        .collect();
    candidates.sort_unstable();
    type Ranked<'r> = ((usize, bool), (&'r Resource, &'r net::VirtualService));
    let mut best: Option<Ranked<'a>> = None;
    for (i, pos, w) in candidates {
        let (r, vs) = c.index.virtual_services[i];
        if !host::exported_to(&vs.export_to, r.namespace(), namespace) {
            continue;
        }
        let resolved_len = match ix.wildcards.get(w) {
            Some((_, _, pattern)) => pattern.len(),
            None => host::resolve(&vs.hosts[pos], r.namespace(), &c.mesh.domain_suffix).len(),
        };
        // Exact beats wildcard; among equals, a VirtualService in the
        // proxy's own namespace, then the first by namespace/name.
        let rank = (
            usize::from(w == usize::MAX) * 1000 + resolved_len,
            r.namespace() == namespace,
        );
        if best.as_ref().is_none_or(|(b, _)| rank > *b) {
            best = Some((rank, (r, vs)));
        }
    }
    best.map(|(_, v)| v)
}

/// What a sidecar's virtual host for one service port depends on: the
/// VirtualService that applies (chosen by the sidecar's namespace); the
/// sidecar's namespace itself only where the service's short name is in
/// reach (the same namespace) or the VirtualService matches on
/// `sourceNamespace`; and, only where it has `sourceLabels`, which of
/// those the sidecar's labels satisfy. So a service's host is built once
/// for every namespace that sees it the same way, not once per namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HostKey {
    /// The service's revision (`carry`): its content, kept from one
    /// configuration to the next while it does not change.
    service: Revision,
    port: u32,
    /// The VirtualService's revision, none for none.
    virtual_service: Revision,
    /// Routes of a VirtualService go to destinations whose ports they may
    /// take from the registry: the revision of the whole service set for
    /// those, none for a host without them.
    destinations: Revision,
    /// A VirtualService that delegates routes to others: the revision of
    /// every delegate, none for one that does not.
    delegates: Revision,
    /// Empty where the host is the same from every other namespace.
    namespace: String,
    source_labels: Vec<bool>,
}

/// Virtual hosts built so far, with the clusters their routes name,
/// shared by every sidecar that sees the service the same way, in this
/// configuration and the next ones while its inputs stay the same.
pub(crate) type HostMemo = super::carry::Carried<HostKey, HostEntry>;

/// A shared virtual host and the clusters its routes name.
type HostEntry = (Arc<VirtualHost>, Vec<ClusterKey>);

/// Which of `vs`'s `sourceLabels` matches `me` satisfies, in order:
/// HTTP, then TLS, then TCP matches.
fn source_labels_met<'a>(
    vs: &'a net::VirtualService,
    me: &'a Me,
) -> impl Iterator<Item = bool> + 'a {
    let labels = vs
        .http
        .iter()
        .flat_map(|hr| hr.matches.iter().map(|m| &m.source_labels))
        .chain(
            vs.tls
                .iter()
                .flat_map(|t| t.matches.iter().map(|m| &m.source_labels)),
        )
        .chain(
            vs.tcp
                .iter()
                .flat_map(|t| t.matches.iter().map(|m| &m.source_labels)),
        );
    let me_labels = &me.labels;
    labels
        .filter(|l| !l.is_empty())
        .map(move |l| crate::registry::labels_match(l, me_labels))
}

/// The virtual host `me` routes `svc`'s `port` by, built once for every
/// sidecar that sees it the same way.
fn sidecar_host(
    c: &Compiler<'_>,
    me: &Me,
    svc: &Service,
    port: u32,
    vs: Option<(&Resource, &net::VirtualService)>,
    out: &mut Output,
) -> Arc<VirtualHost> {
    // A root's delegated routes match on the delegates' matches too (merged
    // with its own): those say what the host depends on as well.
    let delegating = vs.is_some_and(|(_, v)| v.http.iter().any(|h| h.delegate.is_some()));
    let routed: Vec<&net::VirtualService> = vs
        .into_iter()
        .flat_map(|(r, v)| std::iter::once(v).chain(delegation::delegates_of(c, r, v)))
        .collect();
    let by_namespace = svc.namespace == me.namespace
        || routed
            .iter()
            .flat_map(|v| v.http.iter().flat_map(|hr| &hr.matches))
            .any(|m| m.source_namespace.is_some());
    let with_routes = vs.is_some_and(|(_, v)| !v.http.is_empty());
    let key = HostKey {
        service: c.revisions.of_service(Some(svc)),
        port,
        virtual_service: c.revisions.of_virtual_service(vs.map(|(r, _)| r)),
        destinations: if with_routes {
            c.revisions.service_set
        } else {
            Revision::NONE
        },
        // Keyed by whether it delegates, not by what was found: a
        // delegate that appears later changes the delegates' revision.
        delegates: if delegating {
            c.revisions.delegates
        } else {
            Revision::NONE
        },
        namespace: if by_namespace {
            me.namespace.clone()
        } else {
            String::new()
        },
        source_labels: routed
            .iter()
            .flat_map(|v| source_labels_met(v, me))
            .collect(),
    };
    if let Some((vh, clusters)) = c.carry.hosts.get(&key) {
        out.clusters.extend(clusters);
        return vh;
    }
    let mut own = Output::default();
    let routes = match vs {
        Some((r, v)) if !v.http.is_empty() => {
            http_routes(c, r, v, "mesh", Some(me), Some(port), &mut own)
        }
        _ => vec![default_route(svc, port, &mut own)],
    };
    let mut domains = Vec::new();
    for alias in host::aliases(&svc.host, &me.namespace, &c.mesh.domain_suffix) {
        domains.push(format!("{alias}:{port}"));
        domains.push(alias);
    }
    for a in &svc.addresses {
        domains.push(format!("{a}:{port}"));
        domains.push(a.clone());
    }
    let vh = Arc::new(VirtualHost {
        name: format!("{}:{port}", svc.host),
        domains,
        routes,
    });
    let clusters: Vec<ClusterKey> = own.clusters.into_iter().collect();
    let (vh, clusters) = c.carry.hosts.put(key, (vh, clusters));
    out.clusters.extend(clusters);
    vh
}

/// A sidecar's outbound side: its listeners, route tables and the
/// clusters they name.
#[derive(Default)]
pub(crate) struct Outbound {
    pub listeners: Vec<Listener>,
    /// By name, as a model has them.
    pub route_tables: Arc<Vec<RouteTable>>,
    pub clusters: BTreeSet<ClusterKey>,
    /// Those clusters built, for sidecars whose clusters depend only on
    /// their namespace.
    pub built: std::sync::OnceLock<Arc<Vec<Arc<Cluster>>>>,
}

/// What a sidecar's outbound side depends on: its namespace, the Sidecar
/// resource that scopes it, and which `sourceLabels` of the mesh's
/// VirtualServices its labels satisfy. Most sidecars of a namespace share
/// one, so it is built once for them all.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ViewKey {
    namespace: String,
    /// The scoping Sidecar's address (the configuration holds it for as
    /// long as the compiler lives), 0 for none.
    scope: usize,
    source_labels: Vec<bool>,
}

#[derive(Default)]
pub(crate) struct ViewMemo(Mutex<HashMap<ViewKey, Arc<Outbound>>>);

/// Which `sourceLabels` of every mesh VirtualService `me` satisfies, in
/// order.
fn mesh_source_labels_met(c: &Compiler<'_>, me: &Me) -> Vec<bool> {
    c.index
        .virtual_services
        .iter()
        .flat_map(|(_, vs)| source_labels_met(vs, me))
        .collect()
}

/// `me`'s outbound side, built once for every sidecar that shares its
/// [`ViewKey`].
pub(crate) fn sidecar_outbound_shared(c: &Compiler<'_>, me: &Me) -> Arc<Outbound> {
    let key = ViewKey {
        namespace: me.namespace.clone(),
        scope: sidecar_for(c, me).map_or(0, |(r, _)| std::ptr::from_ref(r) as usize),
        source_labels: mesh_source_labels_met(c, me),
    };
    if let Some(found) = c.views.0.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return found;
    }
    let mut out = Output::default();
    sidecar_outbound(c, me, &mut out);
    let mut tables = out.route_tables;
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let built = Arc::new(Outbound {
        listeners: out.listeners,
        route_tables: Arc::new(tables),
        clusters: out.clusters,
        built: std::sync::OnceLock::new(),
    });
    if let Ok(mut m) = c.views.0.lock() {
        m.insert(key, built.clone());
    }
    built
}

fn sidecar_outbound(c: &Compiler<'_>, me: &Me, out: &mut Output) {
    // Group reachable service ports by port number, as Envoy's outbound
    // listeners are: one route table per HTTP port, one TCP listener per
    // opaque port.
    let mut http_ports: BTreeMap<u32, Vec<Arc<VirtualHost>>> = BTreeMap::new();
    let mut tcp_ports: BTreeMap<(u32, String), (Protocol, Vec<TcpRoute>)> = BTreeMap::new();
    // Looked up once: every service in the mesh is checked against it.
    let scope = sidecar_for(c, me);
    for svc in c.registry.services.values() {
        if !reachable(scope, me, svc) {
            continue;
        }
        let vs = mesh_virtual_service(c, &me.namespace, &svc.host);
        for port in &svc.ports {
            if port.protocol.is_http() || port.protocol == Protocol::Unknown {
                let vh = sidecar_host(c, me, svc, port.number, vs, out);
                http_ports.entry(port.number).or_default().push(vh);
            } else {
                let routes = match vs {
                    Some((r, v)) if !v.tcp.is_empty() || !v.tls.is_empty() => {
                        tcp_routes(c, r, v, "mesh", me, port.number, out)
                    }
                    _ => {
                        let key = ClusterKey {
                            host: svc.host.clone(),
                            port: port.number,
                            subset: String::new(),
                        };
                        let name = key.name();
                        out.clusters.insert(key);
                        vec![TcpRoute {
                            sni_hosts: if port.protocol == Protocol::Tls
                                || port.protocol == Protocol::Https
                            {
                                vec![svc.host.clone()]
                            } else {
                                Vec::new()
                            },
                            source_labels: Default::default(),
                            destinations: vec![WeightedCluster {
                                cluster: name,
                                weight: 100,
                                request_headers: HeaderOps::default(),
                                response_headers: HeaderOps::default(),
                            }],
                            origin: "default".into(),
                        }]
                    }
                };
                tcp_ports
                    .entry((port.number, svc.host.clone()))
                    .or_insert_with(|| (port.protocol, Vec::new()))
                    .1
                    .extend(routes);
            }
        }
    }
    port_80_hosts(c, me, scope, &mut http_ports, out);
    unregistered_tls_hosts(c, me, scope, &mut tcp_ports, out);
    for (port, mut vhosts) in http_ports {
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        let table = port.to_string();
        out.listeners.push(Listener {
            name: format!("outbound|{port}"),
            direction: Direction::Outbound,
            port,
            service: String::new(),
            bind: String::new(),
            addresses: Vec::new(),
            protocol: Protocol::Http,
            target: ListenerTarget::Routes(table.clone()),
            tls: Vec::new(),
        });
        out.route_tables.push(RouteTable {
            name: table,
            virtual_hosts: vhosts,
        });
    }
    for ((port, host), (protocol, routes)) in tcp_ports {
        out.listeners.push(Listener {
            name: format!("outbound|{port}||{host}"),
            direction: Direction::Outbound,
            port,
            addresses: c
                .registry
                .service(&host)
                .map(|s| s.addresses.clone())
                .unwrap_or_default(),
            service: host,
            bind: String::new(),
            protocol: if matches!(protocol, Protocol::Tls | Protocol::Https) {
                Protocol::Tls
            } else {
                Protocol::Tcp
            },
            target: ListenerTarget::Tcp(routes),
            tls: Vec::new(),
        });
    }
}

/// The VirtualServices bound to the mesh that `me`'s namespace sees.
fn mesh_virtual_services_for<'a, 'c>(
    c: &'c Compiler<'a>,
    me: &'c Me,
) -> impl Iterator<Item = &'c (&'a Resource, &'a net::VirtualService)> + 'c {
    c.index.virtual_services.iter().filter(|(r, vs)| {
        binds_mesh(vs) && host::exported_to(&vs.export_to, r.namespace(), &me.namespace)
    })
}

/// Whether a VirtualService applies to sidecars (`gateways` empty or
/// naming `mesh`).
pub fn binds_mesh(vs: &net::VirtualService) -> bool {
    vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh")
}

/// As Istio's sidecar does on port 80 alone: the hosts of mesh
/// VirtualServices that are no reachable service's port 80 (a name outside
/// the registry, or a service reached on other ports) get a virtual host
/// with those VirtualServices' routes for port 80. Istio's egress tasks
/// rely on it: `curl http://my-nginx.mesh-external.svc.cluster.local` to a
/// Service with port 443 alone, sent to the egress gateway by a route
/// matching port 80.
fn port_80_hosts(
    c: &Compiler<'_>,
    me: &Me,
    scope: Option<(&Resource, &net::Sidecar)>,
    http_ports: &mut BTreeMap<u32, Vec<Arc<VirtualHost>>>,
    out: &mut Output,
) {
    const PORT: u32 = 80;
    // The names port 80's services already answer to.
    let mut taken: std::collections::HashSet<String> = http_ports
        .get(&PORT)
        .into_iter()
        .flatten()
        .flat_map(|vh| vh.domains.iter().cloned())
        .collect();
    for (r, vs) in mesh_virtual_services_for(c, me) {
        if vs.http.is_empty() {
            continue;
        }
        let mut routes = None;
        for h in &vs.hosts {
            let host = host::resolve(h, r.namespace(), &c.mesh.domain_suffix);
            let svc = c.registry.service(&host);
            let hidden = match svc {
                Some(svc) => !reachable(scope, me, svc) || svc.port(PORT).is_some(),
                None => !scope_covers(scope, me, r.namespace(), &host),
            };
            if hidden {
                continue;
            }
            // Another VirtualService may route this host better.
            let chosen = mesh_virtual_service(c, &me.namespace, &host)
                .is_some_and(|(best, _)| std::ptr::eq(best, *r));
            if !chosen || taken.contains(&host) {
                continue;
            }
            let vh = match svc {
                // Built once for every sidecar that sees it alike.
                Some(svc) => sidecar_host(c, me, svc, PORT, Some((*r, *vs)), out),
                None => {
                    let routes = routes.get_or_insert_with(|| {
                        http_routes(c, r, vs, "mesh", Some(me), Some(PORT), out)
                    });
                    // As written (Istio's), and fully qualified.
                    let mut domains = vec![host.clone(), format!("{host}:{PORT}")];
                    let written = h.to_ascii_lowercase();
                    if written != host {
                        domains.extend([written.clone(), format!("{written}:{PORT}")]);
                    }
                    Arc::new(VirtualHost {
                        name: format!("{host}:{PORT}"),
                        domains,
                        routes: routes.clone(),
                    })
                }
            };
            if !vh.routes.is_empty() {
                taken.extend(vh.domains.iter().cloned());
                http_ports.entry(PORT).or_default().push(vh);
            }
        }
    }
}

/// The TLS routes of mesh VirtualServices for hosts no service names
/// (`*.wikipedia.org` in Istio's wildcard egress task, sent to the egress
/// gateway): a listener bound to no address on each port their matches
/// name, which a captured connection to that port joins by its SNI, as
/// Istio's sidecar builds an SNI filter chain on `0.0.0.0:port`.
fn unregistered_tls_hosts(
    c: &Compiler<'_>,
    me: &Me,
    scope: Option<(&Resource, &net::Sidecar)>,
    tcp_ports: &mut BTreeMap<(u32, String), (Protocol, Vec<TcpRoute>)>,
    out: &mut Output,
) {
    for (r, vs) in mesh_virtual_services_for(c, me) {
        if vs.tls.is_empty() {
            continue;
        }
        let ports: BTreeSet<u32> = vs
            .tls
            .iter()
            .flat_map(|t| &t.matches)
            .filter(|m| match_applies(&m.gateways, r.namespace(), "mesh"))
            .filter_map(|m| m.port.filter(|p| *p != 0))
            .collect();
        for h in &vs.hosts {
            let host = host::resolve(h, r.namespace(), &c.mesh.domain_suffix);
            let chosen = mesh_virtual_service(c, &me.namespace, &host)
                .is_some_and(|(best, _)| std::ptr::eq(best, *r));
            if c.registry.service(&host).is_some()
                || !chosen
                || !scope_covers(scope, me, r.namespace(), &host)
            {
                continue;
            }
            for port in &ports {
                let routes = tcp_routes(c, r, vs, "mesh", me, *port, out);
                if routes.iter().any(|t| !t.sni_hosts.is_empty()) {
                    tcp_ports
                        .entry((*port, host.clone()))
                        .or_insert((Protocol::Tls, routes));
                }
            }
        }
    }
}

fn default_route(svc: &Service, port: u32, out: &mut Output) -> Route {
    let key = ClusterKey {
        host: svc.host.clone(),
        port,
        subset: String::new(),
    };
    let cluster = key.name();
    out.clusters.insert(key);
    Route {
        name: "default".into(),
        origin: "default".into(),
        matches: Vec::new(),
        action: RouteAction::Forward(vec![WeightedCluster {
            cluster,
            weight: 100,
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }]),
        rewrite: None,
        timeout_ms: None,
        retry: Some(istio_default_retry()),
        fault: None,
        mirrors: Vec::new(),
        cors: None,
        request_headers: HeaderOps::default(),
        response_headers: HeaderOps::default(),
    }
}

/// A protocol version bound as the model names it; TLS_AUTO and unset
/// are no bound.
fn tls_version(v: Option<net::TlsProtocolVersion>) -> String {
    match v {
        None | Some(net::TlsProtocolVersion::Auto) => "",
        Some(net::TlsProtocolVersion::V1_0) => "TLSV1_0",
        Some(net::TlsProtocolVersion::V1_1) => "TLSV1_1",
        Some(net::TlsProtocolVersion::V1_2) => "TLSV1_2",
        Some(net::TlsProtocolVersion::V1_3) => "TLSV1_3",
    }
    .to_owned()
}

fn ms(d: &weft_api::types::common::Duration) -> u64 {
    u64::try_from(d.as_std().as_millis()).unwrap_or(u64::MAX)
}

fn str_match(m: &StringMatch) -> StrMatch {
    // `regex: "*"` is Istio's "present", not a regex.
    if m.regex.as_deref() == Some("*") {
        return StrMatch::Present;
    }
    if let Some(e) = &m.exact {
        StrMatch::Exact(e.clone())
    } else if let Some(p) = &m.prefix {
        StrMatch::Prefix(p.clone())
    } else if let Some(r) = &m.regex {
        StrMatch::Regex(r.clone())
    } else {
        StrMatch::Present
    }
}

fn header_ops(ops: Option<&net::HeaderOperations>) -> HeaderOps {
    match ops {
        None => HeaderOps::default(),
        Some(o) => HeaderOps {
            set: o
                .set
                .iter()
                .map(|(k, v)| HeaderValue {
                    name: k.to_ascii_lowercase(),
                    value: v.clone(),
                })
                .collect(),
            add: o
                .add
                .iter()
                .map(|(k, v)| HeaderValue {
                    name: k.to_ascii_lowercase(),
                    value: v.clone(),
                })
                .collect(),
            remove: o.remove.iter().map(|k| k.to_ascii_lowercase()).collect(),
        },
    }
}

/// Which gateway context a route is compiled for: `mesh` or `ns/name`.
fn match_applies(gateways: &[String], vs_ns: &str, context: &str) -> bool {
    gateways.is_empty()
        || gateways
            .iter()
            .any(|g| qualify_gateway(g, vs_ns) == context)
}

/// `name` → `vs_ns/name`; `mesh` and `ns/name` unchanged.
pub fn qualify_gateway(g: &str, vs_ns: &str) -> String {
    if g == "mesh" || g.contains('/') {
        g.to_owned()
    } else {
        format!("{vs_ns}/{g}")
    }
}

/// The port a destination without `port` goes to: the only port of the
/// service, or the port the request arrived on.
fn destination_port(
    c: &Compiler<'_>,
    host: &str,
    dest: &net::Destination,
    arrived: Option<u32>,
) -> u32 {
    if let Some(p) = &dest.port {
        return p.number;
    }
    match c.registry.service(host) {
        Some(svc) if svc.ports.len() == 1 => svc.ports[0].number,
        Some(svc) => arrived
            .filter(|p| svc.port(*p).is_some())
            .unwrap_or_else(|| svc.ports.first().map_or(0, |p| p.number)),
        None => arrived.unwrap_or(0),
    }
}

fn cluster_for(
    c: &Compiler<'_>,
    vs: &Resource,
    dest: &net::Destination,
    arrived: Option<u32>,
    out: &mut Output,
) -> (String, String) {
    let host = host::resolve(&dest.host, vs.namespace(), &c.mesh.domain_suffix);
    let port = destination_port(c, &host, dest, arrived);
    let key = ClusterKey {
        host: host.clone(),
        port,
        subset: dest.subset.clone(),
    };
    let name = key.name();
    out.clusters.insert(key);
    (name, host)
}

/// The HTTP routes of a VirtualService for one context. `me` is the
/// sidecar (for `sourceLabels`), `svc` the service and port being routed.
pub(crate) fn http_routes(
    c: &Compiler<'_>,
    r: &Resource,
    vs: &net::VirtualService,
    context: &str,
    me: Option<&Me>,
    arrived: Option<u32>,
    out: &mut Output,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let root = r;
    for (n, e) in delegation::expand(c, r, vs).into_iter().enumerate() {
        // A delegate's destinations are named from its own namespace; the
        // route is the root's (its gateways, its name).
        let (r, (i, j)) = (e.owner, e.at);
        let hr: &net::HttpRoute = &e.route;
        let mut matches = Vec::new();
        let mut any_applies = hr.matches.is_empty();
        for m in &hr.matches {
            if !match_applies(&m.gateways, root.namespace(), context) {
                continue;
            }
            if let Some(me) = me {
                if !crate::registry::labels_match(&m.source_labels, &me.labels) {
                    continue;
                }
                if m.source_namespace
                    .as_ref()
                    .is_some_and(|ns| ns != &me.namespace)
                {
                    continue;
                }
            }
            // Port 0 is protobuf's "unset".
            let match_port = m.port.filter(|p| *p != 0);
            if let (Some(p), Some(arrived)) = (match_port, arrived) {
                if p != arrived {
                    continue;
                }
            }
            any_applies = true;
            let mut headers: Vec<HeaderMatch> = Vec::new();
            let mut claims: Vec<ClaimMatch> = Vec::new();
            let with = m.headers.iter().map(|kv| (kv, false));
            let without = m.without_headers.iter().map(|kv| (kv, true));
            for ((k, v), invert) in with.chain(without) {
                match net::routing_claim(k) {
                    Some(path) => claims.push(ClaimMatch {
                        path,
                        matcher: str_match(v),
                        invert,
                    }),
                    None => headers.push(HeaderMatch {
                        // HTTP names are case-insensitive; the proxy's are
                        // lowercase.
                        name: k.to_ascii_lowercase(),
                        matcher: str_match(v),
                        invert,
                    }),
                }
            }
            matches.push(RouteMatch {
                uri: m.uri.as_ref().map(str_match),
                scheme: m.scheme.as_ref().map(str_match),
                method: m.method.as_ref().map(str_match),
                authority: m.authority.as_ref().map(str_match),
                headers,
                query_params: m
                    .query_params
                    .iter()
                    .map(|(k, v)| HeaderMatch {
                        name: k.clone(),
                        matcher: str_match(v),
                        invert: false,
                    })
                    .collect(),
                claims,
                port: if me.is_none() { match_port } else { None },
                source_labels: if me.is_none() {
                    m.source_labels.clone()
                } else {
                    Default::default()
                },
                ignore_uri_case: m.ignore_uri_case,
            });
        }
        if !any_applies {
            continue;
        }
        let action = if let Some(rd) = &hr.redirect {
            RouteAction::Redirect(Redirect {
                uri: rd.uri.clone(),
                authority: rd.authority.clone(),
                scheme: rd.scheme.clone(),
                port: rd.port,
                port_from_request: rd.derive_port
                    == Some(net::RedirectPortSelection::FromRequestPort),
                prefix_rewrite: rd.prefix_rewrite.clone().unwrap_or_default(),
                code: rd.redirect_code.unwrap_or(301),
            })
        } else if let Some(d) = &hr.direct_response {
            // A `bytes` body is base64 (validation refused it if not);
            // text travels as text, anything else still encoded.
            let (body, body_base64) = match d.body.as_ref() {
                Some(b) => match (&b.string, b.decoded_bytes()) {
                    (Some(s), _) => (s.clone(), false),
                    (None, Some(Ok(bytes))) => match String::from_utf8(bytes) {
                        Ok(text) => (text, false),
                        Err(_) => (b.bytes.clone().unwrap_or_default(), true),
                    },
                    (None, _) => (String::new(), false),
                },
                None => (String::new(), false),
            };
            RouteAction::DirectResponse {
                status: d.status,
                body,
                body_base64,
            }
        } else {
            let total: i64 = hr.route.iter().map(|d| d.weight.unwrap_or(0)).sum();
            let dests = hr
                .route
                .iter()
                .filter_map(|d| {
                    let dest = d.destination.as_ref()?;
                    let (cluster, _) = cluster_for(c, r, dest, arrived, out);
                    let weight = if total == 0 {
                        if hr.route.len() == 1 {
                            100
                        } else {
                            0
                        }
                    } else {
                        u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0)
                    };
                    Some(WeightedCluster {
                        cluster,
                        weight,
                        request_headers: header_ops(
                            d.headers.as_ref().and_then(|h| h.request.as_ref()),
                        ),
                        response_headers: header_ops(
                            d.headers.as_ref().and_then(|h| h.response.as_ref()),
                        ),
                    })
                })
                .filter(|w| w.weight > 0 || hr.route.len() == 1)
                .collect();
            RouteAction::Forward(dests)
        };
        let mut mirrors = Vec::new();
        if let Some(m) = &hr.mirror {
            let pct = hr
                .mirror_percentage
                .map(|p| p.value)
                .or(hr.mirror_percent.map(f64::from))
                .unwrap_or(100.0);
            let (cluster, host) = cluster_for(c, r, m, arrived, out);
            mirrors.push(Mirror {
                cluster,
                host,
                percentage: pct,
            });
        }
        for m in &hr.mirrors {
            if let Some(d) = &m.destination {
                let (cluster, host) = cluster_for(c, r, d, arrived, out);
                mirrors.push(Mirror {
                    cluster,
                    host,
                    percentage: m.percentage.map_or(100.0, |p| p.value),
                });
            }
        }
        let retry = hr.retries.as_ref().map(|rt| {
            let mut on = Vec::new();
            let mut codes = Vec::new();
            for cond in rt
                .retry_on
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
            {
                match cond.parse::<u16>() {
                    Ok(code) => codes.push(code),
                    Err(_) => on.push(cond.to_owned()),
                }
            }
            if !codes.is_empty() && !on.iter().any(|c| c == "retriable-status-codes") {
                on.push("retriable-status-codes".into());
            }
            if on.is_empty() {
                let default = istio_default_retry();
                on = default.retry_on;
                codes = default.retriable_status_codes;
            }
            RetryPolicy {
                attempts: u32::try_from(rt.attempts).unwrap_or(0),
                per_try_timeout_ms: rt.per_try_timeout.as_ref().map(ms),
                retry_on: on,
                retriable_status_codes: codes,
                remote_localities: rt.retry_remote_localities == Some(true),
                reuse_hosts: rt.retry_ignore_previous_hosts == Some(false),
                backoff_ms: rt.backoff.as_ref().map(ms).filter(|b| *b > 0),
            }
        });
        // A forwarding route that says nothing of retries gets Istio's
        // default.
        let retry = match (&retry, &action) {
            (None, RouteAction::Forward(_)) => Some(istio_default_retry()),
            _ => retry,
        };
        let fault = hr.fault.as_ref().map(|f| Fault {
            delay: f.delay.as_ref().and_then(|d| {
                Some(FaultDelay {
                    delay_ms: ms(d.fixed_delay.as_ref()?),
                    percentage: d
                        .percentage
                        .map(|p| p.value)
                        .or(d.percent.map(|p| p as f64))
                        .unwrap_or(100.0),
                })
            }),
            abort: f.abort.as_ref().and_then(|a| {
                let status = match (&a.http_status, &a.grpc_status) {
                    (Some(s), _) => AbortStatus::Http(u32::try_from(*s).ok()?),
                    (None, Some(g)) => AbortStatus::Grpc(g.clone()),
                    _ => return None,
                };
                Some(FaultAbort {
                    status,
                    percentage: a.percentage.map_or(100.0, |p| p.value),
                })
            }),
        });
        let cors = hr.cors_policy.as_ref().map(|cp| Cors {
            allow_origins: cp
                .allow_origins
                .iter()
                .map(str_match)
                .chain(cp.allow_origin.iter().map(|o| StrMatch::Exact(o.clone())))
                .collect(),
            allow_methods: cp.allow_methods.clone(),
            allow_headers: cp.allow_headers.clone(),
            expose_headers: cp.expose_headers.clone(),
            max_age_secs: cp.max_age.as_ref().map(|d| d.as_std().as_secs()),
            allow_credentials: cp.allow_credentials,
            answer_unmatched_preflights: cp.unmatched_preflights
                == Some(net::UnmatchedPreflights::Ignore),
        });
        routes.push(Route {
            name: if hr.name.is_empty() {
                format!("{}.{}", root.name(), n)
            } else {
                hr.name.clone()
            },
            origin: match j {
                None => format!("VirtualService {}/{} http[{i}]", r.namespace(), r.name()),
                Some(j) => format!(
                    "VirtualService {}/{} http[{i}], delegated to {}/{} http[{j}]",
                    root.namespace(),
                    root.name(),
                    r.namespace(),
                    r.name(),
                ),
            },
            matches,
            action,
            rewrite: hr.rewrite.as_ref().map(|rw| Rewrite {
                uri: rw.uri.clone(),
                authority: rw.authority.clone(),
                uri_regex: rw.uri_regex_rewrite.as_ref().map(|x| RegexRewrite {
                    pattern: x.pattern.clone(),
                    substitution: x.rewrite.clone(),
                }),
            }),
            timeout_ms: hr.timeout.as_ref().map(ms),
            retry,
            fault,
            mirrors,
            cors,
            request_headers: header_ops(hr.headers.as_ref().and_then(|h| h.request.as_ref())),
            response_headers: header_ops(hr.headers.as_ref().and_then(|h| h.response.as_ref())),
        });
    }
    routes
}

fn tcp_routes(
    c: &Compiler<'_>,
    r: &Resource,
    vs: &net::VirtualService,
    context: &str,
    me: &Me,
    port: u32,
    out: &mut Output,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    let mut push = |matches_ok: bool,
                    sni: Vec<String>,
                    dests: &[net::RouteDestination],
                    origin: String,
                    out: &mut Output| {
        if !matches_ok {
            return;
        }
        let destinations = dests
            .iter()
            .filter_map(|d| {
                let dest = d.destination.as_ref()?;
                let (cluster, _) = cluster_for(c, r, dest, Some(port), out);
                Some(WeightedCluster {
                    cluster,
                    // Weights are shares; a lone destination takes all.
                    weight: if dests.len() == 1 {
                        1
                    } else {
                        u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0)
                    },
                    request_headers: HeaderOps::default(),
                    response_headers: HeaderOps::default(),
                })
            })
            .collect();
        routes.push(TcpRoute {
            sni_hosts: sni,
            source_labels: Default::default(),
            destinations,
            origin,
        });
    };
    for (i, t) in vs.tls.iter().enumerate() {
        let applicable: Vec<&net::TlsMatchAttributes> = t
            .matches
            .iter()
            .filter(|m| {
                match_applies(&m.gateways, r.namespace(), context)
                    && m.port.filter(|p| *p != 0).is_none_or(|p| p == port)
                    && crate::registry::labels_match(&m.source_labels, &me.labels)
            })
            .collect();
        let sni: Vec<String> = applicable
            .iter()
            .flat_map(|m| m.sni_hosts.iter().cloned())
            .collect();
        push(
            !applicable.is_empty(),
            sni,
            &t.route,
            format!("VirtualService {}/{} tls[{i}]", r.namespace(), r.name()),
            out,
        );
    }
    for (i, t) in vs.tcp.iter().enumerate() {
        let ok = t.matches.is_empty()
            || t.matches.iter().any(|m| {
                match_applies(&m.gateways, r.namespace(), context)
                    && m.port.filter(|p| *p != 0).is_none_or(|p| p == port)
                    && crate::registry::labels_match(&m.source_labels, &me.labels)
            });
        push(
            ok,
            Vec::new(),
            &t.route,
            format!("VirtualService {}/{} tcp[{i}]", r.namespace(), r.name()),
            out,
        );
    }
    routes
}

/// A gateway's listeners: one per server port, with the VirtualServices
/// bound to the Gateway resources that select this gateway.
pub fn gateway(c: &Compiler<'_>, me: &Me, out: &mut Output) {
    struct PortPlan {
        protocol: Protocol,
        bind: String,
        tls: Vec<ServerTls>,
        vhosts: BTreeMap<String, VirtualHost>,
        /// VirtualService `tls` and `tcp` routes, for a port the gateway
        /// passes through (TLS PASSTHROUGH, TCP).
        tcp: Vec<TcpRoute>,
    }
    let mut ports: BTreeMap<u32, PortPlan> = BTreeMap::new();
    for (gr, gw) in &c.index.gateways {
        if gw.selector.is_empty() || !crate::registry::labels_match(&gw.selector, &me.labels) {
            continue;
        }
        let gw_name = format!("{}/{}", gr.namespace(), gr.name());
        for server in &gw.servers {
            let Some(port) = &server.port else { continue };
            let protocol = match port.protocol.to_ascii_uppercase().as_str() {
                "HTTP" => Protocol::Http,
                "HTTP2" => Protocol::Http2,
                "GRPC" | "GRPC-WEB" => Protocol::Grpc,
                "HTTPS" => Protocol::Https,
                "TLS" => Protocol::Tls,
                _ => Protocol::Tcp,
            };
            let plan = ports.entry(port.number).or_insert_with(|| PortPlan {
                protocol,
                bind: server.bind.clone(),
                tls: Vec::new(),
                vhosts: BTreeMap::new(),
                tcp: Vec::new(),
            });
            if let Some(tls) = &server.tls {
                plan.tls.push(ServerTls {
                    mode: match tls.mode {
                        // A tls block with only httpsRedirect terminates
                        // nothing.
                        None if tls.https_redirect => "",
                        // The mode's first value, as Istio reads a tls
                        // block that leaves it out.
                        None | Some(net::ServerTlsMode::Passthrough) => "PASSTHROUGH",
                        Some(net::ServerTlsMode::Simple) => "SIMPLE",
                        Some(net::ServerTlsMode::Mutual) => "MUTUAL",
                        Some(net::ServerTlsMode::OptionalMutual) => "OPTIONAL_MUTUAL",
                        Some(net::ServerTlsMode::IstioMutual) => "ISTIO_MUTUAL",
                        Some(net::ServerTlsMode::AutoPassthrough) => "AUTO_PASSTHROUGH",
                    }
                    .to_owned(),
                    credential_name: tls.credential_name.clone().unwrap_or_default(),
                    hosts: server.hosts.clone(),
                    https_redirect: tls.https_redirect,
                    min_version: tls_version(tls.min_protocol_version),
                    max_version: tls_version(tls.max_protocol_version),
                    cipher_suites: tls.cipher_suites.clone(),
                    ecdh_curves: tls.ecdh_curves.clone(),
                    verify_spki: tls.verify_certificate_spki.clone(),
                    verify_hash: tls.verify_certificate_hash.clone(),
                    subject_alt_names: tls.subject_alt_names.clone(),
                    ca_crl: tls.ca_crl.clone().unwrap_or_default(),
                });
            }
            for (vr, vs) in &c.index.virtual_services {
                if !vs
                    .gateways
                    .iter()
                    .any(|g| qualify_gateway(g, vr.namespace()) == gw_name)
                {
                    continue;
                }
                let domains: Vec<String> = vs
                    .hosts
                    .iter()
                    .map(|h| host::resolve(h, vr.namespace(), &c.mesh.domain_suffix))
                    .filter(|h| {
                        server
                            .hosts
                            .iter()
                            .any(|sh| server_host_admits(sh, vr.namespace(), h))
                    })
                    .collect();
                if domains.is_empty() {
                    continue;
                }
                if passes_through(protocol, server.tls.as_ref()) {
                    // TLS routes whose SNI hosts the server admits, and TCP
                    // routes, as Istio builds a passthrough filter chain.
                    let routes = tcp_routes(c, vr, vs, &gw_name, me, port.number, out);
                    plan.tcp.extend(routes.into_iter().filter(|t| {
                        t.sni_hosts.iter().all(|sni| {
                            server
                                .hosts
                                .iter()
                                .any(|sh| server_host_admits(sh, vr.namespace(), sni))
                        })
                    }));
                    continue;
                }
                if !protocol.is_http() && protocol != Protocol::Https {
                    continue;
                }
                let routes = http_routes(c, vr, vs, &gw_name, None, Some(port.number), out);
                for d in domains {
                    let vh = plan.vhosts.entry(d.clone()).or_insert_with(|| VirtualHost {
                        name: format!("{d}:{}", port.number),
                        domains: vec![d.clone(), format!("{d}:{}", port.number)],
                        routes: Vec::new(),
                    });
                    vh.routes.extend(routes.iter().cloned());
                }
            }
        }
    }
    for (port, plan) in ports {
        let table = format!("http.{port}");
        let passthrough = plan.protocol == Protocol::Tls
            || plan.protocol == Protocol::Tcp
            || plan.tls.iter().any(|t| t.mode == "PASSTHROUGH");
        let target = if passthrough {
            ListenerTarget::Tcp(plan.tcp)
        } else if plan.protocol.is_http() || plan.protocol == Protocol::Https {
            out.route_tables.push(RouteTable {
                name: table.clone(),
                virtual_hosts: plan.vhosts.into_values().map(Arc::new).collect(),
            });
            ListenerTarget::Routes(table)
        } else {
            ListenerTarget::Tcp(Vec::new())
        };
        out.listeners.push(Listener {
            name: format!("gateway|{port}"),
            direction: Direction::Gateway,
            port,
            service: String::new(),
            bind: plan.bind,
            addresses: Vec::new(),
            protocol: plan.protocol,
            target,
            tls: plan.tls,
        });
    }
}

/// Whether a gateway server passes connections through by SNI or as TCP
/// rather than serving HTTP: protocol TLS or TCP, or a TLS block in
/// PASSTHROUGH mode (the mode Istio reads a block that names none as).
fn passes_through(protocol: Protocol, tls: Option<&net::ServerTlsSettings>) -> bool {
    matches!(protocol, Protocol::Tls | Protocol::Tcp)
        || tls.is_some_and(|t| {
            !t.https_redirect && matches!(t.mode, None | Some(net::ServerTlsMode::Passthrough))
        })
}

/// A Gateway server host (`ns/host` or `host`) admits a VirtualService host
/// from `vs_ns` when the namespaces agree and the host patterns overlap.
pub fn server_host_admits(server_host: &str, vs_ns: &str, vs_host: &str) -> bool {
    let (ns, h) = server_host.split_once('/').unwrap_or(("*", server_host));
    let ns_ok = ns == "*" || ns == vs_ns;
    ns_ok && host::overlaps(h, vs_host)
}

/// Whether a service is outside the mesh (no sidecar can be assumed).
pub fn is_external(svc: &Service) -> bool {
    matches!(
        svc.source,
        ServiceSource::ServiceEntry { external: true, .. }
    )
}

/// The retry policy Istio gives every route that sets none: two retries on
/// a connection that fails or a stream refused before it was sent, on gRPC
/// `UNAVAILABLE` and `CANCELLED`, and on 503, so that an endpoint going
/// away (a restart) is not seen by clients. `retries: {attempts: 0}` turns
/// it off.
pub fn istio_default_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        per_try_timeout_ms: None,
        retry_on: [
            "connect-failure",
            "refused-stream",
            "unavailable",
            "cancelled",
            "retriable-status-codes",
        ]
        .map(String::from)
        .to_vec(),
        retriable_status_codes: vec![503],
        remote_localities: false,
        reuse_hosts: false,
        backoff_ms: None,
    }
}
