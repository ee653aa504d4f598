//! AuthorizationPolicy, evaluated as Istio does: CUSTOM, then DENY, then
//! ALLOW (a workload with ALLOW policies admits only what one of them
//! matches); AUDIT only marks the request. Rules are ORed; `from`, `to`
//! and `when` are ANDed; the values of one field are ORed.
//!
//! Policies are compiled once per push. A condition that cannot be
//! evaluated (an HTTP attribute on a TCP connection, a value that does
//! not parse) fails closed: it never lets an ALLOW rule match, and always
//! lets a DENY rule match.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::facts::RequestFacts;
use weft_model::{Authorization, AuthzMatch, AuthzPolicy, AuthzRule};

/// What a request offers to be judged on. The policy stage is handed the
/// connection's part (who calls, from and to where) and fills in the
/// request's and its token.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attributes<'a> {
    /// The peer's verified SPIFFE ID (`spiffe://…`), when it came over
    /// mTLS.
    pub principal: Option<&'a str>,
    pub source_ip: Option<IpAddr>,
    pub remote_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: u16,
    pub sni: Option<&'a str>,
    /// HTTP attributes; `None` on a TCP connection.
    pub http: Option<&'a RequestFacts<'a>>,
    /// The request's validated JWT, when RequestAuthentication found one.
    pub jwt: Option<&'a Jwt>,
}

/// A validated token's claims, for `request.auth.*`.
#[derive(Debug, Clone, Default)]
pub struct Jwt {
    /// `iss/sub`.
    pub principal: String,
    pub audiences: Vec<String>,
    pub presenter: String,
    pub claims: serde_json::Value,
    /// Top-level claims whose string value is a space-separated list
    /// (the rule that validated the token says which).
    pub space_delimited: Vec<String>,
}

impl Jwt {
    /// The values of the claim at `path` (nested objects by key), as
    /// strings: each string of a list, each word of a claim the rule calls
    /// space-delimited, else the string, boolean or number itself. A list
    /// or a word matches when any of them does.
    pub fn claim_values(&self, path: &[String]) -> Vec<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow;
        let claim = path
            .iter()
            .try_fold(&self.claims, |v, key| v.get(key.as_str()));
        match claim {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|i| i.as_str())
                .map(Cow::Borrowed)
                .collect(),
            Some(serde_json::Value::String(s))
                if path.len() == 1 && self.space_delimited.contains(&path[0]) =>
            {
                s.split_ascii_whitespace().map(Cow::Borrowed).collect()
            }
            Some(serde_json::Value::String(s)) => vec![Cow::Borrowed(s.as_str())],
            Some(serde_json::Value::Bool(b)) => vec![Cow::Owned(b.to_string())],
            Some(serde_json::Value::Number(n)) => vec![Cow::Owned(n.to_string())],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny { policy: String, why: String },
}

/// DENY/ALLOW's decision, the CUSTOM policy that wants the external
/// authorizer asked, the AUDIT policy that matched, and what the dry-run
/// policies would have decided.
#[derive(Debug, Default)]
pub struct Verdict {
    pub decision: Option<Decision>,
    /// (policy name, provider name).
    pub custom: Option<(String, String)>,
    pub audited_by: Option<String>,
    pub dry_run: DryRun,
}

/// What one shadow engine (Envoy's name for dry-run rules) decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shadow {
    pub allowed: bool,
    /// The policy that decided it, where one did (Envoy's
    /// `shadow_effective_policy_id`).
    pub policy: Option<String>,
}

impl std::fmt::Display for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.allowed { "allowed" } else { "denied" })?;
        if let Some(p) = &self.policy {
            write!(f, " by {p}")?;
        }
        Ok(())
    }
}

/// The dry-run policies' verdicts, each `None` where no such policy
/// applies to this proxy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub allow: Option<Shadow>,
    pub deny: Option<Shadow>,
    /// A dry-run CUSTOM policy that matched: its authorizer would have been
    /// asked (it is not).
    pub custom: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allow,
    Deny,
}

