//! Validation of Kubernetes, Flagger and `weft.dev` resources.

use std::collections::BTreeSet;

use crate::path::FieldPath;
use crate::types::common::{parse_duration, IntOrString};
use crate::types::flagger::{AlertProvider, Canary, MetricTemplate};
use crate::types::kube::{DeploymentSpec, NodeSpec, ServiceSpec};
use crate::types::weft::Workload;

use super::{checks, Ctx};

pub fn service(ctx: &mut Ctx<'_>, s: &ServiceSpec, spec: &FieldPath) {
    checks::labels(ctx, &spec.key("selector"), &s.selector);
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, p) in s.ports.iter().enumerate() {
        let pp = spec.key("ports").index(i);
        if !(1..=65535).contains(&p.port) {
            ctx.error(
                &pp.key("port"),
                format!("port {} is out of range", p.port),
                "use a port number from 1 to 65535",
            );
        }
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        if !numbers.insert((p.port, proto.to_owned())) {
            ctx.error(
                &pp.key("port"),
                format!("port {} is listed twice", p.port),
                "list each port once",
            );
        }
        if s.ports.len() > 1 && p.name.is_empty() {
            ctx.error(
                &pp.key("name"),
                "ports must be named when a Service has more than one",
                "name it, e.g. name: http (the name also tells the mesh the protocol)",
            );
        }
        if !p.name.is_empty() && !names.insert(p.name.clone()) {
            ctx.error(
                &pp.key("name"),
                format!("port name {:?} is used twice", p.name),
                "give each port a unique name",
            );
        }
        if let Some(IntOrString::Int(t)) = &p.target_port {
            if !(1..=65535).contains(t) {
                ctx.error(
                    &pp.key("targetPort"),
                    format!("targetPort {t} is out of range"),
                    "use a port number from 1 to 65535",
                );
            }
        }
    }
}

/// Istio's `proxy.istio.io/config` annotation, as the planner reads it.
fn proxy_config(
    ctx: &mut Ctx<'_>,
    annotations: &FieldPath,
    values: &std::collections::BTreeMap<String, String>,
) {
    if let Err(why) = crate::annotations::proxy_concurrency(values) {
        ctx.warn(
            &annotations.key(crate::annotations::PROXY_CONFIG),
            why,
            crate::annotations::PROXY_CONFIG_FIX,
        );
    }
}

pub fn deployment(ctx: &mut Ctx<'_>, d: &DeploymentSpec, spec: &FieldPath) {
    proxy_config(
        ctx,
        &spec.key("template").key("metadata").key("annotations"),
        &d.template.metadata.annotations,
    );
    if let Some(sel) = &d.selector {
        let labels = &d.template.metadata.labels;
        for (k, v) in &sel.match_labels {
            if labels.get(k) != Some(v) {
                ctx.error(
                    &spec.key("selector").key("matchLabels").key(k),
                    format!("selector {k}={v} does not match the pod template's labels"),
                    "Kubernetes rejects a Deployment whose selector does not match its template",
                );
            }
        }
    }
}

