//! Nodes: where local mode's Workload replicas run, and the locality
//! their endpoints carry.
//!
//! Nodes are Kubernetes `v1 Node` resources: their topology labels
//! (`topology.kubernetes.io/region`, `/zone`, `topology.istio.io/subzone`,
//! or the beta `failure-domain` ones) are the locality of the pods placed
//! on them, and under transparent capture `spec.podCIDR` is the range
//! their pods' addresses come from. A Workload's replicas go to the nodes
//! its `nodeSelector` matches, spread across them; with no Node declared
//! they run on one implicit node, as before.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_api::resource::{Resource, Spec};
use weft_api::types::common::Labels;

use crate::registry::{labels_match, AddressBook, Pool};

pub const REGION: &str = "topology.kubernetes.io/region";
pub const ZONE: &str = "topology.kubernetes.io/zone";
pub const SUBZONE: &str = "topology.istio.io/subzone";
pub const HOSTNAME: &str = "kubernetes.io/hostname";

/// The node replicas run on when no Node is declared.
pub const IMPLICIT: &str = "local";

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// All its labels (what a `nodeSelector` matches), with
    /// `kubernetes.io/hostname` set to its name as the kubelet sets it.
    pub labels: Labels,
    /// Its topology labels under their current names.
    pub topology: Labels,
    /// `region/zone/subzone`, trailing empty parts dropped.
    pub locality: String,
    /// Under capture, the range its pods' addresses come from, or why it
    /// has none (its pods then do not run).
    pub pod_range: Option<Result<Ipv4Net, String>>,
    /// Declared (a `v1 Node`), not the implicit one.
    pub declared: bool,
}

/// Where pods' ranges come from under capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRanges {
    /// The first range handed to a node that declares no `podCIDR`; the
    /// next ones follow it, each of its size, within its /16.
    pub first: Ipv4Net,
    /// Ranges that are the mesh's own (its network, service addresses):
    /// no node's pods may take them.
    pub reserved: Vec<Ipv4Net>,
}

fn topology_of(labels: &Labels) -> Labels {
    let mut topology = Labels::new();
    for (key, names) in [
        (
            REGION,
            &[REGION, "failure-domain.beta.kubernetes.io/region"][..],
        ),
        (ZONE, &[ZONE, "failure-domain.beta.kubernetes.io/zone"][..]),
        (SUBZONE, &[SUBZONE][..]),
    ] {
        if let Some(v) = names.iter().find_map(|n| labels.get(*n)) {
            topology.insert(key.to_owned(), v.clone());
        }
    }
    topology
}

/// `region/zone/subzone` from topology labels.
pub fn locality_of(topology: &Labels) -> String {
    let part = |k: &str| topology.get(k).map_or("", String::as_str);
    [part(REGION), part(ZONE), part(SUBZONE)]
        .join("/")
        .trim_end_matches('/')
        .to_owned()
}

