//! Istio's validation, rule by rule: what its webhook accepts weft
//! accepts, what it rejects weft rejects, and where it warns weft warns.
//! Each case is written here from the rule (istio/istio's
//! `pkg/config/validation` and its test tables), not copied from them.

mod want;

use want::{authz, check, Want};

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
        Want::Warns("mirrorPercent is deprecated"),
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
        Want::Warns("the delegate names no VirtualService"),
    );
    check(
        "delegate-and-route",
        &vs("  hosts: [reviews]\n  http:\n  - delegate: {name: x}\n    route: [{destination: {host: reviews}}]\n"),
        Want::Refused("a route that delegates cannot have route too"),
    );
    // What else a root route sets, its delegate's routes inherit.
    check(
        "delegate-and-direct-response",
        &vs("  hosts: [reviews]\n  http:\n  - delegate: {name: x}\n    directResponse: {status: 200}\n"),
        Want::Clean,
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
            Want::Refused("is only supported for gateway, found no gateways: [gw mesh]"),
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
        format!("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: p\n  annotations: {{istio.io/dry-run: \"{value}\"}}\nspec:\n  action: DENY\n  rules: [{{to: [{{operation: {{ports: [\"8080\"], paths: [/admin]}}}}]}}]\n")
    };
    for ok in ["true", "True", "1", "false", "F"] {
        check("dry-run", &ap(ok), Want::Clean);
    }
    check(
        "dry-run-bad",
        &ap("yes"),
        Want::Refused("is \"yes\", not true or false"),
    );
}

fn vs(spec: &str) -> String {
    format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v, namespace: default}}\nspec: {spec}\n")
}

/// One HTTP route to `foo.baz` with `extra` fields.
fn vs_route(extra: &str) -> String {
    vs(&format!(
        "{{hosts: [foo.bar], http: [{{{extra}, route: [{{destination: {{host: foo.baz}}}}]}}]}}"
    ))
}

const ROUTE: &str = "http: [{route: [{destination: {host: foo.baz}}]}]";

