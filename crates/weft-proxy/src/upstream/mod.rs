//! Upstream clusters at run time: a connection pool, a load balancer, the
//! connection-pool limits of the DestinationRule, and the retry budget.
//!
//! A `ClusterRt` outlives configuration pushes that do not change its
//! cluster, so pools and counters survive unrelated changes.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use weft_model::{Cluster, HashKey, LbPolicy, OutlierDetection, Protocol};

pub mod conn;
pub mod error;
pub mod grpc_call;
pub mod origination;
pub mod pool;
pub mod resolve;
pub mod streams;

use crate::body::Body;
use error::SendError;

/// Envoy's retry budget: retries may be at most this share of the active
/// requests (but always at least `MIN_RETRY_CONCURRENCY`), so retries
/// cannot multiply the load on a failing service.
const RETRY_BUDGET_PERCENT: u32 = 20;
const MIN_RETRY_CONCURRENCY: u32 = 3;

pub struct ClusterRt {
    pub config: Arc<Cluster>,
    /// The cluster's name, shared with the access log entries that name it.
    pub name: Arc<str>,
    /// Each endpoint as metrics label it, and the service.
    pub peers: Vec<crate::telemetry::metrics::Peer>,
    pub service: crate::telemetry::metrics::ServiceNames,
    addrs: Vec<Option<SocketAddr>>,
    /// Endpoints known by name (`resolution: DNS`), looked up when used.
    names: Vec<Option<resolve::Named>>,
    /// How each endpoint is reached: plain, or through its proxy's mTLS
    /// tunnel.
    routes: Vec<crate::upstream::conn::Route>,
    /// One connection pool per endpoint, each dialing only its endpoint:
    /// the request URI can then carry the client's authority, which
    /// HTTP/2 sends as `:authority`.
    pools: Vec<Option<Arc<crate::upstream::pool::EndpointPool>>>,
    /// With `useClientProtocol`, the same endpoints spoken to over
    /// HTTP/2, for clients that speak it (`pools` then speaks HTTP/1.1).
    pools_h2: Vec<Option<Arc<crate::upstream::pool::EndpointPool>>>,
    /// Requests sent per endpoint, for `maxRequestsPerConnection`.
    sent: Vec<AtomicU32>,
    rr: AtomicUsize,
    /// Active requests per endpoint, for LEAST_REQUEST.
    active: Vec<AtomicU32>,
    in_flight: AtomicU32,
    retries_active: AtomicU32,
    /// `maxConnections` (HTTP/1: one request per connection at a time) and
    /// `http2MaxRequests`, as permits.
    permits: Option<std::sync::Arc<Semaphore>>,
    pending: AtomicU32,
    /// Outlier detection state, one per endpoint.
    health: Vec<Health>,
    /// When each endpoint joined (`now_ms`), for slow start; `None` for
    /// endpoints the cluster started with, which are warm.
    joined_ms: Vec<Option<u64>>,
    /// When the last endpoint to join is warm (`now_ms`): 0 when none
    /// warms up (no slow start, or a policy it does not apply to), so
    /// picks after it weigh nothing.
    warm_until_ms: u64,
    /// The proxy using this cluster.
    client: Arc<ClientSide>,
}

/// What a retry steers away from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Avoid {
    /// The endpoint that failed.
    pub endpoint: Option<usize>,
    /// Endpoints in this one's locality.
    pub locality_of: Option<usize>,
}

impl Avoid {
    /// After a try on `failed` under `policy`: its endpoint unless the
    /// route allows going back to it, and its locality with
    /// `retryRemoteLocalities`.
    pub fn after(failed: Option<usize>, policy: Option<&weft_model::RetryPolicy>) -> Avoid {
        Avoid {
            endpoint: failed.filter(|_| !policy.is_some_and(|p| p.reuse_hosts)),
            locality_of: failed.filter(|_| policy.is_some_and(|p| p.remote_localities)),
        }
    }
}

/// Endpoints a pick chooses among: on the stack for the usual few.
type Candidates = smallvec::SmallVec<[usize; 8]>;

/// What a cluster needs to know about the proxy that uses it.
pub struct ClientSide {
    /// `region/zone/subzone`, for locality-aware balancing.
    pub locality: String,
    /// The proxy's labels, for `failoverPriority`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The proxy's identity and tunnels; `None` when it runs without one
    /// (`--no-mtls`), and mesh traffic then goes in plain text.
    pub mesh: Option<Arc<crate::identity::mesh::Mesh>>,
    /// Who is calling, for the peer's metrics (`baggage` on the tunnel's
    /// CONNECT, as Istio's ambient mode sends it).
    pub baggage: http::HeaderValue,
    /// `credentialName` credentials for TLS origination.
    pub credentials: Option<Arc<crate::identity::credentials::Credentials>>,
    /// The proxy's own address, which connections to mesh workloads
    /// leave from.
    pub source_ip: Option<std::net::IpAddr>,
    /// Where connections to anything else leave from: by default
    /// wherever the kernel says; the application's client under capture
    /// leaves from 127.0.0.6, so the capture rules let it through.
    pub unmeshed_source: Option<std::net::IpAddr>,
    /// `unmeshed_source` is a client's address (TPROXY capture).
    pub transparent: bool,
    /// The NetworkPolicies that say where this proxy's workload may
    /// connect: an endpoint they do not allow is unavailable.
    pub egress: Option<Arc<crate::policy::Egress>>,
}

impl ClientSide {
    pub fn new(
        me: &weft_model::ProxyIdentity,
        mesh: Option<Arc<crate::identity::mesh::Mesh>>,
        credentials: Arc<crate::identity::credentials::Credentials>,
        source_ip: Option<std::net::IpAddr>,
    ) -> ClientSide {
        let label = |k: &str| me.labels.get(k).map_or("", String::as_str);
        let baggage = format!(
            "k8s.namespace.name={},k8s.deployment.name={},service.name={},service.version={}",
            me.namespace,
            me.workload,
            label("app"),
            label("version")
        );
        ClientSide {
            locality: me.locality.clone(),
            labels: me.labels.clone(),
            mesh,
            baggage: http::HeaderValue::from_str(&baggage)
                .unwrap_or_else(|_| http::HeaderValue::from_static("")),
            credentials: Some(credentials),
            source_ip,
            unmeshed_source: None,
            transparent: false,
            egress: None,
        }
    }

