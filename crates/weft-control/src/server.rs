//! The control plane on its own: watch the configuration, compile every
//! proxy's model, serve them on the model stream, and answer the admin
//! API. `weft control-plane` runs it directly; `weft up` runs it as a
//! supervised child, so it can crash or restart while proxies keep
//! serving.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_api::diag::Diagnostic;
use weft_compile::{MeshConfig, ProxyRef};

use weft_identity::Authority;

use crate::jwks::Jwks;
use crate::push::{self, Hub};
use crate::served::{SectionCache, Served};
use crate::source::files::FilesSource;
use crate::source::ConfigSource;
use crate::store::{Config, Store};
use crate::ControlError;
use crate::{admin, ca};

#[derive(Debug, Clone)]
pub struct Options {
    pub paths: Vec<PathBuf>,
    pub admin: SocketAddr,
    pub xds: SocketAddr,
    /// The CA's TLS port (15012).
    pub ca: SocketAddr,
    /// The SPIFFE trust domain (`cluster.local` by default, as Istio).
    pub trust_domain: String,
    /// The CA's keys: Istio's `cacerts` files, or a root weft makes here.
    pub ca_dir: PathBuf,
    /// Default workload certificate lifetime.
    pub cert_ttl: Duration,
    /// How often RequestAuthentication `jwksUri` key sets are re-fetched.
    pub jwks_refresh: Duration,
    /// `credentialName` secrets: `<dir>/<name>/tls.crt`, `tls.key`, `ca.crt`.
    pub secrets_dir: Option<PathBuf>,
    pub address_base: Ipv4Addr,
    /// Under transparent capture, services without an address get one
    /// counting up from here (see `MeshConfig::service_address_base`).
    pub service_address_base: Option<Ipv4Addr>,
    /// Under transparent capture, where nodes' pod ranges come from (see
    /// `MeshConfig::pod_ranges`).
    pub pod_ranges: Option<weft_compile::nodes::PodRanges>,
    /// Where the mesh's gateways listen (by name): their Services'
    /// endpoints.
    pub gateway_addresses: Vec<(String, std::net::Ipv4Addr)>,
    /// Tokens (tokens/), applied resources (applied/) and their status
    /// (status/).
    pub run_dir: PathBuf,
}

pub fn print_diagnostics(diags: &[Diagnostic]) {
    for d in diags {
        eprintln!("{d}");
    }
}

/// Says what a load refused, and which last good versions keep serving.
pub fn print_refused(config: &Config) {
    if config.refused.is_empty() {
        return;
    }
    let resources = config
        .refused
        .iter()
        .filter_map(|d| d.resource.as_deref())
        .collect::<std::collections::BTreeSet<_>>();
    eprintln!(
        "weft: refused {} resource(s) with errors; everything else applies:",
        resources.len().max(1)
    );
    print_diagnostics(&config.refused);
    for name in &config.kept {
        eprintln!("weft: {name} was refused; its last good version keeps serving");
    }
}

/// Where a proxy's bootstrap token is, for the proxy and for `weft up`.
pub fn token_path(run_dir: &Path, proxy: &str) -> PathBuf {
    run_dir
        .join("tokens")
        .join(format!("{}.token", proxy.replace('/', ".")))
}

/// The roots proxies trust, written by the control plane at start.
pub fn trust_bundle_path(run_dir: &Path) -> PathBuf {
    run_dir.join("trust-bundle.pem")
}

pub fn mesh(o: &Options) -> MeshConfig {
    MeshConfig {
        local_address_base: o.address_base,
        addresses: Some(Arc::new(crate::addresses::AddressFile::new(
            o.run_dir.join("addresses.json"),
        ))),
        service_address_base: o.service_address_base,
        service_addresses: o.service_address_base.map(|_| {
            Arc::new(crate::addresses::AddressFile::new(
                o.run_dir.join("service-addresses.json"),
            )) as Arc<dyn weft_compile::registry::AddressBook>
        }),
        trust_domain: o.trust_domain.clone(),
        pod_ranges: o.pod_ranges.clone(),
        ..MeshConfig::default()
    }
    .with_gateway_addresses(&o.gateway_addresses)
}

