//! The model compiled for execution: matchers built, domains indexed,
//! clusters given their runtime state. A snapshot is immutable; a new
//! configuration builds a new one and swaps it in atomically.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;
use weft_model::{ListenerTarget, ProxyModel, Route, RouteMatch, RouteTable};

use crate::error::ProxyError;
use crate::facts::RequestFacts;
use crate::http::matcher::Matcher;
use crate::upstream::ClusterRt;

pub struct Snapshot {
    /// This proxy as metrics label it.
    pub me: crate::telemetry::metrics::Peer,
    pub model: Arc<ProxyModel>,
    pub version: String,
    pub tables: HashMap<String, TableRt>,
    /// TCP listener name → its routes.
    pub tcp: HashMap<String, Vec<weft_model::TcpRoute>>,
    /// A TCP service's address and port → its listener's name: where a
    /// captured connection to that address goes.
    pub tcp_by_address: HashMap<std::net::SocketAddr, String>,
    /// Outbound TLS listeners bound to no address (a wildcard host's, a
    /// VirtualService's TLS routes for names outside the registry), by
    /// port: a captured connection to any address there is theirs when
    /// its SNI is (Envoy's filter chains on 0.0.0.0:port).
    pub tcp_by_port: HashMap<u16, Vec<String>>,
    /// The mesh names DNS answers for, and their addresses.
    pub names: crate::dns::names::NameTable,
    pub clusters: HashMap<String, Arc<ClusterRt>>,
    /// Which request metrics the Telemetry resources leave on.
    pub record: RecordedMetrics,
    /// Their tag overrides.
    pub tags: crate::telemetry::metric_tags::TagPlan,
    /// Telemetry's accessLogging filter, compiled; `None` logs everything.
    pub log_filter: Option<crate::telemetry::log_filter::LogFilter>,
    /// Inbound port → the service it belongs to, as metrics name it.
    pub inbound_services: HashMap<u32, crate::telemetry::metrics::ServiceNames>,
    /// Inbound port → the protocol it is declared with, which says how
    /// the application behind it is spoken to.
    pub inbound_protocols: HashMap<u32, weft_model::Protocol>,
    /// This workload's RequestAuthentications and AuthorizationPolicies,
    /// compiled.
    pub policy: crate::policy::Policies,
    /// The client captured connections for hosts the mesh does not know
    /// go on with, held to the workload's egress NetworkPolicies (made
    /// once per push); `None`: the proxy's plain one, no policy applies.
    pub egress_passthrough: Option<Arc<crate::upstream::ClientSide>>,
}

/// The Telemetry `metrics` overrides, decided once per push.
#[derive(Debug, Clone, Copy)]
pub struct RecordedMetrics {
    pub count: bool,
    pub duration: bool,
    pub request_size: bool,
    pub response_size: bool,
}

impl RecordedMetrics {
    fn of(disabled: &[String]) -> Self {
        let on = |name: &str| !disabled.iter().any(|d| d == name || d == "ALL_METRICS");
        RecordedMetrics {
            count: on("REQUEST_COUNT"),
            duration: on("REQUEST_DURATION"),
            request_size: on("REQUEST_SIZE"),
            response_size: on("RESPONSE_SIZE"),
        }
    }
}

pub struct TableRt {
    exact: HashMap<String, usize>,
    /// `*.suffix` domains as (`.suffix`, host index), longest first.
    suffixes: Vec<(String, usize)>,
    any: Option<usize>,
    pub vhosts: Vec<VirtualHostRt>,
}

pub struct VirtualHostRt {
    pub name: String,
    pub routes: Vec<RouteRt>,
}

pub struct RouteRt {
    pub route: Route,
    /// The route's name, shared with the access log entries that name it.
    pub name: Option<Arc<str>>,
    pub matches: Vec<MatchRt>,
    /// `uriRegexRewrite`, compiled, with RE2's `\1` turned into `${1}`.
    pub regex_rewrite: Option<(regex::Regex, String)>,
    /// CORS `allowOrigins`, compiled.
    pub cors_origins: Vec<Matcher>,
    /// The retry policy's conditions, compiled.
    pub retry_on: crate::http::retry::RetryOn,
    /// A direct response's body, decoded once (`bytes` are base64 in the
    /// model); empty for other actions.
    pub direct_body: bytes::Bytes,
}