pub struct Authorizer {
    deny: Vec<Policy>,
    allow: Vec<Policy>,
    audit: Vec<Policy>,
    /// CUSTOM policies: a request they match is put to their provider.
    custom: Vec<Policy>,
    /// `istio.io/dry-run` policies, judged but never enforced.
    dry_run_allow: Vec<Policy>,
    dry_run_deny: Vec<Policy>,
    dry_run_custom: Vec<Policy>,
    /// Mesh workloads' addresses and identities (when a policy reads
    /// `source.ip`).
    owners: std::collections::HashMap<IpAddr, String>,
}

struct Policy {
    name: String,
    provider: Option<String>,
    rules: Vec<Rule>,
}

struct Rule {
    from: Vec<Vec<Cond>>,
    to: Vec<Vec<Cond>>,
    when: Vec<Cond>,
}

struct Cond {
    attr: Attr,
    values: Vec<Value>,
    negate: bool,
}

enum Attr {
    SourcePrincipal,
    SourceNamespace,
    SourceServiceAccount,
    SourceTrustDomain,
    SourceIp,
    RemoteIp,
    DestinationIp,
    DestinationPort,
    ConnectionSni,
    RequestHost,
    RequestMethod,
    RequestPath,
    RequestHeader(http::HeaderName),
    AuthPrincipal,
    AuthAudiences,
    AuthPresenter,
    AuthClaim(Vec<String>),
    /// Not evaluable here; fails closed.
    Unknown,
}

enum Value {
    Str(StrMatch),
    Net(IpNet),
    /// A path template (`/api/{*}/items`, `/files/{**}`), as Envoy's URI
    /// templates match it.
    Template(regex::Regex),
    /// Did not parse; fails closed.
    Invalid,
}

/// Istio's string matching: `*`, `prefix*`, `*suffix`, exact.
enum StrMatch {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
}

impl StrMatch {
    fn parse(v: &str) -> StrMatch {
        if v == "*" {
            StrMatch::Any
        } else if let Some(p) = v.strip_suffix('*') {
            StrMatch::Prefix(p.to_owned())
        } else if let Some(s) = v.strip_prefix('*') {
            StrMatch::Suffix(s.to_owned())
        } else {
            StrMatch::Exact(v.to_owned())
        }
    }

    fn matches(&self, s: &str, fold_case: bool) -> bool {
        let eq = |a: &str, b: &str| {
            if fold_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        match self {
            StrMatch::Any => true,
            StrMatch::Exact(e) => eq(e, s),
            StrMatch::Prefix(p) => {
                s.len() >= p.len() && s.is_char_boundary(p.len()) && eq(&s[..p.len()], p)
            }
            StrMatch::Suffix(x) => {
                s.len() >= x.len()
                    && s.is_char_boundary(s.len() - x.len())
                    && eq(&s[s.len() - x.len()..], x)
            }
        }
    }
}

impl Attr {
    fn parse(name: &str) -> Attr {
        let bracket = |base: &str| {
            name.strip_prefix(base)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
        };
        if let Some(h) = bracket("request.headers") {
            return http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map_or(Attr::Unknown, Attr::RequestHeader);
        }
        if let Some(c) = bracket("request.auth.claims") {
            // Nested claims are written `request.auth.claims[a][b]`.
            return Attr::AuthClaim(c.split("][").map(str::to_owned).collect());
        }
        match name {
            "source.principal" => Attr::SourcePrincipal,
            "source.namespace" => Attr::SourceNamespace,
            "source.serviceAccount" => Attr::SourceServiceAccount,
            "source.trustDomain" => Attr::SourceTrustDomain,
            "source.ip" => Attr::SourceIp,
            "remote.ip" => Attr::RemoteIp,
            "destination.ip" => Attr::DestinationIp,
            "destination.port" => Attr::DestinationPort,
            "connection.sni" => Attr::ConnectionSni,
            "request.host" => Attr::RequestHost,
            "request.method" => Attr::RequestMethod,
            "request.path" => Attr::RequestPath,
            "request.auth.principal" => Attr::AuthPrincipal,
            "request.auth.audiences" => Attr::AuthAudiences,
            "request.auth.presenter" => Attr::AuthPresenter,
            _ => Attr::Unknown,
        }
    }

