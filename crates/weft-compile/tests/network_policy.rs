//! Kubernetes NetworkPolicies become the ALLOW list the selected
//! workload's proxy judges connections by: peers by pod and namespace
//! labels as their instances' addresses, address blocks with their
//! exceptions, ports by number, range and name.

use std::path::Path;

use weft_api::load::{load_bytes, load_paths};
use weft_compile::{Compiler, MeshConfig, ProxyRef, Registry};
use weft_model::{AuthzMatch, AuthzPolicy};

fn ingress_of(workload: &str, policies: &str) -> Option<Vec<AuthzPolicy>> {
    security_of(workload, policies).network_ingress
}

fn egress_of(workload: &str, policies: &str) -> Option<Vec<AuthzPolicy>> {
    security_of(workload, policies).network_egress
}

fn security_of(workload: &str, policies: &str) -> weft_model::Security {
    let mut loaded =
        load_paths(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bookinfo")]);
    let extra = load_bytes("netpol.yaml", policies.as_bytes());
    assert!(
        extra.diagnostics.iter().all(|d| !d.is_error()),
        "{:#?}",
        extra.diagnostics
    );
    loaded.resources.extend(extra.resources);
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let model = Compiler::new(&loaded.resources, &registry, &mesh)
        .compile(&ProxyRef::Sidecar {
            namespace: "default".into(),
            name: workload.into(),
        })
        .expect("compiles");
    model.security
}

fn m(attribute: &str, values: &[&str], negate: bool) -> AuthzMatch {
    AuthzMatch {
        attribute: attribute.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
        negate,
    }
}

#[test]
fn peers_ports_and_isolation() {
    let policies = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {team: books}}\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ratings}\nspec:\n  podSelector: {matchLabels: {app: ratings}}\n  ingress:\n  - from:\n    - podSelector: {matchExpressions: [{key: app, operator: In, values: [reviews]}]}\n    - ipBlock: {cidr: 198.18.0.0/15, except: [198.18.1.0/24]}\n    ports:\n    - port: http\n    - port: 8000\n      endPort: 8002\n    - port: 53\n      protocol: UDP\n  - from:\n    - namespaceSelector: {matchLabels: {team: books}}\n      podSelector: {matchLabels: {app: nothing-has-this}}\n";
    let ingress = ingress_of("ratings-v1", policies).expect("ratings is isolated");
    assert_eq!(ingress.len(), 1);
    let p = &ingress[0];
    assert_eq!(p.name, "NetworkPolicy default/ratings");
    assert_eq!(p.rules.len(), 2);
    // The three reviews replicas by address, the block without its hole.
    assert_eq!(
        p.rules[0].from,
        vec![
            vec![m(
                "source.ip",
                &["127.0.10.4", "127.0.10.5", "127.0.10.6"],
                false
            )],
            vec![
                m("source.ip", &["198.18.0.0/15"], false),
                m("source.ip", &["198.18.1.0/24"], true)
            ],
        ]
    );
    // `http` is ratings' port 9080; the range is listed; UDP is not TCP.
    assert_eq!(
        p.rules[0].to,
        vec![vec![m(
            "destination.port",
            &["8000", "8001", "8002", "9080"],
            false
        )]]
    );
    // A selector that selects no instance lets no one in.
    assert_eq!(p.rules[1].from, vec![vec![m("source.ip", &[], false)]]);
    // Workloads no policy selects are not isolated.
    assert_eq!(ingress_of("details-v1", policies), None);
}

#[test]
fn egress_only_policies_do_not_isolate_ingress() {
    let policies = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out}\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n";
    assert_eq!(ingress_of("details-v1", policies), None);
    // No rules at all: isolated, and nothing allowed.
    let deny = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny}\nspec:\n  podSelector: {}\n";
    let ingress = ingress_of("details-v1", deny).expect("isolated");
    assert!(ingress[0].rules.is_empty());
}

#[test]
fn egress_rules_judge_the_endpoint_and_its_port() {
    let policies = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out}\nspec:\n  podSelector: {matchLabels: {app: productpage}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - podSelector: {matchLabels: {app: details}}\n    ports:\n    - port: http\n  - to:\n    - ipBlock: {cidr: 192.0.2.0/24}\n";
    let egress = egress_of("productpage-v1", policies).expect("productpage is isolated");
    let rules = &egress[0].rules;
    // details' one replica, on its port named http (9080).
    assert_eq!(
        rules[0].to,
        vec![vec![m("destination.ip", &["127.0.10.1"], false)]]
    );
    assert_eq!(rules[0].when, vec![m("destination.port", &["9080"], false)]);
    assert!(rules[0].from.is_empty());
    assert_eq!(
        rules[1].to,
        vec![vec![m("destination.ip", &["192.0.2.0/24"], false)]]
    );
    assert!(rules[1].when.is_empty());
    // An Egress-only policy leaves ingress alone.
    assert_eq!(ingress_of("productpage-v1", policies), None);
    assert_eq!(egress_of("details-v1", policies), None);
}

/// The mesh's gateways are pods to a policy's selectors: the ingress
/// gateway (`istio: ingressgateway` in istio-system) is a peer by its
/// address, and it is believed only from the gateway's certificate.
#[test]
fn gateways_are_peers_by_their_labels() {
    let policies = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: productpage}\nspec:\n  podSelector: {matchLabels: {app: productpage}}\n  ingress:\n  - from:\n    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: istio-system}}\n      podSelector: {matchLabels: {istio: ingressgateway}}\n";
    let security = security_of("productpage-v1", policies);
    let ingress = security.network_ingress.expect("productpage is isolated");
    // Offline, the gateways take loopback addresses after the six
    // bookinfo replicas': the ingress gateway the seventh.
    assert_eq!(
        ingress[0].rules[0].from,
        vec![vec![m("source.ip", &["127.0.10.7"], false)]]
    );
    assert_eq!(
        security
            .workload_addresses
            .get("127.0.10.7")
            .map(String::as_str),
        Some("spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account")
    );
}