pub struct MatchRt {
    uri: Option<Matcher>,
    scheme: Option<Matcher>,
    method: Option<Matcher>,
    authority: Option<Matcher>,
    headers: Vec<(HeaderName, Matcher, bool)>,
    query: Vec<(String, Matcher, bool)>,
    claims: Vec<(Vec<String>, Matcher, bool)>,
    port: Option<u32>,
    ignore_uri_case: bool,
}

impl MatchRt {
    fn compile(m: &RouteMatch) -> Result<MatchRt, ProxyError> {
        let opt = |x: &Option<weft_model::StrMatch>, fold: bool| {
            x.as_ref().map(|s| Matcher::compile(s, fold)).transpose()
        };
        Ok(MatchRt {
            uri: opt(&m.uri, m.ignore_uri_case)?,
            scheme: opt(&m.scheme, false)?,
            method: opt(&m.method, false)?,
            authority: opt(&m.authority, false)?,
            headers: m
                .headers
                .iter()
                .map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| {
                        ProxyError::InvalidModel(format!("header name {:?}", h.name))
                    })?;
                    Ok((name, Matcher::compile(&h.matcher, false)?, h.invert))
                })
                .collect::<Result<_, ProxyError>>()?,
            query: m
                .query_params
                .iter()
                .map(|q| {
                    Ok((
                        q.name.clone(),
                        Matcher::compile(&q.matcher, false)?,
                        q.invert,
                    ))
                })
                .collect::<Result<_, ProxyError>>()?,
            claims: m
                .claims
                .iter()
                .map(|c| {
                    Ok((
                        c.path.clone(),
                        Matcher::compile(&c.matcher, false)?,
                        c.invert,
                    ))
                })
                .collect::<Result<_, ProxyError>>()?,
            port: m.port,
            ignore_uri_case: m.ignore_uri_case,
        })
    }

    /// Whether the request matches, on a route table for `port`.
    pub fn matches(&self, req: &RequestFacts<'_>, port: u32) -> bool {
        if let Some(u) = &self.uri {
            if !u.matches(req.path, self.ignore_uri_case) {
                return false;
            }
        }
        for (m, v) in [
            (&self.scheme, req.scheme),
            (&self.method, req.method),
            (&self.authority, req.host),
        ] {
            if let Some(m) = m {
                if !m.matches(v, false) {
                    return false;
                }
            }
        }
        if let Some(p) = self.port {
            if p != port {
                return false;
            }
        }
        for (name, m, invert) in &self.headers {
            let hit = req
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|s| m.matches(s, false)));
            if hit == *invert {
                return false;
            }
        }
        for (name, m, invert) in &self.query {
            let hit = query_values(req.query, name).any(|v| m.matches(v, false));
            if hit == *invert {
                return false;
            }
        }
        // Without a validated token no claim is present.
        for (path, m, invert) in &self.claims {
            let hit = req
                .jwt
                .is_some_and(|j| j.claim_values(path).iter().any(|v| m.matches(v, false)));
            if hit == *invert {
                return false;
            }
        }
        true
    }
}