/// The declared Nodes in name order, or the implicit one when none is.
/// Under capture (`ranges`), each gets its pod range: its `spec.podCIDR`
/// (refused when it overlaps the mesh's own ranges or an earlier node's),
/// else the next free one `book` hands out.
pub fn nodes(
    resources: &[Resource],
    ranges: Option<&PodRanges>,
    book: Option<&dyn AddressBook>,
) -> Vec<Node> {
    let mut out: Vec<(Node, Option<String>)> = resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Node(n) => Some((r, n)),
            _ => None,
        })
        .map(|(r, spec)| {
            let mut labels = r.meta.labels.clone();
            labels
                .entry(HOSTNAME.to_owned())
                .or_insert_with(|| r.name().to_owned());
            let topology = topology_of(&labels);
            let declared_cidr = spec
                .pod_cidr
                .clone()
                .or_else(|| spec.pod_cidrs.first().cloned());
            (
                Node {
                    name: r.name().to_owned(),
                    locality: locality_of(&topology),
                    labels,
                    topology,
                    pod_range: None,
                    declared: true,
                },
                declared_cidr,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    out.dedup_by(|a, b| a.0.name == b.0.name);
    if out.is_empty() {
        let labels: Labels = [(HOSTNAME.to_owned(), IMPLICIT.to_owned())].into();
        out.push((
            Node {
                name: IMPLICIT.to_owned(),
                labels,
                topology: Labels::new(),
                locality: String::new(),
                pod_range: None,
                declared: false,
            },
            None,
        ));
    }
    let Some(ranges) = ranges else {
        return out.into_iter().map(|(n, _)| n).collect();
    };
    // Declared ranges first, in name order: each must be IPv4, leave room
    // for pods, and stay clear of the mesh's ranges and earlier nodes'.
    let mut taken: Vec<(Ipv4Net, String)> = Vec::new();
    for (node, cidr) in out.iter_mut() {
        let Some(cidr) = cidr else { continue };
        let checked = cidr
            .parse::<Ipv4Net>()
            .map_err(|_| format!("spec.podCIDR {cidr:?} is not an IPv4 range; fix: give one such as 198.19.8.0/24"))
            .and_then(|net| {
                if net.prefix_len() > 29 {
                    return Err(format!("spec.podCIDR {cidr} is too small for pods; fix: give a /29 or larger, such as a /24"));
                }
                if let Some(r) = ranges.reserved.iter().find(|r| overlaps(r, &net)) {
                    return Err(format!("spec.podCIDR {cidr} collides with {r}, which the mesh keeps for itself; fix: give a range outside {r}"));
                }
                if let Some((other, name)) = taken.iter().find(|(t, _)| overlaps(t, &net)) {
                    return Err(format!("spec.podCIDR {cidr} collides with node {name}'s {other}; fix: give each node a range of its own"));
                }
                Ok(net.trunc())
            });
        if let Ok(net) = &checked {
            taken.push((*net, node.name.clone()));
        }
        node.pod_range = Some(checked);
    }
    // Kept in the replicas' address book under `node:<name>` (no replica
    // key has a colon).
    let book_key = |name: &str| format!("node:{name}");
    let wanting: Vec<String> = out
        .iter()
        .filter(|(_, cidr)| cidr.is_none())
        .map(|(n, _)| book_key(&n.name))
        .collect();
    let pool = Pool::Subnets {
        first: ranges.first,
        avoid: taken.iter().map(|(t, _)| *t).collect(),
    };
    // The book is a locked file: not opened when every node declares its
    // range.
    let given = match book {
        Some(book) if !wanting.is_empty() => book.assign(&pool, &wanting),
        _ => pool.in_order(&wanting),
    };
    for (node, _) in out.iter_mut().filter(|(_, c)| c.is_none()) {
        node.pod_range = Some(
            given
                .get(&book_key(&node.name))
                .and_then(|ip| Ipv4Net::new(*ip, ranges.first.prefix_len()).ok())
                .ok_or_else(|| {
                    format!(
                        "no pod range is left in {} for node {}; fix: give it spec.podCIDR",
                        Ipv4Net::new(ranges.first.network(), 16)
                            .map_or(ranges.first, |n| n.trunc()),
                        node.name
                    )
                }),
        );
    }
    out.into_iter().map(|(n, _)| n).collect()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// FNV-1a: a stable offset per workload, so that replicas of different
/// workloads do not all start on the first node.
fn spread_offset(key: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as usize
}

/// The node replica `n` of workload `namespace/name` runs on: among the
/// nodes `selector` matches, spread by replica number from a stable
/// offset per workload, so a replica stays put while others come and go.
/// `Err` says why none fits (the replica is pending, as in Kubernetes).
pub fn place<'a>(
    nodes: &'a [Node],
    selector: &Labels,
    key: &str,
    n: u32,
) -> Result<&'a Node, String> {
    let fit: Vec<&Node> = nodes
        .iter()
        .filter(|node| labels_match(selector, &node.labels))
        .collect();
    if fit.is_empty() {
        let wanted: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(format!(
            "no node matches its nodeSelector {}; fix: label a Node so, or change the nodeSelector",
            wanted.join(",")
        ));
    }
    Ok(fit[(spread_offset(key) + n as usize) % fit.len()])
}

/// The nodes by name.
pub fn by_name(nodes: &[Node]) -> BTreeMap<&str, &Node> {
    nodes.iter().map(|n| (n.name.as_str(), n)).collect()
}

/// The first pod range under capture when none is given: 198.19.1.0/24
/// (198.19.0.0/24 is the mesh network itself).
pub fn default_first_range() -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 19, 1, 0), 24).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Vec<Resource> {
        let loaded = weft_api::load::load_bytes("t.yaml", yaml.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        loaded.resources
    }

    fn ranges() -> PodRanges {
        PodRanges {
            first: default_first_range(),
            reserved: vec![
                "198.19.0.0/24".parse().unwrap(),
                "198.18.0.0/16".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn without_nodes_there_is_one() {
        let nodes = nodes(&[], Some(&ranges()), None);
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name, IMPLICIT);
        assert_eq!(
            nodes[0].pod_range,
            Some(Ok("198.19.1.0/24".parse().unwrap()))
        );
    }

    #[test]
    fn nodes_take_their_ranges_and_localities() {
        let resources = load(
            "apiVersion: v1\nkind: Node\nmetadata: {name: b, labels: {topology.kubernetes.io/region: r1, topology.kubernetes.io/zone: z2}}\nspec: {podCIDR: 198.19.20.0/24}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: a, labels: {failure-domain.beta.kubernetes.io/region: r1, topology.kubernetes.io/zone: z1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: c}\nspec: {podCIDR: 198.19.20.128/25}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: d}\nspec: {podCIDR: 198.19.0.0/25}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: e}\n",
        );
        let nodes = nodes(&resources, Some(&ranges()), None);
        let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
        assert_eq!(nodes[0].locality, "r1/z1");
        assert_eq!(nodes[1].locality, "r1/z2");
        assert_eq!(nodes[0].labels.get(HOSTNAME).map(String::as_str), Some("a"));
        // Allocated in name order from the first range.
        assert_eq!(
            nodes[0].pod_range,
            Some(Ok("198.19.1.0/24".parse().unwrap()))
        );
        assert_eq!(
            nodes[4].pod_range,
            Some(Ok("198.19.2.0/24".parse().unwrap()))
        );
        assert_eq!(
            nodes[1].pod_range,
            Some(Ok("198.19.20.0/24".parse().unwrap()))
        );
        let refused = |i: usize| nodes[i].pod_range.clone().unwrap().unwrap_err();
        assert!(
            refused(2).contains("collides with node b's 198.19.20.0/24"),
            "{}",
            refused(2)
        );
        assert!(
            refused(3).contains("collides with 198.19.0.0/24"),
            "{}",
            refused(3)
        );
    }

    #[test]
    fn replicas_spread_over_the_nodes_a_selector_matches() {
        let resources = load(
            "apiVersion: v1\nkind: Node\nmetadata: {name: a, labels: {zone: z1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: b, labels: {zone: z2}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: c, labels: {zone: z2}}\n",
        );
        let nodes = nodes(&resources, None, None);
        let z2: Labels = [("zone".to_owned(), "z2".to_owned())].into();
        let placed: Vec<&str> = (0..4)
            .map(|i| place(&nodes, &z2, "default/web", i).unwrap().name.as_str())
            .collect();
        assert!(placed.iter().all(|n| *n == "b" || *n == "c"));
        assert_ne!(placed[0], placed[1], "replicas spread");
        assert_eq!(placed[0], placed[2]);
        // Stable: the same replica lands on the same node every time.
        assert_eq!(
            place(&nodes, &z2, "default/web", 1).unwrap().name,
            placed[1]
        );
        let none: Labels = [("zone".to_owned(), "z9".to_owned())].into();
        let why = place(&nodes, &none, "default/web", 0).unwrap_err();
        assert!(why.contains("zone=z9"), "{why}");
    }
}