    fn is_ip(&self) -> bool {
        matches!(self, Attr::SourceIp | Attr::RemoteIp | Attr::DestinationIp)
    }
}

/// `{*}` is one path segment of URI path characters, `{**}` any number
/// of them (slashes included); the rest is literal.
fn path_template(v: &str) -> Value {
    let chars = format!(
        "a-zA-Z0-9{}",
        regex::escape(weft_model::names::PATH_TEMPLATE_PUNCTUATION)
    );
    let mut re = String::from("^");
    let mut rest = v;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{**}") {
            re.push_str(&format!("[{chars}/]*"));
            rest = r;
        } else if let Some(r) = rest.strip_prefix("{*}") {
            re.push_str(&format!("[{chars}]+"));
            rest = r;
        } else {
            let next = rest[1..].find('{').map_or(rest.len(), |i| i + 1);
            re.push_str(&regex::escape(&rest[..next]));
            rest = &rest[next..];
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_or(Value::Invalid, Value::Template)
}

fn parse_value(attr: &Attr, v: &str) -> Value {
    if matches!(attr, Attr::RequestPath) && weft_model::names::is_path_template(v) {
        return path_template(v);
    }
    if attr.is_ip() {
        if let Ok(n) = v.parse::<IpNet>() {
            return Value::Net(n);
        }
        return v
            .parse::<IpAddr>()
            .map_or(Value::Invalid, |ip| Value::Net(IpNet::from(ip)));
    }
    Value::Str(StrMatch::parse(v))
}

impl Cond {
    fn compile(m: &AuthzMatch) -> Cond {
        let attr = Attr::parse(&m.attribute);
        let values = m.values.iter().map(|v| parse_value(&attr, v)).collect();
        Cond {
            attr,
            values,
            negate: m.negate,
        }
    }

    /// `Some(matched)`, or `None` when this cannot be evaluated here.
    fn eval(&self, a: &Attributes<'_>) -> Option<bool> {
        if self.values.iter().any(|v| matches!(v, Value::Invalid)) {
            return None;
        }
        let any_str = |s: Option<&str>, fold: bool| {
            s.is_some_and(|s| {
                self.values.iter().any(|v| match v {
                    Value::Str(m) => m.matches(s, fold),
                    Value::Template(re) => re.is_match(s),
                    _ => false,
                })
            })
        };
        let any_ip = |ip: Option<IpAddr>| {
            ip.is_some_and(|ip| {
                self.values
                    .iter()
                    .any(|v| matches!(v, Value::Net(n) if n.contains(&ip)))
            })
        };
        let principal = a.principal.and_then(|p| p.strip_prefix("spiffe://"));
        let segment = |key: &str| {
            principal.and_then(|p| {
                p.split('/')
                    .collect::<Vec<_>>()
                    .windows(2)
                    .find(|w| w[0] == key)
                    .map(|w| w[1])
            })
        };
        let http = a.http;
        let matched = match &self.attr {
            Attr::Unknown => return None,
            Attr::SourcePrincipal => any_str(principal, false),
            Attr::SourceNamespace => any_str(segment("ns"), false),
            // `td/ns/x/sa/y`: the trust domain comes first.
            Attr::SourceTrustDomain => any_str(principal.and_then(|p| p.split('/').next()), false),
            Attr::SourceServiceAccount => {
                let sa = segment("ns")
                    .zip(segment("sa"))
                    .map(|(n, s)| format!("{n}/{s}"));
                any_str(sa.as_deref(), false)
            }
            // An address not believed cannot be judged.
            Attr::SourceIp => any_ip(Some(a.source_ip?)),
            Attr::RemoteIp => any_ip(Some(a.remote_ip.or(a.source_ip)?)),
            Attr::DestinationIp => any_ip(a.destination_ip),
            Attr::DestinationPort => any_str(Some(&a.destination_port.to_string()), false),
            Attr::ConnectionSni => any_str(a.sni, true),
            Attr::RequestHost => {
                let host = http?.authority;
                // `hosts` may be written with or without the port.
                let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
                any_str(Some(host), true) || any_str(Some(bare), true)
            }
            Attr::RequestMethod => any_str(Some(http?.method), false),
            Attr::RequestPath => any_str(Some(http?.path), false),
            Attr::RequestHeader(name) => {
                let headers = http?.headers;
                headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| any_str(Some(v), false))
            }
            Attr::AuthPrincipal => {
                http?;
                any_str(a.jwt.map(|j| j.principal.as_str()), false)
            }
            Attr::AuthPresenter => {
                http?;
                any_str(a.jwt.map(|j| j.presenter.as_str()), false)
            }
            Attr::AuthAudiences => {
                http?;
                a.jwt
                    .is_some_and(|j| j.audiences.iter().any(|aud| any_str(Some(aud), false)))
            }
            Attr::AuthClaim(path) => {
                http?;
                a.jwt
                    .is_some_and(|j| j.claim_values(path).iter().any(|v| any_str(Some(v), false)))
            }
        };
        Some(matched != self.negate)
    }
}