    /// A client with no identity at `locality`.
    pub fn plain(
        locality: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> ClientSide {
        ClientSide {
            locality: locality.to_owned(),
            labels: labels.clone(),
            mesh: None,
            baggage: http::HeaderValue::from_static(""),
            credentials: None,
            source_ip: None,
            unmeshed_source: None,
            transparent: false,
            egress: None,
        }
    }

    /// This client, held to its workload's egress NetworkPolicies.
    pub fn with_egress(mut self, egress: Option<Arc<crate::policy::Egress>>) -> ClientSide {
        self.egress = egress;
        self
    }

    /// Whether `other` holds its workload to the same egress policies.
    pub fn same_egress(&self, other: &ClientSide) -> bool {
        match (&self.egress, &other.egress) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_as(b),
            _ => false,
        }
    }

    /// This client, connecting to what is not a mesh workload from
    /// `source`.
    pub fn leaving_from(mut self, source: Option<std::net::IpAddr>) -> ClientSide {
        self.unmeshed_source = source;
        self
    }

    /// This client, connecting to what is not a mesh workload from a
    /// client's own address `source` (TPROXY capture keeps it).
    pub fn leaving_as(mut self, source: std::net::IpAddr) -> ClientSide {
        self.unmeshed_source = Some(source);
        self.transparent = true;
        self
    }
}

/// Milliseconds since the process started: a clock for ejections that
/// fits in an atomic.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Envoy's default `max_ejection_time`, which Istio does not expose.
const MAX_EJECTION_MS: u64 = 300_000;

/// Envoy's ejection backoff: the multiplier on `baseEjectionTime` drops
/// by one for each `interval` the endpoint spent back in service
/// (`healthy_for_ms` since its last ejection ended), then grows by one
/// for this ejection while the time stays under `max_ejection_time`.
/// Returns the new multiplier and how long to eject for.
fn ejection_backoff(prior: u32, healthy_for_ms: u64, od: &OutlierDetection) -> (u32, u64) {
    let base = od.base_ejection_ms.max(1);
    let healthy_intervals = healthy_for_ms / od.interval_ms.max(1);
    let decayed = u64::from(prior).saturating_sub(healthy_intervals);
    let cap = MAX_EJECTION_MS.max(base) / base;
    let times = if decayed < cap { decayed + 1 } else { cap };
    let times = u32::try_from(times).unwrap_or(u32::MAX);
    (times, base.saturating_mul(u64::from(times)))
}

#[derive(Default)]
struct Health {
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    consecutive_local_origin: AtomicU32,
    ejected_until_ms: AtomicU64,
    ejections: AtomicU32,
}

impl Health {
    fn ejected(&self, now: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now
    }
}

/// How one try to an endpoint went, for outlier detection.
#[derive(Debug, Clone, Copy)]
pub enum TryOutcome {
    Status(u16),
    /// Connect failure, reset or timeout: a gateway error in Envoy's terms.
    LocalFailure,
}

impl ClusterRt {
    /// `config` is shared with the model it came from: a model holds its
    /// clusters as `Arc`s, and a snapshot keeps them without a copy.
    pub fn new(config: impl Into<Arc<Cluster>>, client: Arc<ClientSide>) -> ClusterRt {
        let config: Arc<Cluster> = config.into();
        let addrs: Vec<Option<SocketAddr>> = config
            .endpoints
            .iter()
            .map(|e| e.address.parse::<SocketAddr>().ok())
            .collect();
        let names: Vec<Option<resolve::Named>> = config
            .endpoints
            .iter()
            .zip(&addrs)
            .map(|(e, a)| match a {
                Some(_) => None,
                None => resolve::Named::parse(&e.address, client.egress.clone()),
            })
            .collect();
        let follow_client = config.pool.use_client_protocol;
        let h2 = matches!(config.protocol, Protocol::Http2 | Protocol::Grpc) && !follow_client;
        let routes_of = |h2: bool| -> Vec<crate::upstream::conn::Route> {
            config
                .endpoints
                .iter()
                .zip(&addrs)
                .map(|(e, a)| endpoint_route(&config, e, *a, &client, h2))
                .collect()
        };
        let routes = routes_of(h2);
        let dial = crate::upstream::conn::DialOptions::of(&config.pool);
        let idle = Duration::from_millis(config.pool.idle_timeout_ms.unwrap_or(90_000));
        let max_age = config
            .pool
            .max_connection_duration_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let pools_of = |h2: bool,
                        routes: &[crate::upstream::conn::Route]|
         -> Vec<Option<Arc<crate::upstream::pool::EndpointPool>>> {
            addrs
                .iter()
                .zip(&names)
                .zip(routes)
                .map(|((a, name), route)| {
                    let target = match (a, name) {
                        (Some(addr), _) => Some(crate::upstream::pool::Target::Addr(*addr)),
                        (None, Some(n)) => Some(crate::upstream::pool::Target::Name(n.clone())),
                        (None, None) => None,
                    };
                    target.map(|target| {
                        crate::upstream::pool::EndpointPool::new(
                            target,
                            route.clone(),
                            dial,
                            idle,
                            max_age,
                            h2,
                            config.pool.max_concurrent_streams,
                        )
                    })
                })
                .collect()
        };
        let pools = pools_of(h2, &routes);
        // Their own routes: a TLS origination offers h2 by ALPN to them.
        let pools_h2 = if follow_client {
            pools_of(true, &routes_of(true))
        } else {
            Vec::new()
        };
        // Istio's `http2MaxRequests` bounds active requests on HTTP/1.1
        // too; there each request holds a connection, so `maxConnections`
        // bounds them as well.
        let limit = if matches!(config.protocol, Protocol::Http2 | Protocol::Grpc) {
            config
                .pool
                .http2_max_requests
                .or(config.pool.max_connections)
        } else {
            match (config.pool.max_connections, config.pool.http2_max_requests) {
                (Some(c), Some(r)) => Some(c.min(r)),
                (c, r) => c.or(r),
            }
        };
        ClusterRt {
            name: Arc::from(config.name.as_str()),
            peers: config
                .endpoints
                .iter()
                .map(crate::telemetry::metrics::Peer::of_endpoint)
                .collect(),
            service: crate::telemetry::metrics::ServiceNames::of(&config.service),
            active: config.endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            sent: config.endpoints.iter().map(|_| AtomicU32::new(0)).collect(),
            addrs,
            names,
            routes,
            pools,
            pools_h2,
            rr: AtomicUsize::new(0),
            in_flight: AtomicU32::new(0),
            retries_active: AtomicU32::new(0),
            permits: limit.map(|n| std::sync::Arc::new(Semaphore::new(n.max(1) as usize))),
            pending: AtomicU32::new(0),
            health: config.endpoints.iter().map(|_| Health::default()).collect(),
            joined_ms: config.endpoints.iter().map(|_| None).collect(),
            warm_until_ms: 0,
            client,
            config,
        }
    }

