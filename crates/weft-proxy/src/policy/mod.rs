//! Who may do what: RequestAuthentication (JWT), AuthorizationPolicy
//! (DENY, ALLOW, AUDIT, CUSTOM) and the external authorizers CUSTOM asks.
//!
//! [`Policies::check_request`] is the one policy stage every role that
//! judges requests runs (a sidecar's inbound side, a gateway, a waypoint):
//! authentication, then DENY and ALLOW, then CUSTOM. A rate limit is one
//! more step at the end of it, after the request is known to be allowed.
//! [`Policies::check_connection`] is the same judgement for a connection
//! that is not read as HTTP.

pub mod authz;
pub mod ext_authz;
pub mod jwt;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use weft_model::{ExtAuthzProvider, Security};

use crate::facts::RequestFacts;
use crate::telemetry::flags::ResponseFlag;
use crate::upstream::ClusterRt;

/// The NetworkPolicies that isolate a workload for egress: where its
/// connections may go, by the endpoint's address and port.
pub struct Egress {
    /// As the model says them, to tell a change.
    written: Vec<weft_model::AuthzPolicy>,
    check: authz::Authorizer,
}

impl Egress {
    pub fn compile(
        written: Option<&Vec<weft_model::AuthzPolicy>>,
    ) -> Option<std::sync::Arc<Egress>> {
        let written = written?.clone();
        let check = authz::Authorizer::compile(&weft_model::Authorization {
            allow: written.clone(),
            ..Default::default()
        });
        Some(std::sync::Arc::new(Egress { written, check }))
    }

    /// Why a connection to `to` may not be made; `None` when one of the
    /// policies allows it.
    pub fn denies(&self, to: std::net::SocketAddr) -> Option<String> {
        let attributes = authz::Attributes {
            principal: None,
            source_ip: None,
            remote_ip: None,
            destination_ip: Some(to.ip()),
            destination_port: to.port(),
            sni: None,
            http: None,
            jwt: None,
        };
        match self.check.check(&attributes).decision {
            Some(authz::Decision::Allow) => None,
            Some(authz::Decision::Deny { policy, .. }) => {
                Some(format!("egress to {to} is not allowed by {policy}"))
            }
            None => Some(format!(
                "egress to {to}: network policy could not be evaluated"
            )),
        }
    }

    pub fn same_as(&self, other: &Egress) -> bool {
        self.written == other.written
    }
}

/// One workload's policies, compiled once per push.
pub struct Policies {
    pub authz: authz::Authorizer,
    /// The NetworkPolicies that isolate this workload for ingress, as an
    /// ALLOW list judged before the AuthorizationPolicies (both must let
    /// a connection in); `None` when none does.
    network: Option<authz::Authorizer>,
    /// The NetworkPolicies that isolate it for egress.
    egress: Option<Arc<Egress>>,
    pub jwt: jwt::JwtAuthn,
    /// MeshConfig's `envoyExtAuthzHttp` and `envoyExtAuthzGrpc`
    /// providers, by the name CUSTOM policies give.
    providers: Vec<ExtAuthzProvider>,
    /// This proxy's SPIFFE ID, told to gRPC authorizers as the
    /// destination's principal.
    spiffe_id: Option<String>,
}

/// Why a request or connection was refused.
#[derive(Debug)]
pub enum Denial {
    /// RequestAuthentication refused the request's token (401).
    Unauthenticated { why: String },
    /// A DENY policy matched or no ALLOW policy did (403). `policy` is
    /// `None` when the policies could not be evaluated at all.
    Forbidden { policy: Option<String>, why: String },
    /// A CUSTOM policy's authorizer said no, or could not be asked; its
    /// answer is the client's.
    External {
        status: StatusCode,
        body: Bytes,
        headers: Vec<(HeaderName, HeaderValue)>,
        why: String,
    },
}

impl Denial {
    pub fn flag(&self) -> ResponseFlag {
        match self {
            Denial::Unauthenticated { .. } => ResponseFlag::JwtRejected,
            Denial::Forbidden { .. } => ResponseFlag::RbacDenied,
            Denial::External { .. } => ResponseFlag::UnauthorizedExternalService,
        }
    }
}

