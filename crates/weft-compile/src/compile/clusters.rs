//! Clusters: a service port (and subset) with its DestinationRule policy
//! and its endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;

use weft_api::resource::Resource;
use weft_api::types::networking as net;
use weft_model::*;

use super::carry::Revision;
use super::routes::{is_external, ClusterKey};
use super::{Compiler, Me};
use crate::host;
use crate::registry::{labels_match, ResolutionKind, ServiceSource, TargetPort};

/// Istio's default connect timeout.
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// What a cluster is built from: its key, the DestinationRule that
/// applies (by its place under the rules' revision), the service's
/// revision and the instances' (its endpoints). A cluster depends on the
/// proxy asking only through the rule, so the proxies of a namespace (or
/// of the mesh) share one, and while none of these change the next
/// configuration takes it as it is (`carry`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClusterMemoKey {
    key: ClusterKey,
    rule: usize,
    rules: Revision,
    service: Revision,
    instances: Revision,
    credentials: bool,
}

pub(crate) type Memo = super::carry::Carried<ClusterMemoKey, Arc<Cluster>>;

pub fn build(c: &Compiler<'_>, me: &Me, keys: &BTreeSet<ClusterKey>) -> Vec<Arc<Cluster>> {
    keys.iter()
        .map(|key| {
            let svc = c.registry.service(&key.host);
            let dr = destination_rule_for(c, me, &key.host, svc.map(|s| s.namespace.as_str()));
            // Istio's sidecars take a DestinationRule's credentialName only
            // when the rule selects workloads; gateways always do.
            let credentials = me.kind == weft_model::ProxyKind::Gateway
                || dr.is_none_or(|(_, d)| d.workload_selector.is_some());
            let memo_key = ClusterMemoKey {
                key: key.clone(),
                rule: c.revisions.of_rule(dr.map(|(r, _)| r)),
                rules: c.revisions.destination_rules,
                service: c.revisions.of_service(svc),
                instances: c.revisions.instances,
                credentials,
            };
            if let Some(found) = c.carry.clusters.get(&memo_key) {
                return found;
            }
            c.carry
                .clusters
                .put(memo_key, Arc::new(cluster(c, dr, key, credentials)))
        })
        .collect()
}

/// The DestinationRule for `host` as seen by `me`: Istio looks in the
/// client's namespace, then the service's, then the root namespace; a rule
/// with a matching workloadSelector beats one without.
pub(crate) fn destination_rule_for<'a>(
    c: &Compiler<'a>,
    me: &Me,
    host_name: &str,
    svc_ns: Option<&str>,
) -> Option<(&'a Resource, &'a net::DestinationRule)> {
    let candidates: Vec<(&Resource, &net::DestinationRule)> = c
        .index
        .destination_rules
        .iter()
        .filter(|(r, dr)| {
            let h = host::resolve(&dr.host, r.namespace(), &c.mesh.domain_suffix);
            host::matches(&h, host_name)
                && host::exported_to(&dr.export_to, r.namespace(), &me.namespace)
                && dr.workload_selector.as_ref().is_none_or(|s| {
                    r.namespace() == me.namespace && labels_match(&s.match_labels, &me.labels)
                })
        })
        .copied()
        .collect();
    let rank = |r: &Resource, dr: &net::DestinationRule| {
        let ns = if r.namespace() == me.namespace {
            3
        } else if Some(r.namespace()) == svc_ns {
            2
        } else if r.namespace() == c.mesh.root_namespace {
            1
        } else {
            0
        };
        let exact = !dr.host.contains('*');
        (ns, dr.workload_selector.is_some(), exact)
    };
    candidates.into_iter().max_by(|a, b| {
        rank(a.0, a.1)
            .cmp(&rank(b.0, b.1))
            .then_with(|| (b.0.namespace(), b.0.name()).cmp(&(a.0.namespace(), a.0.name())))
    })
}

/// The effective policy for one port and subset: top level, then the
/// port's settings, then the subset's (each field replaces as a whole).
#[derive(Default)]
struct Effective<'a> {
    lb: Option<&'a net::LoadBalancerSettings>,
    pool: Option<&'a net::ConnectionPoolSettings>,
    outlier: Option<&'a net::OutlierDetection>,
    tls: Option<&'a net::ClientTlsSettings>,
}

