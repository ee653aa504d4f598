//! `weft up --capture`: the mesh's network, made of network namespaces
//! weft creates and removes.
//!
//! The mesh network is a namespace (`weft-<mesh>-mesh`) holding a bridge
//! (`weft0`, 198.19.0.0/24) on which the control plane's model stream and
//! CA (198.19.0.1), the ingress and egress gateways (198.19.0.2 and .3)
//! and every node (198.19.0.10
//! and up) have an address, and which routes each node's pod range to
//! it. The admin API and Prometheus listen on its loopback only. A node is a
//! namespace (`weft-<mesh>-node.<name>`) with its own bridge, on the first
//! address of its pod range, that its pods' veths join. Each Workload
//! replica is a pod: a namespace named `weft-<mesh>-<namespace>-<replica>`
//! (so `ip netns exec` finds it by the replica's name) with `eth0` on its
//! own address from its node's range and a default route through the
//! node, its traffic captured by `weft_capture`'s rules. Services get
//! addresses from 198.18.0.0/16, routed like any other through the pod's
//! default route until the rules redirect them.
//!
//! The supervisor itself moves into the mesh network's namespace once it
//! has bound what the user reaches on this machine (the ingress, the
//! admin API, Prometheus), which it forwards into the mesh as `kubectl
//! port-forward` does: every process it starts is on the mesh network,
//! and nothing of the mesh has an address or a route in the machine's own
//! namespace. All of it lives in 198.18.0.0/15, a range set aside for
//! benchmarking networks (RFC 2544) that no real network the machine is
//! on uses, unless a Node declares a `podCIDR` elsewhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

use ipnet::Ipv4Net;

/// The mesh network's bridge address: the control plane's.
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The ingress gateway's address on the mesh network.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The egress gateway's address on the mesh network: its own, so that
/// both keep Istio's ports (8080, 8443) and the mesh's edge can tell its
/// traffic from the ingress's.
pub const EGRESS_GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 3);
/// The first node's address on the mesh network; the next count up.
const FIRST_NODE_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// The mesh network: the control plane, the gateways and the nodes.
pub fn mesh_network() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 19, 0, 0), 24).unwrap_or_default()
}
/// The first service address.
pub const SERVICE_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Where service addresses come from.
pub fn service_range() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 18, 0, 0), 16).unwrap_or_default()
}
/// Where nodes' pod ranges come from when they declare none.
pub fn pod_ranges() -> weft_compile::nodes::PodRanges {
    weft_compile::nodes::PodRanges {
        first: weft_compile::nodes::default_first_range(),
        reserved: vec![mesh_network(), service_range()],
    }
}
const BRIDGE: &str = "weft0";

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("--capture needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to make network namespaces: run `sudo weft up --capture …`, or leave out --capture for loopback mode")]
    NotRoot,
    // `cause`, not `source`: the reason is part of this one line, and
    // an error chain would print it twice.
    #[error("--capture cannot {what}: {cause}")]
    Tool {
        what: String,
        cause: weft_capture::ApplyError,
    },
    #[error("{what}: {why}")]
    Failed { what: String, why: String },
    #[error("cannot listen on {addr} for {what}: {error}")]
    Bind {
        addr: SocketAddr,
        what: String,
        error: std::io::Error,
    },
}