/// What the policy stage decided, with the AUDIT policy that matched
/// (recorded whatever the decision).
#[derive(Debug)]
pub struct Checked {
    pub audited_by: Option<String>,
    pub outcome: Result<(), Denial>,
    /// The token the request carried and that was validated, for routes
    /// on its claims.
    pub jwt: Option<authz::Jwt>,
    /// What the dry-run policies would have decided.
    pub dry_run: authz::DryRun,
    /// Headers a CUSTOM policy's authorizer sends back to the client with
    /// the response (`headersToDownstreamOnAllow`).
    pub response_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

impl Policies {
    pub fn compile(security: &Security, spiffe_id: Option<&str>) -> Policies {
        Policies {
            spiffe_id: spiffe_id.map(str::to_owned),
            authz: authz::Authorizer::compile(&security.authorization)
                .with_owners(&security.workload_addresses),
            network: security.network_ingress.as_ref().map(|allow| {
                authz::Authorizer::compile(&weft_model::Authorization {
                    allow: allow.clone(),
                    ..Default::default()
                })
            }),
            jwt: jwt::JwtAuthn::compile(&security.jwt_rules),
            egress: Egress::compile(security.network_egress.as_ref()),
            providers: security.ext_authz.clone(),
        }
    }

    /// Whether no policy applies: the stage has nothing to do.
    pub fn is_empty(&self) -> bool {
        self.jwt.is_empty() && self.authz.is_empty() && self.network.is_none()
    }

    /// The egress NetworkPolicies, when any isolates this workload.
    pub fn egress(&self) -> Option<&Arc<Egress>> {
        self.egress.as_ref()
    }

    /// The NetworkPolicies' verdict on a connection: L4 attributes only.
    fn check_network(&self, caller: &authz::Attributes<'_>) -> Result<(), Denial> {
        let Some(network) = &self.network else {
            return Ok(());
        };
        let l4 = authz::Attributes {
            http: None,
            jwt: None,
            ..*caller
        };
        match network.check(&l4).decision {
            Some(authz::Decision::Allow) => Ok(()),
            Some(authz::Decision::Deny { policy, .. }) => Err(Denial::Forbidden {
                policy: Some(policy),
                why: "no NetworkPolicy allows this connection".into(),
            }),
            None => Err(Denial::Forbidden {
                policy: None,
                why: "network policy could not be evaluated".into(),
            }),
        }
    }

    /// The address a connection from `ip` is believed to come from: an
    /// address that belongs to a workload only from a caller holding that
    /// workload's certificate.
    pub fn believed_source(&self, ip: IpAddr, principal: Option<&str>) -> Option<IpAddr> {
        self.authz.source_ip(ip, principal)
    }

    /// Judges one request: its token (removed or kept, and its output
    /// headers set, as the rule says), DENY and ALLOW, then a CUSTOM
    /// policy's authorizer (whose headers for the upstream are added).
    /// Clusters are the proxy's, for reaching authorizers.
    pub async fn check_request<B>(
        &self,
        clusters: &HashMap<String, Arc<ClusterRt>>,
        caller: &authz::Attributes<'_>,
        req: &mut Request<B>,
        remote: std::net::SocketAddr,
    ) -> Checked {
        if let Err(denial) = self.check_network(caller) {
            return Checked {
                audited_by: None,
                outcome: Err(denial),
                jwt: None,
                dry_run: Default::default(),
                response_headers: Vec::new(),
            };
        }
        let jwt = if self.jwt.is_empty() {
            None
        } else {
            let query = req.uri().query().map(str::to_owned);
            match self.jwt.authenticate(req.headers_mut(), query.as_deref()) {
                Ok(jwt) => jwt,
                Err(why) => {
                    return Checked {
                        audited_by: None,
                        outcome: Err(Denial::Unauthenticated { why }),
                        jwt: None,
                        dry_run: Default::default(),
                        response_headers: Vec::new(),
                    }
                }
            }
        };
        if self.authz.is_empty() {
            return Checked {
                audited_by: None,
                outcome: Ok(()),
                jwt,
                dry_run: Default::default(),
                response_headers: Vec::new(),
            };
        }
        let facts = RequestFacts::of(req, remote);
        let verdict = self.authz.check(&authz::Attributes {
            http: Some(&facts),
            jwt: jwt.as_ref(),
            ..*caller
        });
        let audited_by = verdict.audited_by;
        let dry_run = verdict.dry_run;
        let custom = match verdict.decision {
            Some(authz::Decision::Allow) => verdict.custom,
            Some(authz::Decision::Deny { policy, why }) => {
                return Checked {
                    audited_by,
                    outcome: Err(Denial::Forbidden {
                        policy: Some(policy),
                        why,
                    }),
                    jwt: None,
                    dry_run,
                    response_headers: Vec::new(),
                }
            }
            // No verdict cannot happen; refuse rather than assume.
            None => {
                return Checked {
                    audited_by,
                    outcome: Err(Denial::Forbidden {
                        policy: None,
                        why: "authorization could not be evaluated".into(),
                    }),
                    jwt: None,
                    dry_run,
                    response_headers: Vec::new(),
                }
            }
        };
        let (outcome, response_headers) = match custom {
            Some(custom) => match self
                .ask_external(clusters, custom, caller, req, remote)
                .await
            {
                Ok(headers) => (Ok(()), headers),
                Err(denial) => (Err(denial), Vec::new()),
            },
            None => (Ok(()), Vec::new()),
        };
        Checked {
            audited_by,
            outcome,
            jwt,
            dry_run,
            response_headers,
        }
    }

