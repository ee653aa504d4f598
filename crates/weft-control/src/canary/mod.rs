//! The canary controller: Flagger's scheduler inside the control plane.
//! Every Canary gets a tick per `analysis.interval`; a tick reads what
//! runs (the target's spec, whose replicas are connected), the status it
//! recorded and the routes of the VirtualService it owns, asks
//! `weft_canary::machine` what to do, and carries it out through the
//! configuration source: the objects the Canary owns and the target's
//! replicas are kept by the source apart from the user's files
//! ([`crate::source::ConfigSource::manage`]), the status as a status
//! subresource. The events are Flagger's, logged as Flagger logs them.

pub mod alerts;
pub mod checks;
pub mod manual;
pub mod metrics;
pub mod objects;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use weft_api::resource::{Resource, ResourceKey, ResourceKind, Spec};
use weft_canary::machine::{self, Effect, Readiness, Routes};
use weft_canary::settings::Settings;
use weft_canary::status::{kube_time, Status};

use crate::push::Hub;
use crate::source::{scale_key, ConfigSource, Managed};
use crate::telemetry::Traffic;

/// What the controller works from: the configuration the control plane
/// last accepted.
pub struct Seen {
    pub resources: Vec<Resource>,
    /// Where services' endpoints are, to reach webhooks by service name.
    pub registry: weft_compile::registry::Registry,
}

/// How many events are kept per canary for the admin API.
const KEEP_EVENTS: usize = 100;

/// `WEFT_CANARY_TIME_SCALE`: divides every canary interval, deadline and
/// metric window, so tests run Flagger's schedule faster. Not part of the
/// YAML; 1 unless set.
pub fn time_scale() -> f64 {
    std::env::var("WEFT_CANARY_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 1.0)
        .unwrap_or(1.0)
}

/// One event, as `kubectl get events` would list it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CanaryEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub time: String,
}

/// What the controller shows the admin API: each canary's events and
/// decisions (by `Canary/namespace/name`) and Flagger's metrics.
#[derive(Default)]
pub struct Published {
    pub events: BTreeMap<String, Vec<CanaryEvent>>,
    pub decisions: BTreeMap<String, Vec<Decision>>,
    /// What users asked with `weft canary` and is still in force.
    pub manual: BTreeMap<String, manual::Manual>,
    pub metrics: String,
}

pub type Shared = Arc<std::sync::Mutex<Published>>;

/// A `weft canary` request, on its way from the admin API.
pub type Commands = tokio::sync::mpsc::UnboundedSender<(String, String, manual::Action)>;

pub struct Controller {
    source: Arc<dyn ConfigSource>,
    traffic: Arc<Traffic>,
    hub: Arc<Hub>,
    time_scale: f64,
    next_tick: HashMap<ResourceKey, Instant>,
    /// Since when each workload (`ns/name`) has not been ready.
    unready_since: HashMap<String, Instant>,
    /// The canaries this controller manages objects for.
    owners: BTreeMap<String, ResourceKey>,
    pub events: BTreeMap<String, Vec<CanaryEvent>>,
    /// Where events are shown as soon as they happen, so that nobody
    /// reads a status the events leading to it are not yet beside.
    published: Shared,
    pub recorder: metrics::Recorder,
    /// What users asked with `weft canary`, by owner.
    pub manual: BTreeMap<String, manual::Manual>,
    /// Each canary's last decisions, newest last.
    pub decisions: BTreeMap<String, Vec<Decision>>,
    /// The canaries whose records (events, decisions, manual requests)
    /// were read back from the source since this controller started.
    restored: std::collections::BTreeSet<String>,
    /// Whether the owners of managed objects were read at start, so that
    /// canaries deleted while the control plane was down are let go of.
    swept: bool,
}