    /// The cluster that replaces `previous` under a new config: endpoints
    /// it already had keep their join time, new ones join now (and warm
    /// up, when the cluster has slow start).
    pub fn succeeding(
        config: impl Into<Arc<Cluster>>,
        client: Arc<ClientSide>,
        previous: &ClusterRt,
    ) -> ClusterRt {
        let mut rt = ClusterRt::new(config, client);
        let now = now_ms();
        // By address, the first of a repeated one: a push of a large
        // cluster stays linear.
        let mut before: std::collections::HashMap<&str, Option<u64>> =
            std::collections::HashMap::with_capacity(previous.joined_ms.len());
        for (e, joined) in previous.config.endpoints.iter().zip(&previous.joined_ms) {
            before.entry(e.address.as_str()).or_insert(*joined);
        }
        for (joined, e) in rt.joined_ms.iter_mut().zip(&rt.config.endpoints) {
            *joined = before.get(e.address.as_str()).map_or(Some(now), |j| *j);
        }
        rt.warm_until_ms = match (&rt.config.warmup, &rt.config.lb) {
            (Some(w), LbPolicy::RoundRobin | LbPolicy::LeastRequest) => rt
                .joined_ms
                .iter()
                .flatten()
                .map(|joined| joined.saturating_add(w.duration_ms))
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        rt
    }

    /// An endpoint's slow-start weight (1 once warm, or without slow
    /// start).
    fn warmth(&self, i: usize, now: u64) -> f64 {
        match (&self.config.warmup, self.joined_ms[i]) {
            (Some(w), Some(joined)) => w.factor(now.saturating_sub(joined)),
            _ => 1.0,
        }
    }

    /// Endpoints that have an address and are not ejected. Below
    /// `minHealthPercent` healthy, ejections are ignored (Envoy's panic
    /// mode) rather than concentrating all traffic on a few hosts.
    fn usable(&self) -> impl Iterator<Item = usize> + '_ {
        let now = now_ms();
        let with_addr = (0..self.addrs.len())
            .filter(|i| self.reachable(*i))
            .count()
            .max(1);
        let healthy = (0..self.addrs.len())
            .filter(|i| self.reachable(*i) && !self.health[*i].ejected(now))
            .count();
        let min = self
            .config
            .outlier
            .as_ref()
            .map_or(0, |o| o.min_health_percent) as usize;
        let panic = min > 0 && healthy * 100 < min * with_addr;
        (0..self.addrs.len())
            .filter(move |i| self.reachable(*i) && (panic || !self.health[*i].ejected(now)))
    }

    /// Whether endpoint `i` has an address, or a name to look one up by.
    fn reachable(&self, i: usize) -> bool {
        self.addrs[i].is_some() || self.names[i].is_some()
    }

    /// Outlier detection: counts consecutive errors per endpoint and
    /// ejects it for `baseEjectionTime × ejections` when a threshold is
    /// reached, never more than `maxEjectionPercent` of the hosts (but
    /// always at least one, as Envoy).
    pub fn report(&self, i: usize, outcome: TryOutcome) {
        let (Some(od), Some(h)) = (&self.config.outlier, self.health.get(i)) else {
            return;
        };
        let bump = |c: &AtomicU32, hit: bool| {
            if hit {
                c.fetch_add(1, Ordering::AcqRel) + 1
            } else {
                c.store(0, Ordering::Release);
                0
            }
        };
        let trip = match (outcome, od.consecutive_local_origin) {
            // Split: a local-origin failure counts only as one, and an
            // answer (the endpoint was reached) ends a local-origin run.
            // A limit of 0 counts them apart but never ejects (Envoy).
            (TryOutcome::LocalFailure, Some(limit)) => {
                let run = bump(&h.consecutive_local_origin, true);
                limit > 0 && run >= limit
            }
            (outcome, split) => {
                if split.is_some() {
                    bump(&h.consecutive_local_origin, false);
                }
                let (is_5xx, is_gateway) = match outcome {
                    TryOutcome::Status(s) => (s >= 500, matches!(s, 502..=504)),
                    TryOutcome::LocalFailure => (true, true),
                };
                let c5 = bump(&h.consecutive_5xx, is_5xx);
                let cg = bump(&h.consecutive_gateway, is_gateway);
                od.consecutive_5xx.is_some_and(|n| c5 >= n)
                    || od.consecutive_gateway_errors.is_some_and(|n| cg >= n)
            }
        };
        let now = now_ms();
        if !trip || h.ejected(now) {
            return;
        }
        let n = self.addrs.len().max(1);
        let ejected = self.health.iter().filter(|x| x.ejected(now)).count();
        if ejected > 0 && (ejected + 1) * 100 > od.max_ejection_percent as usize * n {
            return;
        }
        let last_until = h.ejected_until_ms.load(Ordering::Acquire);
        let healthy_for = if last_until == 0 {
            0
        } else {
            now.saturating_sub(last_until)
        };
        let (times, eject_for) =
            ejection_backoff(h.ejections.load(Ordering::Acquire), healthy_for, od);
        h.ejections.store(times, Ordering::Release);
        h.ejected_until_ms.store(now + eject_for, Ordering::Release);
        h.consecutive_5xx.store(0, Ordering::Release);
        h.consecutive_gateway.store(0, Ordering::Release);
        h.consecutive_local_origin.store(0, Ordering::Release);
        tracing::info!(cluster = %self.config.name, endpoint = ?self.addrs[i], ejections = times, "outlier ejected");
    }

