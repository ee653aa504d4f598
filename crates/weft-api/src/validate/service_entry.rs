//! ServiceEntry, WorkloadEntry and WorkloadGroup validation, after
//! Istio's `ValidateServiceEntry`, `ValidateWorkloadEntry` and
//! `ValidateWorkloadGroup`.

use std::collections::BTreeSet;

use crate::path::FieldPath;
use crate::types::networking::*;

use super::{checks, Ctx};

pub fn service_entry(ctx: &mut Ctx<'_>, se: &ServiceEntry, spec: &FieldPath) {
    if let Some(ws) = &se.workload_selector {
        let wp = spec.key("workloadSelector");
        checks::selector_wildcards(ctx, &wp.key("labels"), &ws.labels);
        checks::empty_selector(ctx, &wp, &ws.labels, "service entry: ");
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        ctx.error(
            &spec.key("workloadSelector"),
            "only one of workloadSelector or endpoints is allowed in a ServiceEntry",
            "keep one way of naming the endpoints",
        );
    }
    if se.hosts.is_empty() {
        ctx.error(
            &spec.key("hosts"),
            "a ServiceEntry needs at least one host",
            "e.g. hosts: [api.example.com]",
        );
    }
    let resolution = se.resolution.unwrap_or(Resolution::None);
    for (i, h) in se.hosts.iter().enumerate() {
        let p = spec.key("hosts").index(i);
        if h == "*" {
            ctx.error(
                &p,
                "a ServiceEntry host cannot be *",
                "name the external hosts",
            );
            continue;
        }
        checks::host(ctx, &p, h);
        if checks::is_partial_wildcard(h) && resolution != Resolution::DynamicDns {
            ctx.warn(
                &p,
                format!("partial wildcard {h:?} not allowed"),
                "a wildcard should be the whole first label, as in *.example.com",
            );
        }
    }
    let mut cidr = false;
    for (i, a) in se.addresses.iter().enumerate() {
        cidr |= a.contains('/');
        checks::ip_or_cidr_check(ctx, &spec.key("addresses").index(i), a);
    }
    if cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        ctx.error(
            &spec.key("addresses"),
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
            "give single addresses, or use resolution: NONE",
        );
    }
    let namespace = ctx.resource.namespace();
    checks::export_to(
        ctx,
        &spec.key("exportTo"),
        namespace,
        &se.export_to,
        checks::ExportOf::ServiceEntry,
    );
    service_entry_ports(ctx, se, resolution, spec);
    let names: BTreeSet<&str> = se.ports.iter().map(|p| p.name.as_str()).collect();
    let endpoints = spec.key("endpoints");
    match resolution {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                ctx.error(
                    &endpoints,
                    "no endpoints should be provided for resolution type NONE",
                    "use resolution: STATIC or DNS with endpoints",
                );
            }
            if se.workload_selector.is_some() {
                ctx.warn(
                    &spec.key("workloadSelector"),
                    "workloadSelector should not be set when resolution mode is NONE",
                    "use resolution: STATIC to send traffic to the selected workloads",
                );
            }
        }
        Resolution::Static => {
            for (i, e) in se.endpoints.iter().enumerate() {
                endpoint(ctx, e, &endpoints.index(i), Some(&names));
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            // DNS resolves the hosts themselves: no wildcard (Istio's
            // `ValidateFQDN`).
            if se.endpoints.is_empty() {
                if let Some((i, why)) = se
                    .hosts
                    .iter()
                    .enumerate()
                    .find_map(|(i, h)| checks::fqdn_error(h).map(|w| (i, w)))
                {
                    ctx.error(
                        &spec.key("hosts").index(i),
                        format!("hosts must be FQDN or contain only prefix wildcards if no endpoints are provided for resolution mode DNS: {why}"),
                        "name a host DNS can resolve, or list endpoints",
                    );
                }
            }
            if resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                ctx.error(
                    &endpoints,
                    "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN",
                    "use resolution: DNS to balance over several endpoints",
                );
            }
            for (i, e) in se.endpoints.iter().enumerate() {
                let ep = endpoints.index(i);
                fqdn_or_ip_address(ctx, &ep.key("address"), &e.address);
                checks::labels(ctx, &ep.key("labels"), &e.labels);
                endpoint_ports(ctx, e, &ep, Some(&names));
            }
            let tcp = se.ports.iter().any(|p| is_tcp_protocol(&p.protocol));
            if !se.addresses.is_empty() && tcp && se.hosts.len() > 1 {
                ctx.warn(
                    &spec.key("hosts"),
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                    "give each host its own ServiceEntry",
                );
            }
        }
        Resolution::DynamicDns => dynamic_dns(ctx, se, spec),
    }
    // Plain TCP cannot tell hosts apart; only NONE ignores them.
    if resolution != Resolution::None && se.hosts.len() > 1 {
        let opaque = se.ports.iter().any(|p| {
            !checks::is_http_protocol(&p.protocol) && !checks::is_tls_protocol(&p.protocol)
        });
        if opaque {
            ctx.error(
                &spec.key("ports"),
                "multiple hosts provided with non-HTTP, non-TLS ports",
                "give each host its own ServiceEntry, or declare the ports HTTP or TLS",
            );
        }
    }
}