/// Puts the mesh `o` describes on its own network: what the user reaches
/// on this machine (the ingress and its TLS port, the admin API,
/// Prometheus) is bound where `o` says and forwarded to the same ports on
/// the mesh network, where `o` now places the control plane, the
/// gateways and the pods; the calling thread moves onto that network.
/// Call it before any runtime starts.
pub fn onto_mesh_network(o: &mut crate::Options) -> Result<(), CaptureError> {
    let inside = |ip, port| SocketAddr::from((ip, port));
    let ingress = inside(GATEWAY_IP, 8080);
    // The admin API (which applies configuration) and Prometheus listen
    // on the mesh network namespace's loopback: the user reaches them
    // through the forwards, no pod or host on the mesh network can.
    let admin = inside(Ipv4Addr::LOCALHOST, o.admin.port());
    let mut forwards = vec![
        (o.ingress, ingress, "the ingress gateway"),
        (
            SocketAddr::new(o.ingress.ip(), 8443),
            inside(GATEWAY_IP, 8443),
            "the ingress gateway's TLS port",
        ),
        (o.admin, admin, "the admin API"),
    ];
    let prometheus = o.prometheus.map(|p| {
        let there = inside(Ipv4Addr::LOCALHOST, p.port());
        forwards.push((p, there, "Prometheus"));
        there
    });
    // A resolver given is asked directly (it must be on the mesh
    // network); else the mesh's own, at the control plane's address,
    // relays to this machine's, from this namespace.
    let (nameserver, relay) = match (o.dns_upstream, host_nameserver()) {
        (Some(given), _) => (Some(given), None),
        (None, Some(machine)) => {
            let relay =
                crate::dns_relay::Relay::start(machine).map_err(|e| CaptureError::Failed {
                    what: "start the DNS relay".into(),
                    why: e.to_string(),
                })?;
            (Some(IpAddr::V4(CONTROL_PLANE_IP)), Some(relay))
        }
        (None, None) => (None, None),
    };
    let net = Network::prepare(&o.run_dir, &forwards, nameserver)?;
    if let Ok(mut r) = net.relay.lock() {
        *r = relay;
    }
    o.ingress = ingress;
    o.admin = admin;
    o.xds = inside(CONTROL_PLANE_IP, o.xds.port());
    o.ca = inside(CONTROL_PLANE_IP, o.ca.port());
    o.prometheus = prometheus;
    o.capture = Some(std::sync::Arc::new(net));
    Ok(())
}

/// The mesh's namespaces, made by [`Network::prepare`] and removed by
/// [`Network::teardown`] (or by the next start, after a SIGKILL).
#[derive(Debug)]
pub struct Network {
    /// `weft-<hash>`: every namespace of this mesh starts with it.
    prefix: String,
    /// The mesh network's namespace, where the supervisor, the control
    /// plane and the gateways run.
    mesh: String,
    /// Node name → its namespace, made when its first pod is.
    nodes: Mutex<BTreeMap<String, NodeNet>>,
    pods: Mutex<BTreeSet<String>>,
    /// Each pod's node namespace, veth and address, as the node's
    /// anti-spoofing filter admits it.
    speaking: Mutex<BTreeMap<String, (String, String, Ipv4Addr)>>,
    /// Bound in the machine's own namespace, each forwarded to an address
    /// on the mesh network.
    forwards: Mutex<Vec<(std::net::TcpListener, SocketAddr)>>,
    /// The resolver pods' `resolv.conf` names: their proxies answer the
    /// mesh's names and ask it the rest.
    nameserver: Option<IpAddr>,
    /// Relays the mesh's other queries to this machine's resolver, served
    /// at the control plane's address once the runtime runs.
    relay: Mutex<Option<crate::dns_relay::Relay>>,
}

/// A node's namespace and where it sits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NodeNet {
    netns: String,
    /// Its address on the mesh network.
    uplink: Ipv4Addr,
    /// Its pods' range; the first address is its bridge's.
    range: Ipv4Net,
}

/// Where `ip netns exec` finds a namespace's own `/etc` files.
const ETC_NETNS: &str = "/etc/netns";

/// The first nameserver of this machine's `/etc/resolv.conf` (a
/// loopback stub too: the relay asks it from this namespace).
fn host_nameserver() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next()?.parse::<IpAddr>().ok())
            .flatten()
    })
}

