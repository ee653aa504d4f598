//! Arbitrary bytes through the whole offline pipeline a config file takes:
//! load (YAML/JSON, schema, validation), admission (Kyverno's mutate and
//! validate rules, the Guardrails), then registry, analysis and the
//! compile of every proxy. Nothing may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_compile::{Compiler, MeshConfig, Registry};

fuzz_target!(|data: &[u8]| {
    let mut loaded = weft_api::load::load_bytes("fuzz.yaml", data);
    for d in &loaded.diagnostics {
        let _ = d.to_string();
    }
    // Admission: Kyverno's mutate rules, then the Guardrails' and Kyverno
    // policies' judgement (patterns, conditions, JMESPath variables).
    for d in weft_compile::kyverno::mutate(&mut loaded.resources) {
        let _ = d.to_string();
    }
    for d in weft_compile::guardrails::check(&loaded.resources, "istio-system") {
        let _ = d.to_string();
    }
    let _ = weft_compile::guardrails::results(&loaded.resources, "istio-system");
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let _ = weft_compile::analyze::analyze(&loaded.resources, &registry, &mesh);
    let compiler = Compiler::new(&loaded.resources, &registry, &mesh);
    for proxy in compiler.proxies() {
        let _ = compiler.compile(&proxy);
    }
});