    /// Locality-aware selection, as Istio configures Envoy: with
    /// `distribute`, the client's locality spreads traffic over target
    /// localities by weight; otherwise, when outlier detection is on (Istio
    /// only fails over with it), the endpoints sharing the most of the
    /// client's locality win, a `failover` region ranking next.
    fn by_locality(&self, candidates: Candidates) -> Candidates {
        let client = self.client.locality.as_str();
        let Some(setting) = &self.config.locality else {
            if self.config.outlier.is_none() || client.is_empty() {
                return candidates;
            }
            return self.closest(candidates, &[]);
        };
        if !setting.failover_priority.is_empty() && self.config.outlier.is_some() {
            return self.by_failover_priority(candidates, &setting.failover_priority);
        }
        if client.is_empty() {
            return candidates;
        }
        if let Some(rule) = setting
            .distribute
            .iter()
            .find(|d| locality_matches(&d.from, client))
        {
            let total: u32 = rule.to.values().sum();
            if total > 0 {
                let mut pick = fastrand::u32(..total);
                for (pattern, weight) in &rule.to {
                    if pick < *weight {
                        let chosen: Candidates = candidates
                            .iter()
                            .copied()
                            .filter(|i| {
                                locality_matches(pattern, &self.config.endpoints[*i].locality)
                            })
                            .collect();
                        if !chosen.is_empty() {
                            return chosen;
                        }
                        break;
                    }
                    pick -= weight;
                }
            }
            return candidates;
        }
        if self.config.outlier.is_none() {
            return candidates;
        }
        self.closest(candidates, &setting.failover)
    }

