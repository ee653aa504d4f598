//! Gateways that select no gateway workload (IST0101), or listen on a port
//! that no Service of their workload offers (IST0162), as istioctl's
//! `gateway.IngressGatewayPortAnalyzer` checks them.

use std::collections::BTreeSet;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::Spec;
use weft_api::types::common::{IntOrString, Labels};

use super::{selector_text, Findings, Input};
use crate::registry::labels_match;

/// The TCP ports that Services offer to the workloads matching `labels`
/// in `namespace`: each port and its numeric target port (a Gateway's
/// server port is what the proxy listens on, so the target port counts,
/// and the Service port as well, as Istio's analyzer allows both).
fn service_ports(input: &Input<'_>, namespace: &str, labels: &Labels, out: &mut BTreeSet<u32>) {
    for r in input.resources {
        let Spec::Service(svc) = &r.spec else {
            continue;
        };
        if r.namespace() != namespace
            || svc.selector.is_empty()
            || !labels_match(&svc.selector, labels)
        {
            continue;
        }
        for p in &svc.ports {
            // Kubernetes defaults an unset protocol to TCP.
            if p.protocol.as_deref().is_some_and(|proto| proto != "TCP") {
                continue;
            }
            if let Ok(port) = u32::try_from(p.port) {
                out.insert(port);
            }
            let target = match &p.target_port {
                Some(IntOrString::Int(n)) => u32::try_from(*n).ok(),
                Some(IntOrString::Str(s)) => s.parse().ok(),
                None => None,
            };
            if let Some(t) = target.filter(|t| *t != 0) {
                out.insert(t);
            }
        }
    }
}

pub fn ports(input: &Input<'_>, out: &mut Findings) {
    for (r, gw) in &input.index.gateways {
        let selector = selector_text(&gw.selector);
        let selector_field = FieldPath::root().key("spec").key("selector");
        // weft's own gateways, with the ports of Istio's default gateway
        // Service, and any workload of the mesh in any namespace (Istio
        // matches pods in every namespace).
        let mut matched = 0;
        let mut offered = BTreeSet::new();
        for g in &input.mesh.gateways {
            if labels_match(&gw.selector, &g.labels) {
                matched += 1;
                offered.extend(g.ports.iter().copied());
            }
        }
        for i in &input.registry.instances {
            if labels_match(&gw.selector, &i.labels) {
                matched += 1;
                service_ports(input, &i.namespace, &i.labels, &mut offered);
            }
        }
        if matched == 0 {
            out.add(
                Severity::Error,
                "IST0101",
                r,
                &selector_field,
                format!("Referenced selector not found: {selector:?}"),
                "weft's gateways carry istio=ingressgateway and istio=egressgateway; select one of them, or a workload declared with these labels",
            );
            continue;
        }
        for s in &gw.servers {
            let Some(port) = &s.port else { continue };
            if !offered.contains(&port.number) {
                out.add(
                    Severity::Warning,
                    "IST0162",
                    r,
                    &selector_field,
                    format!("The gateway is listening on a target port (port {}) that is not defined in the Service associated with its workload instances (Pod selector {selector}). If you need to access the gateway port through the gateway Service, it will not be available.", port.number),
                    &format!(
                        "listen on one of the ports the gateway's Service offers ({}), or add this port to that Service",
                        offered.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}