/// A Node's pod range: under `weft up --capture` its pods' addresses
/// come from it, so it must be a range, and one weft can use.
/// A NetworkPolicy as the API server checks one: known policy types,
/// address blocks that parse (each `except` inside its block), ports in
/// range with `endPort` only after a numbered port.
pub fn network_policy(
    ctx: &mut Ctx<'_>,
    p: &crate::types::kube::NetworkPolicySpec,
    spec: &FieldPath,
) {
    use crate::types::kube::NetworkPolicyRule;
    for (i, t) in p.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            ctx.error(
                &spec.key("policyTypes").index(i),
                format!("policy type {t:?} is not Ingress or Egress"),
                "write Ingress, Egress, or both",
            );
        }
    }
    let rules =
        |field: &'static str, list: &[NetworkPolicyRule]| -> Vec<(FieldPath, NetworkPolicyRule)> {
            list.iter()
                .enumerate()
                .map(|(i, r)| (spec.key(field).index(i), r.clone()))
                .collect()
        };
    for (at, rule) in rules("ingress", &p.ingress)
        .into_iter()
        .chain(rules("egress", &p.egress))
    {
        for (field, peers) in [("from", &rule.from), ("to", &rule.to)] {
            for (j, peer) in peers.iter().enumerate() {
                let here = at.key(field).index(j);
                let Some(block) = &peer.ip_block else {
                    continue;
                };
                if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                    ctx.error(
                        &here.key("ipBlock"),
                        "a peer with ipBlock may not also select pods or namespaces",
                        "make the address block a peer of its own",
                    );
                }
                match block.cidr.parse::<ipnet::IpNet>() {
                    Err(_) => ctx.error(
                        &here.key("ipBlock").key("cidr"),
                        format!("{:?} is not a CIDR", block.cidr),
                        "write an address block such as 192.0.2.0/24",
                    ),
                    Ok(net) => {
                        for (k, e) in block.except.iter().enumerate() {
                            let inside = e.parse::<ipnet::IpNet>().is_ok_and(|x| net.contains(&x));
                            if !inside {
                                ctx.error(
                                    &here.key("ipBlock").key("except").index(k),
                                    format!("{e:?} is not a CIDR inside {}", block.cidr),
                                    "each except must be a block within cidr",
                                );
                            }
                        }
                    }
                }
            }
        }
        for (j, port) in rule.ports.iter().enumerate() {
            let here = at.key("ports").index(j);
            if let Some(proto) = &port.protocol {
                if !matches!(proto.as_str(), "TCP" | "UDP" | "SCTP") {
                    ctx.error(
                        &here.key("protocol"),
                        format!("protocol {proto:?} is not TCP, UDP or SCTP"),
                        "write TCP (the default), UDP or SCTP",
                    );
                }
            }
            match &port.port {
                Some(crate::types::common::IntOrString::Int(n)) => {
                    if !(1..=65535).contains(n) {
                        ctx.error(
                            &here.key("port"),
                            format!("port {n} is out of range"),
                            "ports are 1 to 65535",
                        );
                    }
                    if let Some(end) = port.end_port {
                        if i64::from(end) < *n || end > 65535 {
                            ctx.error(
                                &here.key("endPort"),
                                format!("endPort {end} is below port {n} or above 65535"),
                                "endPort closes a range that port opens",
                            );
                        }
                    }
                }
                Some(crate::types::common::IntOrString::Str(_)) | None
                    if port.end_port.is_some() =>
                {
                    ctx.error(
                        &here.key("endPort"),
                        "endPort needs a numbered port",
                        "give port a number, or remove endPort",
                    )
                }
                _ => {}
            }
        }
    }
}

pub fn node(ctx: &mut Ctx<'_>, n: &NodeSpec, spec: &FieldPath) {
    let ranges = n.pod_cidr.iter().map(|c| (spec.key("podCIDR"), c)).chain(
        n.pod_cidrs
            .iter()
            .enumerate()
            .map(|(i, c)| (spec.key("podCIDRs").index(i), c)),
    );
    for (path, cidr) in ranges {
        match cidr.parse::<ipnet::IpNet>() {
            Err(_) => ctx.error(
                &path,
                format!("{cidr:?} is not an address range"),
                "give a range in CIDR notation, e.g. 198.19.8.0/24",
            ),
            Ok(ipnet::IpNet::V6(_)) => ctx.warn(
                &path,
                format!("{cidr} is an IPv6 range: weft gives pods IPv4 addresses only, so this node's pods take none from it"),
                "give an IPv4 range, e.g. 198.19.8.0/24",
            ),
            Ok(ipnet::IpNet::V4(v4)) if v4.prefix_len() > 29 => ctx.error(
                &path,
                format!("{cidr} is too small to hold pods"),
                "give a /29 or larger, e.g. a /24",
            ),
            Ok(_) => {}
        }
    }
}