    /// DENY and ALLOW on a connection: only L4 attributes exist, and rules
    /// that need more fail closed.
    pub fn check_connection(&self, caller: &authz::Attributes<'_>) -> Result<(), Denial> {
        self.check_network(caller)?;
        if self.authz.is_empty() {
            return Ok(());
        }
        match self.authz.check(caller).decision {
            Some(authz::Decision::Allow) => Ok(()),
            Some(authz::Decision::Deny { policy, why }) => Err(Denial::Forbidden {
                policy: Some(policy),
                why,
            }),
            None => Err(Denial::Forbidden {
                policy: None,
                why: "authorization could not be evaluated".into(),
            }),
        }
    }

    /// A CUSTOM policy's external authorizer; on allow, its edits are
    /// made to the request and the headers it returns for the client are
    /// handed back.
    async fn ask_external<B>(
        &self,
        clusters: &HashMap<String, Arc<ClusterRt>>,
        (policy, provider): (String, String),
        caller: &authz::Attributes<'_>,
        req: &mut Request<B>,
        remote: std::net::SocketAddr,
    ) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, Denial> {
        let Some(p) = self.providers.iter().find(|p| p.name == provider) else {
            return Err(Denial::External {
                status: StatusCode::FORBIDDEN,
                body: Bytes::from_static(b"RBAC: access denied"),
                headers: Vec::new(),
                why: format!("{policy} names extension provider {provider:?}, which meshConfig does not define as envoyExtAuthzHttp or envoyExtAuthzGrpc"),
            });
        };
        let input = ext_authz::CheckInput {
            method: req.method(),
            path_and_query: req.uri().path_and_query().map_or("/", |p| p.as_str()),
            headers: req.headers(),
            version: req.version(),
            authority: req.uri().authority().map(|a| a.as_str()),
            scheme: req.uri().scheme_str().unwrap_or("http"),
            source: remote,
            source_principal: caller.principal,
            destination: caller
                .destination_ip
                .map(|ip| std::net::SocketAddr::new(ip, caller.destination_port)),
            destination_principal: self.spiffe_id.as_deref(),
        };
        // Boxed: the call to the authorizer is kilobytes of future, which
        // every request's future would otherwise carry, CUSTOM policy or
        // not.
        match Box::pin(ext_authz::check(clusters.get(&p.cluster), p, &input)).await {
            ext_authz::Outcome::Allow(allowed) => {
                let headers = req.headers_mut();
                for name in allowed.remove {
                    headers.remove(name);
                }
                for (k, v) in allowed.set {
                    headers.insert(k, v);
                }
                for (k, v) in allowed.append {
                    headers.append(k, v);
                }
                Ok(allowed.downstream)
            }
            ext_authz::Outcome::Deny {
                status,
                body,
                headers,
                why,
            } => Err(Denial::External {
                status,
                body,
                headers,
                why: format!("{why} ({policy})"),
            }),
        }
    }
}

#[cfg(test)]
mod egress_tests {
    use super::Egress;
    use weft_model::{AuthzMatch, AuthzPolicy, AuthzRule};