    /// Istio's `failoverPriority`: endpoints that share the client's value
    /// for more of the listed labels, in order, come first. The topology
    /// labels are read from localities.
    fn by_failover_priority(&self, candidates: Candidates, keys: &[String]) -> Candidates {
        let value = |labels: &std::collections::BTreeMap<String, String>,
                     locality: &str,
                     key: &str|
         -> Option<String> {
            let part = |i: usize| {
                locality
                    .split('/')
                    .nth(i)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            match key {
                "topology.kubernetes.io/region" => part(0),
                "topology.kubernetes.io/zone" => part(1),
                "topology.istio.io/subzone" => part(2),
                k => labels.get(k).cloned(),
            }
        };
        let mine: Vec<Option<String>> = keys
            .iter()
            .map(|k| value(&self.client.labels, &self.client.locality, k))
            .collect();
        let score = |i: &usize| {
            let e = &self.config.endpoints[*i];
            keys.iter()
                .zip(&mine)
                .take_while(|(k, m)| m.is_some() && value(&e.labels, &e.locality, k) == **m)
                .count()
        };
        let best = candidates.iter().map(score).max().unwrap_or(0);
        candidates
            .into_iter()
            .filter(|i| score(i) == best)
            .collect()
    }

    fn closest(
        &self,
        candidates: Candidates,
        failover: &[weft_model::LocalityFailover],
    ) -> Candidates {
        let client: Vec<&str> = self.client.locality.split('/').collect();
        let next_region = failover
            .iter()
            .find(|f| f.from == client[0])
            .map(|f| f.to.as_str());
        let priority = |i: &usize| {
            let loc: Vec<&str> = self.config.endpoints[*i].locality.split('/').collect();
            let shared = client
                .iter()
                .zip(&loc)
                .take_while(|(a, b)| a == b && !a.is_empty())
                .count();
            match shared {
                3.. => 0,
                2 => 1,
                1 => 2,
                _ if next_region.is_some_and(|r| loc.first() == Some(&r)) => 3,
                _ => 4,
            }
        };
        let best = candidates.iter().map(priority).min().unwrap_or(4);
        candidates
            .into_iter()
            .filter(|i| priority(i) == best)
            .collect()
    }

    /// Chooses an endpoint; `key` is the consistent-hash input when the
    /// policy has one. `exclude` avoids the endpoint a failed try used.
    pub fn pick(&self, key: Option<&[u8]>, exclude: Option<usize>) -> Option<usize> {
        self.pick_avoiding(
            key,
            Avoid {
                endpoint: exclude,
                locality_of: None,
            },
        )
    }

    /// Chooses an endpoint away from what a failed try used, when any is
    /// left: its endpoint, and with `retryRemoteLocalities` its locality.
    pub fn pick_avoiding(&self, key: Option<&[u8]>, avoid: Avoid) -> Option<usize> {
        let locality = avoid
            .locality_of
            .and_then(|i| self.config.endpoints.get(i))
            .map(|e| e.locality.as_str());
        let away = |i: &usize| Some(*i) != avoid.endpoint;
        let elsewhere =
            |i: &usize| locality.is_none_or(|l| self.config.endpoints[*i].locality != l);
        // Away from both if possible, else from the endpoint, else any.
        let mut candidates: Candidates = self.usable().filter(away).filter(elsewhere).collect();
        if candidates.is_empty() {
            candidates = self.usable().filter(away).collect();
        }
        if candidates.is_empty() {
            candidates = self.usable().collect();
        }
        if candidates.is_empty() {
            return None;
        }
        let candidates = self.by_locality(candidates);
        let n = candidates.len();
        if let Some(chosen) = self.pick_warming(&candidates) {
            return Some(chosen);
        }
        let chosen = match &self.config.lb {
            LbPolicy::RoundRobin | LbPolicy::Passthrough => {
                candidates[self.rr.fetch_add(1, Ordering::Relaxed) % n]
            }
            LbPolicy::Random => candidates[fastrand::usize(..n)],
            LbPolicy::LeastRequest => {
                // Power of two choices, as Envoy's LEAST_REQUEST.
                let a = candidates[fastrand::usize(..n)];
                let b = candidates[fastrand::usize(..n)];
                if self.active[b].load(Ordering::Relaxed) < self.active[a].load(Ordering::Relaxed) {
                    b
                } else {
                    a
                }
            }
            LbPolicy::ConsistentHash(_) => match key {
                // Rendezvous hashing: each key keeps its endpoint when
                // others come and go (only keys of a removed endpoint move).
                Some(k) => *candidates
                    .iter()
                    .max_by_key(|i| {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        k.hash(&mut h);
                        self.config.endpoints[**i].address.hash(&mut h);
                        h.finish()
                    })
                    .unwrap_or(&candidates[0]),
                None => candidates[fastrand::usize(..n)],
            },
        };
        Some(chosen)
    }

    /// While an endpoint warms up, round robin and least request draw by
    /// slow-start weight (least request between two weighted draws), as
    /// Envoy scales a warming host's weight; `None` when all are warm.
    fn pick_warming(&self, candidates: &[usize]) -> Option<usize> {
        let now = now_ms();
        if now >= self.warm_until_ms {
            return None;
        }
        let weights: smallvec::SmallVec<[f64; 8]> =
            candidates.iter().map(|i| self.warmth(*i, now)).collect();
        if weights.iter().all(|w| *w >= 1.0) {
            return None;
        }
        let a = draw_warm(candidates, &weights);
        if self.config.lb == LbPolicy::RoundRobin {
            return Some(a);
        }
        let b = draw_warm(candidates, &weights);
        let load = |i: usize| self.active[i].load(Ordering::Relaxed);
        Some(if load(b) < load(a) { b } else { a })
    }

    pub fn hash_key(&self) -> Option<&HashKey> {
        match &self.config.lb {
            LbPolicy::ConsistentHash(k) => Some(k),
            _ => None,
        }
    }

    /// Whether this cluster's endpoints were judged by the egress
    /// policies `client` holds (so it may be kept across a push).
    pub fn judged_like(&self, client: &ClientSide) -> bool {
        self.client.same_egress(client)
    }

    pub fn endpoint_addr(&self, i: usize) -> Option<SocketAddr> {
        self.addrs.get(i).copied().flatten()
    }

    /// Where endpoint `i` is now: its address, or what its name resolves
    /// to (`Err` says why there is none, or why egress policy forbids it).
    pub async fn endpoint_target(&self, i: usize) -> Result<SocketAddr, resolve::Unreached> {
        if let Some(a) = self.endpoint_addr(i) {
            return Ok(a);
        }
        match self.names.get(i).and_then(Option::as_ref) {
            Some(n) => n.resolve().await,
            None => Err(resolve::Unreached::Unresolved(
                "the endpoint has no address".into(),
            )),
        }
    }

    /// Whether connections go where they were going (a ServiceEntry with
    /// `resolution: NONE` and no endpoints: Envoy's original-destination
    /// cluster).
    pub fn to_original_destination(&self) -> bool {
        self.config.lb == LbPolicy::Passthrough && self.config.endpoints.is_empty()
    }

    /// Opens a connection to `destination`, where a captured connection
    /// was going, as something outside the mesh is reached, if the
    /// caller's egress policies allow it.
    pub async fn dial_original(
        &self,
        destination: SocketAddr,
    ) -> std::io::Result<crate::upstream::conn::Conn> {
        if let Some(why) = self
            .client
            .egress
            .as_ref()
            .and_then(|e| e.denies(destination))
        {
            return Err(std::io::Error::other(why));
        }
        let route = crate::upstream::conn::Route::Plain {
            source: self.client.unmeshed_source,
            transparent: self.client.transparent,
        };
        let dial = crate::upstream::conn::DialOptions::of(&self.config.pool);
        crate::upstream::conn::dial(destination, &route, &dial).await
    }

    /// Opens a connection to endpoint `i` (for TCP splicing).
    pub async fn dial(&self, i: usize) -> std::io::Result<crate::upstream::conn::Conn> {
        let addr = self
            .endpoint_target(i)
            .await
            .map_err(std::io::Error::other)?;
        let Some(route) = self.routes.get(i) else {
            return Err(std::io::Error::other("the endpoint has no route"));
        };
        let dial = crate::upstream::conn::DialOptions::of(&self.config.pool);
        crate::upstream::conn::dial(addr, route, &dial).await
    }

    /// Whether traffic to endpoint `i` is mutual TLS, for metrics.
    pub fn is_mtls(&self, i: usize) -> bool {
        self.routes
            .get(i)
            .is_some_and(crate::upstream::conn::Route::is_mtls)
    }

    /// Admission under the connection-pool limits: a permit when one is
    /// free, a wait when the pending queue has room, `None` on overflow
    /// (the caller answers 503 UO).
    pub async fn admit(&self) -> Option<Option<OwnedSemaphorePermit>> {
        let Some(sem) = &self.permits else {
            return Some(None);
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return Some(Some(p));
        }
        // Istio's default http1MaxPendingRequests is effectively unbounded.
        let max_pending = self
            .config
            .pool
            .http1_max_pending_requests
            .unwrap_or(u32::MAX);
        if self.pending.fetch_add(1, Ordering::AcqRel) >= max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let permit = sem.clone().acquire_owned().await.ok();
        self.pending.fetch_sub(1, Ordering::AcqRel);
        permit.map(Some)
    }

    /// Whether one more retry fits in the budget; the guard gives it back.
    pub fn try_retry(&self) -> Option<RetryGuard<'_>> {
        let active = self.in_flight.load(Ordering::Relaxed);
        let budget = (active * RETRY_BUDGET_PERCENT / 100).max(MIN_RETRY_CONCURRENCY);
        let budget = self
            .config
            .pool
            .max_retries
            .map_or(budget, |m| budget.min(m.max(1)));
        if self.retries_active.fetch_add(1, Ordering::AcqRel) >= budget {
            self.retries_active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(RetryGuard(&self.retries_active))
    }

    pub fn start_request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Sends one try to endpoint `i`. A request that was never sent comes
    /// back with the error.
    pub async fn send(
        &self,
        i: usize,
        mut req: http::Request<Body>,
    ) -> Result<http::Response<crate::upstream::pool::UpstreamBody>, crate::upstream::pool::Unsent>
    {
        // `useClientProtocol`: the client's HTTP/2 goes on as HTTP/2.
        let pools = if req.version() == http::Version::HTTP_2 && !self.pools_h2.is_empty() {
            &self.pools_h2
        } else {
            &self.pools
        };
        let Some(pool) = pools.get(i).and_then(Option::as_ref) else {
            return Err((
                SendError::Connect("the endpoint has no address".into()),
                Some(Box::new(req)),
            ));
        };
        // maxRequestsPerConnection on HTTP/1: every Nth request to an
        // endpoint closes its connection, so the pool opens a new one.
        if let Some(n) = self
            .config
            .pool
            .max_requests_per_connection
            .filter(|n| *n > 0)
        {
            let count = self.sent[i].fetch_add(1, Ordering::Relaxed) + 1;
            if count.is_multiple_of(n) && req.version() != http::Version::HTTP_2 {
                req.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
        }
        let _active = EndpointActive::new(&self.active[i]);
        pool.send(req).await
    }
}

/// How to reach `e`: through its proxy's tunnel when the cluster is mesh
/// mTLS and this proxy has an identity; plain otherwise. `h2` is the
/// protocol the pool speaks (a TLS origination offers it by ALPN).
fn endpoint_route(
    config: &Cluster,
    e: &weft_model::Endpoint,
    addr: Option<SocketAddr>,
    client: &ClientSide,
    h2: bool,
) -> crate::upstream::conn::Route {
    if let (Some(egress), Some(addr)) = (&client.egress, addr) {
        if let Some(why) = egress.denies(addr) {
            return crate::upstream::conn::Route::Unavailable(why.into());
        }
    }
    let origin = |mutual: bool, t: &weft_model::TlsOrigination| {
        // The endpoint's host for SNI when it has one, else the service's.
        let host = e
            .address
            .rsplit_once(':')
            .map(|(h, _)| h)
            .filter(|h| h.parse::<std::net::IpAddr>().is_err())
            .unwrap_or(&config.service);
        match crate::upstream::origination::TlsOrigin::new(
            mutual,
            t,
            host,
            h2,
            client.credentials.clone(),
        ) {
            Ok(o) => crate::upstream::conn::Route::Tls(Arc::new(o)),
            Err(why) => crate::upstream::conn::Route::Unavailable(why.into()),
        }
    };
    let (expected_identities, mesh, addr) = match (&config.tls, &client.mesh, addr) {
        (weft_model::UpstreamTls::Simple(t), _, _) => return origin(false, t),
        (weft_model::UpstreamTls::Mutual(t), _, _) => return origin(true, t),
        (
            weft_model::UpstreamTls::IstioMutual {
                expected_identities,
            },
            Some(mesh),
            Some(addr),
        ) => (expected_identities, mesh, addr),
        // A mesh workload reached in plain text sees this proxy's address.
        _ if !e.identity.is_empty() => {
            return crate::upstream::conn::Route::Plain {
                source: client.source_ip,
                transparent: false,
            }
        }
        _ => {
            return crate::upstream::conn::Route::Plain {
                source: client.unmeshed_source,
                transparent: client.transparent,
            }
        }
    };
    // The endpoint's own identity is the strictest check; the cluster's
    // list is what Istio would verify.
    let expected: Arc<[String]> = if e.identity.is_empty() {
        expected_identities.clone().into()
    } else {
        vec![e.identity.clone()].into()
    };
    crate::upstream::conn::Route::Tunnel {
        mesh: mesh.clone(),
        tunnel: SocketAddr::new(addr.ip(), crate::identity::mesh::TUNNEL_PORT),
        expected,
        baggage: client.baggage.clone(),
        source: client.source_ip,
    }
}

pub struct RetryGuard<'a>(&'a AtomicU32);

impl Drop for RetryGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct InFlight<'a>(&'a AtomicU32);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct EndpointActive<'a>(&'a AtomicU32);