pub fn workload(ctx: &mut Ctx<'_>, w: &Workload, spec: &FieldPath) {
    proxy_config(
        ctx,
        &FieldPath::root().key("metadata").key("annotations"),
        &ctx.resource.meta.annotations,
    );
    if w.command.is_empty() {
        ctx.error(
            &spec.key("command"),
            "command is required",
            "give the program to run, e.g. command: weft, args: [sample-app, details]",
        );
    }
    if w.port.is_some() && !w.ports.is_empty() {
        ctx.error(
            &spec.key("port"),
            "port and ports are mutually exclusive",
            "list every port under ports",
        );
    }
    if let Some(p) = w.port {
        checks::port(ctx, &spec.key("port"), p);
    }
    let mut numbers = BTreeSet::new();
    for (i, p) in w.ports.iter().enumerate() {
        let pp = spec.key("ports").index(i);
        checks::port(ctx, &pp.key("port"), p.port);
        if !numbers.insert(p.port) {
            ctx.error(
                &pp.key("port"),
                format!("port {} is listed twice", p.port),
                "list each port once",
            );
        }
    }
    checks::labels(ctx, &spec.key("nodeSelector"), &w.node_selector);
    if w.replicas == Some(0) {
        ctx.warn(
            &spec.key("replicas"),
            "replicas is 0: nothing will run",
            "set replicas: 1 or more",
        );
    }
    if !w.service_account.is_empty() && !checks::is_dns_label(&w.service_account) {
        ctx.error(
            &spec.key("serviceAccount"),
            format!(
                "service account {:?} is not a valid name",
                w.service_account
            ),
            "use a lowercase DNS label such as bookinfo-reviews",
        );
    }
}

fn flagger_duration(ctx: &mut Ctx<'_>, p: &FieldPath, d: Option<&str>) {
    if let Some(d) = d {
        match parse_duration(d) {
            Ok(v) if v.as_millis() >= 1 => {}
            Ok(_) => ctx.error(p, format!("duration {d} is shorter than 1ms"), "e.g. 1m"),
            Err(e) => ctx.error(p, e.to_string(), "e.g. 1m or 30s"),
        }
    }
}

