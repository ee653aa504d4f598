//! Kyverno's published Istio policies, loaded unchanged, judge resources
//! with the outcomes, paths and messages Kyverno gives them.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use weft_api::resource::{Resource, ResourceKind};
use weft_kyverno::engine::{evaluate, Request, Response, Status};
use weft_kyverno::world::World;

fn load_dir(dir: &Path) -> Vec<Resource> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read(&f).unwrap();
        let loaded = weft_api::load::load_bytes(&f.display().to_string(), &text);
        let errors: Vec<_> = loaded.diagnostics.iter().filter(|d| d.is_error()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        out.extend(loaded.resources);
    }
    out
}

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every response of every policy in `folder` to every resource.
fn judged(folder: &str) -> Vec<(String, String, Response)> {
    let mut all = load_dir(&fixtures().join(folder));
    let policies = all.len();
    all.extend(load_dir(&fixtures()));
    let world = World::new(&all);
    let mut out = Vec::new();
    for policy in &all[..policies] {
        for r in &all[policies..] {
            let req = Request {
                object: r,
                operation: "CREATE",
                old: None,
            };
            for resp in evaluate(policy, &req, &world) {
                out.push((policy.name().to_owned(), r.display_name(), resp));
            }
        }
    }
    out
}

fn find<'a>(all: &'a [(String, String, Response)], policy: &str, resource: &str) -> &'a Response {
    let hits: Vec<_> = all
        .iter()
        .filter(|(p, r, _)| p == policy && r == resource)
        .collect();
    assert_eq!(hits.len(), 1, "{policy} on {resource}: {hits:#?}");
    &hits[0].2
}

