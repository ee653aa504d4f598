//! Arbitrary bytes through the whole offline pipeline a config file takes:
//! load (YAML/JSON, schema, validation), then registry, analysis and the
//! compile of every proxy. Nothing may panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_compile::{Compiler, MeshConfig, Registry};

fuzz_target!(|data: &[u8]| {
    let loaded = weft_api::load::load_bytes("fuzz.yaml", data);
    for d in &loaded.diagnostics {
        let _ = d.to_string();
    }
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let _ = weft_compile::analyze::analyze(&loaded.resources, &registry, &mesh);
    let compiler = Compiler::new(&loaded.resources, &registry, &mesh);
    for proxy in compiler.proxies() {
        let _ = compiler.compile(&proxy);
    }
});