pub fn canary(ctx: &mut Ctx<'_>, c: &Canary, spec: &FieldPath) {
    match &c.target_ref {
        None => ctx.error(&spec.key("targetRef"), "targetRef is required", "point at the Deployment or Workload to release, e.g. targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}"),
        Some(t) => {
            if t.name.is_empty() {
                ctx.error(&spec.key("targetRef").key("name"), "targetRef name is required", "name the Deployment or Workload");
            }
            if !matches!(t.kind.as_str(), "Deployment" | "DaemonSet" | "Workload" | "Service") {
                ctx.error(&spec.key("targetRef").key("kind"), format!("targetRef kind {:?} is not supported", t.kind), "use Deployment (or weft's Workload)");
            }
        }
    }
    match &c.service {
        None => ctx.error(
            &spec.key("service"),
            "service is required",
            "add service: {port: 9898}",
        ),
        Some(s) => {
            if !(1..=65535).contains(&s.port) {
                ctx.error(
                    &spec.key("service").key("port"),
                    "service port is required",
                    "e.g. port: 9898",
                );
            }
            flagger_duration(
                ctx,
                &spec.key("service").key("timeout"),
                s.timeout.as_deref(),
            );
        }
    }
    if c.analysis.is_some() && c.canary_analysis.is_some() {
        ctx.error(
            &spec.key("canaryAnalysis"),
            "analysis and canaryAnalysis are mutually exclusive",
            "canaryAnalysis is the old name: keep analysis",
        );
    }
    let (field, analysis) = match (&c.analysis, &c.canary_analysis) {
        (Some(a), _) => ("analysis", a),
        (None, Some(a)) => ("canaryAnalysis", a),
        (None, None) => {
            ctx.error(
                &spec.key("analysis"),
                "analysis is required",
                "add analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}",
            );
            return;
        }
    };
    let ap = spec.key(field);
    flagger_duration(
        ctx,
        &ap.key("interval"),
        Some(analysis.interval.as_str()).filter(|s| !s.is_empty()),
    );
    if analysis.interval.is_empty() {
        ctx.error(
            &ap.key("interval"),
            "interval is required",
            "e.g. interval: 1m",
        );
    }
    if let Some(t) = analysis.threshold {
        if t < 1 {
            ctx.error(
                &ap.key("threshold"),
                "threshold must be at least 1",
                "the number of failed checks before rollback, e.g. 5",
            );
        }
    }
    for (f, v) in [
        ("maxWeight", analysis.max_weight),
        ("stepWeight", analysis.step_weight),
        ("mirrorWeight", analysis.mirror_weight),
        ("stepWeightPromotion", analysis.step_weight_promotion),
    ] {
        if let Some(v) = v {
            if !(0..=100).contains(&v) {
                ctx.error(
                    &ap.key(f),
                    format!("{f} {v} is outside 0..100"),
                    "weights are percentages",
                );
            }
        }
    }
    let mut prev = 0;
    for (i, w) in analysis.step_weights.iter().enumerate() {
        if *w <= prev || *w > 100 {
            ctx.error(
                &ap.key("stepWeights").index(i),
                "stepWeights must increase and stay within 1..100",
                "e.g. stepWeights: [1, 5, 10, 20, 50]",
            );
            break;
        }
        prev = *w;
    }
    let steps = analysis.step_weight.is_some() || !analysis.step_weights.is_empty();
    if !steps && analysis.iterations.is_none() {
        ctx.error(
            &ap,
            "analysis needs stepWeight, stepWeights or iterations",
            "for a canary: stepWeight: 10, maxWeight: 50",
        );
    }
    for (i, m) in analysis.metrics.iter().enumerate() {
        let mp = ap.key("metrics").index(i);
        let builtin = matches!(m.name.as_str(), "request-success-rate" | "request-duration");
        if m.name.is_empty() {
            ctx.error(
                &mp.key("name"),
                "metric name is required",
                "e.g. name: request-success-rate",
            );
        } else if !builtin && m.template_ref.is_none() && m.query.is_none() {
            ctx.error(&mp, format!("metric {:?} is not built in and has no templateRef", m.name), "use request-success-rate or request-duration, or add templateRef: {name: my-template}");
        }
        if let Some(r) = &m.threshold_range {
            if let (Some(lo), Some(hi)) = (r.min, r.max) {
                if lo > hi {
                    ctx.error(&mp.key("thresholdRange"), "min is above max", "swap them");
                }
            }
        } else if m.threshold.is_none() {
            ctx.error(
                &mp.key("thresholdRange"),
                "thresholdRange is required",
                "e.g. thresholdRange: {min: 99}",
            );
        }
        flagger_duration(ctx, &mp.key("interval"), m.interval.as_deref());
    }
    for (i, w) in analysis.webhooks.iter().enumerate() {
        let wp = ap.key("webhooks").index(i);
        const TYPES: &[&str] = &[
            "",
            "confirm-rollout",
            "pre-rollout",
            "rollout",
            "confirm-traffic-increase",
            "confirm-promotion",
            "post-rollout",
            "rollback",
            "event",
        ];
        if !TYPES.contains(&w.hook_type.as_str()) {
            ctx.error(
                &wp.key("type"),
                format!("unknown webhook type {:?}", w.hook_type),
                format!("use one of: {}", TYPES[1..].join(", ")),
            );
        }
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            ctx.error(
                &wp.key("url"),
                format!("webhook url {:?} is not an http(s) URL", w.url),
                "e.g. http://loadtester.test/",
            );
        }
        flagger_duration(ctx, &wp.key("timeout"), w.timeout.as_deref());
    }
}

pub fn metric_template(ctx: &mut Ctx<'_>, m: &MetricTemplate, spec: &FieldPath) {
    match &m.provider {
        None => ctx.error(
            &spec.key("provider"),
            "provider is required",
            "add provider: {type: prometheus, address: http://127.0.0.1:9090}",
        ),
        Some(p) => {
            const TYPES: &[&str] = &["prometheus", "weft"];
            if !TYPES.contains(&p.provider_type.as_str()) {
                ctx.error(
                    &spec.key("provider").key("type"),
                    format!(
                        "metric provider {:?} is not supported by weft",
                        p.provider_type
                    ),
                    "use prometheus, or weft for the mesh's own metrics",
                );
            }
        }
    }
    if m.query.trim().is_empty() {
        ctx.error(
            &spec.key("query"),
            "query is required",
            "write the PromQL query that yields one number",
        );
    }
}