/// All of `conds` hold. Unevaluable conditions count as `unknown`.
fn all(conds: &[Cond], a: &Attributes<'_>, unknown: bool) -> bool {
    conds.iter().all(|c| c.eval(a).unwrap_or(unknown))
}

impl Rule {
    fn compile(r: &AuthzRule) -> Rule {
        let group = |g: &Vec<Vec<AuthzMatch>>| -> Vec<Vec<Cond>> {
            g.iter()
                .map(|fields| fields.iter().map(Cond::compile).collect())
                .collect()
        };
        Rule {
            from: group(&r.from),
            to: group(&r.to),
            when: r.when.iter().map(Cond::compile).collect(),
        }
    }

    fn matches(&self, a: &Attributes<'_>, kind: Kind) -> bool {
        // Fail closed: what cannot be judged keeps ALLOW rules from
        // matching and makes DENY rules match.
        let unknown = kind == Kind::Deny;
        let any_group = |g: &[Vec<Cond>]| g.is_empty() || g.iter().any(|c| all(c, a, unknown));
        any_group(&self.from) && any_group(&self.to) && all(&self.when, a, unknown)
    }
}

impl Policy {
    fn compile(p: &AuthzPolicy) -> Policy {
        Policy {
            name: p.name.clone(),
            provider: p.provider.clone(),
            rules: p.rules.iter().map(Rule::compile).collect(),
        }
    }

    fn matches(&self, a: &Attributes<'_>, kind: Kind) -> bool {
        self.rules.iter().any(|r| r.matches(a, kind))
    }
}

impl Authorizer {
    pub fn compile(authz: &Authorization) -> Authorizer {
        let all = |ps: &[AuthzPolicy]| ps.iter().map(Policy::compile).collect();
        Authorizer {
            deny: all(&authz.deny),
            allow: all(&authz.allow),
            audit: all(&authz.audit),
            custom: all(&authz.custom),
            dry_run_allow: all(&authz.dry_run_allow),
            dry_run_deny: all(&authz.dry_run_deny),
            dry_run_custom: all(&authz.dry_run_custom),
            owners: Default::default(),
        }
    }

    /// Knows which workload holds which address (`Security`'s
    /// `workloadAddresses`).
    pub fn with_owners(mut self, owners: &std::collections::BTreeMap<String, String>) -> Self {
        self.owners = owners
            .iter()
            .filter_map(|(ip, id)| Some((ip.parse().ok()?, id.clone())))
            .collect();
        self
    }

