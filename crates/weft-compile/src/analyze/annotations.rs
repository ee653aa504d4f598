//! Istio's annotations on Namespaces, Services, Pods and Deployments, as
//! istioctl's `annotations.K8sAnalyzer` checks them: one Istio does not
//! define (IST0108), one on a kind it does not belong on (IST0107, the
//! common case being a pod's annotation on a Deployment's own metadata),
//! a deprecated one (IST0135), and a value the sidecar injector would
//! refuse (IST0125).
//!
//! The annotations, their kinds and whether they are deprecated come from
//! istio/api's definitions, written by `scripts/istio-annotations` into
//! `istio-annotations.txt`.

use std::net::IpAddr;

use weft_api::diag::Severity;
use weft_api::path::FieldPath;
use weft_api::resource::{ResourceKind, Spec};

use super::{Findings, Input};

const LIST: &str = include_str!("istio-annotations.txt");

/// One of Istio's annotations.
struct Definition<'a> {
    name: &'a str,
    resources: Vec<&'a str>,
    deprecated: bool,
}

fn definitions() -> impl Iterator<Item = Definition<'static>> {
    LIST.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Definition {
                name: f.next()?,
                resources: f.next()?.split(',').collect(),
                deprecated: f.next()? == "deprecated",
            })
        })
}

/// An annotation in Istio's namespace (`*istio.io/…`), or the one
/// Kubernetes annotation Istio documents.
fn istio_annotation(name: &str) -> bool {
    name == "kubernetes.io/ingress.class"
        || name
            .split('/')
            .next()
            .is_some_and(|d| d.ends_with("istio.io"))
}

/// Set by Istio itself; never reported.
const ALWAYS_IGNORED: &[&str] = &[
    "sidecar.istio.io/status",
    "gateway.istio.io/controller-version",
    "istio.io/rev",
];

fn ports(v: &str, star: bool) -> Result<(), String> {
    let v = v.trim();
    if (star && v == "*") || v.is_empty() {
        return Ok(());
    }
    for p in v.split(',') {
        p.trim()
            .parse::<u16>()
            .map_err(|e| format!("failed parsing port '{p}': {e}"))?;
    }
    Ok(())
}

fn cidrs(v: &str, star: bool) -> Result<(), String> {
    if (star && v == "*") || v.is_empty() {
        return Ok(());
    }
    for c in v.split(',') {
        let ok = c.split_once('/').is_some_and(|(ip, bits)| {
            ip.parse::<IpAddr>().is_ok_and(|ip| {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                bits.parse::<u8>().is_ok_and(|b| b <= max)
            })
        });
        if !ok {
            return Err(format!("failed parsing cidr '{c}'"));
        }
    }
    Ok(())
}

fn interfaces(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    for i in v.split(',').map(str::trim) {
        if i.is_empty() {
            return Err("empty interface name".into());
        }
        if i.len() > 15 {
            return Err(format!("interface name {i:?} too long (max 15 chars)"));
        }
        if !i
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
        {
            return Err(format!("interface name {i:?} contains invalid characters"));
        }
    }
    Ok(())
}

/// A Kubernetes resource quantity (`100m`, `1Gi`, `2.5`, `1e3`).
fn quantity(v: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "quantity {v:?} is not a Kubernetes resource quantity"
        ))
    };
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let digits_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(digits_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return bad();
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|e| !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()));
    let known = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E",
    ];
    if known.contains(&suffix) || exponent {
        Ok(())
    } else {
        bad()
    }
}

/// The injector's check of an annotation's value, where it has one.
/// (`proxy.istio.io/config` is checked by validation, which says what
/// weft does with it.)
fn check_value(name: &str, v: &str) -> Option<Result<(), String>> {
    Some(match name {
        "sidecar.istio.io/interceptionMode" => match v {
            "REDIRECT" | "TPROXY" | "NONE" => Ok(()),
            _ => Err(format!(
                "interceptionMode invalid, use REDIRECT,TPROXY,NONE: {v}"
            )),
        },
        "status.sidecar.istio.io/port" => v
            .trim()
            .parse::<u16>()
            .map(|_| ())
            .map_err(|e| format!("failed parsing port '{v}': {e}")),
        "readiness.status.sidecar.istio.io/initialDelaySeconds"
        | "readiness.status.sidecar.istio.io/periodSeconds"
        | "readiness.status.sidecar.istio.io/failureThreshold" => v
            .parse::<u32>()
            .map(|_| ())
            .map_err(|e| format!("{v:?}: {e}")),
        "traffic.sidecar.istio.io/includeOutboundIPRanges" => cidrs(v, true),
        "traffic.sidecar.istio.io/excludeOutboundIPRanges" => cidrs(v, false),
        "traffic.sidecar.istio.io/includeInboundPorts" => ports(v, true),
        "traffic.sidecar.istio.io/excludeInboundPorts"
        | "traffic.sidecar.istio.io/excludeOutboundPorts" => ports(v, false),
        "traffic.sidecar.istio.io/excludeInterfaces"
        | "traffic.sidecar.istio.io/kubevirtInterfaces"
        | "istio.io/reroute-virtual-interfaces" => interfaces(v),
        "prometheus.istio.io/merge-metrics" => match v {
            "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false"
            | "False" => Ok(()),
            _ => Err(format!("{v:?} is not a boolean")),
        },
        "sidecar.istio.io/proxyCPU"
        | "sidecar.istio.io/proxyMemory"
        | "sidecar.istio.io/proxyCPULimit"
        | "sidecar.istio.io/proxyMemoryLimit" => quantity(v),
        _ => return None,
    })
}