/// Flagger's notifiers: the types it knows, and an address (or a secret
/// holding one).
pub fn alert_provider(ctx: &mut Ctx<'_>, a: &AlertProvider, spec: &FieldPath) {
    const TYPES: [&str; 5] = ["slack", "msteams", "discord", "rocket", "gchat"];
    if !TYPES.contains(&a.provider_type.as_str()) {
        ctx.error(
            &spec.key("type"),
            format!(
                "alert provider type {:?} is not one of Flagger's",
                a.provider_type
            ),
            "use slack, msteams, discord, rocket or gchat",
        );
    }
    if a.address.is_empty() && a.secret_ref.is_none() {
        ctx.error(
            &spec.key("address"),
            "an alert provider needs an address (or a secretRef holding one)",
            "e.g. address: https://hooks.slack.com/services/…",
        );
    }
}

#[cfg(test)]
mod node_tests {
    /// What loading `yaml` says (loading validates).
    fn findings(yaml: &str) -> Vec<String> {
        crate::load::load_bytes("n.yaml", yaml.as_bytes())
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} {}",
                    d.origin.file, d.origin.line, d.field, d.message
                )
            })
            .collect()
    }

    #[test]
    fn a_nodes_pod_range_is_checked_where_it_is_written() {
        let node = |spec: &str| {
            format!("apiVersion: v1\nkind: Node\nmetadata: {{name: n1}}\nspec: {spec}\n")
        };
        assert!(findings(&node("{podCIDR: 198.19.8.0/24}")).is_empty());
        let bad = findings(&node("{podCIDR: 198.19.8.0}"));
        assert!(
            bad.len() == 1
                && bad[0].contains("n.yaml:4")
                && bad[0].contains("podCIDR")
                && bad[0].contains("not an address range"),
            "{bad:?}"
        );
        let small = findings(&node("{podCIDRs: [198.19.8.0/30]}"));
        assert!(
            small.len() == 1 && small[0].contains("too small"),
            "{small:?}"
        );
        let v6 = findings(&node("{podCIDR: 'fd00::/64'}"));
        assert!(
            v6.len() == 1 && v6[0].contains("IPv4 addresses only"),
            "{v6:?}"
        );
        let selector = findings("apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: w}\nspec: {command: weft, nodeSelector: {'bad key!': x}}\n");
        assert!(
            selector.len() == 1 && selector[0].contains("nodeSelector"),
            "{selector:?}"
        );
    }
}

#[cfg(test)]
mod network_policy_tests {
    fn findings(yaml: &str) -> Vec<String> {
        crate::load::load_bytes("np.yaml", yaml.as_bytes())
            .diagnostics
            .iter()
            .map(|d| format!("{}:{} {}", d.origin.line, d.field, d.message))
            .collect()
    }

    #[test]
    fn a_network_policy_is_checked_as_the_api_server_checks_it() {
        let found = findings("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\nspec:\n  policyTypes: [Ingres]\n  ingress:\n  - from:\n    - ipBlock: {cidr: 198.18.0.0/33}\n    - ipBlock: {cidr: 198.18.0.0/15, except: [203.0.113.0/24]}\n    ports:\n    - port: 70000\n    - port: http\n      endPort: 90\n    - protocol: ICMP\n");
        assert_eq!(
            found,
            [
                "5:spec.policyTypes[0] policy type \"Ingres\" is not Ingress or Egress",
                "8:spec.ingress[0].from[0].ipBlock.cidr \"198.18.0.0/33\" is not a CIDR",
                "9:spec.ingress[0].from[1].ipBlock.except[0] \"203.0.113.0/24\" is not a CIDR inside 198.18.0.0/15",
                "11:spec.ingress[0].ports[0].port port 70000 is out of range",
                "13:spec.ingress[0].ports[1].endPort endPort needs a numbered port",
                "14:spec.ingress[0].ports[2].protocol protocol \"ICMP\" is not TCP, UDP or SCTP",
            ]
        );
    }
}