/// A pod's `resolv.conf`, as Kubernetes writes one: its namespace's
/// search domains, so `reviews` is asked as
/// `reviews.<namespace>.svc.cluster.local`, which its proxy answers.
fn resolv_conf(namespace: &str, nameserver: Option<IpAddr>) -> String {
    let mut out = String::from(
        "# Written by weft up: queries to port 53 are answered by the pod's proxy (15053),\n# which asks this nameserver what is not the mesh's.\n",
    );
    if let Some(ns) = nameserver {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    out.push_str(&format!(
        "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
    ));
    out
}

/// `ip args…`; `what` says what it was for.
fn ip(what: &str, args: &[&str]) -> Result<(), CaptureError> {
    weft_capture::apply::run_tool(None, "ip", "iproute2", args, None).map_err(|cause| {
        CaptureError::Tool {
            what: what.to_owned(),
            cause,
        }
    })
}

/// The names of the network namespaces that exist.
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pod namespace of replica `namespace/replica` among `existing`, as
/// [`Network::pod_namespace`] names it, whatever mesh it belongs to;
/// `None` when there is none, or one in each of two meshes.
pub fn find_pod(existing: &[String], full: &str) -> Option<String> {
    let suffix = format!("-{}", full.replace('/', "-"));
    let mut found = existing
        .iter()
        .filter(|n| n.starts_with("weft-") && n.ends_with(&suffix));
    let first = found.next()?;
    found.next().is_none().then(|| first.clone())
}

/// Whether `ip` is on a `--capture` mesh's network (198.18.0.0/15),
/// reached only from inside its namespaces.
pub fn on_mesh_network(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 198 && (b == 18 || b == 19)
        }
        IpAddr::V6(_) => false,
    }
}

/// The mesh network's namespace of the mesh pod `pod` (a namespace
/// [`Network::pod_namespace`] named) belongs to.
pub fn mesh_of_pod(pod: &str) -> String {
    let mut parts = pod.splitn(3, '-');
    format!(
        "{}-{}-mesh",
        parts.next().unwrap_or("weft"),
        parts.next().unwrap_or_default()
    )
}

/// The mesh network's namespace from which proxy `namespace/name` is
/// reached, among `existing`: its pod's mesh's, or for a proxy without a
/// pod (a gateway) the only mesh's; `None` when that cannot be told.
pub fn mesh_of(existing: &[String], proxy: &str) -> Option<String> {
    let meshes: Vec<&String> = existing
        .iter()
        .filter(|n| n.starts_with("weft-") && n.ends_with("-mesh"))
        .collect();
    if let Some(pod) = find_pod(existing, proxy) {
        return meshes
            .into_iter()
            .find(|n| pod.starts_with(n.trim_end_matches("mesh")))
            .cloned();
    }
    match meshes.as_slice() {
        [only] => Some((*only).clone()),
        _ => None,
    }
}