impl<'a> EndpointActive<'a> {
    fn new(c: &'a AtomicU32) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        EndpointActive(c)
    }
}

impl Drop for EndpointActive<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A candidate drawn with probability proportional to its slow-start
/// weight.
fn draw_warm(candidates: &[usize], weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = fastrand::f64() * total;
    for (i, w) in candidates.iter().zip(weights) {
        if x < *w {
            return *i;
        }
        x -= w;
    }
    candidates[candidates.len() - 1]
}

/// `us-east/zone1/*`, `us-east/*` or `us-east` against `region/zone/subzone`.
fn locality_matches(pattern: &str, locality: &str) -> bool {
    let mut loc = locality.split('/');
    for p in pattern.split('/') {
        match loc.next() {
            _ if p == "*" => return true,
            Some(l) if l == p => {}
            _ => return false,
        }
    }
    true
}

/// A destination chosen by weight (the first one when all weigh 0).
pub fn pick_weighted(
    dests: &[weft_model::WeightedCluster],
) -> Option<&weft_model::WeightedCluster> {
    let total: u32 = dests.iter().map(|d| d.weight).sum();
    if total == 0 {
        return dests.first();
    }
    let mut pick = fastrand::u32(..total);
    dests.iter().find(|d| {
        if pick < d.weight {
            true
        } else {
            pick -= d.weight;
            false
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{ejection_backoff, locality_matches, ClientSide, ClusterRt};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use weft_model::*;

    /// (address, locality, labels)
    type Ep<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

    fn cluster(
        lb: LbPolicy,
        endpoints: &[Ep<'_>],
        locality: Option<LocalityLb>,
        outlier: bool,
    ) -> Cluster {
        Cluster {
            name: "c".into(),
            service: "s".into(),
            port: 80,
            subset: String::new(),
            protocol: Protocol::Http,
            lb,
            warmup: None,
            locality,
            pool: ConnectionPool {
                connect_timeout_ms: 1000,
                ..Default::default()
            },
            outlier: outlier.then_some(OutlierDetection {
                consecutive_5xx: Some(5),
                consecutive_gateway_errors: None,
                interval_ms: 1000,
                base_ejection_ms: 1000,
                max_ejection_percent: 100,
                min_health_percent: 0,
                consecutive_local_origin: None,
            }),
            tls: UpstreamTls::Disable,
            policy_origin: Vec::new(),
            endpoints: endpoints
                .iter()
                .map(|(addr, loc, labels)| Endpoint {
                    address: (*addr).into(),
                    locality: (*loc).into(),
                    labels: labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                    weight: 1,
                    ..Default::default()
                })
                .collect(),
        }
    }

    #[test]
    fn ejections_back_off_while_failing_and_forgive_with_time() {
        let od = OutlierDetection {
            consecutive_5xx: Some(1),
            consecutive_gateway_errors: None,
            interval_ms: 10_000,
            base_ejection_ms: 30_000,
            max_ejection_percent: 100,
            min_health_percent: 0,
            consecutive_local_origin: None,
        };
        // Ejected again as soon as it returns: 30 s, 60 s, 90 s...
        assert_eq!(ejection_backoff(0, 0, &od), (1, 30_000));
        assert_eq!(ejection_backoff(1, 0, &od), (2, 60_000));
        assert_eq!(ejection_backoff(2, 5_000, &od), (3, 90_000));
        // ...up to Envoy's max_ejection_time of 300 s, and no further.
        assert_eq!(ejection_backoff(10, 0, &od), (10, 300_000));
        assert_eq!(ejection_backoff(40, 0, &od), (10, 300_000));
        // Each interval back in service takes one step off.
        assert_eq!(ejection_backoff(3, 20_000, &od), (2, 60_000));
        assert_eq!(ejection_backoff(3, 600_000, &od), (1, 30_000));
        // A base above the maximum is kept, as Envoy keeps it.
        let long = OutlierDetection {
            base_ejection_ms: 400_000,
            ..od
        };
        assert_eq!(ejection_backoff(5, 0, &long), (1, 400_000));
    }

    fn counts(c: &ClusterRt, n: usize) -> Vec<usize> {
        let mut out = vec![0; c.config.endpoints.len()];
        for _ in 0..n {
            out[c.pick(None, None).unwrap()] += 1;
        }
        out
    }

    /// An upstream that answers with the HTTP version it was spoken to in.
    async fn version_echo() -> std::net::SocketAddr {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::from(format!(
                                    "{:?}",
                                    req.version()
                                ))),
                            ))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn spoken(c: &ClusterRt, version: http::Version) -> String {
        use http_body_util::BodyExt;
        let req = http::Request::builder()
            .uri(format!("http://{}/", c.config.endpoints[0].address))
            .version(version)
            .body(crate::http::local_reply::empty())
            .unwrap();
        let resp = c.send(0, req).await.map_err(|(e, _)| e).unwrap();
        String::from_utf8(
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    /// `useClientProtocol`: the client's HTTP/2 goes on as HTTP/2 and its
    /// HTTP/1.1 as HTTP/1.1, whatever the port declares; without it the
    /// port's protocol decides (`h2UpgradePolicy: UPGRADE` compiles to an
    /// HTTP/2 port).
    #[tokio::test]
    async fn the_upstream_protocol_follows_the_port_or_the_client() {
        let addr = version_echo().await.to_string();
        let eps: &[Ep<'_>] = &[(addr.as_str(), "", &[])];
        let client = || Arc::new(ClientSide::plain("", &BTreeMap::new()));
        let mut follows = cluster(LbPolicy::RoundRobin, eps, None, false);
        follows.pool.use_client_protocol = true;
        let follows = ClusterRt::new(follows, client());
        assert_eq!(spoken(&follows, http::Version::HTTP_2).await, "HTTP/2.0");
        assert_eq!(spoken(&follows, http::Version::HTTP_11).await, "HTTP/1.1");
        let mut upgraded = cluster(LbPolicy::RoundRobin, eps, None, false);
        upgraded.protocol = Protocol::Http2;
        let upgraded = ClusterRt::new(upgraded, client());
        assert_eq!(spoken(&upgraded, http::Version::HTTP_11).await, "HTTP/2.0");
        let plain = ClusterRt::new(cluster(LbPolicy::RoundRobin, eps, None, false), client());
        assert_eq!(spoken(&plain, http::Version::HTTP_11).await, "HTTP/1.1");
    }

    #[tokio::test]
    async fn random_and_round_robin_use_every_endpoint() {
        let eps: &[Ep<'_>] = &[
            ("127.0.0.1:1", "", &[]),
            ("127.0.0.1:2", "", &[]),
            ("127.0.0.1:3", "", &[]),
        ];
        let rr = ClusterRt::new(
            cluster(LbPolicy::RoundRobin, eps, None, false),
            Arc::new(ClientSide::plain("", &BTreeMap::new())),
        );
        assert_eq!(counts(&rr, 300), vec![100, 100, 100]);
        let random = ClusterRt::new(
            cluster(LbPolicy::Random, eps, None, false),
            Arc::new(ClientSide::plain("", &BTreeMap::new())),
        );
        // 600 picks: each endpoint's share is 200 ± 60 (beyond 5 sigma).
        assert!(counts(&random, 600).iter().all(|c| (140..=260).contains(c)));
    }

    #[tokio::test]
    async fn least_request_avoids_the_busy_endpoint() {
        let eps: &[Ep<'_>] = &[("127.0.0.1:1", "", &[]), ("127.0.0.1:2", "", &[])];
        let c = ClusterRt::new(
            cluster(LbPolicy::LeastRequest, eps, None, false),
            Arc::new(ClientSide::plain("", &BTreeMap::new())),
        );
        c.active[0].store(50, std::sync::atomic::Ordering::Relaxed);
        // Two random choices: the busy one wins only when both draws pick it.
        let got = counts(&c, 400);
        assert!(got[1] > got[0] * 2, "{got:?}");
    }

    #[tokio::test]
    async fn failover_priority_prefers_matching_labels_in_order() {
        let eps: &[Ep<'_>] = &[
            (
                "127.0.0.1:1",
                "us-east/a",
                &[("network", "n2"), ("tier", "gold")],
            ),
            (
                "127.0.0.1:2",
                "us-east/a",
                &[("network", "n1"), ("tier", "silver")],
            ),
            (
                "127.0.0.1:3",
                "eu-west/b",
                &[("network", "n1"), ("tier", "gold")],
            ),
        ];
        let setting = LocalityLb {
            distribute: Vec::new(),
            failover: Vec::new(),
            failover_priority: vec!["network".into(), "tier".into()],
        };
        let client: BTreeMap<String, String> = [("network", "n1"), ("tier", "gold")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let c = ClusterRt::new(
            cluster(LbPolicy::RoundRobin, eps, Some(setting), true),
            Arc::new(ClientSide::plain("us-east/a", &client)),
        );
        assert_eq!(counts(&c, 10), vec![0, 0, 10]);
    }

    #[tokio::test]
    async fn http2_max_requests_bounds_http1_requests_too() {
        let mut c = cluster(
            LbPolicy::RoundRobin,
            &[("127.0.0.1:1", "", &[])],
            None,
            false,
        );
        c.pool.http2_max_requests = Some(2);
        c.pool.http1_max_pending_requests = Some(0);
        let c = ClusterRt::new(c, Arc::new(ClientSide::plain("", &BTreeMap::new())));
        let first = c.admit().await.expect("admitted");
        let second = c.admit().await.expect("admitted");
        assert!(
            c.admit().await.is_none(),
            "a third request overflowed no limit"
        );
        drop((first, second));
        assert!(c.admit().await.is_some());
    }

    /// Slow start: an endpoint that joins a cluster with `warmup` gets
    /// about `minimumPercent` of its share at first, while endpoints the
    /// previous cluster had keep their full weight; without `warmup` it
    /// gets its share at once.
    #[test]
    fn a_joining_endpoint_warms_up() {
        let client = || Arc::new(ClientSide::plain("", &BTreeMap::new()));
        let old = ClusterRt::new(
            cluster(
                LbPolicy::RoundRobin,
                &[("127.0.0.1:1", "", &[]), ("127.0.0.1:2", "", &[])],
                None,
                false,
            ),
            client(),
        );
        let three = [
            ("127.0.0.1:1", "", &[][..]),
            ("127.0.0.1:2", "", &[][..]),
            ("127.0.0.1:3", "", &[][..]),
        ];
        let share_of_new = |warmup: Option<Warmup>, lb: LbPolicy| {
            let c = Cluster {
                warmup,
                ..cluster(lb, &three, None, false)
            };
            let c = ClusterRt::succeeding(c, client(), &old);
            let picks = 6000;
            let hits = (0..picks).filter(|_| c.pick(None, None) == Some(2)).count();
            hits as f64 / picks as f64
        };
        let warm = Warmup {
            duration_ms: 600_000,
            min_percent: 10.0,
            aggression: 1.0,
        };
        // Weights 1, 1 and 0.1: the new endpoint's share is 0.1 / 2.1.
        for lb in [LbPolicy::RoundRobin, LbPolicy::LeastRequest] {
            let share = share_of_new(Some(warm), lb.clone());
            assert!(
                (0.02..0.08).contains(&share),
                "{lb:?}: a warming endpoint took {share} of the traffic"
            );
        }
        let share = share_of_new(None, LbPolicy::RoundRobin);
        assert!(
            (share - 1.0 / 3.0).abs() < 0.01,
            "without slow start: {share}"
        );
        // The weight grows along the curve and is full after the window.
        assert_eq!(warm.factor(0), 0.1);
        assert!((warm.factor(300_000) - 0.5).abs() < 1e-9);
        assert_eq!(warm.factor(600_000), 1.0);
        let steep = Warmup {
            aggression: 2.0,
            ..warm
        };
        assert!((steep.factor(150_000) - 0.5).abs() < 1e-9);
    }

    /// `splitExternalLocalOriginErrors`: failures to reach an endpoint
    /// count on their own (and an answer ends their run), 5xx answers on
    /// theirs; without the split a connect failure is a 5xx.
    #[test]
    fn local_origin_failures_count_apart_when_split() {
        use crate::upstream::{now_ms, TryOutcome};
        let client = || Arc::new(ClientSide::plain("", &BTreeMap::new()));
        let eps: &[Ep<'_>] = &[("127.0.0.1:1", "", &[]), ("127.0.0.1:2", "", &[])];
        let make = |split: Option<u32>| {
            let mut c = cluster(LbPolicy::RoundRobin, eps, None, true);
            if let Some(o) = c.outlier.as_mut() {
                o.consecutive_local_origin = split;
            }
            ClusterRt::new(c, client())
        };
        let ejected = |c: &ClusterRt| c.health[0].ejected(now_ms());
        let local = TryOutcome::LocalFailure;
        let failed = TryOutcome::Status(503);

        let split = make(Some(3));
        for o in [local, local, TryOutcome::Status(200), local, local] {
            split.report(0, o);
        }
        assert!(!ejected(&split), "an answer ends a run of local failures");
        split.report(0, local);
        assert!(ejected(&split), "three local failures in a row eject");

        let split = make(Some(3));
        for o in [failed, failed, failed, failed, local, local, failed] {
            split.report(0, o);
        }
        assert!(
            ejected(&split),
            "local failures neither count as nor break a run of 5xx"
        );

        let never = make(Some(0));
        for _ in 0..10 {
            never.report(0, local);
        }
        assert!(!ejected(&never), "a limit of 0 never ejects");

        let joined = make(None);
        for _ in 0..5 {
            joined.report(0, local);
        }
        assert!(
            ejected(&joined),
            "without the split, a connect failure is a 5xx"
        );
    }

    /// A retry avoids the endpoint that failed (unless the route lets it
    /// go back) and, with `retryRemoteLocalities`, its locality.
    #[test]
    fn retries_steer_away_from_the_failed_endpoint_and_locality() {
        use crate::upstream::Avoid;
        use std::collections::BTreeSet;
        let client = || Arc::new(ClientSide::plain("", &BTreeMap::new()));
        let eps: &[Ep<'_>] = &[
            ("127.0.0.1:1", "r/a", &[]),
            ("127.0.0.1:2", "r/a", &[]),
            ("127.0.0.1:3", "r/b", &[]),
        ];
        let c = ClusterRt::new(cluster(LbPolicy::Random, eps, None, false), client());
        let policy = |remote, reuse| weft_model::RetryPolicy {
            attempts: 2,
            per_try_timeout_ms: None,
            retry_on: vec![],
            retriable_status_codes: vec![],
            remote_localities: remote,
            reuse_hosts: reuse,
            backoff_ms: None,
        };
        let picks = |p: &weft_model::RetryPolicy| -> BTreeSet<usize> {
            (0..300)
                .filter_map(|_| c.pick_avoiding(None, Avoid::after(Some(0), Some(p))))
                .collect()
        };
        assert_eq!(picks(&policy(false, false)), BTreeSet::from([1, 2]));
        assert_eq!(picks(&policy(true, false)), BTreeSet::from([2]));
        assert_eq!(picks(&policy(false, true)), BTreeSet::from([0, 1, 2]));
        // Nothing outside the locality: any other endpoint will do.
        let same = ClusterRt::new(cluster(LbPolicy::Random, &eps[..2], None, false), client());
        let p = policy(true, false);
        assert!(
            (0..50).all(|_| same.pick_avoiding(None, Avoid::after(Some(0), Some(&p))) == Some(1))
        );
    }

    #[test]
    fn locality_patterns() {
        assert!(locality_matches("us-east/zone1/*", "us-east/zone1/a"));
        assert!(locality_matches("us-east/*", "us-east/zone2/b"));
        assert!(locality_matches("us-east", "us-east/zone2"));
        assert!(!locality_matches("us-east/zone1/*", "us-east/zone2/a"));
        assert!(!locality_matches("eu-west/*", "us-east/zone1"));
    }
}
