//! The compiled model: everything one proxy needs, nothing it does not.
//!
//! The control plane compiles Istio resources into one [`ProxyModel`] per
//! proxy; the proxy executes it and never sees a VirtualService. Keeping
//! this contract small and explicit is what lets a new front end (Gateway
//! API, say) arrive without touching the data plane.
//!
//! Every type is plain data with a deterministic serialized form: lists are
//! sorted where order carries no meaning and kept as written where it does
//! (routes: first match wins). Durations are milliseconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub mod names;
pub mod sections;
pub mod wire;

/// Bumped whenever the model changes shape incompatibly.
pub const MODEL_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyModel {
    pub model_version: u32,
    pub proxy: ProxyIdentity,
    pub listeners: Vec<Listener>,
    /// Shared, list and all: sidecars that see the mesh alike (most of a
    /// namespace's) hold one list, so what is made of it (its sections,
    /// their digest) is made once for all of them.
    pub route_tables: Arc<Vec<RouteTable>>,
    /// Shared the same way; and each cluster is shared by every proxy that
    /// sees its service through the same policy.
    pub clusters: Arc<Vec<Arc<Cluster>>>,
    pub security: Security,
    pub telemetry: TelemetryConfig,
    /// How requests are read at the edge, mesh-wide (MeshConfig).
    #[serde(default, skip_serializing_if = "HttpSettings::is_default")]
    pub http: HttpSettings,
}

/// How every listener reads a request (mesh-wide), and what a
/// connection to a host the mesh does not know meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpSettings {
    /// MeshConfig `pathNormalization`.
    #[serde(default)]
    pub path_normalization: PathNormalization,
    /// Istio's `outboundTrafficPolicy`: the Sidecar's that scopes the
    /// proxy, else MeshConfig's.
    #[serde(default, skip_serializing_if = "OutboundPolicy::is_allow_any")]
    pub outbound: OutboundPolicy,
}

/// Istio's `outboundTrafficPolicy.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundPolicy {
    /// A host the registry does not know is reached as the client asked
    /// (`PassthroughCluster`).
    #[default]
    AllowAny,
    /// Only hosts in the registry (Services, ServiceEntries) are reached:
    /// HTTP to another is answered 502 (`block_all`), a TCP connection
    /// closed (`BlackHoleCluster`).
    RegistryOnly,
}

impl OutboundPolicy {
    pub fn is_allow_any(&self) -> bool {
        *self == OutboundPolicy::AllowAny
    }
}

impl HttpSettings {
    pub fn is_default(&self) -> bool {
        *self == HttpSettings::default()
    }
}

