//! The configuration as the control plane holds it: listed from its
//! source, validated and analyzed, compiled into every proxy's model.
//!
//! Resources are admitted one by one, as a Kubernetes API server admits
//! them: one that does not validate is refused and reported, and its last
//! good version (if it had one) keeps serving; every other resource
//! applies. A file that does not parse at all keeps the last good versions
//! of what it held. So one broken file never holds back an unrelated,
//! urgent change.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::source::files::FilesSource;
use crate::source::ConfigSource;
use weft_api::diag::{Diagnostic, Severity};
use weft_api::resource::Resource;
use weft_compile::{Carry, Compiler, MeshConfig, ProxyRef, Registry, Reuse};
use weft_model::ProxyModel;

/// A compiled model. Replicas of one workload
/// share one (`Arc`): their models are equal by construction.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The first proxy compiled to this model.
    pub proxy: ProxyRef,
    /// Its version is that of the JSON served from it (with key sets and
    /// roots filled in), made once per change by the server.
    pub model: ProxyModel,
}

/// A configuration that loaded and compiled cleanly.
pub struct Config {
    /// Counts accepted configurations, from 1.
    pub generation: u64,
    pub resources: Vec<Resource>,
    pub registry: Registry,
    /// By proxy name (`namespace/name`).
    pub models: BTreeMap<String, Arc<Compiled>>,
    /// Warnings and analyzer findings of what was admitted.
    pub diagnostics: Vec<Diagnostic>,
    /// Why resources (or whole files) were refused.
    pub refused: Vec<Diagnostic>,
    /// Refused resources whose last good version keeps serving
    /// (`Kind namespace/name`).
    pub kept: Vec<String>,
    /// Where loading it went.
    pub timings: Timings,
    /// The mesh's root namespace, where mesh-wide resources live.
    pub root_namespace: String,
}

/// Milliseconds spent listing (reading and validating what changed),
/// analyzing and compiling one configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub list_ms: u128,
    pub analyze_ms: u128,
    pub compile_ms: u128,
    /// What the compile built, and what it took from the last one's.
    pub reuse: Reuse,
}

pub struct Store {
    source: Arc<dyn ConfigSource>,
    /// Where `credentialName` secrets live, for the analyzers.
    secrets: Option<PathBuf>,
    pub mesh: MeshConfig,
    generation: u64,
    /// What the last compile built, for the next to take what is unchanged.
    carry: Option<Carry>,
}

pub fn proxy_name(p: &ProxyRef) -> String {
    match p {
        ProxyRef::Sidecar { namespace, name } | ProxyRef::Gateway { namespace, name } => {
            format!("{namespace}/{name}")
        }
    }
}

impl Store {
    pub fn new(source: Arc<dyn ConfigSource>, mesh: MeshConfig) -> Store {
        Store {
            source,
            secrets: None,
            mesh,
            generation: 0,
            carry: None,
        }
    }

    /// A store over files and directories (what tests and tools read).
    pub fn of_files(paths: Vec<PathBuf>, mesh: MeshConfig) -> Store {
        Store::new(Arc::new(FilesSource::new(paths)), mesh)
    }

    pub fn with_secrets(mut self, dir: Option<PathBuf>) -> Store {
        self.secrets = dir;
        self
    }

    /// The mesh's root namespace (MeshConfig's `rootNamespace`).
    pub fn root_namespace(&self) -> &str {
        &self.mesh.root_namespace
    }

    pub fn source(&self) -> &Arc<dyn ConfigSource> {
        &self.source
    }

