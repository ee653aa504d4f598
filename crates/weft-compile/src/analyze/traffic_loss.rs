//! Which workloads would lose traffic when an audited Guardrail's
//! data-plane rule enforces (or lose it now, under Enforce): what a pod
//! sends out of the mesh on its own under `egressThroughGateway`, and
//! what its capture exclusions send around its proxy under `noBypass`.
//! Judged from the configuration as the proxies would be given it, so a
//! platform team sees the cost before it switches Audit to Enforce.

use std::collections::{BTreeMap, BTreeSet};

use weft_api::diag::Severity;
use weft_api::path::FieldPath;

use super::{Findings, Input};
use crate::compile::{Compiler, ProxyRef};
use crate::guardrails::{egress_guard, excludes_from_capture, pod_metadata, BypassGuards};
use crate::registry::ServiceSource;

pub const CODE: &str = "WEFT0131";

/// How many workloads a finding names before it says how many more.
const NAMED: usize = 5;

/// The Guardrail's state in a finding's words: what happens to the
/// traffic (for one workload, for several), and what the Guardrail does.
fn stance(enforces: bool, several: bool) -> (&'static str, &'static str) {
    match (enforces, several) {
        (true, false) => ("loses its", "enforces"),
        (true, true) => ("lose their", "enforces"),
        (false, false) => ("would lose its", "audits"),
        (false, true) => ("would lose their", "audits"),
    }
}

/// The fix, with when it matters.
fn in_time(fix: &str, enforces: bool) -> String {
    if enforces {
        format!("{fix}: the Guardrail drops it now")
    } else {
        format!("{fix} before the Guardrail enforces")
    }
}

fn names(workloads: &BTreeSet<String>) -> String {
    let named: Vec<&str> = workloads.iter().take(NAMED).map(String::as_str).collect();
    let more = workloads.len().saturating_sub(NAMED);
    let mut text = named.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// `egressThroughGateway`: a sidecar whose model sends to a service
/// outside the mesh (a MESH_EXTERNAL ServiceEntry's cluster) goes out on
/// its own, which the mesh's edge drops; through the egress gateway it
/// would not.
pub fn egress_outside_the_gateway(input: &Input<'_>, out: &mut Findings) {
    let Some((guard, enforces)) = egress_guard(input.resources, &input.mesh.root_namespace) else {
        return;
    };
    let compiler = Compiler::new(input.resources, input.registry, input.mesh);
    // External host → port → the workloads that send to it directly.
    let mut direct: BTreeMap<&str, BTreeMap<u32, BTreeSet<String>>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for proxy in compiler.proxies() {
        let ProxyRef::Sidecar { namespace, name } = &proxy else {
            continue;
        };
        let Some(inst) = input
            .registry
            .instances_in(namespace)
            .find(|i| &i.name == name)
        else {
            continue;
        };
        let workload = format!("{namespace}/{}", inst.workload);
        if !seen.insert(workload.clone()) {
            continue;
        }
        let Ok(model) = compiler.compile(&proxy) else {
            continue;
        };
        for cluster in model.clusters.iter() {
            let Some(svc) = input.registry.service(&cluster.service) else {
                continue;
            };
            if matches!(
                svc.source,
                ServiceSource::ServiceEntry { external: true, .. }
            ) {
                direct
                    .entry(svc.host.as_str())
                    .or_default()
                    .entry(cluster.port)
                    .or_default()
                    .insert(workload.clone());
            }
        }
    }
    for (host, ports) in direct {
        let Some(svc) = input.registry.service(host) else {
            continue;
        };
        let Some(r) = input.resources.iter().find(|r| r.key() == svc.origin) else {
            continue;
        };
        for (port, workloads) in ports {
            let (verb, does) = stance(enforces, workloads.len() > 1);
            out.add(
                Severity::Warning,
                CODE,
                r,
                &FieldPath::root().key("spec").key("hosts"),
                format!(
                    "{} {verb} traffic to {host}:{port}: Guardrail {guard} {does} egressThroughGateway, and nothing routes {host}:{port} through the egress gateway, so it leaves the mesh on its own",
                    names(&workloads)
                ),
                &in_time("send it through the egress gateway (a Gateway on istio-egressgateway and a VirtualService with gateways [mesh, istio-egressgateway], as Istio's egress gateway task does)", enforces),
            );
        }
    }
}

/// `noBypass`: what a pod's capture exclusions send around its proxy is
/// what the pod's filter drops.
pub fn bypass_around_the_proxy(input: &Input<'_>, out: &mut Findings) {
    let guards = BypassGuards::of(input.resources, &input.mesh.root_namespace);
    for r in input.resources {
        let Some((_, _, annotations_at, annotations)) = pod_metadata(r) else {
            continue;
        };
        let Some((guard, enforces)) = guards.of_namespace(r.namespace()) else {
            continue;
        };
        let (verb, does) = stance(enforces, false);
        for (key, value) in annotations {
            let around = match key.as_str() {
                "traffic.sidecar.istio.io/excludeOutboundPorts" => {
                    format!("outbound traffic to ports {value}")
                }
                "traffic.sidecar.istio.io/excludeOutboundIPRanges" => {
                    format!("outbound traffic to {value}")
                }
                "traffic.sidecar.istio.io/excludeInboundPorts" => {
                    format!("inbound traffic on ports {value}")
                }
                "traffic.sidecar.istio.io/excludeInterfaces" => {
                    format!("traffic on interfaces {value}")
                }
                k if excludes_from_capture(k) => format!("the traffic {k}={value} names"),
                "sidecar.istio.io/interceptionMode" if value == "NONE" => {
                    "connections, as its capture is off,".to_owned()
                }
                _ => continue,
            };
            out.add(
                Severity::Warning,
                CODE,
                r,
                &annotations_at.key(key),
                format!(
                    "{} {}/{} {verb} {around}, which {key} sends around its proxy: Guardrail {guard} {does} noBypass",
                    r.kind(),
                    r.namespace(),
                    r.name()
                ),
                &in_time(
                    "remove the annotation, so the traffic goes through the proxy",
                    enforces,
                ),
            );
        }
    }
}
