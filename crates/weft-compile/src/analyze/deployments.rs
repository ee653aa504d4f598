//! Deployments and the Services that select them, as istioctl's
//! `deployment.MultiServiceAnalyzer` checks them: one port number given
//! different transport protocols by two Services (IST0116), and one target
//! port reached through different Service ports (IST0137).

use std::collections::BTreeMap;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{Resource, Spec};
use weft_api::types::common::IntOrString;
use weft_api::types::kube::{DeploymentSpec, ServiceSpec};

use super::{Findings, Input};
use crate::registry::labels_match;

/// Istio's label on the Deployments it makes for waypoints.
const WAYPOINT_MANAGED: (&str, &str) = ("gateway.istio.io/managed", "istio.io-mesh-controller");

/// Whether the deployment's pods opt out of a sidecar.
fn opted_out(d: &DeploymentSpec) -> bool {
    let meta = &d.template.metadata;
    let off = |v: Option<&String>| v.is_some_and(|v| v == "false");
    off(meta.labels.get("sidecar.istio.io/inject"))
        || off(meta.annotations.get("sidecar.istio.io/inject"))
}

pub fn multiple_services(input: &Input<'_>, out: &mut Findings) {
    let services: Vec<(&Resource, &ServiceSpec)> = input
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            Spec::Service(s) => Some((r, s)),
            _ => None,
        })
        .collect();
    for r in input.resources {
        let Spec::Deployment(d) = &r.spec else {
            continue;
        };
        if r.meta
            .labels
            .get(WAYPOINT_MANAGED.0)
            .is_some_and(|v| v == WAYPOINT_MANAGED.1)
            || opted_out(d)
        {
            continue;
        }
        let pod_labels = &d.template.metadata.labels;
        let matching: Vec<(String, &ServiceSpec)> = services
            .iter()
            .filter(|(sr, s)| {
                sr.namespace() == r.namespace()
                    && !s.selector.is_empty()
                    && labels_match(&s.selector, pod_labels)
            })
            .map(|(sr, s)| (format!("{}/{}", sr.namespace(), sr.name()), *s))
            .collect();
        // port → transport protocol → services
        let mut by_port: BTreeMap<i64, BTreeMap<String, Vec<&str>>> = BTreeMap::new();
        // target port → port → service
        let mut by_target: BTreeMap<String, BTreeMap<i64, &str>> = BTreeMap::new();
        for (name, s) in &matching {
            for p in &s.ports {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                by_port
                    .entry(p.port)
                    .or_default()
                    .entry(proto)
                    .or_default()
                    .push(name);
                let target = match &p.target_port {
                    Some(IntOrString::Int(n)) if *n != 0 => n.to_string(),
                    Some(IntOrString::Str(s)) if !s.is_empty() && s != "0" => s.clone(),
                    _ => p.port.to_string(),
                };
                by_target.entry(target).or_default().insert(p.port, name);
            }
        }
        for (port, protocols) in &by_port {
            if protocols.len() < 2 {
                continue;
            }
            let mut names: Vec<&str> = protocols.values().flatten().copied().collect();
            names.sort();
            out.add(
                Severity::Warning,
                "IST0116",
                r,
                &FieldPath::root().key("metadata").key("name"),
                format!("This deployment {} is associated with multiple services using port {port} but different protocols: [{}]", r.name(), names.join(" ")),
                "give the port one protocol in every Service that selects these pods, or use different port numbers",
            );
        }
        for (target, ports) in &by_target {
            if ports.len() < 2 {
                continue;
            }
            let mut names: Vec<&str> = ports.values().copied().collect();
            names.sort();
            let numbers: Vec<String> = ports.keys().map(i64::to_string).collect();
            out.add(
                Severity::Warning,
                "IST0137",
                r,
                &FieldPath::root().key("metadata").key("name"),
                format!("This deployment {} is associated with multiple services [{}] using targetPort {target:?} but different ports: [{}].", r.name(), names.join(" "), numbers.join(" ")),
                "reach one target port through one Service port number",
            );
        }
    }
}

/// The user ID Istio's sidecar runs as, which traffic capture lets
/// through untouched: an application running as it bypasses the mesh.
const PROXY_UID: i64 = 1337;

/// IST0144, as istioctl's ApplicationUIDAnalyzer: a Pod or Deployment
/// whose pod or application container runs as the proxy's UID 1337 (the
/// control plane's own, labelled `istio` or `release: istio`, aside).
pub fn proxy_uid(input: &Input<'_>, out: &mut Findings) {
    use weft_api::types::kube::PodSpec;
    let uses_proxy_uid = |spec: &PodSpec| {
        let is = |c: &Option<weft_api::types::kube::SecurityContext>| {
            c.as_ref().and_then(|c| c.run_as_user) == Some(PROXY_UID)
        };
        is(&spec.security_context)
            || spec
                .containers
                .iter()
                .filter(|c| c.name != "istio-proxy" && c.name != "istio-operator")
                .any(|c| is(&c.security_context))
    };
    for r in input.resources {
        let spec = match &r.spec {
            Spec::Pod(p) => p,
            Spec::Deployment(d) => &d.template.spec,
            _ => continue,
        };
        let control_plane = r.meta.labels.contains_key("istio")
            || r.meta.labels.get("release").is_some_and(|v| v == "istio");
        if !control_plane && uses_proxy_uid(spec) {
            out.add(
                Severity::Warning,
                "IST0144",
                r,
                &FieldPath::root().key("spec"),
                "User ID (UID) 1337 is reserved for the sidecar proxy.".into(),
                "run the application as another user: traffic from UID 1337 is not captured, so it would bypass the mesh",
            );
        }
    }
}