    /// The caller's address as policies may read it. An address that
    /// belongs to a mesh workload is believed only from a caller holding
    /// that workload's certificate: anything on the host can bind a
    /// loopback address, and only the workload's proxy holds its key.
    /// `None` (not believed) makes conditions on `source.ip` fail closed.
    pub fn source_ip(&self, ip: IpAddr, principal: Option<&str>) -> Option<IpAddr> {
        match self.owners.get(&ip) {
            Some(owner) if principal != Some(owner.as_str()) => None,
            _ => Some(ip),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deny.is_empty()
            && self.allow.is_empty()
            && self.audit.is_empty()
            && self.custom.is_empty()
            && self.dry_run_allow.is_empty()
            && self.dry_run_deny.is_empty()
            && self.dry_run_custom.is_empty()
    }

    /// The dry-run policies' verdicts, judged as the enforced ones are.
    fn dry_run(&self, a: &Attributes<'_>) -> DryRun {
        let deny = (!self.dry_run_deny.is_empty()).then(|| {
            match self.dry_run_deny.iter().find(|p| p.matches(a, Kind::Deny)) {
                Some(p) => Shadow {
                    allowed: false,
                    policy: Some(p.name.clone()),
                },
                None => Shadow {
                    allowed: true,
                    policy: None,
                },
            }
        });
        let allow = (!self.dry_run_allow.is_empty()).then(|| {
            match self
                .dry_run_allow
                .iter()
                .find(|p| p.matches(a, Kind::Allow))
            {
                Some(p) => Shadow {
                    allowed: true,
                    policy: Some(p.name.clone()),
                },
                None => Shadow {
                    allowed: false,
                    policy: None,
                },
            }
        });
        let custom = self
            .dry_run_custom
            .iter()
            .find(|p| p.matches(a, Kind::Deny))
            .map(|p| p.name.clone());
        DryRun {
            allow,
            deny,
            custom,
        }
    }

    pub fn check(&self, a: &Attributes<'_>) -> Verdict {
        let mut verdict = Verdict {
            decision: None,
            custom: None,
            audited_by: self
                .audit
                .iter()
                .find(|p| p.matches(a, Kind::Allow))
                .map(|p| p.name.clone()),
            dry_run: self.dry_run(a),
        };
        if let Some(p) = self.custom.iter().find(|p| p.matches(a, Kind::Deny)) {
            match (&p.provider, a.http.is_some()) {
                (Some(provider), true) => verdict.custom = Some((p.name.clone(), provider.clone())),
                // An HTTP authorizer cannot judge a TCP connection.
                _ => {
                    verdict.decision = Some(Decision::Deny {
                        policy: p.name.clone(),
                        why: "CUSTOM action with no HTTP request to put to the authorizer".into(),
                    });
                    return verdict;
                }
            }
        }
        if let Some(p) = self.deny.iter().find(|p| p.matches(a, Kind::Deny)) {
            verdict.decision = Some(Decision::Deny {
                policy: p.name.clone(),
                why: "matched a DENY policy".into(),
            });
            return verdict;
        }
        if self.allow.is_empty() || self.allow.iter().any(|p| p.matches(a, Kind::Allow)) {
            verdict.decision = Some(Decision::Allow);
            return verdict;
        }
        let names: Vec<&str> = self.allow.iter().map(|p| p.name.as_str()).collect();
        verdict.decision = Some(Decision::Deny {
            policy: names.join(", "),
            why: "no ALLOW policy matched".into(),
        });
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(attribute: &str, values: &[&str], negate: bool) -> AuthzMatch {
        AuthzMatch {
            attribute: attribute.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
            negate,
        }
    }

    fn policy(name: &str, rules: Vec<AuthzRule>) -> AuthzPolicy {
        AuthzPolicy {
            name: name.into(),
            provider: None,
            rules,
        }
    }

    fn facts<'a>(headers: &'a http::HeaderMap, method: &'a str, path: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            method,
            scheme: "http",
            authority: "reviews:9080",
            host: "reviews",
            path,
            query: None,
            path_and_query: path,
            protocol: "HTTP/1.1",
            headers,
            remote: "127.0.0.7:4000".parse().expect("address"),
            jwt: None,
        }
    }

    /// A GET from productpage; the facts are leaked to keep the test's
    /// calls one expression each.
    fn get<'a>(headers: &'a http::HeaderMap, path: &'a str) -> Attributes<'a> {
        Attributes {
            principal: Some("spiffe://cluster.local/ns/default/sa/bookinfo-productpage"),
            source_ip: "127.0.0.7".parse().ok(),
            destination_port: 9080,
            http: Some(Box::leak(Box::new(facts(headers, "GET", path)))),
            ..Default::default()
        }
    }

    /// Istio's path templates, as Envoy's URI templates match them: `{*}`
    /// is one non-empty segment, `{**}` any run of segments.
    #[test]
    fn path_templates_match_segments() {
        let h = http::HeaderMap::new();
        let cases: &[(&str, &str, bool)] = &[
            ("/api/{*}/items", "/api/v1/items", true),
            ("/api/{*}/items", "/api/v1/v2/items", false),
            ("/api/{*}/items", "/api//items", false),
            ("/files/{**}", "/files/a/b/c.txt", true),
            ("/files/{**}", "/files/", true),
            ("/files/{**}", "/filesystem", false),
            ("/{**}/path/template", "/a/b/path/template", true),
            ("/{**}/path/template", "/a/b/path/other", false),
            ("/a.b/{*}", "/axb/c", false),
        ];
        for (template, path, want) in cases {
            let name = format!("{template} on {path}");
            let authz = Authorizer::compile(&Authorization {
                allow: vec![policy(
                    &name,
                    vec![AuthzRule {
                        to: vec![vec![m("request.path", &[template], false)]],
                        ..Default::default()
                    }],
                )],
                ..Default::default()
            });
            let allowed = authz.check(&get(&h, path)).decision == Some(Decision::Allow);
            assert_eq!(allowed, *want, "{name}");
        }
    }