/// Istio's `ValidateVirtualService`, rule by rule.
#[test]
fn virtual_service_destinations_and_weights() {
    // Weights are shares: any non-negative weights, unless several
    // destinations all weigh nothing.
    for (name, route) in [
        (
            "weights-49-50",
            "[{destination: {host: a}, weight: 49}, {destination: {host: b}, weight: 50}]",
        ),
        (
            "weights-over-100",
            "[{destination: {host: a}, weight: 550}, {destination: {host: b}, weight: 500}]",
        ),
        ("weight-single-50", "[{destination: {host: a}, weight: 50}]"),
        (
            "weight-one-unset",
            "[{destination: {host: a}, weight: 60}, {destination: {host: b}}]",
        ),
    ] {
        check(
            name,
            &vs(&format!("{{hosts: [foo.bar], http: [{{route: {route}}}]}}")),
            Want::Clean,
        );
    }
    check("tcp-weights-49-50", &vs("{hosts: [foo.bar], tcp: [{route: [{destination: {host: a}, weight: 49}, {destination: {host: b}, weight: 50}]}]}"), Want::Clean);
    check("weights-total-0", &vs("{hosts: [foo.bar], http: [{route: [{destination: {host: a}}, {destination: {host: b}}]}]}"), Want::Refused("total destination weight is 0"));
    check("weight-negative", &vs("{hosts: [foo.bar], http: [{route: [{destination: {host: a}, weight: 5}, {destination: {host: b}, weight: -1}]}]}"), Want::Refused("weight -1 is negative"));
    // Destination hosts: wildcards are names like any other; only * is not.
    check(
        "destination-partial-wildcard",
        &vs(r#"{hosts: [foo.bar], http: [{route: [{destination: {host: "*-foo.baz"}}]}]}"#),
        Want::Clean,
    );
    check(
        "mirror-wildcard",
        &vs_route(r#"mirror: {host: "*.foo.baz"}"#),
        Want::Clean,
    );
    check(
        "destination-star",
        &vs(r#"{hosts: [foo.bar], http: [{route: [{destination: {host: "*"}}]}]}"#),
        Want::Refused("a destination host cannot be *"),
    );
    check(
        "subset-upper-case",
        &vs("{hosts: [foo.bar], http: [{route: [{destination: {host: foo.baz, subset: V1}}]}]}"),
        Want::Clean,
    );
}

#[test]
fn virtual_service_hosts_and_gateways() {
    check(
        "duplicate-hosts",
        &vs(&format!(r#"{{hosts: ["*.foo.bar", "*.bar"], {ROUTE}}}"#)),
        Want::Refused("duplicate hosts: *.foo.bar and *.bar overlap"),
    );
    check(
        "duplicate-ip-hosts",
        &vs(&format!("{{hosts: [127.0.0.1, 127.0.0.1], {ROUTE}}}")),
        Want::Refused("duplicate hosts"),
    );
    check(
        "ipv6-host",
        &vs(&format!(r#"{{hosts: ["::1"], {ROUTE}}}"#)),
        Want::Clean,
    );
    check(
        "numeric-top-level-label",
        &vs(&format!("{{hosts: [foo.123], {ROUTE}}}")),
        Want::Refused("its top-level label \"123\" is all digits"),
    );
    check(
        "trailing-dot",
        &vs(&format!("{{hosts: [foo.bar.], {ROUTE}}}")),
        Want::Clean,
    );
    check("sni-outside-hosts", &vs("{hosts: [foo.bar], tls: [{match: [{sniHosts: [other.com]}], route: [{destination: {host: foo.baz}}]}]}"), Want::Refused("SNI host \"other.com\" is not within the VirtualService's hosts"));
    check("sni-ip", &vs("{hosts: [foo.bar], tls: [{match: [{sniHosts: [127.0.0.1]}], route: [{destination: {host: foo.baz}}]}]}"), Want::Warns("SNI host 127.0.0.1 is an IP address"));
    check("auto-passthrough-sni", &vs("{hosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local], gateways: [ns1/gateway], tls: [{match: [{sniHosts: [outbound_.15010_._.istiod.istio-system.svc.cluster.local]}], route: [{destination: {host: istiod.istio-system.svc.cluster.local}}]}]}"), Want::Clean);
    check("auto-passthrough-sni-on-mesh", &vs("{hosts: [outbound_.80_._.a.default.svc.cluster.local], tls: [{match: [{sniHosts: [outbound_.80_._.a.default.svc.cluster.local]}], route: [{destination: {host: a}}]}]}"), Want::Refused("is not a valid DNS name"));
    check(
        "legacy-gateway-name",
        &vs(&format!(
            "{{hosts: [foo.bar], gateways: [gateway.example.com], {ROUTE}}}"
        )),
        Want::Warns("is in the legacy name.namespace form"),
    );
    check(
        "gateway-empty-namespace",
        &vs(&format!(
            r#"{{hosts: [foo.bar], gateways: ["/gateway"], {ROUTE}}}"#
        )),
        Want::Refused("gateway reference \"/gateway\" is invalid"),
    );
    check(
        "gateway-dotted-name",
        &vs(&format!(
            "{{hosts: [foo.bar], gateways: [ns1/gw.x], {ROUTE}}}"
        )),
        Want::Refused("gateway reference \"ns1/gw.x\" is invalid"),
    );
    check(
        "gateway-upper-case",
        &vs(&format!(
            "{{hosts: [foo.bar], gateways: [NS1/Gw], {ROUTE}}}"
        )),
        Want::Clean,
    );
    check(
        "export-to-none",
        &vs(&format!(
            r#"{{hosts: [foo.bar], exportTo: ["~"], {ROUTE}}}"#
        )),
        Want::Refused("exportTo ~ (none) is only allowed on a ServiceEntry"),
    );
    check(
        "export-to-twice",
        &vs(&format!(
            "{{hosts: [foo.bar], exportTo: [ns1, ns1], {ROUTE}}}"
        )),
        Want::Refused("exportTo names \"ns1\" twice"),
    );
    check(
        "export-to-dot-and-own-namespace",
        &vs(&format!(
            r#"{{hosts: [foo.bar], exportTo: [".", default], {ROUTE}}}"#
        )),
        Want::Refused("exportTo names \"default\" twice"),
    );
    check(
        "export-to-all-and-some",
        &vs(&format!(
            r#"{{hosts: [foo.bar], exportTo: ["*", ns1], {ROUTE}}}"#
        )),
        Want::Refused("\"*\" (all namespaces) cannot be combined"),
    );
}

#[test]
fn virtual_service_matches() {
    let m = |matches: &str| vs_route(&format!("match: [{matches}]"));
    check(
        "tcp-source-labels",
        &vs(
            r#"{hosts: [foo.bar], tcp: [{match: [{sourceLabels: {app: "a b"}}], route: [{destination: {host: foo.baz}}]}]}"#,
        ),
        Want::Refused("label value \"a b\" is not valid"),
    );
    check(
        "tls-match-gateways",
        &vs(
            r#"{hosts: [foo.bar], tls: [{match: [{sniHosts: [foo.bar], gateways: ["b@d"]}], route: [{destination: {host: foo.baz}}]}]}"#,
        ),
        Want::Refused("gateway reference \"b@d\" is invalid"),
    );
    check(
        "source-label-key",
        &m(r#"{sourceLabels: {"-a": b}}"#),
        Want::Refused("label key \"-a\" is not valid"),
    );
    check(
        "source-namespace",
        &m(r#"{sourceNamespace: "foo.bar"}"#),
        Want::Refused("sourceNamespace \"foo.bar\" is not a valid namespace"),
    );
    check(
        "header-match-mixed-case",
        &m("{headers: {X-Requested-With: {exact: a}}}"),
        Want::Clean,
    );
    check(
        "header-match-pseudo",
        &m(r#"{headers: {":method": {exact: GET}}}"#),
        Want::Clean,
    );
    check(
        "header-match-unknown-pseudo",
        &m(r#"{headers: {":foo": {exact: a}}}"#),
        Want::Refused("\":foo\" is not a pseudo-header a match can name"),
    );
    check(
        "header-empty-prefix",
        &m(r#"{headers: {h: {prefix: ""}}}"#),
        Want::Refused("the prefix is empty"),
    );
    check(
        "method-empty-prefix",
        &m(r#"{method: {prefix: ""}}"#),
        Want::Refused("the prefix is empty"),
    );
    check(
        "uri-empty-prefix",
        &m(r#"{uri: {prefix: ""}}"#),
        Want::Clean,
    );
    check(
        "uri-empty-regex",
        &m(r#"{uri: {regex: ""}}"#),
        Want::Refused("the regex is empty"),
    );
    let long = "a".repeat(1025);
    check(
        "regex-too-long",
        &m(&format!(r#"{{uri: {{regex: "{long}"}}}}"#)),
        Want::Refused("at most 1024 are allowed"),
    );
    check(
        "regex-1024",
        &m(&format!(r#"{{uri: {{regex: "{}"}}}}"#, "a".repeat(1024))),
        Want::Clean,
    );
    check(
        "without-header-present",
        &m(r#"{withoutHeaders: {h: {regex: "*"}}}"#),
        Want::Clean,
    );
    check(
        "query-prefix",
        &m("{queryParams: {q: {prefix: a}}}"),
        Want::Clean,
    );
    check("uri-untyped", &m("{uri: {}}"), Want::Clean);
    check("match-port-0", &m("{port: 0}"), Want::Clean);
    check("tcp-source-subnet-unread", &vs("{hosts: [foo.bar], tcp: [{match: [{sourceSubnet: not-an-ip}], route: [{destination: {host: foo.baz}}]}]}"), Want::Warns("this match matches no connection"));
}

#[test]
fn virtual_service_actions() {
    check("fault-and-redirect", &vs("{hosts: [foo.bar], http: [{redirect: {uri: /lerp}, fault: {abort: {httpStatus: 500}}}]}"), Want::Refused("fault and redirect are mutually exclusive"));
    check("fault-and-direct-response", &vs("{hosts: [foo.bar], http: [{directResponse: {status: 200}, fault: {abort: {httpStatus: 500}}}]}"), Want::Refused("fault and directResponse are mutually exclusive"));
    check(
        "rewrite-and-direct-response",
        &vs("{hosts: [foo.bar], http: [{directResponse: {status: 200}, rewrite: {uri: /x}}]}"),
        Want::Refused("rewrite cannot be combined with directResponse"),
    );
    check("redirect-prefix-rewrite", &vs("{hosts: [foo.bar], http: [{match: [{uri: {prefix: /foo}}], redirect: {prefixRewrite: /bar}}]}"), Want::Clean);
    check(
        "redirect-prefix-rewrite-alone",
        &vs("{hosts: [foo.bar], http: [{redirect: {prefixRewrite: /bar}}]}"),
        Want::Clean,
    );
    check(
        "redirect-uri-and-prefix-rewrite",
        &vs("{hosts: [foo.bar], http: [{redirect: {uri: /a, prefixRewrite: /bar}}]}"),
        Want::Refused("uri and prefixRewrite are mutually exclusive"),
    );
    check("redirect-prefix-rewrite-exact-match", &vs("{hosts: [foo.bar], http: [{match: [{uri: {exact: /foo}}], redirect: {prefixRewrite: /bar}}]}"), Want::Refused("prefixRewrite needs every URI match of the route to be a prefix match"));
    check(
        "redirect-code-300",
        &vs("{hosts: [foo.bar], http: [{redirect: {uri: /t, redirectCode: 300}}]}"),
        Want::Warns("redirect code 300 is not one Envoy sends"),
    );
    check(
        "redirect-code-200",
        &vs("{hosts: [foo.bar], http: [{redirect: {uri: /t, redirectCode: 200}}]}"),
        Want::Refused("redirect code 200 is not a redirect"),
    );
    check(
        "redirect-scheme-ftp",
        &vs("{hosts: [foo.bar], http: [{redirect: {scheme: ftp}}]}"),
        Want::Refused("redirect scheme \"ftp\" is neither http nor https"),
    );
    let body = "a".repeat(101 * 1024);
    check("direct-response-101k", &vs(&format!("{{hosts: [foo.bar], http: [{{directResponse: {{status: 200, body: {{string: {body}}}}}}}]}}")), Want::Warns("a large direct response"));
    // 900 KiB once decoded: under the 1 MiB limit, which counts bytes,
    // not their base64.
    check("direct-response-bytes-900k", &vs(&format!("{{hosts: [foo.bar], http: [{{directResponse: {{status: 200, body: {{bytes: {}}}}}}}]}}", "YWFh".repeat(307200))), Want::Warns("a large direct response"));
    check(
        "direct-response-bytes-not-base64",
        &vs(
            r#"{hosts: [foo.bar], http: [{directResponse: {status: 200, body: {bytes: "not base64!"}}}]}"#,
        ),
        Want::Refused("bytes is not base64"),
    );
    check(
        "direct-response-600",
        &vs("{hosts: [foo.bar], http: [{directResponse: {status: 600}}]}"),
        Want::Clean,
    );
}

#[test]
fn virtual_service_headers() {
    let h = |ops: &str| vs_route(&format!("headers: {{{ops}}}"));
    check(
        "set-authority",
        &h(r#"request: {set: {":authority": foo}}"#),
        Want::Clean,
    );
    check("set-host-in-destination", &vs("{hosts: [foo.bar], http: [{route: [{destination: {host: foo.baz}, headers: {request: {add: {host: foo}}}}]}]}"), Want::Clean);
    check(
        "authority-twice",
        &vs_route(r#"headers: {request: {set: {":authority": foo}}}, rewrite: {authority: bar}"#),
        Want::Refused("the authority is set more than once"),
    );
    check(
        "set-path",
        &h(r#"request: {set: {":path": /x}}"#),
        Want::Refused("cannot be changed with a header operation"),
    );
    check(
        "remove-host",
        &h("request: {remove: [host]}"),
        Want::Refused("header \"host\" cannot be changed with a header operation"),
    );
    check(
        "response-set-host",
        &h("response: {set: {host: a}}"),
        Want::Refused("header \"host\" cannot be changed"),
    );
    check(
        "remove-status",
        &h(r#"response: {remove: [":status"]}"#),
        Want::Refused("header \":status\" cannot be changed with a header operation"),
    );
    check(
        "header-value-stray-percent",
        &h(r#"request: {set: {name: "abcd%oijasodifj"}}"#),
        Want::Refused("is not valid"),
    );
    check(
        "header-value-unterminated",
        &vs(
            r#"{hosts: [foo.bar], http: [{route: [{destination: {host: foo.baz}, headers: {response: {add: {name: "%HOSTNAME"}}}}]}]}"#,
        ),
        Want::Refused("a %VARIABLE% is not closed"),
    );
    check(
        "header-value-control-char",
        &h(r#"request: {set: {name: "a\u0001b"}}"#),
        Want::Refused("control character"),
    );
    check(
        "header-value-variables",
        &h(r#"response: {set: {a: "100%% %HOSTNAME%"}}"#),
        Want::Clean,
    );
    check(
        "header-op-odd-name",
        &h(r#"request: {set: {"x y": v}}"#),
        Want::Warns("the proxy skips this operation"),
    );
}

#[test]
fn virtual_service_policies() {
    check(
        "abort-without-type",
        &vs_route("fault: {abort: {percentage: {value: 5}}}"),
        Want::Warns("abort sets no error"),
    );
    check(
        "delay-without-type",
        &vs_route("fault: {delay: {percentage: {value: 5}}}"),
        Want::Clean,
    );
    check(
        "abort-http2-error",
        &vs_route("fault: {abort: {http2Error: x}}"),
        Want::Refused("HTTP/2 error aborts are not supported"),
    );
    check(
        "delay-exponential",
        &vs_route("fault: {delay: {exponentialDelay: 3s}}"),
        Want::Refused("exponentialDelay is not supported"),
    );
    check(
        "fault-percentage-tiny",
        &vs_route("fault: {abort: {httpStatus: 500, percentage: {value: 0.00005}}}"),
        Want::Refused("is neither 0 nor from 0.0001 to 100"),
    );
    check(
        "delay-percent-deprecated",
        &vs_route("fault: {delay: {fixedDelay: 3s, percent: 101}}"),
        Want::Clean,
    );
    check(
        "timeout-sub-ms",
        &vs_route("timeout: 1.0005s"),
        Want::Refused("is not a whole number of milliseconds"),
    );
    check(
        "delay-sub-ms",
        &vs_route("fault: {delay: {fixedDelay: 3.000000042s}}"),
        Want::Refused("is not a whole number of milliseconds"),
    );
    check(
        "retries-disabled-with-policy",
        &vs_route("retries: {attempts: 0, retryOn: 5xx}"),
        Want::Refused("retries are disabled (attempts: 0)"),
    );
    check(
        "retries-backoff-tiny",
        &vs_route("retries: {attempts: 3, backoff: 0.000000999s}"),
        Want::Refused("shorter than 1ms"),
    );
    check(
        "retry-on-space",
        &vs_route(r#"retries: {attempts: 3, retryOn: "5xx, connect-failure"}"#),
        Want::Refused("unknown retry condition \" connect-failure\""),
    );
    check(
        "retry-on-empty-item",
        &vs_route(r#"retries: {attempts: 3, retryOn: "5xx,"}"#),
        Want::Refused("unknown retry condition \"\""),
    );
    check(
        "retry-on-unknown-status",
        &vs_route(r#"retries: {attempts: 3, retryOn: "420"}"#),
        Want::Refused("unknown retry condition \"420\""),
    );
    check(
        "retry-on-status",
        &vs_route(r#"retries: {attempts: 3, retryOn: "503,gateway-error"}"#),
        Want::Clean,
    );
    check(
        "regex-rewrite-without-rewrite",
        &vs_route(r#"rewrite: {uriRegexRewrite: {match: "^/s(.*)$"}}"#),
        Want::Refused("uriRegexRewrite needs both match and rewrite"),
    );
    check(
        "cors-unknown-method",
        &vs_route("corsPolicy: {allowMethods: [GET, PUTT]}"),
        Want::Refused("method \"PUTT\" is not one a CORS policy can allow"),
    );
    check(
        "cors-any-method",
        &vs_route(r#"corsPolicy: {allowMethods: ["*"]}"#),
        Want::Clean,
    );
    check(
        "cors-empty-origin",
        &vs_route(r#"corsPolicy: {allowOrigins: [{exact: ""}]}"#),
        Want::Refused("an allowed origin needs a non-empty exact, prefix or regex"),
    );
}

/// Every field of Flagger 1.44's Canary and MetricTemplate loads; those
/// weft does not act on yet say so.
#[test]
fn flaggers_canary_and_metric_template_fields_are_accepted() {
    check(
        "canary-1.44",
        r#"apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  provider: istio
  metricsServer: http://prometheus:9090
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  progressDeadlineSeconds: 60
  service:
    port: 9898
    targetPort: 9898
    portName: http
    appProtocol: http
    trafficDistribution: PreferClose
    headless: false
    timeout: 30s
    backendTimeout: 10s
    gatewayRefs: [{name: public-gateway, namespace: istio-ingress}]
    mirror: [{backendRef: {name: podinfo-canary, port: 9898}}]
    unmanagedMetadata: {annotations: [a.example.com/x], labels: [l]}
  analysis:
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    webhooks:
    - {name: load, url: http://loadtester/, timeout: 5s, disableTLS: true, metadata: {cmd: "hey http://podinfo-canary:9898/"}}
"#,
        Want::Unimplemented("gatewayRefs is accepted but not implemented by weft"),
    );
    check(
        "metric-template-headers",
        "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: errors}\nspec:\n  provider: {type: prometheus, address: http://prometheus:9090, headers: {X-Scope-OrgID: [tenant]}}\n  query: sum(rate(x[1m]))\n",
        Want::Clean,
    );
}

#[test]
fn alert_providers_are_flaggers() {
    check(
        "alert-provider",
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: on-call}\nspec: {type: slack, channel: on-call-alerts, username: flagger, address: https://hooks.slack.com/services/T/B/X}\n",
        Want::Clean,
    );
    check(
        "alert-provider-type",
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: on-call}\nspec: {type: pager, address: https://example.com/}\n",
        Want::Refused("alert provider type \"pager\" is not one of Flagger's"),
    );
    check(
        "alert-provider-address",
        "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\nmetadata: {name: on-call}\nspec: {type: slack}\n",
        Want::Refused("needs an address"),
    );
}