    /// Loads, validates, analyzes and compiles everything, admitting each
    /// resource on its own; `last` is the configuration serving now, whose
    /// versions of refused resources are kept.
    pub fn load(&mut self, last: Option<&Config>) -> Config {
        let started = std::time::Instant::now();
        let mut loaded = self.source.list();
        // Kyverno's mutate rules change what they change before anything
        // judges it, as Kyverno's mutating webhook runs first.
        let mutated = weft_compile::kyverno::mutate(&mut loaded.resources);
        loaded.diagnostics.extend(mutated);
        // The platform's Guardrails judge every resource at admission: what
        // breaks an Enforce rule is refused as an invalid resource is.
        let guarded = weft_compile::guardrails::check(&loaded.resources, &self.mesh.root_namespace);
        let broken: std::collections::BTreeSet<&str> = guarded
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .filter_map(|d| d.resource.as_deref())
            .collect();
        if !broken.is_empty() {
            loaded
                .resources
                .retain(|r| !broken.contains(r.display_name().as_str()));
        }
        let (mut refused, mut diagnostics): (Vec<Diagnostic>, Vec<Diagnostic>) = loaded
            .diagnostics
            .into_iter()
            .chain(guarded)
            .partition(|d| d.severity == Severity::Error);
        let kept = keep_last_good(&mut loaded.resources, &refused, last);
        let registry = Registry::build(&loaded.resources, &self.mesh);
        let listed = std::time::Instant::now();
        // Findings across resources are reported, not refused: each
        // resource was admitted on its own, as Istio's webhook does.
        diagnostics.extend(weft_compile::analyze::analyze_with_options(
            &loaded.resources,
            &registry,
            &self.mesh,
            weft_compile::analyze::Options {
                secrets_dir: self.secrets.as_deref(),
                credential_check: Some(weft_identity::credential::check_serving),
                pem_check: Some(weft_identity::credential::check_serving_pem),
                refused: weft_compile::analyze::refused_by(&refused),
                // Proxies take credentials from --secrets only.
                secret_resources_served: false,
                mesh_config: None,
                guardrails_judged: true,
            },
        ));
        weft_api::diag::sort(&mut diagnostics);
        weft_api::diag::sort(&mut refused);
        let analyzed = std::time::Instant::now();
        let mut models = BTreeMap::new();
        let reuse = {
            let compiler = Compiler::carrying(
                &loaded.resources,
                &registry,
                &self.mesh,
                self.carry.take().unwrap_or_default(),
            );
            // Proxies of one shape get one model: group them, then compile
            // each shape once, on every core (a change recompiles the mesh,
            // and at 1000 services that is most of its latency).
            let mut shapes: Vec<(ProxyRef, Vec<String>)> = Vec::new();
            let mut shape_index: std::collections::HashMap<String, usize> =
                std::collections::HashMap::new();
            for proxy in compiler.proxies() {
                match compiler.shape(&proxy) {
                    Ok(shape) => {
                        let i = *shape_index.entry(shape).or_insert_with(|| {
                            shapes.push((proxy.clone(), Vec::new()));
                            shapes.len() - 1
                        });
                        shapes[i].1.push(proxy_name(&proxy));
                    }
                    Err(e) => {
                        tracing::warn!(proxy = %proxy_name(&proxy), error = %e, "not compiled")
                    }
                }
            }
            let compiled = compile_all(&compiler, &shapes);
            for ((_, names), compiled) in shapes.iter().zip(compiled) {
                let Some(compiled) = compiled else { continue };
                for name in names {
                    models.insert(name.clone(), compiled.clone());
                }
            }
            let reuse = compiler.reuse();
            self.carry = Some(compiler.into_carry());
            reuse
        };
        self.generation += 1;
        let timings = Timings {
            list_ms: (listed - started).as_millis(),
            analyze_ms: (analyzed - listed).as_millis(),
            compile_ms: analyzed.elapsed().as_millis(),
            reuse,
        };
        Config {
            timings,
            generation: self.generation,
            resources: loaded.resources,
            registry,
            models,
            diagnostics,
            refused,
            kept,
            root_namespace: self.mesh.root_namespace.clone(),
        }
    }
}