fn service_entry_ports(
    ctx: &mut Ctx<'_>,
    se: &ServiceEntry,
    resolution: Resolution,
    spec: &FieldPath,
) {
    // Istio allocates addresses for ServiceEntries (PILOT_ENABLE_IP_AUTOALLOCATE,
    // on by default) except with resolution NONE or when the label
    // networking.istio.io/enable-autoallocate-ip is "false".
    let opted_out = ctx
        .resource
        .meta
        .labels
        .get("networking.istio.io/enable-autoallocate-ip")
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let allocated = resolution != Resolution::None && !opted_out;
    let mut numbers = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let pp = spec.key("ports").index(i);
        if !names.insert(port.name.as_str()) {
            ctx.error(
                &pp.key("name"),
                format!("service entry port name {:?} already defined", port.name),
                "give each port a unique name",
            );
        }
        if !numbers.insert(port.number) {
            ctx.error(
                &pp.key("number"),
                format!("service entry port {} already defined", port.number),
                "list each port once",
            );
        }
        if let Some(t) = port.target_port.filter(|t| *t != 0) {
            checks::port(ctx, &pp.key("targetPort"), t);
        }
        if se.addresses.is_empty() && !allocated && matches!(port.protocol.as_str(), "" | "TCP") {
            ctx.warn(
                &pp.key("protocol"),
                "addresses are required for ports serving TCP (or unset) protocol when IP autoallocation is not enabled",
                "give the ServiceEntry addresses, or declare the port's protocol",
            );
        }
        checks::port_name(ctx, &pp.key("name"), &port.name);
        if !port.protocol.is_empty() {
            checks::protocol(ctx, &pp.key("protocol"), &port.protocol);
        }
        checks::port(ctx, &pp.key("number"), port.number);
    }
}

fn dynamic_dns(ctx: &mut Ctx<'_>, se: &ServiceEntry, spec: &FieldPath) {
    ctx.unimplemented(
        &spec.key("resolution"),
        "resolution DYNAMIC_DNS is accepted but not implemented by weft: requests go to the address the application resolved, as with NONE",
        "use DNS with named hosts, or expect NONE's behaviour",
    );
    for (i, h) in se.hosts.iter().enumerate() {
        if !h.starts_with('*') {
            ctx.error(
                &spec.key("hosts").index(i),
                "host must be wildcarded for resolution mode DYNAMIC_DNS",
                "write e.g. *.example.com",
            );
        }
    }
    if !se.addresses.is_empty() {
        ctx.error(
            &spec.key("addresses"),
            "addresses cannot be set for resolution type DYNAMIC_DNS: HTTP route domains are generated from the hosts only",
            "remove addresses",
        );
    }
    if !se.endpoints.is_empty() {
        ctx.error(
            &spec.key("endpoints"),
            "endpoints cannot be set for resolution type DYNAMIC_DNS: the destination address comes from the host",
            "remove endpoints",
        );
    }
    for (i, p) in se.ports.iter().enumerate() {
        let ok = ["HTTP", "TLS", "GRPC", "HTTP2"]
            .iter()
            .any(|x| x.eq_ignore_ascii_case(&p.protocol));
        if !ok {
            ctx.error(
                &spec.key("ports").index(i).key("protocol"),
                "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS",
                "declare the port HTTP, TLS, GRPC or HTTP2",
            );
        }
    }
    let waypoint = ctx
        .resource
        .meta
        .labels
        .get("istio.io/use-waypoint")
        .is_some_and(|v| !v.is_empty() && !v.eq_ignore_ascii_case("none"));
    if se.location == Some(Location::MeshInternal) && waypoint {
        ctx.error(
            &spec.key("location"),
            "location MESH_INTERNAL with resolution type DYNAMIC_DNS is not supported when using waypoints",
            "use location: MESH_EXTERNAL",
        );
    }
}

/// Istio's `protocol.Parse(p).IsTCP()`: the protocols carried over TCP
/// as streams (unset is "unsupported", not TCP).
fn is_tcp_protocol(p: &str) -> bool {
    ["TCP", "HTTPS", "TLS", "MONGO", "REDIS", "MYSQL"]
        .iter()
        .any(|x| x.eq_ignore_ascii_case(p))
}

/// An endpoint address DNS can resolve, or an IP address.
fn fqdn_or_ip_address(ctx: &mut Ctx<'_>, p: &FieldPath, addr: &str) {
    if !checks::is_ip(addr) && checks::fqdn_error(addr).is_some() {
        ctx.error(
            p,
            format!("endpoint address {addr:?} is not a valid FQDN or an IP address"),
            "give a DNS name or an IP address",
        );
    }
}

