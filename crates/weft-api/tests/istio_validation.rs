//! Istio's validation, rule by rule: what its webhook accepts weft
//! accepts, what it rejects weft rejects, and where it warns weft warns.
//! Each case is written here from the rule (istio/istio's
//! `pkg/config/validation` and its test tables), not copied from them.

use weft_api::diag::{codes, Severity};
use weft_api::load::load_bytes;

/// What loading one document must give.
enum Want {
    /// No error and no warning.
    Clean,
    /// Accepted, with a warning whose message holds this.
    Warns(&'static str),
    /// Accepted, with a WEFT0006 warning whose message holds this.
    Unimplemented(&'static str),
    /// Refused, with an error whose message holds this.
    Refused(&'static str),
}

fn check(name: &str, doc: &str, want: Want) {
    let loaded = load_bytes(&format!("{name}.yaml"), doc.as_bytes());
    let errors: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let warnings: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    let all = || {
        loaded
            .diagnostics
            .iter()
            .map(|d| format!("{d}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match want {
        Want::Clean => assert!(
            loaded.diagnostics.is_empty() && loaded.resources.len() == 1,
            "{name}: expected clean, got:\n{}",
            all()
        ),
        Want::Warns(what) => {
            assert!(errors.is_empty(), "{name}: refused:\n{}", all());
            assert!(
                warnings.iter().any(|d| d.message.contains(what)),
                "{name}: expected a warning with {what:?}, got:\n{}",
                all()
            );
        }
        Want::Unimplemented(what) => {
            assert!(errors.is_empty(), "{name}: refused:\n{}", all());
            assert!(
                warnings
                    .iter()
                    .any(|d| d.code == codes::UNIMPLEMENTED && d.message.contains(what)),
                "{name}: expected WEFT0006 with {what:?}, got:\n{}",
                all()
            );
        }
        Want::Refused(what) => {
            assert!(loaded.resources.is_empty(), "{name}: accepted:\n{}", all());
            assert!(
                errors.iter().any(|d| d.message.contains(what)),
                "{name}: expected an error with {what:?}, got:\n{}",
                all()
            );
        }
    }
}

fn authz(rules: &str) -> String {
    format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p}}\nspec:\n{rules}")
}

#[test]
fn authorization_policies() {
    check(
        "trust-domains",
        &authz("  rules:\n  - from:\n    - source:\n        trustDomains: [cluster.local, \"td-*\", \"*-td\", \"*\"]\n        notTrustDomains: [old.example]\n"),
        Want::Clean,
    );
    check(
        "trust-domain-wildcard-in-the-middle",
        &authz("  rules:\n  - from:\n    - source: {trustDomains: [\"a*b\"]}\n"),
        Want::Refused("wildcard in the middle"),
    );
    check(
        "path-templates",
        &authz("  rules:\n  - to:\n    - operation:\n        paths: [\"/api/{*}/items\", \"/files/{**}\", \"/{**}/path/template\"]\n        notPaths: [\"/x/{*}\"]\n"),
        Want::Clean,
    );
    check(
        "path-template-any-not-last",
        &authz("  rules:\n  - to:\n    - operation: {paths: [\"/{**}/a/{*}\"]}\n"),
        Want::Refused("{**} is not the last operator"),
    );
    check(
        "path-template-stray-brace",
        &authz("  rules:\n  - to:\n    - operation: {paths: [\"/{*}/{id}\"]}\n"),
        Want::Refused("beyond {*} and {**}"),
    );
    check(
        "condition-on-trust-domain",
        &authz("  rules:\n  - when:\n    - {key: source.trustDomain, values: [cluster.local]}\n"),
        Want::Clean,
    );
    check(
        "condition-on-envoy-metadata",
        &authz("  rules:\n  - when:\n    - {key: \"experimental.envoy.filters.a.b[c]\", values: [x]}\n"),
        Want::Unimplemented("cannot be evaluated"),
    );
    check(
        "condition-on-destination-namespace",
        &authz("  rules:\n  - when:\n    - {key: destination.namespace, values: [x]}\n"),
        Want::Refused("replaced by metadata.namespace"),
    );
    check(
        "custom-by-identity",
        &authz("  action: CUSTOM\n  provider: {name: opa}\n  rules:\n  - from:\n    - source: {principals: [a], trustDomains: [b]}\n"),
        Want::Refused("principals is not supported with action CUSTOM"),
    );
    check(
        "custom-by-address",
        &authz("  action: CUSTOM\n  provider: {name: opa}\n  rules:\n  - from:\n    - source: {ipBlocks: [127.0.0.0/8]}\n"),
        Want::Clean,
    );
}

#[test]
fn hosts_and_addresses() {
    check(
        "service-entry-partial-wildcard",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [\"*x\"]\n",
        Want::Warns("partial wildcard \"*x\" not allowed"),
    );
    check(
        "service-entry-dynamic-dns",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [\"*-api.example.com\"]\n  resolution: DYNAMIC_DNS\n  ports: [{number: 443, name: tls, protocol: TLS}]\n",
        Want::Unimplemented("DYNAMIC_DNS"),
    );
    check(
        "gateway-partial-wildcard",
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*x.example.com\"]\n",
        Want::Refused("partial wildcard"),
    );
    check(
        "addresses-ending-in-double-colon",
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n  hosts: [example.com]\n  addresses: [127.0.0.1, 2001:db8::]\n  ports: [{number: 80, name: http, protocol: HTTP}]\n",
        Want::Clean,
    );
    check(
        "workload-entry-on-another-network",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  network: net2\n",
        Want::Warns("address is unset with network \"net2\""),
    );
    check(
        "workload-entry-without-address",
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  labels: {app: a}\n",
        Want::Refused("address is required"),
    );
}

#[test]
fn fields_istio_serves_under_their_proto_names_too() {
    check(
        "jwks-uri",
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec:\n  jwtRules:\n  - issuer: https://issuer.example.com\n    jwks_uri: https://issuer.example.com/jwks\n    spaceDelimitedClaims: [roles]\n",
        Want::Clean,
    );
    check(
        "mirror-percent",
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    mirror: {host: ratings}\n    mirror_percent: 5\n",
        Want::Clean,
    );
}

#[test]
fn retry_budgets_are_plain_numbers() {
    let dr = |percent: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: d}}\nspec:\n  host: reviews\n  trafficPolicy:\n    retryBudget: {{percent: {percent}, minRetryConcurrency: 3}}\n")
    };
    check("budget", &dr("20"), Want::Unimplemented("retryBudget"));
    check(
        "budget-over-100",
        &dr("150"),
        Want::Refused("outside 0..100"),
    );
}

#[test]
fn kinds_weft_does_not_model_are_accepted_and_said_so() {
    for (api_version, kind) in [
        ("networking.istio.io/v1alpha3", "EnvoyFilter"),
        ("networking.istio.io/v1beta1", "ProxyConfig"),
        ("extensions.istio.io/v1alpha1", "WasmPlugin"),
        ("flagger.app/v1beta1", "AlertProvider"),
    ] {
        check(
            kind,
            &format!(
                "apiVersion: {api_version}\nkind: {kind}\nmetadata: {{name: x}}\nspec: {{}}\n"
            ),
            Want::Unimplemented("is accepted but not applied by weft"),
        );
    }
    check(
        "unknown-istio-kind",
        "apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: x}\nspec: {}\n",
        Want::Refused("unknown kind `VirtualServce`"),
    );
}

#[test]
fn delegation() {
    let vs = |spec: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v}}\nspec:\n{spec}")
    };
    check(
        "root",
        &vs("  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /api}}]\n    delegate: {name: reviews-api, namespace: team}\n"),
        Want::Clean,
    );
    check(
        "delegate",
        &vs("  http:\n  - route: [{destination: {host: reviews}}]\n"),
        Want::Clean,
    );
    check(
        "delegate-with-gateways",
        &vs("  gateways: [gw]\n  http:\n  - route: [{destination: {host: reviews}}]\n"),
        Want::Refused("delegate virtual service must have no gateways specified"),
    );
    check(
        "delegate-with-tcp",
        &vs("  tcp:\n  - route: [{destination: {host: db}}]\n"),
        Want::Refused("delegate virtual service must have no tcp route specified"),
    );
    check(
        "delegate-delegating",
        &vs("  http:\n  - delegate: {name: deeper}\n"),
        Want::Refused("delegate HTTP route cannot contain delegate"),
    );
    check(
        "delegate-without-name",
        &vs("  hosts: [reviews]\n  http:\n  - delegate: {namespace: team}\n"),
        Want::Refused("delegate needs the name"),
    );
    check(
        "delegate-and-route",
        &vs("  hosts: [reviews]\n  http:\n  - delegate: {name: x}\n    route: [{destination: {host: reviews}}]\n"),
        Want::Refused("mutually exclusive"),
    );
}