/// Adds to `admitted` the last good version of every resource `refused`
/// names, and of every resource of a file that did not parse, unless a
/// new version of it was admitted. Returns their names.
fn keep_last_good(
    admitted: &mut Vec<Resource>,
    refused: &[Diagnostic],
    last: Option<&Config>,
) -> Vec<String> {
    let Some(last) = last else {
        return Vec::new();
    };
    let names: std::collections::BTreeSet<&str> = refused
        .iter()
        .filter_map(|d| d.resource.as_deref())
        .collect();
    let broken_files: std::collections::BTreeSet<&str> = refused
        .iter()
        .filter(|d| d.resource.is_none())
        .map(|d| &*d.origin.file)
        .collect();
    let present: std::collections::BTreeSet<_> = admitted.iter().map(|r| r.key()).collect();
    let mut kept = Vec::new();
    for r in &last.resources {
        let name = r.display_name();
        let wanted = names.contains(name.as_str()) || broken_files.contains(&*r.origin().file);
        if wanted && !present.contains(&r.key()) {
            admitted.push(r.clone());
            kept.push(name);
        }
    }
    kept
}

/// Compiles one proxy of each shape, on every core; `None` where the
/// compiler refused (logged).
fn compile_all(
    compiler: &Compiler<'_>,
    shapes: &[(ProxyRef, Vec<String>)],
) -> Vec<Option<Arc<Compiled>>> {
    crate::parallel::map(shapes, |(proxy, _)| {
        let model = match compiler.compile(proxy) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(proxy = %proxy_name(proxy), error = %e, "not compiled");
                return None;
            }
        };
        Some(Arc::new(Compiled {
            proxy: proxy.clone(),
            model,
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A VirtualService on one service builds that service's virtual
    /// host and nothing else: every other host and every cluster is the
    /// last compile's, the same `Arc`.
    #[test]
    fn a_change_to_one_service_rebuilds_only_its_hosts() {
        let dir = std::env::temp_dir().join(format!("weft-store-carry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a dir");
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut store = Store::of_files(
            vec![examples.join("bookinfo"), dir.clone()],
            MeshConfig::default(),
        );
        let first = store.load(None);
        assert!(first.refused.is_empty(), "{:?}", first.refused);
        assert_eq!(first.timings.reuse.hosts_taken, 0);
        assert!(first.timings.reuse.hosts_built > 0 && first.timings.reuse.clusters_built > 0);

        std::fs::write(
            dir.join("ratings.yaml"),
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec:\n  hosts: [ratings]\n  http:\n  - timeout: 3s\n    route:\n    - destination: {host: ratings}\n",
        )
        .expect("written");
        let second = store.load(Some(&first));
        assert!(second.refused.is_empty(), "{:?}", second.refused);
        let reuse = second.timings.reuse;
        // Ratings is seen alike from every other namespace, and from its
        // own (where its short name is in reach) one way more; on its port
        // and on port 80, where Istio routes a VirtualService's hosts too.
        assert!(
            (1..=4).contains(&reuse.hosts_built),
            "{reuse:?}: only ratings' hosts"
        );
        assert_eq!(reuse.clusters_built, 0, "{reuse:?}");
        assert!(
            reuse.hosts_taken > 0 && reuse.clusters_taken > 0,
            "{reuse:?}"
        );

        let name = first
            .models
            .keys()
            .find(|n| n.starts_with("default/productpage"))
            .expect("productpage's sidecar");
        let (a, b) = (&first.models[name].model, &second.models[name].model);
        for (x, y) in a.clusters.iter().zip(b.clusters.iter()) {
            assert!(Arc::ptr_eq(x, y), "{} was rebuilt", x.name);
        }
        let hosts = |m: &ProxyModel| -> Vec<Arc<weft_model::VirtualHost>> {
            m.route_tables
                .iter()
                .flat_map(|t| t.virtual_hosts.iter().cloned())
                .collect()
        };
        let (ha, hb) = (hosts(a), hosts(b));
        // The VirtualService also routes ratings on port 80, as Istio's
        // sidecar routes a VirtualService's hosts there: one host more.
        assert_eq!(ha.len() + 1, hb.len());
        assert!(hb
            .iter()
            .any(|y| y.name == "ratings.default.svc.cluster.local:80"));
        for x in &ha {
            let y = hb.iter().find(|y| y.name == x.name).expect("kept");
            assert_eq!(
                Arc::ptr_eq(x, y),
                !x.name.starts_with("ratings."),
                "{}: rebuilt only where the change is",
                x.name
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