impl<'a> Effective<'a> {
    fn apply(&mut self, tp: &'a net::TrafficPolicy, port: u32) {
        self.lb = tp.load_balancer.as_ref().or(self.lb);
        self.pool = tp.connection_pool.as_ref().or(self.pool);
        self.outlier = tp.outlier_detection.as_ref().or(self.outlier);
        self.tls = tp.tls.as_ref().or(self.tls);
        if let Some(pl) = tp
            .port_level_settings
            .iter()
            .find(|p| p.port.is_some_and(|x| x.number == port))
        {
            self.lb = pl.load_balancer.as_ref().or(self.lb);
            self.pool = pl.connection_pool.as_ref().or(self.pool);
            self.outlier = pl.outlier_detection.as_ref().or(self.outlier);
            self.tls = pl.tls.as_ref().or(self.tls);
        }
    }
}

fn ms(d: &weft_api::types::common::Duration) -> u64 {
    u64::try_from(d.as_std().as_millis()).unwrap_or(u64::MAX)
}

fn u32_of(v: Option<i64>) -> Option<u32> {
    v.and_then(|x| u32::try_from(x).ok())
}

/// The cluster for `key` under `dr`; `credentials`: whether the rule's
/// `credentialName` applies to this proxy.
fn cluster(
    c: &Compiler<'_>,
    dr: Option<(&Resource, &net::DestinationRule)>,
    key: &ClusterKey,
    credentials: bool,
) -> Cluster {
    let svc = c.registry.service(&key.host);
    let mut eff = Effective::default();
    let mut origin = Vec::new();
    let mut subset_labels = None;
    if let Some((r, rule)) = dr {
        origin.push(format!("DestinationRule {}/{}", r.namespace(), r.name()));
        if let Some(tp) = &rule.traffic_policy {
            eff.apply(tp, key.port);
        }
        if !key.subset.is_empty() {
            // Istio merges the subsets of every DestinationRule for the
            // host in the chosen rule's namespace; the first policy wins.
            let siblings = c.index.destination_rules.iter().filter(|(o, d)| {
                o.namespace() == r.namespace()
                    && d.workload_selector.is_none() == rule.workload_selector.is_none()
                    && host::resolve(&d.host, o.namespace(), &c.mesh.domain_suffix)
                        == host::resolve(&rule.host, r.namespace(), &c.mesh.domain_suffix)
            });
            let found = std::iter::once((r, rule))
                .chain(siblings.map(|(o, d)| (*o, *d)))
                .find_map(|(o, d)| {
                    d.subsets
                        .iter()
                        .find(|s| s.name == key.subset)
                        .map(|s| (o, s))
                });
            if let Some((o, s)) = found {
                if !std::ptr::eq(o, r) {
                    origin.push(format!(
                        "DestinationRule {}/{} (subset {})",
                        o.namespace(),
                        o.name(),
                        s.name
                    ));
                }
                subset_labels = Some(&s.labels);
                if let Some(tp) = &s.traffic_policy {
                    eff.apply(tp, key.port);
                }
            }
        }
    }
    let protocol = svc
        .and_then(|s| s.port(key.port))
        .map_or(Protocol::Unknown, |p| p.protocol);
    let mut endpoints = Vec::new();
    // An endpoint auto mTLS leaves out (a gateway) makes the cluster plain
    // text unless a DestinationRule says otherwise.
    let mut plain_by_default = false;
    if let Some(svc) = svc {
        let sport = svc.port(key.port);
        // A subset that the DestinationRule does not define selects nothing.
        let subset_known = key.subset.is_empty() || subset_labels.is_some();
        if subset_known {
            for inst in c.registry.instances_of(svc) {
                if let Some(sl) = subset_labels {
                    if !labels_match(sl, &inst.labels) {
                        continue;
                    }
                }
                let target = match sport.map(|p| &p.target) {
                    Some(TargetPort::Number(n)) => *n,
                    Some(TargetPort::Name(name)) => inst
                        .ports
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(0, |(_, p)| *p),
                    None => key.port,
                };
                endpoints.push(Endpoint {
                    address: inst
                        .ip
                        .as_ref()
                        .map(|ip| format!("{ip}:{target}"))
                        .unwrap_or_default(),
                    workload: inst.workload.clone(),
                    instance: inst.name.clone(),
                    namespace: inst.namespace.clone(),
                    labels: inst.labels.clone(),
                    locality: inst.locality.clone(),
                    weight: inst.weight,
                    identity: if inst.meshed {
                        names::spiffe_id(
                            &c.mesh.trust_domain,
                            &inst.namespace,
                            &inst.service_account,
                        )
                    } else {
                        String::new()
                    },
                });
            }
            // The port's numbered `targetPort`, else the port itself.
            let numbered_target = sport.map_or(key.port, |p| match p.target {
                TargetPort::Number(n) => n,
                TargetPort::Name(_) => key.port,
            });
            for le in &svc.listed_endpoints {
                if let Some(sl) = subset_labels {
                    if !labels_match(sl, &le.labels) {
                        continue;
                    }
                }
                let port = sport
                    .and_then(|p| le.ports.get(&p.name).copied())
                    .unwrap_or(numbered_target);
                plain_by_default |= !le.auto_mtls;
                endpoints.push(Endpoint {
                    address: format!("{}:{port}", le.address),
                    workload: le.workload.clone(),
                    instance: le.workload.clone(),
                    namespace: svc.namespace.clone(),
                    labels: le.labels.clone(),
                    locality: le.locality.clone(),
                    weight: le.weight,
                    identity: if le.service_account.is_empty() {
                        String::new()
                    } else {
                        names::spiffe_id(&c.mesh.trust_domain, &svc.namespace, &le.service_account)
                    },
                });
            }
            if let ServiceSource::ServiceEntry {
                resolution: ResolutionKind::Dns,
                ..
            } = svc.source
            {
                if svc.listed_endpoints.is_empty() {
                    // The host itself, on the port's `targetPort` (Istio's
                    // TLS origination task sends port 80 to 443).
                    let port = numbered_target;
                    endpoints.push(Endpoint {
                        address: format!("{}:{port}", key.host),
                        weight: 1,
                        ..Endpoint::default()
                    });
                }
            }
        }
        endpoints.sort();
    }
    let lb = match eff.lb {
        Some(lb) => match (&lb.consistent_hash, lb.simple) {
            (Some(ch), _) => LbPolicy::ConsistentHash(if let Some(h) = &ch.http_header_name {
                HashKey::Header(h.to_ascii_lowercase())
            } else if let Some(ck) = &ch.http_cookie {
                HashKey::Cookie {
                    name: ck.name.clone(),
                    path: ck.path.clone(),
                    ttl_ms: ck.ttl.as_ref().map(ms),
                }
            } else if let Some(q) = &ch.http_query_parameter_name {
                HashKey::QueryParameter(q.clone())
            } else {
                HashKey::SourceIp
            }),
            (None, Some(net::SimpleLb::RoundRobin)) => LbPolicy::RoundRobin,
            (None, Some(net::SimpleLb::Random)) => LbPolicy::Random,
            (None, Some(net::SimpleLb::Passthrough)) => LbPolicy::Passthrough,
            _ => LbPolicy::LeastRequest,
        },
        None if svc.is_some_and(|s| {
            matches!(
                s.source,
                ServiceSource::ServiceEntry {
                    resolution: ResolutionKind::None,
                    ..
                }
            )
        }) =>
        {
            LbPolicy::Passthrough
        }
        None => LbPolicy::LeastRequest,
    };
    let warmup = eff
        .lb
        .and_then(warmup_of)
        .filter(|_| matches!(lb, LbPolicy::RoundRobin | LbPolicy::LeastRequest));
    let locality = eff
        .lb
        .and_then(|l| l.locality_lb_setting.as_ref())
        .filter(|l| l.enabled != Some(false))
        .map(|l| LocalityLb {
            distribute: l
                .distribute
                .iter()
                .map(|d| LocalityDistribute {
                    from: d.from.clone(),
                    to: d.to.clone(),
                })
                .collect(),
            failover: l
                .failover
                .iter()
                .map(|f| LocalityFailover {
                    from: f.from.clone(),
                    to: f.to.clone(),
                })
                .collect(),
            failover_priority: l.failover_priority.clone(),
        });
    let mut pool = ConnectionPool {
        connect_timeout_ms: DEFAULT_CONNECT_TIMEOUT_MS,
        ..Default::default()
    };
    if let Some(p) = eff.pool {
        if let Some(t) = &p.tcp {
            pool.max_connections = u32_of(t.max_connections);
            if let Some(ct) = &t.connect_timeout {
                pool.connect_timeout_ms = ms(ct);
            }
            pool.idle_timeout_ms = t.idle_timeout.as_ref().map(ms);
            pool.max_connection_duration_ms = t.max_connection_duration.as_ref().map(ms);
            pool.tcp_keepalive = t.tcp_keepalive.as_ref().map(|k| TcpKeepalive {
                time_ms: k.time.as_ref().map(ms),
                interval_ms: k.interval.as_ref().map(ms),
                probes: k.probes,
            });
        }
        if let Some(h) = &p.http {
            pool.use_client_protocol = h.use_client_protocol == Some(true);
            pool.http1_max_pending_requests = u32_of(h.http1_max_pending_requests);
            pool.http2_max_requests = u32_of(h.http2_max_requests);
            pool.max_concurrent_streams = u32_of(h.max_concurrent_streams);
            pool.max_requests_per_connection = u32_of(h.max_requests_per_connection);
            pool.max_retries = u32_of(h.max_retries);
            if let Some(it) = &h.idle_timeout {
                pool.idle_timeout_ms = Some(ms(it));
            }
        }
    }
    let protocol = upgraded(c, protocol, eff.pool);
    let outlier = eff.outlier.map(|o| OutlierDetection {
        consecutive_5xx: u32_of(o.consecutive_5xx_errors)
            .or(
                if o.consecutive_gateway_errors.is_none() && o.consecutive_errors.is_none() {
                    Some(5)
                } else {
                    None
                },
            )
            .filter(|n| *n > 0),
        consecutive_gateway_errors: u32_of(o.consecutive_gateway_errors.or(o.consecutive_errors))
            .filter(|n| *n > 0),
        interval_ms: o.interval.as_ref().map_or(10_000, ms),
        base_ejection_ms: o.base_ejection_time.as_ref().map_or(30_000, ms),
        max_ejection_percent: u32_of(o.max_ejection_percent).unwrap_or(10),
        min_health_percent: u32_of(o.min_health_percent).unwrap_or(0),
        // Envoy's default of 5 once the split is on.
        consecutive_local_origin: (o.split_external_local_origin_errors == Some(true))
            .then(|| u32_of(o.consecutive_local_origin_failures).unwrap_or(5)),
    });
    let tls = match eff.tls.and_then(|t| t.mode.map(|m| (m, t))) {
        Some((net::ClientTlsMode::Disable, _)) => UpstreamTls::Disable,
        Some((net::ClientTlsMode::IstioMutual, _)) => UpstreamTls::IstioMutual {
            expected_identities: identities(&endpoints),
        },
        Some((mode, t)) => {
            let o = TlsOrigination {
                sni: t.sni.clone().unwrap_or_default(),
                subject_alt_names: t.subject_alt_names.clone(),
                credential_name: t
                    .credential_name
                    .clone()
                    .filter(|_| credentials)
                    .unwrap_or_default(),
                ca_certificates: t.ca_certificates.clone().unwrap_or_default(),
                client_certificate: t.client_certificate.clone().unwrap_or_default(),
                private_key: t.private_key.clone().unwrap_or_default(),
                ca_crl: t.ca_crl.clone().unwrap_or_default(),
            };
            if mode == net::ClientTlsMode::Simple {
                UpstreamTls::Simple(o)
            } else {
                UpstreamTls::Mutual(o)
            }
        }
        None if plain_by_default => UpstreamTls::Disable,
        None => auto_mtls(c, svc, &endpoints),
    };
    Cluster {
        name: key.name(),
        service: key.host.clone(),
        port: key.port,
        subset: key.subset.clone(),
        protocol,
        lb,
        warmup,
        locality,
        pool,
        outlier,
        tls,
        policy_origin: origin,
        endpoints,
    }
}

