//! The bundled example, alone and with each of Istio's bookinfo task
//! YAMLs, loads clean and compiles for every proxy it implies.

use std::path::{Path, PathBuf};

use weft_api::load::load_paths;
use weft_compile::{Compiler, MeshConfig, ProxyRef, Registry};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn compile_all(paths: &[PathBuf]) -> usize {
    let loaded = load_paths(paths);
    let errors: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let compiler = Compiler::new(&loaded.resources, &registry, &mesh);
    let proxies = compiler.proxies();
    for p in &proxies {
        let model = compiler.compile(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        // Every cluster a route names exists in the model.
        let clusters: Vec<&str> = model.clusters.iter().map(|c| c.name.as_str()).collect();
        for table in model.route_tables.iter() {
            for vh in &table.virtual_hosts {
                for r in &vh.routes {
                    if let weft_model::RouteAction::Forward(dests) = &r.action {
                        for d in dests {
                            assert!(
                                clusters.contains(&d.cluster.as_str()),
                                "{p:?}: route {} names missing cluster {}",
                                r.name,
                                d.cluster
                            );
                        }
                    }
                }
            }
        }
    }
    proxies.len()
}

#[test]
fn bookinfo_compiles_for_every_proxy() {
    // Six workloads and the two built-in gateways.
    assert_eq!(compile_all(&[examples().join("bookinfo")]), 8);
    let ingress = ProxyRef::Gateway {
        namespace: "istio-system".into(),
        name: "istio-ingressgateway".into(),
    };
    let loaded = load_paths(&[examples().join("bookinfo")]);
    let mesh = MeshConfig::default();
    let registry = Registry::build(&loaded.resources, &mesh);
    let model = Compiler::new(&loaded.resources, &registry, &mesh)
        .compile(&ingress)
        .unwrap();
    assert_eq!(model.listeners.len(), 1);
    assert_eq!(model.listeners[0].port, 8080);
}

#[test]
fn every_task_yaml_compiles_on_top_of_bookinfo() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples().join("bookinfo-tasks")).unwrap() {
        let task = entry.unwrap().path();
        compile_all(&[examples().join("bookinfo"), task]);
        n += 1;
    }
    assert!(n >= 7, "expected Istio's task YAMLs, found {n}");
}