/// Istio's JWT claim routing: `@request.auth.claims.…` header keys are
/// accepted on a gateway's VirtualService and refused on one of the mesh
/// only (`ValidateHTTPHeaderNameOrJwtClaimRoute` and the VirtualService
/// rule beside it).
#[test]
fn jwt_claim_routes() {
    let vs = |gateways: &str, key: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [a.example.com]\n  {gateways}\n  http:\n  - match:\n    - headers: {{\"{key}\": {{exact: group1}}}}\n    route: [{{destination: {{host: a.example.com}}}}]\n")
    };
    for key in [
        "@request.auth.claims.groups",
        "@request.auth.claims[org][team]",
        "@request.auth.claims.org.team",
    ] {
        check(
            "claim-gateway",
            &vs("gateways: [istio-system/gw]", key),
            Want::Clean,
        );
        check(
            "claim-gateway-and-mesh",
            &vs("gateways: [gw, mesh]", key),
            Want::Clean,
        );
        check(
            "claim-mesh",
            &vs("gateways: [mesh]", key),
            Want::Refused("is only supported for gateway, found no gateways: [mesh]"),
        );
        check(
            "claim-no-gateways",
            &vs("", key),
            Want::Refused("is only supported for gateway"),
        );
    }
    // Not the claim form: an ordinary header name, and `@` is no token.
    check(
        "claim-malformed",
        &vs("gateways: [gw]", "@request.auth.claims"),
        Want::Refused("is not a valid HTTP header name"),
    );
}

/// `istio.io/dry-run` is read as Go's ParseBool reads it; a value it
/// cannot read leaves the policy enforced, as Istio does, with a warning.
#[test]
fn dry_run_annotation() {
    let ap = |value: &str| {
        format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  annotations: {{istio.io/dry-run: \"{value}\"}}\nspec:\n  action: DENY\n  rules: [{{to: [{{operation: {{paths: [/admin]}}}}]}}]\n")
    };
    for ok in ["true", "True", "1", "false", "F"] {
        check("dry-run", &ap(ok), Want::Clean);
    }
    check(
        "dry-run-bad",
        &ap("yes"),
        Want::Warns("is \"yes\", not true or false: the policy is enforced"),
    );
}