/// Istio's MeshConfig `pathNormalization.normalization`: what is done to a
/// request's path before routing, authorization and the application see
/// it. `DEFAULT` is `BASE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PathNormalization {
    /// Forwarded exactly as received.
    None,
    /// RFC 3986: dot segments resolved, percent-encoded unreserved
    /// characters decoded, backslashes turned into slashes, a `%00`
    /// refused.
    #[default]
    Base,
    /// `BASE`, then runs of slashes merged into one.
    MergeSlashes,
    /// `%2F` and `%5C` decoded first, then `MERGE_SLASHES`.
    DecodeAndMergeSlashes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProxyKind {
    Sidecar,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyIdentity {
    pub kind: ProxyKind,
    /// The workload's name (`reviews-v1`), for status and metrics.
    pub workload: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
    pub spiffe_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    /// Not declared: the proxy sniffs HTTP/1, HTTP/2 or opaque TCP.
    Unknown,
}

impl Protocol {
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    Inbound,
    Outbound,
    Gateway,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// `inbound|9080`, `outbound|9080`, `gateway|8080`.
    pub name: String,
    pub direction: Direction,
    /// The service (outbound) or workload (inbound) port this listener
    /// serves. Where it binds is the runtime's choice (local mode shares
    /// one host, so it assigns real ports).
    pub port: u32,
    /// The service an outbound TCP listener serves (opaque TCP carries no
    /// Host header, so each TCP service port gets a listener of its own),
    /// or the service an inbound port belongs to (for metrics).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// A bind address when the resource asked for one (Gateway `bind`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bind: String,
    /// An outbound TCP listener's service addresses (its ClusterIP or
    /// ServiceEntry addresses): under transparent capture a connection
    /// reaches this listener by its original destination, address and
    /// port, as there is no Host header to go by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    pub protocol: Protocol,
    pub target: ListenerTarget,
    /// Gateway server TLS, one entry per Gateway server on this port (a
    /// client's SNI picks among them by `hosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<ServerTls>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ListenerTarget {
    /// HTTP: look the request up in this route table.
    Routes(String),
    /// TCP/TLS: route by SNI and destination port.
    Tcp(Vec<TcpRoute>),
    /// Inbound: deliver to the local application on this port.
    Local { app_port: u32 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTls {
    pub mode: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub https_redirect: bool,
    /// `TLSV1_2` or `TLSV1_3` (weft offers nothing older); empty means
    /// both.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub min_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub max_version: String,
    /// TLS 1.2 suites by their OpenSSL names, in order; empty means
    /// weft's defaults. TLS 1.3 suites are not configurable (as Envoy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups by Istio's names (`X25519`, `P-256`), in
    /// order; empty means weft's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ecdh_curves: Vec<String>,
    /// Client certificates must also match one of these pins: base64
    /// SHA-256 of the SubjectPublicKeyInfo, or hex SHA-256 of the
    /// certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_spki: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_hash: Vec<String>,
    /// MUTUAL: a client certificate must name one of these (DNS or URI).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// A PEM file of revocation lists for client certificates (besides
    /// `ca.crl` in the credential).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// SNI names this route matches (TLS routes); empty matches any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    pub destinations: Vec<WeightedCluster>,
    /// `VirtualService ns/name tcp[0]`, for logs and explanations.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub name: String,
    /// Shared, as clusters are: proxies that see a service from the same
    /// namespace get the same host, built once per configuration.
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualHost {
    pub name: String,
    /// Host header values (with and without port) that select this host;
    /// `*` and `*.suffix` wildcards allowed.
    pub domains: Vec<String>,
    /// First match wins.
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The route's name, or `<vs>.<index>`.
    pub name: String,
    /// `VirtualService default/reviews http[1]`, or `default` for the
    /// implicit route to a service without a VirtualService.
    pub origin: String,
    /// ORed; an empty list matches every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<RouteMatch>,
    pub action: RouteAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StrMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
    /// Only that the value is present (an empty match in Istio).
    Present,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    pub name: String,
    pub matcher: StrMatch,
    /// `withoutHeaders`: the request matches when this does *not*.
    #[serde(default, skip_serializing_if = "is_false")]
    pub invert: bool,
}

/// A match on a claim of the request's validated JWT (Istio's
/// `@request.auth.claims.…` header): the claim at `path` (nested objects
/// by key), a string or any string of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMatch {
    pub path: Vec<String>,
    pub matcher: StrMatch,
    /// From `withoutHeaders`: the request matches when this does *not*.
    #[serde(default, skip_serializing_if = "is_false")]
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StrMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StrMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StrMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StrMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HeaderMatch>,
    /// Claims of the validated JWT; a request without one matches none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// The proxy's own labels already satisfied this at compile time, so
    /// sidecars never carry it; kept for gateways' documentation only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ignore_uri_case: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum RouteAction {
    Forward(Vec<WeightedCluster>),
    Redirect(Redirect),
    DirectResponse {
        status: u32,
        body: String,
        /// The body is base64 (a `bytes` body that is not text).
        #[serde(default, skip_serializing_if = "is_false")]
        body_base64: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedCluster {
    pub cluster: String,
    pub weight: u32,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub request_headers: HeaderOps,
    #[serde(default, skip_serializing_if = "HeaderOps::is_empty")]
    pub response_headers: HeaderOps,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOps {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HeaderValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HeaderValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A header name (lowercase) and value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValue {
    pub name: String,
    pub value: String,
}

impl HeaderOps {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Use the request's own port (`derivePort: FROM_REQUEST_PORT`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub port_from_request: bool,
    /// Replaces the part of the path the route's prefix match matched
    /// (`prefixRewrite`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix_rewrite: String,
    pub code: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uri: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authority: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex: Option<RegexRewrite>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegexRewrite {
    pub pattern: String,
    pub substitution: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    /// Conditions, as in Envoy's `x-envoy-retry-on`.
    pub retry_on: Vec<String>,
    /// Status codes for `retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retriable_status_codes: Vec<u16>,
    /// `retryRemoteLocalities`: a retry goes to an endpoint outside the
    /// failed one's locality when there is one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote_localities: bool,
    /// `retryIgnorePreviousHosts: false`: a retry may go back to the
    /// endpoint that failed (by default it avoids it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub reuse_hosts: bool,
    /// `backoff`: the base of the retries' jittered exponential back-off
    /// (Envoy's 25 ms by default, capped at ten times the base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultDelay {
    pub delay_ms: u64,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AbortStatus {
    Http(u32),
    Grpc(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultAbort {
    pub status: AbortStatus,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    pub cluster: String,
    /// The host the copy is sent to; the proxy adds `-shadow` as Envoy does.
    pub host: String,
    pub percentage: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    pub allow_origins: Vec<StrMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// `unmatchedPreflights: IGNORE`: a preflight from an origin the policy
    /// does not allow is answered here (200, no CORS headers) instead of
    /// going to the application.
    #[serde(default, skip_serializing_if = "is_false")]
    pub answer_unmatched_preflights: bool,
}

// ---------------------------------------------------------------- clusters

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Envoy-style: `outbound|9080|v1|reviews.default.svc.cluster.local`.
    pub name: String,
    pub service: String,
    pub port: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subset: String,
    pub protocol: Protocol,
    pub lb: LbPolicy,
    /// Slow start for endpoints that join (round robin and least
    /// request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<LocalityLb>,
    pub pool: ConnectionPool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierDetection>,
    pub tls: UpstreamTls,
    /// Where the settings came from, e.g. `DestinationRule default/reviews`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_origin: Vec<String>,
    pub endpoints: Vec<Endpoint>,
}

/// Envoy's slow start: an endpoint that joined `elapsed` ago is picked
/// with weight `max(min_percent / 100, (elapsed / duration) ^ (1 /
/// aggression))` until `duration` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Warmup {
    pub duration_ms: u64,
    pub min_percent: f64,
    pub aggression: f64,
}

impl Warmup {
    /// The weight of an endpoint that joined `elapsed_ms` ago, 0..=1.
    pub fn factor(&self, elapsed_ms: u64) -> f64 {
        if self.duration_ms == 0 || elapsed_ms >= self.duration_ms {
            return 1.0;
        }
        let time = (elapsed_ms.max(1) as f64) / (self.duration_ms as f64);
        let curve = time.powf(1.0 / self.aggression.max(f64::MIN_POSITIVE));
        curve.max(self.min_percent / 100.0).min(1.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LbPolicy {
    RoundRobin,
    LeastRequest,
    Random,
    /// Connect to the address the client asked for (ServiceEntry NONE).
    Passthrough,
    ConsistentHash(HashKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum HashKey {
    Header(String),
    Cookie {
        name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_ms: Option<u64>,
    },
    SourceIp,
    QueryParameter(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityLb {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distribute: Vec<LocalityDistribute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<LocalityFailover>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover_priority: Vec<String>,
}

/// Traffic from `from` (a locality pattern) is spread over `to` by weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityDistribute {
    pub from: String,
    pub to: BTreeMap<String, u32>,
}

/// When region `from` has no healthy endpoint, use region `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalityFailover {
    pub from: String,
    pub to: String,
}

/// Istio's connection-pool settings; `None` means Envoy's (unbounded
/// enough) default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Istio's default is 10 s.
    pub connect_timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<u32>,
    /// Streams one HTTP/2 connection to an endpoint carries before another
    /// is opened (Istio's `maxConcurrentStreams`; unlimited by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// An upstream connection is not used for new requests once this old
    /// (Istio's `maxConnectionDuration`); requests on it finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration_ms: Option<u64>,
    /// TCP keep-alive probes on upstream connections (Istio's
    /// `tcpKeepalive`); a field left out keeps the OS's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Speak to the upstream in the protocol the client spoke (Istio's
    /// `useClientProtocol`), whatever the port declares.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_client_protocol: bool,
    /// While the endpoint refuses connections, keep dialing for this long
    /// before failing the request: a sidecar's own application, being
    /// restarted, refuses for a moment and then serves again. Set by the
    /// proxy for its application alone, never from configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_patience_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_5xx: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    pub interval_ms: u64,
    pub base_ejection_ms: u64,
    pub max_ejection_percent: u32,
    pub min_health_percent: u32,
    /// `splitExternalLocalOriginErrors`: failures to reach an endpoint
    /// (connect failure, reset, timeout) count apart from its 5xx, and
    /// eject after `consecutive_local_origin` of them (0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum UpstreamTls {
    /// Plain text.
    Disable,
    /// The mesh's mTLS (HBONE tunnel); peers verified against these
    /// SPIFFE IDs.
    IstioMutual {
        expected_identities: Vec<String>,
    },
    Simple(TlsOrigination),
    Mutual(TlsOrigination),
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsOrigination {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sni: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_certificates: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub client_certificate: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private_key: String,
    /// A PEM file of revocation lists for the server's chain (besides
    /// `ca.crl` in the credential).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_crl: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `ip:port`, or `host:port` for DNS endpoints; empty when the address
    /// is only known at run time (a Kubernetes Deployment read offline).
    pub address: String,
    /// The workload behind it (`reviews-v1`), for metrics.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    /// The replica (`reviews-v1-0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locality: String,
    pub weight: u32,
    /// The endpoint's SPIFFE ID when it is in the mesh.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
}

// ---------------------------------------------------------------- security

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Security {
    pub trust_domain: String,
    /// Inbound mTLS, from PeerAuthentication (mesh → namespace → workload
    /// → port precedence already applied).
    pub inbound_mtls: MtlsPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
    pub authorization: Authorization,
    /// The external authorizers this proxy's CUSTOM policies name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext_authz: Vec<ExtAuthzProvider>,
    /// The roots to trust (PEM), signing root first; set by the control
    /// plane when it serves the model, so a root rotation reaches every
    /// proxy before any certificate from the new root does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_bundle: Vec<String>,
    /// Each mesh workload's address → its SPIFFE ID, when this proxy's
    /// policies match `source.ip`: a mesh caller's address is believed
    /// only when it is its own (any local process can bind any loopback
    /// address, but not hold another workload's certificate).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub workload_addresses: BTreeMap<String, String>,
    /// Kubernetes NetworkPolicy: when one isolates this workload for
    /// ingress, the connections they allow (each policy an ALLOW list
    /// over `source.ip` and `destination.port`; none matching denies),
    /// judged before and apart from AuthorizationPolicy. `None`: not
    /// isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_ingress: Option<Vec<AuthzPolicy>>,
    /// The NetworkPolicies that isolate this workload for egress: an
    /// ALLOW list over `destination.ip` and `destination.port` (the
    /// endpoint and port the connection is for, as a CNI sees it after
    /// the service is resolved). `None`: not isolated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_egress: Option<Vec<AuthzPolicy>>,
}

/// An `envoyExtAuthzHttp` or `envoyExtAuthzGrpc` extension provider: a
/// service asked about each request a CUSTOM policy matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtAuthzProvider {
    pub name: String,
    /// How the authorizer is asked.
    #[serde(default, skip_serializing_if = "ExtAuthzApi::is_http")]
    pub api: ExtAuthzApi,
    /// The cluster the check is sent through.
    pub cluster: String,
    /// `host:port`, sent as the check's authority.
    pub authority: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_prefix: String,
    pub timeout_ms: u64,
    pub fail_open: bool,
    pub status_on_error: u16,
    /// Lowercase header names copied into the check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_request_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_upstream_on_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers_to_downstream_on_deny: Vec<String>,
}

/// The API an external authorizer serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtAuthzApi {
    /// A 2xx answer to a copy of the request allows (`envoyExtAuthzHttp`).
    #[default]
    Http,
    /// Envoy's `envoy.service.auth.v3.Authorization/Check` over gRPC
    /// (`envoyExtAuthzGrpc`).
    Grpc,
}

impl ExtAuthzApi {
    fn is_http(&self) -> bool {
        *self == ExtAuthzApi::Http
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MtlsMode {
    #[default]
    Permissive,
    Strict,
    Disable,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MtlsPolicy {
    pub mode: MtlsMode,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u32, MtlsMode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtRule {
    pub origin: String,
    pub issuer: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Where the token is read; defaults to `Authorization: Bearer `.
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    pub forward_original_token: bool,
    /// Claims whose string value is a space-separated list, matched item
    /// by item, besides `scope` and `permission` (always).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub space_delimited_claims: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    pub header: String,
    pub claim: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<AuthzPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<AuthzPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AuthzPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<AuthzPolicy>,
    /// Policies marked `istio.io/dry-run`: judged, recorded, never
    /// enforced (Envoy's shadow rules). A proxy that does not know these
    /// fields ignores them, which is what dry run means.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run_allow: Vec<AuthzPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run_deny: Vec<AuthzPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run_custom: Vec<AuthzPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzPolicy {
    /// `AuthorizationPolicy ns/name`, reported on a deny.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// ORed. An empty list matches nothing (so an ALLOW policy with no
    /// rules denies everything, as in Istio).
    pub rules: Vec<AuthzRule>,
}

/// `from`, `to` and `when` are ANDed; entries inside each are ORed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Vec<AuthzMatch>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Vec<AuthzMatch>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<AuthzMatch>,
}

/// One attribute compared with a list of values (ORed); `negate` for the
/// `not…` forms and `notValues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzMatch {
    /// Attribute name as in Istio's conditions: `source.principal`,
    /// `request.headers[x-user]`, `request.auth.claims[groups]`, …
    pub attribute: String,
    pub values: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub negate: bool,
}

// ---------------------------------------------------------------- telemetry

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TelemetryConfig {
    pub access_logging: bool,
    /// Telemetry `accessLogging.filter.expression`: a CEL expression over
    /// Envoy's attributes; only requests for which it is true are logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_filter: Option<String>,
    /// Percentage of new traces to sample (Istio's default is 1).
    pub trace_sampling: f64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracing_providers: Vec<String>,
    /// Where this proxy reports spans. `None`: no tracer runs, and trace
    /// headers pass through untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingExport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_metrics: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_overrides: Vec<TagOverride>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub origin: Vec<String>,
}

/// An OpenTelemetry collector that takes spans over OTLP HTTP/protobuf,
/// reached through one of this proxy's clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TracingExport {
    /// The MeshConfig extension provider's name.
    pub provider: String,
    /// `outbound|<port>||<collector host>`.
    pub cluster: String,
    /// `<collector host>:<port>`, the Host of export requests.
    pub authority: String,
    /// How spans are sent: OTLP over HTTP/protobuf, or over gRPC
    /// (Istio's default when the provider has no `http` block).
    #[serde(default, skip_serializing_if = "OtlpTransport::is_http")]
    pub transport: OtlpTransport,
    /// The OTLP traces path (`/v1/traces`) over HTTP; the gRPC method
    /// over gRPC.
    pub path: String,
    pub timeout_ms: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The spans' `service.name`: `<canonical service>.<namespace>`.
    pub service_name: String,
    /// Telemetry `customTags`, literal or from a request header.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom_tags: BTreeMap<String, CustomTag>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OtlpTransport {
    #[default]
    HttpProtobuf,
    Grpc,
}

impl OtlpTransport {
    fn is_http(&self) -> bool {
        *self == OtlpTransport::HttpProtobuf
    }
}

/// The gRPC method OTLP trace exports call.
pub const OTLP_GRPC_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CustomTag {
    Literal(String),
    Header {
        name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        default: String,
    },
}

/// On `metric` (or `ALL_METRICS`), set `tag` to the expression `value`,
/// or remove the tag when `value` is absent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagOverride {
    pub metric: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            access_logging: true,
            access_log_filter: None,
            trace_sampling: 1.0,
            tracing_providers: Vec::new(),
            tracing: None,
            disabled_metrics: Vec::new(),
            tag_overrides: Vec::new(),
            origin: Vec::new(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ProxyModel {
    /// The TLS credentials (`credentialName`) this model uses: gateway
    /// servers' and TLS-originating clusters'.
    pub fn credential_names(&self) -> std::collections::BTreeSet<String> {
        let servers = self
            .listeners
            .iter()
            .flat_map(|l| l.tls.iter())
            .map(|t| t.credential_name.clone());
        let clusters = self.clusters.iter().filter_map(|c| match &c.tls {
            UpstreamTls::Simple(t) | UpstreamTls::Mutual(t) => Some(t.credential_name.clone()),
            _ => None,
        });
        servers.chain(clusters).filter(|n| !n.is_empty()).collect()
    }
}