/// Slow start from `warmup` or, failing it, `warmupDurationSecs`, with
/// Envoy's defaults (minimumPercent 10, aggression 1: linear).
fn warmup_of(lb: &net::LoadBalancerSettings) -> Option<Warmup> {
    let (duration, min_percent, aggression) = match (&lb.warmup, &lb.warmup_duration_secs) {
        (Some(w), _) => (w.duration.as_ref()?, w.minimum_percent, w.aggression),
        (None, Some(d)) => (d, None, None),
        (None, None) => return None,
    };
    Some(Warmup {
        duration_ms: ms(duration),
        min_percent: min_percent.unwrap_or(10.0),
        aggression: aggression.unwrap_or(1.0),
    })
}

/// Istio's `h2UpgradePolicy`: a DestinationRule's UPGRADE speaks HTTP/2
/// to an HTTP (or undeclared) port, DO_NOT_UPGRADE keeps HTTP/1.1, and
/// otherwise MeshConfig's `h2UpgradePolicy: UPGRADE` upgrades ports
/// declared HTTP. Requests still reach the application behind a sidecar
/// in the port's own protocol; the upgrade is of the hop to it.
fn upgraded(
    c: &Compiler<'_>,
    protocol: Protocol,
    pool: Option<&net::ConnectionPoolSettings>,
) -> Protocol {
    let policy = pool
        .and_then(|p| p.http.as_ref())
        .and_then(|h| h.h2_upgrade_policy);
    match (protocol, policy) {
        (Protocol::Http | Protocol::Unknown, Some(net::H2UpgradePolicy::Upgrade)) => {
            Protocol::Http2
        }
        (Protocol::Http, None | Some(net::H2UpgradePolicy::Default))
            if c.index.mesh_config.h2_upgrade() =>
        {
            Protocol::Http2
        }
        (p, _) => p,
    }
}