/// A short, stable tag for a path: the mesh's namespaces carry it (the
/// same hash as the run directory's name).
fn tag(path: &std::path::Path) -> String {
    weft_model::names::content_version(&path.display().to_string())[..6].to_owned()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Sets `/proc/sys/<key>` to `value` in network namespace `netns`, from a
/// thread that enters it (per-namespace sysctls are those of the opener's
/// namespace), so no tool is needed.
fn sysctl(netns: &str, key: &str, value: &str) -> Result<(), CaptureError> {
    let (netns, path, value) = (
        netns.to_owned(),
        format!("/proc/sys/{}", key.replace('.', "/")),
        value.to_owned(),
    );
    let what = format!("set {key} in {netns}");
    std::thread::spawn(move || -> Result<(), String> {
        let ns =
            std::fs::File::open(format!("/var/run/netns/{netns}")).map_err(|e| e.to_string())?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        std::fs::write(&path, value).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the thread panicked".to_owned())
    .and_then(|r| r)
    .map_err(|why| CaptureError::Failed { what, why })
}

/// Makes namespace `netns` (what it is for: `what`) with `eth0` on
/// `addr` (CIDR), the other end of its veth `veth` on the bridge in
/// namespace `host`, and a default route via `gateway`.
fn join_bridge(
    what: &str,
    netns: &str,
    host: &str,
    veth: &str,
    addr: &str,
    gateway: Ipv4Addr,
) -> Result<(), CaptureError> {
    let step = |doing: &str, args: &[&str]| ip(&format!("{doing} {what}"), args);
    step("make the namespace of", &["netns", "add", netns])?;
    step(
        "bring up the loopback of",
        &["-n", netns, "link", "set", "lo", "up"],
    )?;
    step(
        "make the veth of",
        &[
            "-n", host, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    )?;
    step(
        "join to its bridge",
        &["-n", host, "link", "set", veth, "master", BRIDGE, "up"],
    )?;
    step(
        "address",
        &["-n", netns, "addr", "add", addr, "dev", "eth0"],
    )?;
    step(
        "bring up the eth0 of",
        &["-n", netns, "link", "set", "eth0", "up"],
    )?;
    step(
        "route",
        &[
            "-n",
            netns,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ],
    )
}

/// The first address of `range`: its node's bridge, its pods' gateway.
fn gateway_of(range: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()).saturating_add(1))
}

impl Network {
    /// Makes the mesh network's namespace and bridge, binds each `(here,
    /// there)` forward's `here` in this namespace, then moves the calling
    /// thread onto the mesh network: threads and processes it starts
    /// afterwards are there.
    fn prepare(
        run_dir: &std::path::Path,
        forwards: &[(SocketAddr, SocketAddr, &str)],
        nameserver: Option<IpAddr>,
    ) -> Result<Network, CaptureError> {
        if !is_root() {
            return Err(CaptureError::NotRoot);
        }
        for (program, package, arg) in [("ip", "iproute2", "-V"), ("nft", "nftables", "--version")]
        {
            weft_capture::apply::run_tool(None, program, package, &[arg], None).map_err(
                |cause| CaptureError::Tool {
                    what: format!("run {program}"),
                    cause,
                },
            )?;
        }
        let prefix = format!("weft-{}", tag(run_dir));
        let net = Network {
            mesh: format!("{prefix}-mesh"),
            prefix,
            nodes: Mutex::new(BTreeMap::new()),
            pods: Mutex::new(BTreeSet::new()),
            speaking: Mutex::new(BTreeMap::new()),
            forwards: Mutex::new(Vec::new()),
            nameserver,
            relay: Mutex::new(None),
        };
        // What a killed run left behind goes first: namespaces and their
        // files under /etc/netns.
        let ours = |n: &String| n.starts_with(&format!("{}-", net.prefix));
        for n in namespaces().iter().filter(|n| ours(n)) {
            eprintln!("weft: removing network namespace {n}, left by an earlier run");
            let _ = ip("remove a stale namespace", &["netns", "del", n]);
        }
        let etc: Vec<String> = std::fs::read_dir(ETC_NETNS)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for n in etc.iter().filter(|n| ours(n)) {
            let _ = std::fs::remove_dir_all(std::path::Path::new(ETC_NETNS).join(n));
        }
        let mut bound = Vec::new();
        for (here, there, what) in forwards {
            let l = std::net::TcpListener::bind(here).map_err(|error| CaptureError::Bind {
                addr: *here,
                what: (*what).to_owned(),
                error,
            })?;
            bound.push((l, *there));
        }
        *net.forwards.lock().map_err(|_| CaptureError::Failed {
            what: "forwards".into(),
            why: "poisoned".into(),
        })? = bound;
        let mesh = net.mesh.as_str();
        let prefix_len = mesh_network().prefix_len();
        let made = (|| {
            ip("make the mesh network's namespace", &["netns", "add", mesh])?;
            ip(
                "bring up the mesh network's loopback",
                &["-n", mesh, "link", "set", "lo", "up"],
            )?;
            ip(
                "make the mesh network's bridge",
                &["-n", mesh, "link", "add", BRIDGE, "type", "bridge"],
            )?;
            for a in [CONTROL_PLANE_IP, GATEWAY_IP, EGRESS_GATEWAY_IP] {
                ip(
                    "address the mesh network's bridge",
                    &[
                        "-n",
                        mesh,
                        "addr",
                        "add",
                        &format!("{a}/{prefix_len}"),
                        "dev",
                        BRIDGE,
                    ],
                )?;
            }
            ip(
                "bring up the mesh network's bridge",
                &["-n", mesh, "link", "set", BRIDGE, "up"],
            )?;
            // It routes between nodes.
            sysctl(mesh, "net.ipv4.ip_forward", "1")?;
            let ns = std::fs::File::open(format!("/var/run/netns/{mesh}")).map_err(|e| {
                CaptureError::Failed {
                    what: format!("open network namespace {mesh}"),
                    why: e.to_string(),
                }
            })?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                CaptureError::Failed {
                    what: format!("enter network namespace {mesh}"),
                    why: e.to_string(),
                }
            })
        })();
        if let Err(e) = made {
            net.teardown();
            return Err(e);
        }
        // The gateways run in the mesh network's namespace through `ip
        // netns exec`, which gives them this resolver: the egress gateway
        // looks up the external hosts of DNS ServiceEntries there.
        let etc = std::path::Path::new(ETC_NETNS).join(&net.mesh);
        if let Err(e) = std::fs::create_dir_all(&etc).and_then(|()| {
            std::fs::write(
                etc.join("resolv.conf"),
                resolv_conf("istio-system", net.nameserver),
            )
        }) {
            net.teardown();
            return Err(CaptureError::Failed {
                what: format!("write {}/resolv.conf", etc.display()),
                why: e.to_string(),
            });
        }
        Ok(net)
    }

    /// The mesh network's namespace, where the gateways run.
    pub fn mesh_namespace(&self) -> &str {
        &self.mesh
    }

    /// The mesh's own ranges: its network, its services' and every
    /// node's pods'. Traffic within them is not egress.
    pub fn internal_ranges(&self) -> Vec<ipnet::IpNet> {
        let mut out = vec![
            ipnet::IpNet::V4(mesh_network()),
            ipnet::IpNet::V4(service_range()),
            // Everything weft places by default (RFC 2544's range).
            "198.18.0.0/15".parse().unwrap_or_default(),
        ];
        if let Ok(nodes) = self.nodes.lock() {
            out.extend(nodes.values().map(|n| ipnet::IpNet::V4(n.range)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// The namespace of pod `namespace/replica` (which [`find_pod`] finds).
    pub fn pod_namespace(&self, namespace: &str, replica: &str) -> String {
        format!("{}-{namespace}-{replica}", self.prefix)
    }

    /// The namespace of node `name`.
    pub fn node_namespace(&self, name: &str) -> String {
        format!("{}-node.{name}", self.prefix)
    }

    /// Node `name`'s namespace, made (joined to the mesh network, its
    /// range routed to it) if it is not there yet.
    fn node(&self, name: &str, range: Ipv4Net) -> Result<NodeNet, CaptureError> {
        let mut nodes = self.nodes.lock().map_err(|_| CaptureError::Failed {
            what: "nodes".into(),
            why: "poisoned".into(),
        })?;
        if let Some(n) = nodes.get(name) {
            if n.range == range && namespaces().contains(&n.netns) {
                return Ok(n.clone());
            }
        }
        let netns = self.node_namespace(name);
        if let Some(old) = nodes.remove(name) {
            self.remove_node(&old);
        }
        let used: BTreeSet<Ipv4Addr> = nodes.values().map(|n| n.uplink).collect();
        let uplink = (u32::from(FIRST_NODE_IP)..u32::from(mesh_network().broadcast()))
            .map(Ipv4Addr::from)
            .find(|a| !used.contains(a))
            .ok_or_else(|| CaptureError::Failed {
                what: format!("node {name}"),
                why: format!(
                    "no address is left for it on the mesh network {}",
                    mesh_network()
                ),
            })?;
        let node = NodeNet {
            netns,
            uplink,
            range,
        };
        if let Err(e) = self.make_node(&node) {
            self.remove_node(&node);
            return Err(e);
        }
        nodes.insert(name.to_owned(), node.clone());
        Ok(node)
    }

    fn make_node(&self, node: &NodeNet) -> Result<(), CaptureError> {
        let (mesh, netns) = (self.mesh.as_str(), node.netns.as_str());
        join_bridge(
            "a node",
            netns,
            mesh,
            &format!("wu{}", tag(std::path::Path::new(netns))),
            &format!("{}/{}", node.uplink, mesh_network().prefix_len()),
            CONTROL_PLANE_IP,
        )?;
        let bridge = format!("{}/{}", gateway_of(&node.range), node.range.prefix_len());
        ip(
            "make a node's bridge",
            &["-n", netns, "link", "add", BRIDGE, "type", "bridge"],
        )?;
        ip(
            "address a node's bridge",
            &["-n", netns, "addr", "add", &bridge, "dev", BRIDGE],
        )?;
        ip(
            "bring up a node's bridge",
            &["-n", netns, "link", "set", BRIDGE, "up"],
        )?;
        sysctl(netns, "net.ipv4.ip_forward", "1")?;
        weft_capture::antispoof::install(netns).map_err(|cause| CaptureError::Tool {
            what: format!("install the anti-spoofing filter in {netns}"),
            cause,
        })?;
        ip(
            "route a node's pods to it",
            &[
                "-n",
                mesh,
                "route",
                "replace",
                &node.range.to_string(),
                "via",
                &node.uplink.to_string(),
            ],
        )
    }

    fn remove_node(&self, node: &NodeNet) {
        let _ = ip(
            "unroute a node's pods",
            &["-n", &self.mesh, "route", "del", &node.range.to_string()],
        );
        if namespaces().contains(&node.netns) {
            let _ = ip("remove a node", &["netns", "del", &node.netns]);
        }
    }

    /// Nodes whose namespace has gone (removed by hand, as a machine is
    /// lost): their pods have lost the mesh.
    pub fn lost_nodes(&self) -> Vec<String> {
        let existing = namespaces();
        self.nodes
            .lock()
            .map(|n| {
                n.iter()
                    .filter(|(_, node)| !existing.contains(&node.netns))
                    .map(|(name, _)| name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets nodes that were lost: the next pod placed on one makes it
    /// again.
    pub fn forget_nodes(&self, lost: &[String]) {
        let gone: Vec<NodeNet> = self
            .nodes
            .lock()
            .map(|mut n| lost.iter().filter_map(|name| n.remove(name)).collect())
            .unwrap_or_default();
        for node in gone {
            self.remove_node(&node);
        }
    }

    /// Makes pod `netns` with `addr` on node `node` (whose pod range is
    /// `range`; the node is made with its first pod) and installs
    /// `capture`'s rules in it. A pod that exists already is made again.
    pub fn add_pod(
        &self,
        netns: &str,
        namespace: &str,
        (node, range): (&str, Ipv4Net),
        addr: Ipv4Addr,
        capture: Option<&weft_capture::Capture>,
    ) -> Result<(), CaptureError> {
        self.remove_pod(netns);
        let node = self.node(node, range)?;
        if let Ok(mut pods) = self.pods.lock() {
            pods.insert(netns.to_owned());
        }
        let etc = std::path::Path::new(ETC_NETNS).join(netns);
        std::fs::create_dir_all(&etc)
            .and_then(|()| {
                std::fs::write(
                    etc.join("resolv.conf"),
                    resolv_conf(namespace, self.nameserver),
                )
            })
            .map_err(|e| CaptureError::Failed {
                what: format!("write {}/resolv.conf", etc.display()),
                why: e.to_string(),
            })?;
        let veth = format!("wv{}", tag(std::path::Path::new(netns)));
        join_bridge(
            "the pod",
            netns,
            &node.netns,
            &veth,
            &format!("{addr}/{}", range.prefix_len()),
            gateway_of(&range),
        )?;
        weft_capture::antispoof::admit(&node.netns, &veth, addr).map_err(|cause| {
            CaptureError::Tool {
                what: format!("let {netns} speak from {addr}"),
                cause,
            }
        })?;
        if let Ok(mut pods) = self.speaking.lock() {
            pods.insert(netns.to_owned(), (node.netns.clone(), veth, addr));
        }
        if let Some(c) = capture {
            weft_capture::install(Some(netns), c).map_err(|cause| CaptureError::Tool {
                what: format!("install the capture rules in {netns}"),
                cause,
            })?;
        }
        Ok(())
    }

    /// Removes a pod's namespace (its veth and rules go with it).
    pub fn remove_pod(&self, netns: &str) {
        if namespaces().iter().any(|n| n == netns) {
            let _ = ip("remove a pod", &["netns", "del", netns]);
        }
        if let Some((node, veth, addr)) =
            self.speaking.lock().ok().and_then(|mut s| s.remove(netns))
        {
            weft_capture::antispoof::forget(&node, &veth, addr);
        }
        let _ = std::fs::remove_dir_all(std::path::Path::new(ETC_NETNS).join(netns));
        if let Ok(mut pods) = self.pods.lock() {
            pods.remove(netns);
        }
    }

    /// Removes every namespace of the mesh.
    pub fn teardown(&self) {
        let pods: Vec<String> = self
            .pods
            .lock()
            .map(|p| p.iter().cloned().collect())
            .unwrap_or_default();
        for p in pods {
            self.remove_pod(&p);
        }
        let nodes: Vec<NodeNet> = self
            .nodes
            .lock()
            .map(|mut n| std::mem::take(&mut *n).into_values().collect())
            .unwrap_or_default();
        for n in nodes {
            if namespaces().contains(&n.netns) {
                let _ = ip("remove a node", &["netns", "del", &n.netns]);
            }
        }
        let _ = ip("remove the mesh network", &["netns", "del", &self.mesh]);
        let _ = std::fs::remove_dir_all(std::path::Path::new(ETC_NETNS).join(&self.mesh));
    }

    /// Starts forwarding what was bound in the machine's namespace into
    /// the mesh (on the runtime this is called on).
    pub(crate) fn spawn_forwards(&self) {
        if let Some(relay) = self.relay.lock().ok().and_then(|mut r| r.take()) {
            let at = SocketAddr::from((CONTROL_PLANE_IP, 53));
            tokio::spawn(async move {
                match relay.bind(at).await {
                    Ok(bound) => bound.serve().await,
                    Err(e) => eprintln!("weft: the mesh's resolver cannot listen on {at}: {e}; pods resolve only the mesh's names"),
                }
            });
        }
        let forwards = self
            .forwards
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for (listener, target) in forwards {
            let _ = listener.set_nonblocking(true);
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                continue;
            };
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(async move {
                        // Sockets made now are on the mesh network.
                        if let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await {
                            let _ = client.set_nodelay(true);
                            let _ = upstream.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                    });
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pods_resolv_conf_searches_its_namespace_first() {
        let conf = super::resolv_conf("default", "198.19.0.1".parse().ok());
        assert!(conf.contains("\nnameserver 198.19.0.1\n"), "{conf}");
        assert!(conf.contains(
            "\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        ));
    }

    #[test]
    fn a_replica_finds_its_pod() {
        let existing = [
            "weft-25edda-mesh".to_owned(),
            "weft-25edda-node.local".to_owned(),
            "weft-25edda-default-reviews-v1-0".to_owned(),
            "weft-25edda-default-reviews-v1-01".to_owned(),
            "other".to_owned(),
        ];
        assert_eq!(
            super::find_pod(&existing, "default/reviews-v1-0").as_deref(),
            Some("weft-25edda-default-reviews-v1-0")
        );
        assert_eq!(super::find_pod(&existing, "default/ratings-v1-0"), None);
        let two = [
            "weft-aaaaaa-default-x-0".to_owned(),
            "weft-bbbbbb-default-x-0".to_owned(),
        ];
        assert_eq!(super::find_pod(&two, "default/x-0"), None);
        assert_eq!(
            super::mesh_of(&existing, "default/reviews-v1-0").as_deref(),
            Some("weft-25edda-mesh")
        );
        assert_eq!(
            super::mesh_of(&existing, "istio-system/istio-ingressgateway").as_deref(),
            Some("weft-25edda-mesh")
        );
        assert_eq!(
            super::mesh_of_pod("weft-25edda-default-reviews-v1-0"),
            "weft-25edda-mesh"
        );
        assert!(super::on_mesh_network("198.19.1.4".parse().unwrap()));
        assert!(!super::on_mesh_network("127.0.10.1".parse().unwrap()));
    }

    #[test]
    fn tags_are_stable_and_short() {
        let a = super::tag(std::path::Path::new(".weft/run/bookinfo-1a2b"));
        assert_eq!(
            a,
            super::tag(std::path::Path::new(".weft/run/bookinfo-1a2b"))
        );
        assert_eq!(a.len(), 6);
        assert_ne!(a, super::tag(std::path::Path::new(".weft/run/other")));
    }
}