pub async fn run(o: Options) -> Result<(), ControlError> {
    let files = Arc::new(
        FilesSource::new(o.paths.clone())
            .with_applied(o.run_dir.join("applied"))
            .with_secrets(o.secrets_dir.clone()),
    );
    let mut revision = files.watch();
    files.spawn_watcher();
    let mut store = Store::new(files, mesh(&o)).with_secrets(o.secrets_dir.clone());
    let config = store.load(None);
    print_diagnostics(&config.diagnostics);
    print_refused(&config);
    crate::guardrails::reconcile(
        store.source().as_ref(),
        &config.resources,
        store.root_namespace(),
    );
    std::fs::create_dir_all(o.run_dir.join("tokens"))?;
    let admin_listener = crate::listen::bind(o.admin, "the admin API").await?;
    let xds_listener = push::bind(o.xds).await?;
    let hub = Hub::new();
    tokio::spawn(push::serve(xds_listener, hub.clone()));
    let authority = Authority::load_or_create(&o.ca_dir, &mesh(&o).trust_domain)?;
    tracing::info!(source = %authority.source, "CA ready");
    ca::write_trust_bundle(authority.roots(), &trust_bundle_path(&o.run_dir))?;
    let ca_listener = ca::bind(o.ca).await?;
    let ca_service = ca::CaService::new(authority, hub.clone(), o.cert_ttl, o.secrets_dir.clone());
    let ca_serving = ca_service.clone();
    tokio::spawn(async move {
        if let Err(e) = ca::serve(ca_listener, ca_serving).await {
            tracing::error!(error = %e, "the CA stopped");
        }
    });
    let (commands, mut command_rx) = tokio::sync::mpsc::unbounded_channel();
    let traffic = Arc::new(crate::telemetry::Traffic::new());
    tokio::spawn(collect_traffic(traffic.clone(), hub.clone()));
    // The canary controller sees each configuration the control plane
    // accepts, and writes through the same source.
    let seen = |c: &Config| {
        Arc::new(crate::canary::Seen {
            resources: c.resources.clone(),
            registry: c.registry.clone(),
        })
    };
    let (canary_config, canary_rx) = tokio::sync::watch::channel(seen(&config));
    let canaries = crate::canary::Shared::default();
    let (canary_commands, canary_command_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(crate::canary::run(
        crate::canary::Controller::new(
            store.source().clone(),
            traffic.clone(),
            hub.clone(),
            canaries.clone(),
        ),
        canary_rx,
        canary_command_rx,
        canaries.clone(),
    ));
    let grants = Arc::new(crate::registration::Grants::load(
        o.run_dir.join("tokens").join("groups.json"),
    ));
    let (registrations, mut registration_rx) = tokio::sync::mpsc::unbounded_channel();
    hub.set_registrations(grants.clone(), registrations);
    // A VM gone for the grace period: its entry goes, unless it came back.
    let (expired, mut expired_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let docs: admin::Shared = Arc::new(Mutex::new(admin::Docs {
        commands: Some(commands),
        traffic: Some(traffic),
        canaries: Some(canaries),
        canary_commands: Some(canary_commands),
        source: Some(store.source().clone()),
        admitted: Some(canary_config.subscribe()),
        root_namespace: store.root_namespace().to_owned(),
        enrolment: Some(admin::Enrolment {
            grants,
            ca: o.ca,
            trust_domain: mesh(&o).trust_domain,
            roots: trust_bundle_path(&o.run_dir),
        }),
        ..admin::Docs::default()
    }));
    tokio::spawn(admin::serve(admin_listener, docs.clone()));
    let jwks = Jwks::new();
    jwks.fetch_all(&Jwks::uris(&config)).await;
    let (jwks_uris, uris_rx) = tokio::sync::watch::channel(Jwks::uris(&config));
    tokio::spawn(jwks.clone().refresh(uris_rx, o.jwks_refresh));
    let mut jwks_changed = jwks.subscribe();
    // Kept across configurations: a change serializes only the sections
    // it made.
    let sections = SectionCache::default();
    serve_config(&o, &hub, &sections, &config, &jwks, &ca_service.roots());
    let mut current = config;
    publish(&docs, &o, &hub, &current, &ca_service);
    eprintln!("weft: control plane ready: admin API on http://{}, model stream on {}, CA on {}, {} proxies' configuration", o.admin, o.xds, o.ca, current.models.len());

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // A root rotation waits in step one until every connected proxy has
    // the bundle with both roots.
    let mut rotation_started: Option<tokio::time::Instant> = None;
    // The documents are rebuilt only when something they show has changed
    // (the proxies' stream states are read when status is asked): at
    // 10 000 proxies a rebuild is megabytes of JSON, and the tick below
    // fires four times a second.
    let mut dirty;
    loop {
        dirty = true;
        tokio::select! {
            Some(cmd) = command_rx.recv() => match cmd {
                admin::Command::RotateRoot => match ca_service.with_authority(|a| a.prepare_rotation()) {
                    Ok(()) => {
                        eprintln!("weft: root rotation: the new root is being distributed");
                        roots_changed(&o, &ca_service);
                        serve_config(&o, &hub, &sections, &current, &jwks, &ca_service.roots());
                        rotation_started = Some(tokio::time::Instant::now());
                    }
                    Err(e) => eprintln!("weft: root rotation refused: {e}"),
                },
            },
            Some(event) = registration_rx.recv() => match event {
                crate::push::Registration::Joined(vm) => register_vm(store.source().as_ref(), &current, &vm),
                crate::push::Registration::Left(proxy) => {
                    let expired = expired.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(crate::registration::grace_period()).await;
                        let _ = expired.send(proxy);
                    });
                }
            },
            Some(proxy) = expired_rx.recv() => {
                if !hub.sync().get(&proxy).is_some_and(|s| s.connected) {
                    store.source().release(&proxy);
                    eprintln!("weft: {proxy} has been gone for {:?}: its WorkloadEntry is removed", crate::registration::grace_period());
                }
            }
            _ = jwks_changed.changed() => {
                jwks_changed.borrow_and_update();
                serve_config(&o, &hub, &sections, &current, &jwks, &ca_service.roots());
            }
            _ = tick.tick() => {
                dirty = rotation_started.is_some();
                if let Some(started) = rotation_started {
                    let distributed = all_acked(&hub, &current);
                    if distributed || started.elapsed() > Duration::from_secs(30) {
                        if !distributed {
                            eprintln!("weft: root rotation: not every proxy acknowledged the new bundle within 30 s; going on");
                        }
                        match ca_service.with_authority(|a| a.complete_rotation(o.cert_ttl)) {
                            Ok(()) => eprintln!("weft: root rotation: signing with the new root; the old one is trusted for {}s more", o.cert_ttl.as_secs()),
                            Err(e) => eprintln!("weft: root rotation failed: {e}"),
                        }
                        rotation_started = None;
                        roots_changed(&o, &ca_service);
                        serve_config(&o, &hub, &sections, &current, &jwks, &ca_service.roots());
                    }
                }
                if ca_service.with_authority(|a| a.retire_due()).unwrap_or(false) {
                    dirty = true;
                    eprintln!("weft: root rotation: the old root is retired");
                    roots_changed(&o, &ca_service);
                    serve_config(&o, &hub, &sections, &current, &jwks, &ca_service.roots());
                }
            }
            // The source says when what it lists may have changed: at once
            // for what the admin API applies, within 50 ms of the files
            // holding still for an edit on disk.
            Ok(()) = revision.changed() => {
                revision.mark_unchanged();
                {
                    let started = std::time::Instant::now();
                    let next = store.load(Some(&current));
                    let compiled_ms = started.elapsed().as_millis();
                    let uris = Jwks::uris(&next);
                    jwks.fetch_all(&jwks.missing(&uris)).await;
                    jwks_uris.send_replace(uris);
                    let serving = std::time::Instant::now();
                    serve_config(&o, &hub, &sections, &next, &jwks, &ca_service.roots());
                    let t = next.timings;
                    eprintln!(
                        "weft: configuration {} accepted (loaded and compiled in {compiled_ms} ms: listed in {} ms, analyzed in {} ms, compiled in {} ms, building {} virtual hosts and {} clusters and keeping {} and {}; served to the streams in {} ms)",
                        next.generation,
                        t.list_ms,
                        t.analyze_ms,
                        t.compile_ms,
                        t.reuse.hosts_built,
                        t.reuse.clusters_built,
                        t.reuse.hosts_taken,
                        t.reuse.clusters_taken,
                        serving.elapsed().as_millis()
                    );
                    print_diagnostics(&next.diagnostics);
                    print_refused(&next);
                    canary_config.send_replace(seen(&next));
                    crate::guardrails::reconcile(
                        store.source().as_ref(),
                        &next.resources,
                        store.root_namespace(),
                    );
                    current = next;
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        if !dirty {
            continue;
        }
        publish(&docs, &o, &hub, &current, &ca_service);
    }
    Ok(())
}

/// Registers the WorkloadEntry of a VM that joined with its group's
/// token, made from the WorkloadGroup's template.
fn register_vm(
    source: &dyn crate::source::ConfigSource,
    config: &Config,
    vm: &crate::registration::Admitted,
) {
    let group = config.resources.iter().find_map(|r| match &r.spec {
        weft_api::resource::Spec::WorkloadGroup(wg)
            if r.namespace() == vm.namespace && r.name() == vm.group =>
        {
            Some(wg)
        }
        _ => None,
    });
    let Some(wg) = group else {
        eprintln!(
            "weft: {} connected with a token of WorkloadGroup {}/{}, which no longer exists: it is not registered",
            vm.proxy, vm.namespace, vm.group
        );
        return;
    };
    let yaml = crate::registration::entry_yaml(&vm.namespace, &vm.group, wg, vm.address);
    let loaded =
        weft_api::load::load_bytes(&format!("<registered by {}>", vm.proxy), yaml.as_bytes());
    if loaded.has_errors() {
        eprintln!("weft: {} cannot be registered:", vm.proxy);
        print_diagnostics(&loaded.diagnostics);
        return;
    }
    eprintln!(
        "weft: {} joined: WorkloadEntry {}/{} registered from WorkloadGroup {}/{}",
        vm.proxy,
        vm.namespace,
        crate::registration::entry_name(&vm.group, vm.address),
        vm.namespace,
        vm.group
    );
    source.register(&vm.proxy, loaded.resources);
}

/// How often the proxies' metrics are read for the dashboard.
const SCRAPE_EVERY: Duration = Duration::from_secs(2);

/// Reads every connected proxy's metrics (at the admin address its Hello
/// gave) every `SCRAPE_EVERY`, for the dashboard's graph.
async fn collect_traffic(traffic: Arc<crate::telemetry::Traffic>, hub: Arc<Hub>) {
    loop {
        tokio::time::sleep(SCRAPE_EVERY).await;
        let proxies = hub.admin_addresses();
        if proxies.is_empty() {
            continue;
        }
        let snapshots = crate::telemetry::scrape(proxies).await;
        traffic.record(snapshots);
    }
}

/// Rewrites the trust bundle file after the roots changed.
fn roots_changed(o: &Options, ca: &ca::CaService) {
    if let Err(e) = ca::write_trust_bundle(&ca.roots(), &trust_bundle_path(&o.run_dir)) {
        eprintln!("weft: cannot write the trust bundle: {e}");
    }
}

/// Whether every connected proxy has acknowledged what it is served.
fn all_acked(hub: &Hub, config: &Config) -> bool {
    let sync = hub.sync();
    config.models.keys().all(|name| {
        let s = sync.get(name).cloned().unwrap_or_default();
        !s.connected
            || hub
                .served_version(name)
                .is_some_and(|v| v == s.acked_version)
    })
}

/// Makes `config` what the stream serves, with a token for every proxy and
/// fetched keys inlined into its RequestAuthentication rules.
fn serve_config(
    o: &Options,
    hub: &Hub,
    sections: &SectionCache,
    config: &Config,
    jwks: &Jwks,
    roots: &[String],
) {
    for name in config.models.keys() {
        if let Err(e) = hub.token_file(&o.run_dir.join("tokens"), name) {
            eprintln!("weft: cannot write the token of {name}: {e}");
        }
    }
    hub.set_identities(
        config
            .models
            .iter()
            .map(|(name, c)| (name.clone(), c.model.proxy.spiffe_id.clone()))
            .collect(),
    );
    // Once per distinct model: replicas share one, and reading a whole
    // mesh's clusters for each of 10 000 replicas was seconds.
    let mut names_of: std::collections::HashMap<
        *const crate::store::Compiled,
        std::collections::BTreeSet<String>,
    > = std::collections::HashMap::new();
    hub.set_credentials(
        config
            .models
            .iter()
            .map(|(name, c)| {
                let names = names_of
                    .entry(Arc::as_ptr(c))
                    .or_insert_with(|| c.model.credential_names())
                    .clone();
                (name.clone(), names)
            })
            .collect(),
    );
    // Replicas share a compiled model; serve each distinct one once,
    // serialized on every core.
    let mut distinct: std::collections::HashMap<*const crate::store::Compiled, usize> =
        std::collections::HashMap::new();
    let mut compiled: Vec<&Arc<crate::store::Compiled>> = Vec::new();
    for c in config.models.values() {
        distinct.entry(Arc::as_ptr(c)).or_insert_with(|| {
            compiled.push(c);
            compiled.len() - 1
        });
    }
    sections.next_round();
    let served = crate::parallel::map(&compiled, |c| served_model(c, jwks, roots, sections));
    hub.set_sections_held(sections.held());
    hub.publish(
        config
            .models
            .iter()
            .filter_map(|(name, c)| {
                let m = &served[*distinct.get(&Arc::as_ptr(c))?];
                Some((name.clone(), m.clone()))
            })
            .collect(),
        config.generation,
    );
}

/// What a proxy is sent: the compiled model, with remote key sets inlined
/// when it has rules that name one, and the mesh's roots.
fn served_model(
    c: &crate::store::Compiled,
    jwks: &Jwks,
    roots: &[String],
    cache: &SectionCache,
) -> Arc<Served> {
    let mut security = c.model.security.clone();
    jwks.fill(&mut security);
    security.trust_bundle = roots.to_vec();
    match Served::of_model(&c.model, &security, cache) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            // The proxy refuses an empty model (NACK) and keeps its last one.
            tracing::error!(proxy = %crate::store::proxy_name(&c.proxy), error = %e, "cannot serialize a model");
            Arc::new(Served::whole(String::new(), bytes::Bytes::new()))
        }
    }
}

/// Refreshes `/api/status`, `/api/validations` and `/api/resources` from
/// the configuration, the stream and the processes `weft up` reports.
fn publish(docs: &admin::Shared, o: &Options, hub: &Arc<Hub>, config: &Config, ca: &ca::CaService) {
    let proxies: Vec<(String, bool)> = config
        .models
        .iter()
        // A gateway nothing listens on is not run.
        .filter(|(_, c)| {
            !(matches!(c.proxy, ProxyRef::Gateway { .. }) && c.model.listeners.is_empty())
        })
        .map(|(name, c)| (name.clone(), matches!(c.proxy, ProxyRef::Gateway { .. })))
        .collect();
    let applied_dir = o.run_dir.join("applied");
    let resources: Vec<serde_json::Value> = config
        .resources
        .iter()
        .map(|r| {
            let origin = r.origin();
            serde_json::json!({
                "kind": r.kind().name(),
                "namespace": r.namespace(),
                "name": r.name(),
                "file": origin.file.to_string(),
                "line": origin.line,
                "applied": Path::new(&*origin.file).starts_with(&applied_dir),
                "object": shown_object(r),
            })
        })
        .collect();
    // Each policy's results, judged once for the summary and the reports.
    let results = weft_compile::guardrails::results(&config.resources, &config.root_namespace);
    let status = admin::Status {
        control_plane: serde_json::json!({
            "admin": o.admin.to_string(),
            "xds": o.xds.to_string(),
            "runDir": o.run_dir.display().to_string(),
            "generation": config.generation,
            "ca": ca.describe(),
            // What the models being served hold, each section once.
            "sections": {
                "distinct": hub.sections_held().0,
                "bytes": hub.sections_held().1,
            },
            // What the files hold that was not admitted (null when all
            // was), and the refused resources still served as they were.
            "lastRefusedChange": (!config.refused.is_empty()).then_some(&config.refused),
            "keptLastGood": &config.kept,
            // The user's resources a controller replaced while it needs
            // them (a Canary's Service and VirtualService).
            "takenOver": config
                .diagnostics
                .iter()
                .filter(|d| d.code == weft_api::diag::codes::TAKEN_OVER)
                .collect::<Vec<_>>(),
            // What an Audit Guardrail lets in but reports.
            "audited": config
                .diagnostics
                .iter()
                .filter(|d| d.code == weft_compile::guardrails::CODE)
                .collect::<Vec<_>>(),
            // The mesh's policies and what each found (its hits in the
            // data plane are added from the supervisor's report).
            "policies": policy_summary(&config.resources, &results),
            // What the analyzers call errors in what was admitted (a
            // credentialName with no secret, say): it runs, but not as meant.
            "problems": config
                .diagnostics
                .iter()
                .filter(|d| d.severity == weft_api::diag::Severity::Error)
                .collect::<Vec<_>>(),
        }),
        proxies: Arc::new(proxies),
        hub: hub.clone(),
    };
    let validations = serde_json::json!({
        "generation": config.generation,
        "diagnostics": config.diagnostics,
        "refused": (!config.refused.is_empty()).then_some(&config.refused),
    });
    let reports = policy_reports(&results);
    if let Ok(mut d) = docs.lock() {
        d.status = Some(status);
        d.validations = validations;
        d.resources = resources;
        d.policy_reports = reports;
    }
}

/// Each Guardrail, Kyverno policy and NetworkPolicy: its action and how
/// many resources its rules passed and failed (a NetworkPolicy: how many
/// workload instances it selects).
fn policy_summary(
    resources: &[weft_api::resource::Resource],
    results: &[weft_compile::guardrails::RuleResult],
) -> serde_json::Value {
    use weft_api::resource::Spec;
    use weft_api::types::weft::FailureAction;
    let action = |a: FailureAction| match a {
        FailureAction::Enforce => "Enforce",
        FailureAction::Audit => "Audit",
    };
    let mut out = Vec::new();
    for r in resources {
        let (name, act) = match &r.spec {
            Spec::Guardrail(g) => (
                format!("{}/{}", r.namespace(), r.name()),
                action(g.validation_failure_action),
            ),
            Spec::ClusterPolicy(p) => (r.name().to_owned(), action(p.validation_failure_action)),
            Spec::Policy(p) => (
                format!("{}/{}", r.namespace(), r.name()),
                action(p.validation_failure_action),
            ),
            Spec::NetworkPolicy(p) => {
                let selected = resources
                    .iter()
                    .filter(|w| {
                        w.namespace() == r.namespace()
                            && weft_compile::guardrails::runs_pods(w)
                            && p.pod_selector.selects(&w.meta.labels)
                    })
                    .count();
                out.push(serde_json::json!({
                    "kind": "NetworkPolicy",
                    "name": format!("{}/{}", r.namespace(), r.name()),
                    "action": "Enforce",
                    "selects": selected,
                }));
                continue;
            }
            _ => continue,
        };
        let mine = results.iter().filter(|x| x.policy == name);
        let count = |what: &str| mine.clone().filter(|x| x.result == what).count();
        out.push(serde_json::json!({
            "kind": r.kind().name(),
            "name": name,
            "action": act,
            "pass": count("pass"),
            "fail": count("fail") + count("error"),
        }));
    }
    serde_json::Value::Array(out)
}

/// The Guardrails' results for what was admitted, as Kyverno's
/// PolicyReports (`wgpolicyk8s.io/v1alpha2`): one per namespace, each
/// rule's pass or fail for each resource it judges, and a summary.
fn policy_reports(results: &[weft_compile::guardrails::RuleResult]) -> serde_json::Value {
    let mut by_ns: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        std::collections::BTreeMap::new();
    for r in results {
        let api_version = r.kind.api_versions().first().copied().unwrap_or("v1");
        let mut entry = serde_json::json!({
            "policy": r.policy,
            "rule": r.rule,
            "result": r.result,
            "message": r.message,
            "source": r.source,
            "category": if r.source == "weft" { "Guardrail" } else { "Kyverno" },
            "scored": true,
            "resources": [{
                "apiVersion": api_version,
                "kind": r.kind.name(),
                "namespace": r.namespace,
                "name": r.name,
            }],
        });
        if let Some(d) = &r.failure {
            entry["properties"] = serde_json::json!({
                "file": d.origin.file.to_string(),
                "line": d.origin.line.to_string(),
                "field": d.field.clone(),
            });
        }
        by_ns.entry(r.namespace.clone()).or_default().push(entry);
    }
    let reports: Vec<serde_json::Value> = by_ns
        .into_iter()
        .map(|(ns, results)| {
            let count = |what: &str| results.iter().filter(|r| r["result"] == what).count();
            // Cluster-scoped resources (Namespaces) are reported in the
            // ClusterPolicyReport, as Kyverno reports them.
            let (kind, metadata) = if ns.is_empty() {
                ("ClusterPolicyReport", serde_json::json!({"name": "cpolr"}))
            } else {
                (
                    "PolicyReport",
                    serde_json::json!({"name": format!("polr-ns-{ns}"), "namespace": ns}),
                )
            };
            serde_json::json!({
                "apiVersion": "wgpolicyk8s.io/v1alpha2",
                "kind": kind,
                "metadata": metadata,
                "summary": {"pass": count("pass"), "fail": count("fail"), "warn": 0, "error": count("error"), "skip": count("skip")},
                "results": results,
            })
        })
        .collect();
    serde_json::Value::Array(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model is served in sections, each serialized once; put together
    /// for a proxy that takes no sections they must be exactly what
    /// serializing the whole model gives.
    #[test]
    fn served_models_are_the_models_as_json_with_roots() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut store = Store::of_files(
            vec![
                examples.join("bookinfo"),
                examples.join("bookinfo-tasks/virtual-service-reviews-80-20.yaml"),
                examples.join("bookinfo-tasks/authorization-details-viewer.yaml"),
            ],
            MeshConfig::default(),
        );
        let config = store.load(None);
        assert!(config.refused.is_empty(), "{:?}", config.refused);
        let jwks = Jwks::new();
        let roots =
            vec!["-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n".to_owned()];
        let cache = SectionCache::default();
        let mut clusters_seen = 0;
        for compiled in config.models.values() {
            let served = served_model(compiled, &jwks, &roots, &cache);
            let mut expected = compiled.model.clone();
            jwks.fill(&mut expected.security);
            expected.security.trust_bundle = roots.clone();
            let expected = serde_json::to_string(&expected).expect("serializes");
            assert!(served.in_sections());
            assert_eq!(
                std::str::from_utf8(&served.whole_json()).expect("UTF-8"),
                expected
            );
            clusters_seen += compiled.model.clusters.len();
        }
        let (held, _) = cache.held();
        let named: usize = config
            .models
            .values()
            .map(|c| weft_model::sections::split(&c.model).map_or(0, |s| s.len()))
            .sum();
        assert!(
            clusters_seen > 0 && held > 0 && held < named,
            "{held} sections serialized for {named} named: models should share them"
        );
    }
}

/// A resource as the admin API shows it: as written, but a Secret's
/// values are never shown (only its keys), whoever asks.
fn shown_object(r: &weft_api::resource::Resource) -> serde_json::Value {
    let mut object = weft_api::yaml::emit::node_to_json(&r.source.tree, r.source.node);
    if r.kind() == weft_api::resource::ResourceKind::Secret {
        if let Some(serde_json::Value::Object(a)) = object
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
        {
            a.remove(weft_api::load::LAST_APPLIED);
        }
        for field in ["data", "stringData"] {
            if let Some(serde_json::Value::Object(values)) = object.get_mut(field) {
                for v in values.values_mut() {
                    *v = serde_json::Value::String("<redacted>".into());
                }
            }
        }
    }
    object
}

#[cfg(test)]
mod shown_tests {
    use super::*;

    #[test]
    fn secret_values_are_never_shown() {
        let loaded = weft_api::load::load_bytes(
            "s.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"password\":\"hunter2\"}}'}\ndata: {tls.key: aHVudGVyMg==}\nstringData: {password: hunter2}\n",
        );
        let shown = shown_object(&loaded.resources[0]).to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("aHVudGVyMg"),
            "{shown}"
        );
        assert!(
            shown.contains("tls.key") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