pub fn annotations(input: &Input<'_>, out: &mut Findings) {
    let defs: Vec<Definition<'_>> = definitions().collect();
    for r in input.resources {
        let kind = match r.kind() {
            ResourceKind::Namespace => "Namespace",
            ResourceKind::Node => "Node",
            ResourceKind::Secret => "Secret",
            ResourceKind::Service => "Service",
            ResourceKind::Pod => "Pod",
            ResourceKind::Deployment => "Deployment",
            _ => continue,
        };
        let inject_label = match &r.spec {
            Spec::Deployment(d) => d
                .template
                .metadata
                .labels
                .contains_key("sidecar.istio.io/inject"),
            _ => r.meta.labels.contains_key("sidecar.istio.io/inject"),
        } || r.meta.labels.contains_key("sidecar.istio.io/inject");
        for (name, value) in &r.meta.annotations {
            if !istio_annotation(name) || ALWAYS_IGNORED.contains(&name.as_str()) {
                continue;
            }
            let field = FieldPath::root()
                .key("metadata")
                .key("annotations")
                .key(name);
            let Some(def) = defs.iter().find(|d| d.name == name) else {
                out.add(
                    Severity::Warning,
                    "IST0108",
                    r,
                    &field,
                    format!("Unknown annotation: {name}"),
                    "check the spelling against Istio's annotations; an unknown one has no effect",
                );
                continue;
            };
            if def.deprecated && !(name == "sidecar.istio.io/inject" && inject_label) {
                let extra = if name == "sidecar.istio.io/inject" {
                    " in favor of the \"sidecar.istio.io/inject\" label"
                } else {
                    ""
                };
                out.add(
                    Severity::Info,
                    "IST0135",
                    r,
                    &field,
                    format!("Annotation {name:?} has been deprecated{extra} and may not work in future Istio versions."),
                    "use what replaced it (for injection, the sidecar.istio.io/inject label on the pod template)",
                );
            }
            if def.resources.contains(&"Any") {
                continue;
            }
            if !def.resources.contains(&kind) {
                out.add(
                    Severity::Warning,
                    "IST0107",
                    r,
                    &field,
                    format!("Misplaced annotation: {name} can only be applied to {}", def.resources.join(", ")),
                    if kind == "Deployment" {
                        "a pod's annotation goes on the pod template: spec.template.metadata.annotations"
                    } else {
                        "move it to a resource of the kind it belongs on"
                    },
                );
                continue;
            }
            if let Some(Err(why)) = check_value(name, value) {
                out.add(
                    Severity::Warning,
                    "IST0125",
                    r,
                    &field,
                    format!("Invalid annotation {name}: {why}"),
                    "give the annotation a value the sidecar injector accepts",
                );
            }
        }
    }
}

/// What istioctl checks only against a live cluster (the sidecar injector
/// and its webhook, the proxy image, pods' injection status), said once,
/// on the first Namespace in the files, instead of guessed: WEFT0110, info.
pub fn cluster_only(input: &Input<'_>, out: &mut Findings) {
    let first = input
        .resources
        .iter()
        .filter(|r| r.kind() == ResourceKind::Namespace)
        .min_by_key(|r| r.name());
    if let Some(r) = first {
        out.add(
            Severity::Info,
            "WEFT0110",
            r,
            &FieldPath::root().key("metadata").key("labels"),
            "Sidecar injection is decided by a cluster's injector: files alone cannot say whether this namespace's pods run a proxy, so istioctl's injection checks (IST0102, IST0103, IST0123, IST0148, IST0158) are not run here".into(),
            "under weft up every Workload, Pod and Deployment runs its sidecar; on Kubernetes, run the analysis against the cluster",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_read_whole() {
        let defs: Vec<_> = definitions().collect();
        assert!(defs.len() > 60, "{}", defs.len());
        let inject = defs
            .iter()
            .find(|d| d.name == "sidecar.istio.io/inject")
            .unwrap();
        assert!(inject.deprecated);
        assert_eq!(inject.resources, ["Pod"]);
    }

    #[test]
    fn values_checked_as_the_injector_checks_them() {
        assert!(quantity("100m").is_ok() && quantity("1Gi").is_ok() && quantity("1e3").is_ok());
        assert!(quantity("1GB").is_err() && quantity("").is_err() && quantity("abc").is_err());
        assert!(cidrs("127.0.0.0/8,::1/128", false).is_ok());
        assert!(cidrs("*", false).is_err() && cidrs("*", true).is_ok());
        assert!(cidrs("127.0.0.0/33", false).is_err() && cidrs("127.0.0.1", false).is_err());
        assert!(ports("80, 443", false).is_ok() && ports("70000", false).is_err());
        assert!(interfaces("eth0,veth-1").is_ok() && interfaces("a,,b").is_err());
        assert!(interfaces("averyveryverylongname").is_err());
    }
}