/// One tick's decision, as `weft canary status` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    pub time: String,
    pub phase: String,
    #[serde(rename = "canaryWeight")]
    pub canary_weight: u32,
    #[serde(rename = "failedChecks")]
    pub failed_checks: u32,
    /// Each metric judged: its value, limits and verdict.
    pub metrics: Vec<machine::Judged>,
    #[serde(rename = "providerErrors")]
    pub provider_errors: u32,
    /// What the tick said.
    pub said: Vec<String>,
}

/// How many decisions are kept per canary.
const KEEP_DECISIONS: usize = 50;

fn owner_of(key: &ResourceKey) -> String {
    format!("Canary/{}/{}", key.namespace, key.name)
}

/// The resource an owner string (`Kind/namespace/name`) names.
fn key_of(owner: &str) -> Option<ResourceKey> {
    let mut parts = owner.splitn(3, '/');
    let (kind, namespace, name) = (parts.next()?, parts.next()?, parts.next()?);
    Some(ResourceKey {
        kind: ResourceKind::from_name(kind)?,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// The hash Flagger keeps in `lastAppliedSpec`: of the spec that makes a
/// revision.
fn revision_hash(spec: &Value) -> String {
    format!(
        "{:x}",
        xxhash_rust::xxh3::xxh3_64(spec.to_string().as_bytes())
    )
}

impl Controller {
    pub fn new(
        source: Arc<dyn ConfigSource>,
        traffic: Arc<Traffic>,
        hub: Arc<Hub>,
        published: Shared,
    ) -> Controller {
        Controller {
            source,
            traffic,
            hub,
            published,
            time_scale: time_scale(),
            next_tick: HashMap::new(),
            unready_since: HashMap::new(),
            owners: BTreeMap::new(),
            events: BTreeMap::new(),
            recorder: metrics::Recorder::default(),
            manual: BTreeMap::new(),
            decisions: BTreeMap::new(),
            restored: std::collections::BTreeSet::new(),
            swept: false,
        }
    }

    /// Keeps one of a canary's records with the source, so it outlives
    /// a restart of the control plane; a failure is logged, not fatal.
    fn keep(&self, owner: &str, record: &str, value: &Value) {
        let Some(key) = key_of(owner) else { return };
        if let Err(e) = self.source.write_record(&key, record, value) {
            eprintln!(
                "weft: canary {}.{}: cannot keep its {record}: {e}",
                key.name, key.namespace
            );
        }
    }

    /// Reads back what the source kept of `owner` before a restart.
    fn restore(&mut self, owner: &str) {
        if !self.restored.insert(owner.to_owned()) {
            return;
        }
        let Some(key) = key_of(owner) else { return };
        let read = |record: &str| self.source.read_record(&key, record);
        if let Some(events) = read("events").and_then(|v| serde_json::from_value(v).ok()) {
            self.events.insert(owner.to_owned(), events);
        }
        if let Some(decisions) = read("decisions").and_then(|v| serde_json::from_value(v).ok()) {
            self.decisions.insert(owner.to_owned(), decisions);
        }
        if let Some(manual) = read("manual").and_then(|v| serde_json::from_value(v).ok()) {
            self.manual.insert(owner.to_owned(), manual);
        }
        if let Ok(mut p) = self.published.lock() {
            if let Some(e) = self.events.get(owner) {
                p.events.insert(owner.to_owned(), e.clone());
            }
            p.decisions.clone_from(&self.decisions);
            p.manual.clone_from(&self.manual);
        }
    }

    fn keep_manual(&self, owner: &str) {
        let value = self
            .manual
            .get(owner)
            .and_then(|m| serde_json::to_value(m).ok())
            .unwrap_or(Value::Null);
        self.keep(owner, "manual", &value);
    }

    /// A user's request for `Canary/namespace/name`; it takes effect at
    /// the canary's next tick, which comes at once.
    pub fn command(&mut self, namespace: &str, name: &str, action: manual::Action) {
        let key = ResourceKey {
            kind: ResourceKind::Canary,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let owner = owner_of(&key);
        eprintln!("weft: canary {name}.{namespace}: weft canary {action:?}");
        self.restore(&owner);
        self.manual.entry(owner.clone()).or_default().apply(action);
        self.keep_manual(&owner);
        self.next_tick.remove(&key);
        if let Ok(mut p) = self.published.lock() {
            p.manual.clone_from(&self.manual);
        }
    }

    /// Flagger's `event` webhooks: every event of the tick, with its
    /// type and a timestamp, to each of them.
    fn send_events(
        &self,
        s: &Settings,
        t: &machine::Tick,
        registry: &weft_compile::registry::Registry,
    ) {
        let hooks: Vec<_> = s
            .webhooks
            .iter()
            .filter(|w| w.hook_type == "event")
            .collect();
        if hooks.is_empty() {
            return;
        }
        for e in &t.events {
            for hook in &hooks {
                let mut metadata = serde_json::Map::new();
                metadata.insert("eventMessage".into(), e.message.clone().into());
                metadata.insert(
                    "eventType".into(),
                    if e.warning { "Warning" } else { "Normal" }.into(),
                );
                metadata.insert(
                    "timestamp".into(),
                    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
                        .to_string()
                        .into(),
                );
                for (k, v) in &hook.metadata {
                    metadata
                        .entry(k.clone())
                        .or_insert_with(|| v.clone().into());
                }
                let payload = serde_json::json!({
                    "name": s.name,
                    "namespace": s.namespace,
                    "phase": t.status.phase.as_str(),
                    "checksum": t.status.last_applied_spec,
                    "metadata": metadata,
                });
                if let Err(e) =
                    checks::post_webhook(&hook.url, &payload.to_string(), registry, &s.namespace)
                {
                    eprintln!(
                        "weft: canary {}: error sending event to webhook: {e}",
                        s.canary_ref()
                    );
                }
            }
        }
    }

    fn decide(&mut self, owner: &str, now: &str, t: &machine::Tick) {
        let decisions = self.decisions.entry(owner.to_owned()).or_default();
        decisions.push(Decision {
            time: now.to_owned(),
            phase: t.status.phase.as_str().to_owned(),
            canary_weight: t.status.canary_weight,
            failed_checks: t.status.failed_checks,
            provider_errors: t.status.provider_errors,
            metrics: t.analysis.clone(),
            said: t.events.iter().map(|e| e.message.clone()).collect(),
        });
        if decisions.len() > KEEP_DECISIONS {
            decisions.remove(0);
        }
        let kept = serde_json::to_value(&*decisions).unwrap_or(Value::Null);
        self.keep(owner, "decisions", &kept);
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.div_f64(self.time_scale)
    }

    /// Ticks every canary whose interval came round; lets go of the
    /// objects of canaries that were deleted. Says whether anything did.
    pub fn run_due(&mut self, seen: &Seen) -> bool {
        let resources = seen.resources.as_slice();
        let canaries: Vec<&Resource> = resources
            .iter()
            .filter(|r| r.kind() == ResourceKind::Canary)
            .collect();
        let live: std::collections::BTreeSet<String> =
            canaries.iter().map(|r| owner_of(&r.key())).collect();
        if !self.swept {
            // Canaries deleted while the control plane was down still
            // own what they made: let go of it now.
            self.swept = true;
            for owner in self.source.managed_owners() {
                if let Some(key) = key_of(&owner).filter(|k| k.kind == ResourceKind::Canary) {
                    self.owners.entry(owner).or_insert(key);
                }
            }
        }
        let gone: Vec<String> = self
            .owners
            .keys()
            .filter(|o| !live.contains(*o))
            .cloned()
            .collect();
        let mut ran = !gone.is_empty();
        for owner in gone {
            if let Some(key) = self.owners.remove(&owner) {
                self.next_tick.remove(&key);
                // Its records go with it, as its Events would.
                for record in ["events", "decisions", "manual"] {
                    let _ = self.source.write_record(&key, record, &Value::Null);
                }
                self.events.remove(&owner);
                self.decisions.remove(&owner);
                self.manual.remove(&owner);
                self.restored.remove(&owner);
                if let Ok(mut p) = self.published.lock() {
                    p.events.remove(&owner);
                    p.decisions.remove(&owner);
                    p.manual.remove(&owner);
                }
                match self.source.unmanage(&owner) {
                    Ok(()) => eprintln!(
                        "weft: canary {}.{} deleted: its primary, services and routes are removed, and what the files define serves again",
                        key.name, key.namespace
                    ),
                    Err(e) => eprintln!("weft: canary {}.{}: {e}", key.name, key.namespace),
                }
            }
        }
        let mut total: BTreeMap<String, usize> = BTreeMap::new();
        for r in &canaries {
            *total.entry(r.namespace().to_owned()).or_default() += 1;
        }
        self.recorder.set_total(total);
        let now = Instant::now();
        let due: Vec<&Resource> = canaries
            .into_iter()
            .filter(|r| self.next_tick.get(&r.key()).is_none_or(|t| *t <= now))
            .collect();
        if due.is_empty() {
            return ran;
        }
        // Which proxies are connected, read once for every canary due.
        let sync = self.hub.sync();
        for r in due {
            let Spec::Canary(c) = &r.spec else { continue };
            let key = r.key();
            let settings =
                Settings::of(r.name(), r.namespace(), c).with_annotations(&r.meta.annotations);
            self.next_tick
                .insert(key.clone(), now + self.scaled(settings.interval));
            self.owners.insert(owner_of(&key), key.clone());
            self.restore(&owner_of(&key));
            let started = Instant::now();
            self.tick(r, &settings, seen, &sync);
            self.recorder.observe_duration(&settings, started.elapsed());
            ran = true;
        }
        ran
    }

    fn event(&mut self, owner: &str, s: &Settings, warning: bool, message: String) {
        eprintln!(
            "weft: canary {}: {}{message}",
            s.canary_ref(),
            if warning { "warning: " } else { "" }
        );
        let list = self.events.entry(owner.to_owned()).or_default();
        list.push(CanaryEvent {
            kind: if warning { "Warning" } else { "Normal" }.to_owned(),
            message,
            time: kube_time(time::OffsetDateTime::now_utc()),
        });
        if list.len() > KEEP_EVENTS {
            list.remove(0);
        }
        let list = list.clone();
        self.keep(
            owner,
            "events",
            &serde_json::to_value(&list).unwrap_or(Value::Null),
        );
        if let Ok(mut p) = self.published.lock() {
            p.events.insert(owner.to_owned(), list);
        }
    }

    /// Whether `replicas` of `namespace/name` are connected to the
    /// stream, with Flagger's words when not; past the progress deadline
    /// it is stuck.
    fn readiness(
        &mut self,
        sync: &BTreeMap<String, crate::push::ProxySync>,
        namespace: &str,
        name: &str,
        replicas: u32,
        threshold: u32,
        deadline: Duration,
    ) -> Readiness {
        let id = format!("{namespace}/{name}");
        let available = (0..replicas)
            .filter(|i| {
                sync.get(&format!("{namespace}/{name}-{i}"))
                    .is_some_and(|p| p.connected)
            })
            .count() as u32;
        let needed = replicas * threshold / 100;
        if replicas > 0 && available >= needed {
            self.unready_since.remove(&id);
            return Readiness::Ready;
        }
        let since = *self.unready_since.entry(id).or_insert_with(Instant::now);
        let why = format!(
            "waiting for rollout to finish: {available} of {needed} (readyThreshold {threshold}%) updated replicas are available"
        );
        if since.elapsed() > self.scaled(deadline) {
            return Readiness::Stuck(format!("{name} exceeded its progress deadline"));
        }
        Readiness::Waiting(why)
    }

    fn tick(
        &mut self,
        canary: &Resource,
        s: &Settings,
        seen: &Seen,
        sync: &BTreeMap<String, crate::push::ProxySync>,
    ) {
        let resources = seen.resources.as_slice();
        let key = canary.key();
        let owner = owner_of(&key);
        let target_kind = match s.target_kind.as_str() {
            "Workload" => ResourceKind::Workload,
            "Deployment" => ResourceKind::Deployment,
            other => {
                self.event(
                    &owner,
                    s,
                    true,
                    format!(
                        "{other} {}: local mode releases weft.dev/v1 Workloads and Deployments; a {other} target is not supported yet",
                        s.target_ref(),
                    ),
                );
                return;
            }
        };
        let managed = self.source.managed(&owner);
        let docs = objects::parse(&managed.documents);
        // The user's target, not anything this controller made.
        let target = resources.iter().find(|r| {
            r.kind() == target_kind && r.namespace() == s.namespace && r.name() == s.target
        });
        let Some(target) = target else {
            self.event(
                &owner,
                s,
                true,
                format!(
                    "{} {} get query error: not found",
                    s.target_kind,
                    s.target_ref()
                ),
            );
            return;
        };
        if let Spec::Deployment(d) = &target.spec {
            if d.template.spec.local_container().is_none() {
                self.event(
                    &owner,
                    s,
                    true,
                    format!(
                        "Deployment {} names no command: in local mode a Deployment runs its first container's command (its image is not pulled)",
                        s.target_ref()
                    ),
                );
                return;
            }
        }
        let target_json =
            weft_api::yaml::emit::node_to_json(&target.source.tree, target.source.node);
        let canary_json =
            weft_api::yaml::emit::node_to_json(&canary.source.tree, canary.source.node);
        let spec = objects::revision_spec(&target_json);
        // Flagger's tracked configs: the ConfigMaps and Secrets the pods
        // read are part of the revision, so changing one starts a run.
        let tracked = tracked_configs(resources, &s.namespace, &target_json);
        let hash = if tracked.is_empty() {
            revision_hash(&spec)
        } else {
            let configs: Vec<Value> = tracked
                .iter()
                .map(|c| {
                    serde_json::json!([
                        c["kind"],
                        c["metadata"]["name"],
                        c["data"],
                        c["stringData"],
                        c["binaryData"]
                    ])
                })
                .collect();
            revision_hash(&serde_json::json!({"spec": spec, "configs": configs}))
        };
        let mut status: Status = self
            .source
            .read_status(&key)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let manual = self.manual.get(&owner).cloned().unwrap_or_default();
        if manual.retry {
            if let Some(m) = self.manual.get_mut(&owner) {
                m.retry = false;
            }
            self.keep_manual(&owner);
            if status.phase == weft_canary::status::Phase::Failed {
                // Flagger starts a run when the recorded revision is
                // unknown: the same spec is tried again.
                status.last_applied_spec.clear();
            }
        }
        let mut s = s.clone();
        s.webhooks.extend(manual.gates());
        let s = &s;
        let routes = objects::routes_of(s, &docs).unwrap_or(Routes::PRIMARY);
        let declared = target_json["spec"]["replicas"].as_u64().unwrap_or(1) as u32;
        let primary_spec = docs
            .iter()
            .find(|d| {
                d["kind"] == s.target_kind.as_str() && d["metadata"]["name"] == s.primary().as_str()
            })
            .map(objects::revision_spec);
        let primary_existed = primary_spec.is_some();
        let mut scale = managed.scale.clone();
        let target_key = scale_key(&target.key());
        let canary_replicas = if scale.get(&target_key) == Some(&0) {
            0
        } else {
            declared
        };
        let observed = machine::Observed {
            now: kube_time(time::OffsetDateTime::now_utc()),
            target_hash: hash.clone(),
            primary: self.readiness(
                sync,
                &s.namespace,
                &s.primary(),
                if primary_spec.is_some() { declared } else { 0 },
                s.primary_ready_threshold,
                s.progress_deadline,
            ),
            canary: self.readiness(
                sync,
                &s.namespace,
                &s.target,
                canary_replicas,
                s.canary_ready_threshold,
                s.progress_deadline,
            ),
            routes,
        };
        let mut live = checks::Live {
            settings: s,
            traffic: &self.traffic,
            registry: &seen.registry,
            manual: &manual,
            resources,
            checksum: status.last_applied_spec.clone(),
            time_scale: self.time_scale,
        };
        let t = machine::advance(s, &status, &observed, &mut live);
        let mut routes = routes;
        let mut primary_spec = primary_spec;
        for e in &t.effects {
            match e {
                Effect::CreatePrimary => {
                    primary_spec.get_or_insert_with(|| spec.clone());
                }
                Effect::Promote => primary_spec = Some(spec.clone()),
                Effect::ScaleToZero => {
                    scale.insert(target_key.clone(), 0);
                }
                Effect::ScaleFromZero => {
                    scale.remove(&target_key);
                }
                Effect::SetRoutes(r) => routes = *r,
            }
        }
        for e in &t.events {
            self.event(&owner, s, e.warning, e.message.clone());
        }
        self.send_events(s, &t, &seen.registry);
        for a in &t.alerts {
            for why in alerts::send(s, &canary_json, resources, a) {
                eprintln!("weft: canary {}: {why}", s.canary_ref());
            }
        }
        self.recorder.set_status(s, t.status.phase);
        self.recorder.set_weight(s, routes);
        for (metric, value) in t.analysis.iter().filter_map(|j| Some((&j.name, j.value?))) {
            self.recorder.set_analysis(s, metric, value);
        }
        if let Some(outcome) = t.outcome {
            self.recorder.outcome(s, outcome);
        }
        if t.outcome.is_some() || t.status.last_applied_spec != status.last_applied_spec {
            // A run ended or a new one began: what the user asked of the
            // last one is spent (a pause stays until resumed).
            if let Some(m) = self.manual.get_mut(&owner) {
                m.promote = false;
                m.abort = false;
            }
            self.keep_manual(&owner);
        }
        if t.events.is_empty() && t.analysis.is_empty() {
            // Nothing happened: a quiet tick is no decision.
        } else {
            self.decide(&owner, &observed.now, &t);
        }
        // The primary's copies of the tracked configs: made with the
        // primary and on promotion from what the target reads now, kept
        // as they were otherwise.
        let copying = !primary_existed || t.effects.contains(&Effect::Promote);
        let configs: Vec<Value> = if copying {
            tracked
                .iter()
                .map(|c| objects::primary_config(c, &s.namespace))
                .collect()
        } else {
            docs.iter()
                .filter(|d| d["kind"] == "ConfigMap" || d["kind"] == "Secret")
                .cloned()
                .collect()
        };
        let primary_spec = primary_spec.unwrap_or(spec);
        let mut t = t;
        let cookies = session_cookies(s, &mut t.status, routes);
        match objects::render(
            s,
            &canary_json,
            &target_json,
            &primary_spec,
            &configs,
            routes,
            &cookies,
        ) {
            Ok(documents) => {
                if let Err(e) = self.source.manage(&owner, &Managed { documents, scale }) {
                    self.event(&owner, s, true, e.to_string());
                    return;
                }
            }
            Err(e) => {
                self.event(&owner, s, true, e);
                return;
            }
        }
        if t.status != status {
            match serde_json::to_value(&t.status) {
                Ok(v) => {
                    if let Err(e) = self.source.write_status(&key, &v) {
                        self.event(&owner, s, true, e.to_string());
                    }
                }
                Err(e) => self.event(&owner, s, true, e.to_string()),
            }
        }
    }
}

/// The ConfigMaps and Secrets `target`'s pods read, as the user wrote
/// them, but for those annotated `flagger.app/config-tracking: disabled`
/// and those missing (the pods cannot start then anyway).
fn tracked_configs(resources: &[Resource], namespace: &str, target: &Value) -> Vec<Value> {
    objects::config_refs(target)
        .iter()
        .filter_map(|(kind, name)| {
            resources
                .iter()
                .find(|r| r.kind().name() == kind && r.namespace() == namespace && r.name() == name)
        })
        .filter(|r| {
            r.meta
                .annotations
                .get("flagger.app/config-tracking")
                .map(String::as_str)
                != Some("disabled")
        })
        .map(|r| weft_api::yaml::emit::node_to_json(&r.source.tree, r.source.node))
        .collect()
}

/// Flagger's session cookies: made when a run first sends traffic to
/// the canary, kept for the run, and remembered as the previous run's
/// (to be expired) once the canary's weight is back at zero.
fn session_cookies(s: &Settings, st: &mut Status, routes: Routes) -> objects::Cookies {
    let Some(sa) = &s.session_affinity else {
        return objects::Cookies::default();
    };
    let token = || {
        (0..10)
            .map(|_| {
                let i = fastrand::usize(..52);
                (if i < 26 {
                    b'a' + i as u8
                } else {
                    b'A' + (i - 26) as u8
                }) as char
            })
            .collect::<String>()
    };
    if routes.canary != 0 {
        if st.session_affinity_cookie.is_empty() {
            st.session_affinity_cookie = format!("{}={}", sa.cookie_name, token());
        }
        if st.primary_session_affinity_cookie.is_empty() && !sa.primary_cookie_name.is_empty() {
            st.primary_session_affinity_cookie = format!("{}={}", sa.primary_cookie_name, token());
        }
    } else if !st.session_affinity_cookie.is_empty() {
        st.previous_session_affinity_cookie = std::mem::take(&mut st.session_affinity_cookie);
    }
    objects::Cookies {
        canary: st.session_affinity_cookie.clone(),
        previous: st.previous_session_affinity_cookie.clone(),
        primary: st.primary_session_affinity_cookie.clone(),
    }
}

/// Runs the controller beside the control loop: every 250 ms it ticks the
/// canaries that are due, on a blocking thread (webhooks wait on their
/// answers), with the configuration the control plane last accepted.
pub async fn run(
    mut controller: Controller,
    config: tokio::sync::watch::Receiver<Arc<Seen>>,
    mut commands: tokio::sync::mpsc::UnboundedReceiver<(String, String, manual::Action)>,
    published: Shared,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some((ns, name, action)) = commands.recv() => controller.command(&ns, &name, action),
        }
        while let Ok((ns, name, action)) = commands.try_recv() {
            controller.command(&ns, &name, action);
        }
        let seen = config.borrow().clone();
        let done = tokio::task::spawn_blocking(move || {
            let ran = controller.run_due(&seen);
            (controller, ran)
        })
        .await;
        match done {
            Ok((c, ran)) => {
                controller = c;
                // What is shown changes only when a canary ticked.
                if ran {
                    if let Ok(mut p) = published.lock() {
                        p.decisions.clone_from(&controller.decisions);
                        p.manual.clone_from(&controller.manual);
                        p.metrics = controller.recorder.render();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the canary controller stopped");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tracked_tests {
    #[test]
    fn a_deployments_configs_are_tracked_unless_disabled() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: podinfo-config}\ndata: {version: \"1\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, annotations: {flagger.app/config-tracking: disabled}}\ndata: {a: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: podinfo}\nspec:\n  selector: {matchLabels: {app: podinfo}}\n  template:\n    metadata: {labels: {app: podinfo}}\n    spec:\n      containers:\n      - name: podinfo\n        command: [podinfo]\n        env:\n        - name: V\n          valueFrom: {configMapKeyRef: {name: podinfo-config, key: version}}\n        envFrom: [{configMapRef: {name: other}}, {secretRef: {name: missing}}]\n";
        let loaded = weft_api::load::load_bytes("c.yaml", text.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let d = &loaded.resources[2];
        let target = weft_api::yaml::emit::node_to_json(&d.source.tree, d.source.node);
        let tracked = super::tracked_configs(&loaded.resources, "default", &target);
        let names: Vec<&str> = tracked
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["podinfo-config"]);
    }
}
