//! Gateways that select no gateway workload, or listen on ports it does
//! not expose.

use weft_api::diag::Severity;
use weft_api::path::FieldPath;

use super::{selector_text, Findings, Input};
use crate::registry::labels_match;

pub fn selectors(input: &Input<'_>, out: &mut Findings) {
    for (r, gw) in &input.index.gateways {
        if gw.selector.is_empty() {
            continue;
        }
        let found = input
            .mesh
            .gateways
            .iter()
            .any(|g| labels_match(&gw.selector, &g.labels))
            || input
                .registry
                .instances
                .iter()
                .any(|i| labels_match(&gw.selector, &i.labels));
        if !found {
            out.add(
                Severity::Error,
                "IST0101",
                r,
                &FieldPath::root().key("spec").key("selector"),
                format!("Referenced selector not found: {:?}", selector_text(&gw.selector)),
                "weft's gateways carry istio=ingressgateway and istio=egressgateway; select one of them",
            );
        }
    }
}

pub fn ports(input: &Input<'_>, out: &mut Findings) {
    for (r, gw) in &input.index.gateways {
        let gateways: Vec<_> = input
            .mesh
            .gateways
            .iter()
            .filter(|g| !gw.selector.is_empty() && labels_match(&gw.selector, &g.labels))
            .collect();
        if gateways.is_empty() {
            continue;
        }
        for (i, s) in gw.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            if !gateways.iter().any(|g| g.ports.contains(&port.number)) {
                out.add(
                    Severity::Warning,
                    "IST0104",
                    r,
                    &FieldPath::root().key("spec").key("servers").index(i).key("port").key("number"),
                    format!("The gateway refers to a port that is not exposed on the workload (pod selector {}; port {})", selector_text(&gw.selector), port.number),
                    &format!("use one of the gateway's ports: {}", gateways.iter().flat_map(|g| g.ports.iter()).map(u32::to_string).collect::<Vec<_>>().join(", ")),
                );
            }
        }
    }
}
