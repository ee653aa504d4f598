//! `weft up --capture`: the mesh's network, made of network namespaces
//! weft creates and removes.
//!
//! A node is a namespace (`weft-<mesh>-node`) holding a bridge
//! (`weft0`, 198.19.0.1/16) that its pods' veths join; the control plane
//! (198.19.0.1) and the gateways (198.19.0.2) have their addresses on it.
//! Each Workload replica is a pod: a namespace named
//! `weft-<mesh>-<namespace>-<replica>` (so `ip netns exec` finds it by the
//! replica's name) with `eth0` on its own address and a default route
//! through the bridge, its traffic captured by `weft_capture`'s rules.
//! Services get addresses from 198.18.0.0/16, routed like any other
//! through the pod's default route until the rules redirect them.
//!
//! The supervisor itself moves into the node's namespace once it has
//! bound what the user reaches on this machine (the ingress, the admin
//! API, Prometheus), which it forwards into the mesh as `kubectl
//! port-forward` does: every process it starts is on the mesh network,
//! and nothing of the mesh has an address or a route in the machine's own
//! namespace. All of it lives in 198.18.0.0/15, a range set aside for
//! benchmarking networks (RFC 2544) that no real network the machine is
//! on uses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;

/// The node bridge's address: the control plane's.
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The gateways' address on the node bridge.
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// The first pod address (replicas count up from it, as in loopback mode).
pub const POD_BASE: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 1);
/// The first service address.
pub const SERVICE_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PREFIX_LEN: u8 = 16;
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
    let admin = inside(CONTROL_PLANE_IP, o.admin.port());
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
        let there = inside(CONTROL_PLANE_IP, p.port());
        forwards.push((p, there, "Prometheus"));
        there
    });
    let net = Network::prepare(
        &o.run_dir,
        &forwards,
        o.dns_upstream.or_else(host_nameserver),
    )?;
    o.ingress = ingress;
    o.admin = admin;
    o.xds = inside(CONTROL_PLANE_IP, o.xds.port());
    o.ca = inside(CONTROL_PLANE_IP, o.ca.port());
    o.address_base = POD_BASE;
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
    node: String,
    pods: Mutex<BTreeSet<String>>,
    /// Bound in the machine's own namespace, each forwarded to an address
    /// on the mesh network.
    forwards: Mutex<Vec<(std::net::TcpListener, SocketAddr)>>,
    /// The resolver pods' `resolv.conf` names: their proxies answer the
    /// mesh's names and ask it the rest.
    nameserver: Option<IpAddr>,
}

/// Where `ip netns exec` finds a namespace's own `/etc` files.
const ETC_NETNS: &str = "/etc/netns";

/// The first nameserver of this machine's `/etc/resolv.conf` that a pod
/// could reach (not a loopback stub).
fn host_nameserver() -> Option<IpAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next() == Some("nameserver"))
            .then(|| w.next()?.parse::<IpAddr>().ok())
            .flatten()
            .filter(|ip| !ip.is_loopback())
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

/// The node namespace from which proxy `namespace/name` is reached, among
/// `existing`: its pod's mesh's, or for a proxy without a pod (a gateway)
/// the only mesh's; `None` when that cannot be told.
pub fn node_of(existing: &[String], proxy: &str) -> Option<String> {
    let nodes: Vec<&String> = existing
        .iter()
        .filter(|n| n.starts_with("weft-") && n.ends_with("-node"))
        .collect();
    if let Some(pod) = find_pod(existing, proxy) {
        return nodes
            .into_iter()
            .find(|n| pod.starts_with(n.trim_end_matches("node")))
            .cloned();
    }
    match nodes.as_slice() {
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

impl Network {
    /// Makes the node's namespace and bridge, binds each `(here, there)`
    /// forward's `here` in this namespace, then moves the calling thread
    /// into the node: threads and processes it starts afterwards are on
    /// the mesh network.
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
            node: format!("{prefix}-node"),
            prefix,
            pods: Mutex::new(BTreeSet::new()),
            forwards: Mutex::new(Vec::new()),
            nameserver,
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
        let node = net.node.as_str();
        let made = (|| {
            ip("make the node's namespace", &["netns", "add", node])?;
            ip(
                "bring up the node's loopback",
                &["-n", node, "link", "set", "lo", "up"],
            )?;
            ip(
                "make the node's bridge",
                &["-n", node, "link", "add", BRIDGE, "type", "bridge"],
            )?;
            for a in [CONTROL_PLANE_IP, GATEWAY_IP] {
                ip(
                    "address the node's bridge",
                    &[
                        "-n",
                        node,
                        "addr",
                        "add",
                        &format!("{a}/{PREFIX_LEN}"),
                        "dev",
                        BRIDGE,
                    ],
                )?;
            }
            ip(
                "bring up the node's bridge",
                &["-n", node, "link", "set", BRIDGE, "up"],
            )?;
            let ns = std::fs::File::open(format!("/var/run/netns/{node}")).map_err(|e| {
                CaptureError::Failed {
                    what: format!("open network namespace {node}"),
                    why: e.to_string(),
                }
            })?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                CaptureError::Failed {
                    what: format!("enter network namespace {node}"),
                    why: e.to_string(),
                }
            })
        })();
        if let Err(e) = made {
            net.teardown();
            return Err(e);
        }
        Ok(net)
    }

    /// The namespace of pod `namespace/replica` (which [`find_pod`] finds).
    pub fn pod_namespace(&self, namespace: &str, replica: &str) -> String {
        format!("{}-{namespace}-{replica}", self.prefix)
    }

    /// Makes pod `netns` with `addr` on the node's bridge and installs
    /// `capture`'s rules in it. A pod that exists already is made again.
    pub fn add_pod(
        &self,
        netns: &str,
        namespace: &str,
        addr: Ipv4Addr,
        capture: Option<&weft_capture::Capture>,
    ) -> Result<(), CaptureError> {
        self.remove_pod(netns);
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
        let node = self.node.as_str();
        ip("make the pod's namespace", &["netns", "add", netns])?;
        ip(
            "bring up the pod's loopback",
            &["-n", netns, "link", "set", "lo", "up"],
        )?;
        ip(
            "make the pod's veth",
            &[
                "-n", node, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
                netns,
            ],
        )?;
        ip(
            "join the pod to the node's bridge",
            &["-n", node, "link", "set", &veth, "master", BRIDGE, "up"],
        )?;
        ip(
            "address the pod",
            &[
                "-n",
                netns,
                "addr",
                "add",
                &format!("{addr}/{PREFIX_LEN}"),
                "dev",
                "eth0",
            ],
        )?;
        ip(
            "bring up the pod's eth0",
            &["-n", netns, "link", "set", "eth0", "up"],
        )?;
        ip(
            "route the pod through the node",
            &[
                "-n",
                netns,
                "route",
                "add",
                "default",
                "via",
                &CONTROL_PLANE_IP.to_string(),
            ],
        )?;
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
        let _ = ip("remove the node", &["netns", "del", &self.node]);
    }

    /// Starts forwarding what was bound in the machine's namespace into
    /// the mesh (on the runtime this is called on).
    pub(crate) fn spawn_forwards(&self) {
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
            "weft-25edda-node".to_owned(),
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
            super::node_of(&existing, "default/reviews-v1-0").as_deref(),
            Some("weft-25edda-node")
        );
        assert_eq!(
            super::node_of(&existing, "istio-system/istio-ingressgateway").as_deref(),
            Some("weft-25edda-node")
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