#[test]
fn every_istio_policy_judges_as_kyverno_does() {
    let all = judged("kyverno-policies-istio");
    let pass = |policy: &str, resource: &str| {
        let r = find(&all, policy, resource);
        assert_eq!(r.status, Status::Pass, "{policy} on {resource}: {r:#?}");
    };
    let fail = |policy: &str, resource: &str, rule: &str, path: Option<&str>, message: &str| {
        let r = find(&all, policy, resource);
        assert_eq!(r.status, Status::Fail, "{policy} on {resource}: {r:#?}");
        assert_eq!(r.rule, rule);
        assert_eq!(r.path.as_deref(), path, "{policy} on {resource}");
        assert_eq!(r.message, message, "{policy} on {resource}");
    };

    let mtls = "enforce-strict-mtls";
    pass(mtls, "PeerAuthentication injected/strict");
    pass(mtls, "PeerAuthentication injected/empty");
    fail(
        mtls,
        "PeerAuthentication injected/permissive",
        "validate-mtls",
        Some("/spec/mtls/mode/"),
        "validation error: PeerAuthentication resources may only set UNSET or STRICT for the mode. rule validate-mtls failed at path /spec/mtls/mode/",
    );
    assert_eq!(
        find(&all, mtls, "PeerAuthentication injected/permissive").wanted,
        Some(serde_json::json!("UNSET | STRICT"))
    );

    let tls = "enforce-tls-hosts-host-subnets";
    pass(tls, "DestinationRule injected/mutual");
    pass(tls, "DestinationRule injected/lb-only");
    fail(
        tls,
        "DestinationRule injected/plaintext",
        "destrule",
        Some("/spec/trafficPolicy/tls/mode/"),
        "validation error: TLS may not be disabled for the trafficPolicy in any host. rule destrule failed at path /spec/trafficPolicy/tls/mode/",
    );

    let inject = "prevent-disabling-injection-pods";
    pass(inject, "Pod injected/plain");
    fail(
        inject,
        "Pod injected/opted-out",
        "prohibit-inject-annotation",
        Some("/metadata/annotations/sidecar.istio.io/inject/"),
        "validation error: Pods may not disable sidecar injection by setting the annotation sidecar.istio.io/inject to a value of false. rule prohibit-inject-annotation failed at path /metadata/annotations/sidecar.istio.io/inject/",
    );
    // Deployments are judged by the rule Kyverno generates for them.
    fail(
        inject,
        "Deployment injected/opted-out-deploy",
        "autogen-prohibit-inject-annotation",
        Some("/spec/template/metadata/annotations/sidecar.istio.io/inject/"),
        "validation error: Pods may not disable sidecar injection by setting the annotation sidecar.istio.io/inject to a value of false. rule autogen-prohibit-inject-annotation failed at path /spec/template/metadata/annotations/sidecar.istio.io/inject/",
    );
    pass(inject, "Deployment injected/injected-deploy");
    // A weft Workload is judged as the Pod it stands for.
    assert_eq!(
        find(&all, inject, "Workload injected/local-opted-out").status,
        Status::Fail
    );

    let ns = "enforce-sidecar-injection-namespace";
    pass(ns, "Namespace injected");
    fail(
        ns,
        "Namespace not-injected",
        "check-istio-injection-enabled",
        Some("/metadata/labels/istio-injection/"),
        "validation error: All new Namespaces must have Istio sidecar injection enabled. rule check-istio-injection-enabled failed at path /metadata/labels/istio-injection/",
    );
    assert_eq!(
        find(&all, ns, "Namespace unlabelled").path.as_deref(),
        Some("/metadata/labels/")
    );
    for n in ["injected", "not-injected", "unlabelled"] {
        assert_eq!(
            find(
                &all,
                "enforce-ambient-mode-namespace",
                &format!("Namespace {n}")
            )
            .status,
            Status::Fail
        );
    }

    let vs = "restrict-virtual-service-wildcard";
    fail(
        vs,
        "VirtualService injected/wildcard",
        "block-virtual-service-wildcard",
        Some("/spec/hosts/0/"),
        "validation failure: Wildcards are not permitted as hosts.",
    );
    let named = find(&all, vs, "VirtualService injected/named");
    assert_eq!(
        (named.status, named.message.as_str()),
        (Status::Pass, "rule passed")
    );

    // The apiCall is answered from the configuration: one namespace has
    // an AuthorizationPolicy.
    let authz = "require-authorizationpolicies";
    pass(authz, "Namespace injected");
    fail(
        authz,
        "Namespace not-injected",
        "check-authz-pol",
        None,
        "All Namespaces must have an AuthorizationPolicy.",
    );

    let caps = "service-mesh-disallow-capabilities";
    pass(caps, "Pod injected/istio-init-root");
    pass(caps, "Pod injected/plain");
    pass(caps, "Deployment injected/injected-deploy");
    let r = find(&all, caps, "Pod injected/init-adds-sys-admin");
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.message.starts_with("validation failure: Any capabilities added beyond the allowed list")
            && r.message.ends_with("The service mesh initContainer istio-init is attempting to add forbidden capabilities."),
        "{}",
        r.message
    );
    let r = find(&all, caps, "Pod injected/app-adds-net-admin");
    assert!(
        r.message
            .ends_with("The container app is attempting to add forbidden capabilities."),
        "{}",
        r.message
    );

    let root = "service-mesh-require-run-as-nonroot";
    // The istio-init container is exempt: the second pattern holds.
    let r = find(&all, root, "Pod injected/istio-init-root");
    assert_eq!(
        (r.status, r.message.as_str()),
        (
            Status::Pass,
            "validation rule 'run-as-non-root-istio' anyPattern[1] passed."
        )
    );
    pass(root, "Deployment injected/injected-deploy");
    let r = find(&all, root, "Pod injected/app-adds-net-admin");
    assert_eq!(r.status, Status::Fail);
    assert!(
        r.message.contains("rule run-as-non-root-istio[0] failed at path /spec/containers/0/securityContext/runAsNonRoot/ rule run-as-non-root-istio[1] failed at path /spec/containers/0/securityContext/runAsNonRoot/"),
        "{}",
        r.message
    );

    // Mutate and generate rules are not validate rules: they judge nothing.
    for p in [
        "add-sidecar-injection-namespace",
        "add-ambient-mode-namespace",
        "create-authorizationpolicy",
    ] {
        assert!(all.iter().all(|(policy, _, _)| policy != p), "{p}");
    }
}

#[test]
fn cel_rules_fail_closed_with_a_reason() {
    let all = judged("kyverno-policies-istio-cel");
    let r = find(
        &all,
        "enforce-strict-mtls",
        "PeerAuthentication injected/strict",
    );
    assert_eq!(r.status, Status::Error);
    assert!(r.message.contains("validate.cel"), "{}", r.message);
}

#[test]
fn policies_load_as_their_kinds() {
    let all = load_dir(&fixtures().join("kyverno-policies-istio"));
    assert_eq!(all.len(), 12);
    assert!(all
        .iter()
        .all(|p| p.kind() == ResourceKind::ClusterPolicy && p.namespace().is_empty()));
}
