//! Kubernetes NetworkPolicy, as the proxies enforce it: the policies that
//! select a workload for ingress become an ALLOW list over the caller's
//! address and the port called; for egress, over the endpoint's address
//! and port (what a CNI sees once the service is resolved). Peers selected by pod and namespace
//! labels are the addresses of the instances and gateways they select
//! (each believed only from the holder of its certificate); address
//! blocks are what they say, `except` taken out.

use weft_api::resource::{Resource, ResourceKind, Spec};
use weft_api::types::common::{IntOrString, Labels};
use weft_api::types::kube::{NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use weft_model::{AuthzMatch, AuthzPolicy, AuthzRule};

use super::{Compiler, Me, ProxyKind};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Ingress,
    Egress,
}

/// The ALLOW list of the NetworkPolicies that isolate `me` for ingress;
/// `None` when none does.
pub fn ingress(c: &Compiler<'_>, me: &Me) -> Option<Vec<AuthzPolicy>> {
    allow_list(c, me, Direction::Ingress)
}

/// The same for egress.
pub fn egress(c: &Compiler<'_>, me: &Me) -> Option<Vec<AuthzPolicy>> {
    allow_list(c, me, Direction::Egress)
}

fn allow_list(c: &Compiler<'_>, me: &Me, direction: Direction) -> Option<Vec<AuthzPolicy>> {
    if me.kind != ProxyKind::Sidecar {
        return None;
    }
    let selecting: Vec<(&Resource, &NetworkPolicySpec)> = c
        .index
        .all
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::NetworkPolicy(p)
                if r.namespace() == me.namespace
                    && p.pod_selector.selects(&me.labels)
                    && match direction {
                        Direction::Ingress => p.isolates_ingress(),
                        Direction::Egress => p.isolates_egress(),
                    } =>
            {
                Some((r, p))
            }
            _ => None,
        })
        .collect();
    if selecting.is_empty() {
        return None;
    }
    Some(
        selecting
            .into_iter()
            .map(|(r, p)| AuthzPolicy {
                name: format!("NetworkPolicy {}/{}", r.namespace(), r.name()),
                provider: None,
                rules: match direction {
                    Direction::Ingress => p
                        .ingress
                        .iter()
                        .map(|rule| AuthzRule {
                            from: peers(c, r.namespace(), &rule.from, "source.ip"),
                            to: ports(&rule.ports, &me.ports),
                            when: Vec::new(),
                        })
                        .collect(),
                    // The port is the destination's: a named one is the
                    // name of a port of the pods the rule reaches.
                    Direction::Egress => p
                        .egress
                        .iter()
                        .map(|rule| AuthzRule {
                            from: Vec::new(),
                            to: peers(c, r.namespace(), &rule.to, "destination.ip"),
                            when: ports(&rule.ports, &peer_ports(c, r.namespace(), &rule.to))
                                .into_iter()
                                .flatten()
                                .collect(),
                        })
                        .collect(),
                },
            })
            .collect(),
    )
}

/// The named ports of the instances `peers` select (all instances when
/// none is named), for an egress rule's named ports.
fn peer_ports(
    c: &Compiler<'_>,
    namespace: &str,
    peers: &[NetworkPolicyPeer],
) -> Vec<(String, u32)> {
    c.registry
        .instances
        .iter()
        .filter(|i| {
            peers.is_empty()
                || peers
                    .iter()
                    .any(|peer| peer.ip_block.is_none() && selects_instance(c, namespace, peer, i))
        })
        .flat_map(|i| i.ports.iter().cloned())
        .collect()
}

fn address(attribute: &str, values: Vec<String>, negate: bool) -> AuthzMatch {
    AuthzMatch {
        attribute: attribute.into(),
        values,
        negate,
    }
}

/// Each peer one alternative over `attribute` (the caller's or the
/// endpoint's address); none: every peer.
fn peers(
    c: &Compiler<'_>,
    namespace: &str,
    list: &[NetworkPolicyPeer],
    attribute: &str,
) -> Vec<Vec<AuthzMatch>> {
    list.iter()
        .map(|peer| {
            if let Some(block) = &peer.ip_block {
                let mut m = vec![address(attribute, vec![block.cidr.clone()], false)];
                if !block.except.is_empty() {
                    m.push(address(attribute, block.except.clone(), true));
                }
                return m;
            }
            // An empty list of addresses matches no one: a selector that
            // selects no running instance lets nothing through.
            vec![address(
                attribute,
                selected_addresses(c, namespace, peer),
                false,
            )]
        })
        .collect()
}

fn selects_instance(
    c: &Compiler<'_>,
    namespace: &str,
    peer: &NetworkPolicyPeer,
    i: &crate::registry::Instance,
) -> bool {
    (match &peer.namespace_selector {
        Some(ns) => ns.selects(&namespace_labels(c, &i.namespace)),
        None => i.namespace == namespace,
    }) && peer
        .pod_selector
        .as_ref()
        .is_none_or(|s| s.selects(&i.labels))
}

/// The labels Kubernetes gives a namespace: its own, and
/// `kubernetes.io/metadata.name`.
fn namespace_labels(c: &Compiler<'_>, namespace: &str) -> Labels {
    let mut labels: Labels = c
        .index
        .all
        .iter()
        .find(|r| r.kind() == ResourceKind::Namespace && r.name() == namespace)
        .map(|r| r.meta.labels.clone())
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), namespace.to_owned());
    labels
}

fn selected_addresses(c: &Compiler<'_>, namespace: &str, peer: &NetworkPolicyPeer) -> Vec<String> {
    let mut out: Vec<String> = c
        .registry
        .instances
        .iter()
        .filter(|i| selects_instance(c, namespace, peer, i))
        .filter_map(|i| i.ip.clone())
        .collect();
    // The mesh's gateways are pods to a CNI too: `istio: ingressgateway`
    // in `istio-system` selects the ingress gateway's address.
    for g in &c.mesh.gateways {
        let selected = (match &peer.namespace_selector {
            Some(ns) => ns.selects(&namespace_labels(c, &g.namespace)),
            None => g.namespace == namespace,
        }) && peer
            .pod_selector
            .as_ref()
            .is_none_or(|s| s.selects(&g.labels));
        if selected {
            out.extend(c.registry.gateway_address(g).map(|ip| ip.to_string()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The ports a rule allows (TCP only: the proxies carry TCP); none: all.
/// Named ports are looked up in `named`.
fn ports(list: &[NetworkPolicyPort], named: &[(String, u32)]) -> Vec<Vec<AuthzMatch>> {
    if list.is_empty() {
        return Vec::new();
    }
    let mut values: Vec<String> = Vec::new();
    for p in list {
        if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
            continue;
        }
        match &p.port {
            // Every TCP port: the rule holds whatever the port.
            None => return Vec::new(),
            Some(IntOrString::Int(n)) => {
                let first = u32::try_from(*n).unwrap_or(0);
                let last = p.end_port.unwrap_or(first).min(65535);
                // The whole range is every port: no need to list them.
                if first <= 1 && last == 65535 {
                    return Vec::new();
                }
                values.extend((first..=last).map(|x| x.to_string()));
            }
            Some(IntOrString::Str(name)) => {
                values.extend(
                    named
                        .iter()
                        .filter(|(n, _)| n == name)
                        .map(|(_, port)| port.to_string()),
                );
            }
        }
    }
    values.sort_by_key(|v| v.parse::<u32>().unwrap_or(0));
    values.dedup();
    vec![vec![AuthzMatch {
        attribute: "destination.port".into(),
        values,
        negate: false,
    }]]
}
