//! Kyverno's published Istio mutate policies, unchanged, label the
//! Namespaces they match before anything judges them, so the validate
//! policies that ask for those labels pass, as under Kyverno.

use std::path::Path;

use weft_api::load::load_paths;
use weft_api::resource::ResourceKind;

#[test]
fn istio_mutate_policies_label_namespaces_before_validation() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-kyverno/tests/fixtures");
    let policies = fixtures.join("kyverno-policies-istio");
    let mut loaded = load_paths(&[
        policies.join("add-sidecar-injection-namespace.yaml"),
        policies.join("enforce-sidecar-injection-namespace.yaml"),
        fixtures.join("resources.yaml"),
    ]);
    let before = weft_compile::guardrails::check(&loaded.resources, "istio-system");
    assert!(
        before
            .iter()
            .any(|d| d.message.contains("check-istio-injection-enabled")),
        "{before:#?}"
    );
    let notes = weft_compile::kyverno::mutate(&mut loaded.resources);
    for ns in ["injected", "not-injected", "unlabelled"] {
        let r = loaded
            .resources
            .iter()
            .find(|r| r.kind() == ResourceKind::Namespace && r.name() == ns)
            .expect("the namespace is still there");
        assert_eq!(
            r.meta.labels.get("istio-injection").map(String::as_str),
            Some("enabled"),
            "{ns}: {:?}",
            r.meta.labels
        );
    }
    // The one already labelled is unchanged, and not reported.
    let mutated: Vec<&str> = notes
        .iter()
        .filter(|d| {
            d.message
                .starts_with("mutated by ClusterPolicy add-sidecar-injection-namespace")
        })
        .filter_map(|d| d.resource.as_deref())
        .collect();
    assert_eq!(
        mutated,
        ["Namespace not-injected", "Namespace unlabelled"],
        "{notes:#?}"
    );
    // Nothing else was touched.
    let pa = loaded
        .resources
        .iter()
        .find(|r| r.kind() == ResourceKind::PeerAuthentication && r.name() == "permissive")
        .unwrap();
    assert!(
        pa.source.file.ends_with("resources.yaml"),
        "{}",
        pa.source.file
    );
    let after = weft_compile::guardrails::check(&loaded.resources, "istio-system");
    assert!(
        !after
            .iter()
            .any(|d| d.message.contains("check-istio-injection-enabled")),
        "{after:#?}"
    );
}