/// Istio's `validateWorkloadEntry`, for a WorkloadEntry (`services` is
/// `None`, FQDN addresses allowed) and a STATIC ServiceEntry's endpoints
/// (`services` names the entry's ports; addresses must be IPs).
fn endpoint(
    ctx: &mut Ctx<'_>,
    e: &WorkloadEntry,
    ep: &FieldPath,
    services: Option<&BTreeSet<&str>>,
) {
    let addr = e.address.as_str();
    if addr.is_empty() {
        if e.network.is_empty() {
            ctx.error(
                &ep.key("address"),
                "address is required",
                "give the workload's IP address or DNS name",
            );
            return;
        }
        ctx.warn(
            &ep.key("address"),
            format!("address is unset with network {:?}", e.network),
            "weft does not route between networks: give the workload's address to reach it",
        );
    }
    let unix = addr.starts_with("unix://");
    if unix {
        checks::unix_address(ctx, &ep.key("address"), addr);
        if !e.ports.is_empty() {
            ctx.error(
                &ep.key("ports"),
                format!("unix endpoint {addr} must not include ports"),
                "remove ports: a socket has none",
            );
        }
    } else if !addr.is_empty() && !checks::is_ip(addr) {
        if services.is_some() {
            ctx.error(
                &ep.key("address"),
                format!("endpoint address {addr:?} is not a valid IP address"),
                "STATIC endpoints need IP addresses; use resolution: DNS for host names",
            );
        } else {
            fqdn_or_ip_address(ctx, &ep.key("address"), addr);
        }
    }
    endpoint_ports(ctx, e, ep, services);
    checks::labels(ctx, &ep.key("labels"), &e.labels);
    if unix && services.is_some_and(|s| s.len() != 1) {
        ctx.error(
            ep,
            "exactly 1 service port required for unix endpoints",
            "declare one port in spec.ports",
        );
    }
}

fn endpoint_ports(
    ctx: &mut Ctx<'_>,
    e: &WorkloadEntry,
    ep: &FieldPath,
    services: Option<&BTreeSet<&str>>,
) {
    for (name, port) in &e.ports {
        let pp = ep.key("ports").key(name);
        if services.is_some_and(|s| !s.contains(name.as_str())) {
            ctx.error(
                &pp,
                format!("endpoint port {name:?} is not defined by the service entry"),
                "use one of the names in spec.ports",
            );
        }
        checks::port_name(ctx, &pp, name);
        checks::port(ctx, &pp, *port);
    }
}

pub fn workload_entry(ctx: &mut Ctx<'_>, we: &WorkloadEntry, spec: &FieldPath) {
    endpoint(ctx, we, spec, None);
}

/// Istio validates the group's labels and probe, not its template (whose
/// address and other fields are filled in per VM).
pub fn workload_group(ctx: &mut Ctx<'_>, wg: &WorkloadGroup, spec: &FieldPath) {
    if wg.template.is_none() {
        ctx.error(
            &spec.key("template"),
            "template is required",
            "add template: {serviceAccount: my-sa}",
        );
        return;
    }
    if let Some(m) = &wg.metadata {
        checks::labels(ctx, &spec.key("metadata").key("labels"), &m.labels);
    }
    if let Some(p) = &wg.probe {
        probe(ctx, p, &spec.key("probe"));
    }
}

fn probe(ctx: &mut Ctx<'_>, p: &ReadinessProbe, pp: &FieldPath) {
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        checks::non_negative(ctx, pp, field, v);
    }
    // Istio's validation knows httpGet, tcpSocket and exec; any other
    // method (grpc among them) is refused.
    match (&p.http_get, &p.tcp_socket, &p.exec) {
        (Some(h), _, _) => {
            let hp = pp.key("httpGet");
            checks::port(ctx, &hp.key("port"), h.port);
            if let Some(s) = h
                .scheme
                .as_deref()
                .filter(|s| !matches!(*s, "" | "HTTP" | "HTTPS"))
            {
                ctx.error(
                    &hp.key("scheme"),
                    format!("httpGet.scheme {s:?} must be one of \"HTTPS\", \"HTTP\""),
                    "use HTTP or HTTPS",
                );
            }
            for (i, h) in h.http_headers.iter().enumerate() {
                let ok = !h.name.is_empty()
                    && h.name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
                if !ok {
                    ctx.error(
                        &hp.key("httpHeaders").index(i).key("name"),
                        format!("header name {:?} is not a valid header name", h.name),
                        "probe header names are letters, digits and '-'",
                    );
                }
            }
        }
        (None, Some(t), _) => checks::port(ctx, &pp.key("tcpSocket").key("port"), t.port),
        (None, None, Some(e)) => {
            if e.command.is_empty() {
                ctx.error(
                    &pp.key("exec").key("command"),
                    "exec.command is required",
                    "e.g. command: [cat, /tmp/healthy]",
                );
            }
        }
        (None, None, None) => ctx.error(
            pp,
            "unknown health check method: a probe needs httpGet, tcpSocket or exec",
            "e.g. httpGet: {path: /ready, port: 8080}",
        ),
    }
}