    #[test]
    fn egress_is_held_to_address_and_port() {
        let m = |a: &str, v: &[&str]| AuthzMatch {
            attribute: a.into(),
            values: v.iter().map(|s| s.to_string()).collect(),
            negate: false,
        };
        let written = vec![AuthzPolicy {
            name: "NetworkPolicy default/out".into(),
            provider: None,
            rules: vec![AuthzRule {
                to: vec![vec![m("destination.ip", &["198.18.10.0/24"])]],
                when: vec![m("destination.port", &["9080"])],
                ..Default::default()
            }],
        }];
        let egress = Egress::compile(Some(&written)).expect("isolated");
        assert_eq!(egress.denies("198.18.10.7:9080".parse().unwrap()), None);
        assert_eq!(
            egress.denies("198.18.10.7:22".parse().unwrap()).as_deref(),
            Some("egress to 198.18.10.7:22 is not allowed by NetworkPolicy default/out")
        );
        assert!(egress.denies("198.18.11.7:9080".parse().unwrap()).is_some());
        // No policies written: nothing is held.
        assert!(Egress::compile(None).is_none());
        // A policy with no rules allows nothing.
        let closed = vec![AuthzPolicy {
            name: "NetworkPolicy default/closed".into(),
            provider: None,
            rules: vec![],
        }];
        assert!(Egress::compile(Some(&closed))
            .unwrap()
            .denies("198.18.10.7:9080".parse().unwrap())
            .is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::authz::Attributes as Caller;
    use super::{Denial, Policies};
    use std::collections::HashMap;
    use weft_model::{Authorization, AuthzMatch, AuthzPolicy, AuthzRule, Security};

    fn rule(attribute: &str, value: &str) -> AuthzRule {
        AuthzRule {
            to: vec![vec![AuthzMatch {
                attribute: attribute.into(),
                values: vec![value.into()],
                negate: false,
            }]],
            ..Default::default()
        }
    }

    fn policy(name: &str, rules: Vec<AuthzRule>, provider: Option<&str>) -> AuthzPolicy {
        AuthzPolicy {
            name: name.into(),
            provider: provider.map(String::from),
            rules,
        }
    }

    fn policies(authorization: Authorization) -> Policies {
        let security: Security = serde_json::from_value(serde_json::json!({
            "trustDomain": "cluster.local",
            "inboundMtls": {"mode": "permissive"},
            "authorization": {},
        }))
        .expect("a security model");
        Policies::compile(
            &Security {
                authorization,
                ..security
            },
            None,
        )
    }

    async fn check(p: &Policies, path: &str) -> (Option<String>, Result<(), Denial>) {
        let mut req = http::Request::get(path)
            .header("host", "web")
            .body(())
            .expect("request");
        let caller = Caller {
            destination_port: 80,
            ..Caller::default()
        };
        let remote = "127.0.0.1:9".parse().expect("address");
        let checked = p
            .check_request(&HashMap::new(), &caller, &mut req, remote)
            .await;
        (checked.audited_by, checked.outcome)
    }

    #[tokio::test]
    async fn deny_then_allow_then_custom_with_audit_recorded_either_way() {
        let p = policies(Authorization {
            deny: vec![policy(
                "deny-admin",
                vec![rule("request.path", "/admin")],
                None,
            )],
            allow: vec![policy(
                "allow-public",
                vec![
                    rule("request.path", "/public"),
                    rule("request.path", "/admin"),
                ],
                None,
            )],
            audit: vec![policy("audit-all", vec![AuthzRule::default()], None)],
            custom: vec![policy(
                "ask-authorizer",
                vec![rule("request.path", "/public")],
                Some("missing-provider"),
            )],
            ..Authorization::default()
        });
        let (audit, outcome) = check(&p, "/admin").await;
        assert_eq!(audit.as_deref(), Some("audit-all"));
        assert!(
            matches!(&outcome, Err(Denial::Forbidden { policy: Some(p), .. }) if p == "deny-admin"),
            "DENY wins over ALLOW: {outcome:?}"
        );
        let (_, outcome) = check(&p, "/private").await;
        assert!(
            matches!(&outcome, Err(Denial::Forbidden { why, .. }) if why == "no ALLOW policy matched"),
            "{outcome:?}"
        );
        // ALLOW passes, then CUSTOM: a provider meshConfig lacks denies.
        let (audit, outcome) = check(&p, "/public").await;
        assert_eq!(audit.as_deref(), Some("audit-all"));
        assert!(
            matches!(&outcome, Err(Denial::External { status, why, .. }) if *status == 403 && why.contains("missing-provider")),
            "{outcome:?}"
        );
        assert!(check(&policies(Authorization::default()), "/x")
            .await
            .1
            .is_ok());
    }

    #[test]
    fn connections_are_judged_on_what_a_connection_has() {
        let p = policies(Authorization {
            allow: vec![policy(
                "http-only",
                vec![rule("request.method", "GET")],
                None,
            )],
            ..Authorization::default()
        });
        // An HTTP condition cannot be met by a TCP connection: fail closed.
        let caller = Caller::default();
        assert!(matches!(
            p.check_connection(&caller),
            Err(Denial::Forbidden { .. })
        ));
        assert!(policies(Authorization::default())
            .check_connection(&caller)
            .is_ok());
    }
}