    #[test]
    fn allow_lists_admit_only_what_they_match() {
        let rule = AuthzRule {
            from: vec![vec![m(
                "source.principal",
                &["cluster.local/ns/default/sa/bookinfo-productpage"],
                false,
            )]],
            to: vec![vec![
                m("request.method", &["GET"], false),
                m("request.path", &["/reviews/*"], false),
            ]],
            when: vec![],
        };
        let authz = Authorizer::compile(&Authorization {
            allow: vec![policy("AuthorizationPolicy default/reviews", vec![rule])],
            ..Default::default()
        });
        let h = http::HeaderMap::new();
        assert_eq!(
            authz.check(&get(&h, "/reviews/1")).decision,
            Some(Decision::Allow)
        );
        assert!(matches!(
            authz.check(&get(&h, "/ratings/1")).decision,
            Some(Decision::Deny { .. })
        ));
        let mut other = get(&h, "/reviews/1");
        other.principal = Some("spiffe://cluster.local/ns/default/sa/sleep");
        assert!(matches!(
            authz.check(&other).decision,
            Some(Decision::Deny { .. })
        ));
        other.principal = None;
        assert!(matches!(
            authz.check(&other).decision,
            Some(Decision::Deny { .. })
        ));
    }

    #[test]
    fn empty_policy_denies_all_and_empty_rule_allows_all() {
        let deny_all = Authorizer::compile(&Authorization {
            allow: vec![policy("deny-all", vec![])],
            ..Default::default()
        });
        let h = http::HeaderMap::new();
        assert!(matches!(
            deny_all.check(&get(&h, "/")).decision,
            Some(Decision::Deny { .. })
        ));
        let allow_all = Authorizer::compile(&Authorization {
            allow: vec![policy("allow-all", vec![AuthzRule::default()])],
            ..Default::default()
        });
        assert_eq!(
            allow_all.check(&get(&h, "/")).decision,
            Some(Decision::Allow)
        );
    }

    #[test]
    fn deny_wins_and_not_forms_negate() {
        let authz = Authorizer::compile(&Authorization {
            deny: vec![policy(
                "deny-non-get",
                vec![AuthzRule {
                    to: vec![vec![m("request.method", &["GET", "HEAD"], true)]],
                    ..Default::default()
                }],
            )],
            allow: vec![policy("allow-all", vec![AuthzRule::default()])],
            ..Default::default()
        });
        let h = http::HeaderMap::new();
        assert_eq!(authz.check(&get(&h, "/")).decision, Some(Decision::Allow));
        let post_facts = facts(&h, "POST", "/");
        let post = Attributes {
            http: Some(&post_facts),
            ..get(&h, "/")
        };
        assert!(
            matches!(authz.check(&post).decision, Some(Decision::Deny { policy, .. }) if policy == "deny-non-get")
        );
    }

    #[test]
    fn http_conditions_fail_closed_on_tcp() {
        let rule = AuthzRule {
            to: vec![vec![m("request.method", &["GET"], false)]],
            ..Default::default()
        };
        let tcp = Attributes {
            principal: Some("spiffe://cluster.local/ns/default/sa/x"),
            destination_port: 9000,
            ..Default::default()
        };
        // In an ALLOW policy the HTTP-only rule cannot admit TCP.
        let allow = Authorizer::compile(&Authorization {
            allow: vec![policy("allow-get", vec![rule.clone()])],
            ..Default::default()
        });
        assert!(matches!(
            allow.check(&tcp).decision,
            Some(Decision::Deny { .. })
        ));
        // In a DENY policy it denies TCP.
        let deny = Authorizer::compile(&Authorization {
            deny: vec![policy("deny-get", vec![rule])],
            ..Default::default()
        });
        assert!(matches!(
            deny.check(&tcp).decision,
            Some(Decision::Deny { .. })
        ));
    }