fn query_values<'a>(query: Option<&'a str>, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    query.unwrap_or("").split('&').filter_map(move |kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// The body a direct response sends, as bytes.
fn direct_body(action: &weft_model::RouteAction) -> Result<bytes::Bytes, ProxyError> {
    let weft_model::RouteAction::DirectResponse {
        body, body_base64, ..
    } = action
    else {
        return Ok(bytes::Bytes::new());
    };
    if !body_base64 {
        return Ok(bytes::Bytes::from(body.clone()));
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map(bytes::Bytes::from)
        .map_err(|e| ProxyError::InvalidModel(format!("direct response body is not base64: {e}")))
}

impl RouteRt {
    pub fn matches(&self, req: &RequestFacts<'_>, port: u32) -> bool {
        self.matches.is_empty() || self.matches.iter().any(|m| m.matches(req, port))
    }
}

impl TableRt {
    pub fn compile(t: &RouteTable) -> Result<TableRt, ProxyError> {
        let mut table = TableRt {
            exact: HashMap::new(),
            suffixes: Vec::new(),
            any: None,
            vhosts: Vec::new(),
        };
        for (i, vh) in t.virtual_hosts.iter().enumerate() {
            for d in &vh.domains {
                let d = d.to_ascii_lowercase();
                if d == "*" {
                    table.any.get_or_insert(i);
                } else if let Some(suffix) = d.strip_prefix('*') {
                    table.suffixes.push((suffix.to_owned(), i));
                } else {
                    table.exact.entry(d).or_insert(i);
                }
            }
            let routes = vh
                .routes
                .iter()
                .map(|r| {
                    let regex_rewrite =
                        match r.rewrite.as_ref().and_then(|rw| rw.uri_regex.as_ref()) {
                            Some(rr) => {
                                let re = regex::RegexBuilder::new(&rr.pattern)
                                    .size_limit(1 << 20)
                                    .build()
                                    .map_err(|e| {
                                        ProxyError::InvalidModel(format!(
                                            "rewrite regex {:?}: {e}",
                                            rr.pattern
                                        ))
                                    })?;
                                let sub = re2_substitution(&rr.substitution);
                                Some((re, sub))
                            }
                            None => None,
                        };
                    Ok(RouteRt {
                        route: r.clone(),
                        name: (!r.name.is_empty()).then(|| Arc::from(r.name.as_str())),
                        matches: r
                            .matches
                            .iter()
                            .map(MatchRt::compile)
                            .collect::<Result<_, ProxyError>>()?,
                        regex_rewrite,
                        cors_origins: r
                            .cors
                            .iter()
                            .flat_map(|c| c.allow_origins.iter())
                            .map(|m| Matcher::compile(m, false))
                            .collect::<Result<_, ProxyError>>()?,
                        retry_on: r
                            .retry
                            .as_ref()
                            .map(|p| crate::http::retry::RetryOn::parse(&p.retry_on))
                            .unwrap_or_default(),
                        direct_body: direct_body(&r.action)?,
                    })
                })
                .collect::<Result<_, ProxyError>>()?;
            table.vhosts.push(VirtualHostRt {
                name: vh.name.clone(),
                routes,
            });
        }
        table.suffixes.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(table)
    }

    /// The virtual host for a Host header value (with or without port),
    /// as Envoy picks: exact, then the longest wildcard suffix, then `*`.
    pub fn find(&self, host: &str) -> Option<&VirtualHostRt> {
        let lowered;
        let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = host.to_ascii_lowercase();
            lowered.as_str()
        } else {
            host
        };
        let idx = self
            .exact
            .get(host)
            .copied()
            .or_else(|| {
                self.suffixes
                    .iter()
                    .find(|(s, _)| host.ends_with(s.as_str()) && host.len() > s.len())
                    .map(|(_, i)| *i)
            })
            .or(self.any)?;
        self.vhosts.get(idx)
    }
}

impl Snapshot {
    /// Compiles `model`, keeping the runtime state (connection pools, load
    /// balancer counters) of clusters whose configuration did not change.
    pub fn build(
        model: ProxyModel,
        version: String,
        previous: Option<&Snapshot>,
        client: Arc<crate::upstream::ClientSide>,
    ) -> Result<Snapshot, ProxyError> {
        let mut tables = HashMap::new();
        for t in model.route_tables.iter() {
            tables.insert(t.name.clone(), TableRt::compile(t)?);
        }
        for l in &model.listeners {
            if let ListenerTarget::Routes(name) = &l.target {
                if !tables.contains_key(name) {
                    return Err(ProxyError::InvalidModel(format!(
                        "listener {} names missing route table {name}",
                        l.name
                    )));
                }
            }
        }
        let tcp = model
            .listeners
            .iter()
            .filter_map(|l| match &l.target {
                ListenerTarget::Tcp(routes) => Some((l.name.clone(), routes.clone())),
                _ => None,
            })
            .collect();
        let mut clusters = HashMap::new();
        for c in model.clusters.iter() {
            let reuse = previous
                .and_then(|p| p.clusters.get(&c.name))
                .filter(|rt| rt.config == *c && rt.judged_like(&client));
            let before = previous.and_then(|p| p.clusters.get(&c.name));
            let rt = match (reuse, before) {
                (Some(rt), _) => rt.clone(),
                (None, Some(before)) => {
                    Arc::new(ClusterRt::succeeding(c.clone(), client.clone(), before))
                }
                (None, None) => Arc::new(ClusterRt::new(c.clone(), client.clone())),
            };
            clusters.insert(c.name.clone(), rt);
        }
        let policy = crate::policy::Policies::compile(
            &model.security,
            Some(model.proxy.spiffe_id.as_str()).filter(|s| !s.is_empty()),
        );
        Ok(Snapshot {
            me: crate::telemetry::metrics::Peer::of_proxy(&model.proxy),
            record: RecordedMetrics::of(&model.telemetry.disabled_metrics),
            tags: crate::telemetry::metric_tags::TagPlan::compile(&model.telemetry.tag_overrides),
            log_filter: model
                .telemetry
                .access_log_filter
                .as_deref()
                .and_then(crate::telemetry::log_filter::LogFilter::compile),
            egress_passthrough: policy.egress().map(|e| {
                Arc::new(
                    crate::upstream::ClientSide::plain("", &Default::default())
                        .with_egress(Some(e.clone())),
                )
            }),
            policy,
            inbound_services: model
                .listeners
                .iter()
                .filter(|l| l.direction == weft_model::Direction::Inbound && !l.service.is_empty())
                .map(|l| {
                    (
                        l.port,
                        crate::telemetry::metrics::ServiceNames::of(&l.service),
                    )
                })
                .collect(),
            inbound_protocols: model
                .listeners
                .iter()
                .filter(|l| l.direction == weft_model::Direction::Inbound)
                .map(|l| (l.port, l.protocol))
                .collect(),
            names: crate::dns::names::NameTable::of(&model.route_tables, &model.listeners),
            tcp_by_address: model
                .listeners
                .iter()
                .filter(|l| matches!(l.target, ListenerTarget::Tcp(_)))
                .flat_map(|l| {
                    let port = u16::try_from(l.port).ok();
                    l.addresses.iter().filter_map(move |a| {
                        let ip = a.parse::<std::net::IpAddr>().ok()?;
                        Some((std::net::SocketAddr::new(ip, port?), l.name.clone()))
                    })
                })
                .collect(),
            tcp_by_port: {
                let mut by_port: HashMap<u16, Vec<String>> = HashMap::new();
                for l in &model.listeners {
                    let ListenerTarget::Tcp(routes) = &l.target else {
                        continue;
                    };
                    let by_sni = routes.iter().any(|r| !r.sni_hosts.is_empty());
                    if l.direction == weft_model::Direction::Outbound
                        && l.addresses.is_empty()
                        && by_sni
                    {
                        if let Ok(port) = u16::try_from(l.port) {
                            by_port.entry(port).or_default().push(l.name.clone());
                        }
                    }
                }
                by_port
            },
            model: Arc::new(model),
            version,
            tables,
            tcp,
            clusters,
        })
    }

    pub fn cluster(&self, name: &str) -> Option<&Arc<ClusterRt>> {
        self.clusters.get(name)
    }
}

/// Envoy's rewrite substitutions write groups as `\1`; the regex crate
/// writes `${1}` and treats `$` specially, so translate and escape.
fn re2_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek().is_some_and(char::is_ascii_digit) => {
                if let Some(d) = chars.next() {
                    out.push_str(&format!("${{{d}}}"));
                }
            }
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn substitutions() {
        assert_eq!(super::re2_substitution("/a/\\1/b$"), "/a/${1}/b$$");
    }
}