fn identities(endpoints: &[Endpoint]) -> Vec<String> {
    endpoints
        .iter()
        .filter(|e| !e.identity.is_empty())
        .map(|e| e.identity.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Istio's auto mTLS: mesh endpoints get ISTIO_MUTUAL unless the
/// destination's PeerAuthentication disables mTLS; anything outside the
/// mesh gets plain text.
fn auto_mtls(
    c: &Compiler<'_>,
    svc: Option<&crate::registry::Service>,
    endpoints: &[Endpoint],
) -> UpstreamTls {
    let Some(svc) = svc else {
        return UpstreamTls::Disable;
    };
    if is_external(svc) || endpoints.is_empty() || endpoints.iter().any(|e| e.identity.is_empty()) {
        return UpstreamTls::Disable;
    }
    let all_disabled = c
        .registry
        .instances_of(svc)
        .all(|inst| super::security::peer_mode(c, &Me::sidecar(inst)).mode == MtlsMode::Disable);
    if all_disabled {
        UpstreamTls::Disable
    } else {
        UpstreamTls::IstioMutual {
            expected_identities: identities(endpoints),
        }
    }
}

/// The DestinationRule a client in `client_ns` (with `labels`) gets for
/// `host`, by the compiler's own precedence.
pub fn destination_rule_for_namespace<'a>(
    c: &Compiler<'a>,
    client_ns: &str,
    labels: &weft_api::types::common::Labels,
    host_name: &str,
    svc_ns: Option<&str>,
) -> Option<(&'a Resource, &'a net::DestinationRule)> {
    let me = Me {
        kind: ProxyKind::Sidecar,
        workload: String::new(),
        namespace: client_ns.to_owned(),
        labels: labels.clone(),
        service_account: String::new(),
        ports: Vec::new(),
        locality: String::new(),
    };
    destination_rule_for(c, &me, host_name, svc_ns)
}