    #[test]
    fn headers_ips_namespaces_and_nested_claims() {
        let mut h = http::HeaderMap::new();
        h.insert("x-token", http::HeaderValue::from_static("admin"));
        let jwt = Jwt {
            principal: "https://issuer/alice".into(),
            audiences: vec!["bookinfo".into()],
            presenter: String::new(),
            claims: serde_json::json!({
                "groups": ["dev", "ops"],
                "org": {"team": "blue"},
                "scope": "read write",
                "roles": "admin user",
                "motto": "be kind",
            }),
            space_delimited: vec!["permission".into(), "roles".into(), "scope".into()],
        };
        let mut a = get(&h, "/");
        a.jwt = Some(&jwt);
        let cases: Vec<(AuthzMatch, bool)> = vec![
            (m("request.headers[X-Token]", &["admin"], false), true),
            (m("request.headers[x-token]", &["guest"], false), false),
            (m("source.ip", &["127.0.0.0/24"], false), true),
            (m("source.ip", &["127.1.0.1"], false), false),
            (m("source.ip", &["not-an-ip"], false), false),
            (m("source.namespace", &["default"], false), true),
            (
                m(
                    "source.serviceAccount",
                    &["default/bookinfo-productpage"],
                    false,
                ),
                true,
            ),
            (m("request.auth.claims[groups]", &["ops"], false), true),
            (m("request.auth.claims[org][team]", &["blue"], false), true),
            (m("request.auth.claims[org][team]", &["red"], false), false),
            // Space-delimited claims match item by item (Istio's scope
            // and permission, and those a rule names); others as a whole.
            (m("request.auth.claims[scope]", &["write"], false), true),
            (
                m("request.auth.claims[scope]", &["read write"], false),
                false,
            ),
            (m("request.auth.claims[roles]", &["admin"], false), true),
            (m("request.auth.claims[motto]", &["kind"], false), false),
            (m("request.auth.claims[motto]", &["be kind"], false), true),
            (m("source.trustDomain", &["cluster.local"], false), true),
            (m("source.trustDomain", &["other.example"], false), false),
            (m("source.trustDomain", &["cluster.local"], true), false),
            (
                m("request.auth.principal", &["https://issuer/*"], false),
                true,
            ),
            (m("request.auth.audiences", &["bookinfo"], false), true),
            (m("request.host", &["reviews"], false), true),
            (m("destination.port", &["9080"], false), true),
            (
                m(
                    "experimental.envoy.filters.network.mysql_proxy[db.table]",
                    &["x"],
                    false,
                ),
                false,
            ),
        ];
        for (cond, want) in cases {
            let name = format!("{} {:?}", cond.attribute, cond.values);
            let authz = Authorizer::compile(&Authorization {
                allow: vec![policy(
                    &name,
                    vec![AuthzRule {
                        when: vec![cond],
                        ..Default::default()
                    }],
                )],
                ..Default::default()
            });
            let allowed = authz.check(&a).decision == Some(Decision::Allow);
            assert_eq!(allowed, want, "{name}");
        }
    }

    #[test]
    fn dry_run_policies_are_judged_and_never_enforced() {
        let paths = |p: &str| AuthzRule {
            to: vec![vec![m("request.path", &[p], false)]],
            ..Default::default()
        };
        let authz = Authorizer::compile(&Authorization {
            dry_run_deny: vec![policy("deny-admin", vec![paths("/admin")])],
            dry_run_allow: vec![policy("allow-public", vec![paths("/public")])],
            ..Default::default()
        });
        let headers = http::HeaderMap::new();
        let judge = |path: &str| {
            let f = facts(&headers, "GET", path);
            authz.check(&Attributes {
                http: Some(&f),
                ..Attributes::default()
            })
        };
        let admin = judge("/admin");
        assert_eq!(
            admin.decision,
            Some(Decision::Allow),
            "a dry run never denies"
        );
        assert_eq!(
            admin
                .dry_run
                .deny
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("denied by deny-admin")
        );
        assert_eq!(
            admin
                .dry_run
                .allow
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("denied")
        );
        let public = judge("/public");
        assert_eq!(
            public
                .dry_run
                .deny
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("allowed")
        );
        assert_eq!(
            public
                .dry_run
                .allow
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("allowed by allow-public")
        );
        assert!(!authz.is_empty());
    }
}
