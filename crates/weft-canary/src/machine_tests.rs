//! Flagger's scenarios tick by tick, with the controller's side played
//! by a small world that carries out the effects.

use std::collections::BTreeMap;

use super::*;
use crate::status::Phase;

const CANARY: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n";

fn settings(analysis: &str) -> Settings {
    let text = format!("{CANARY}{analysis}");
    let loaded = weft_api::load::load_bytes("canary.yaml", text.as_bytes());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    match &loaded.resources[0].spec {
        weft_api::resource::Spec::Canary(c) => Settings::of("podinfo", "test", c),
        _ => panic!("not a Canary"),
    }
}

/// The controller's side: what runs, what the routes are, what the
/// webhooks and metrics answer.
struct World {
    hash: String,
    primary_spec: String,
    canary_replicas: bool,
    routes: Routes,
    canary_ready: Readiness,
    primary_ready: Readiness,
    success_rate: Result<f64, MetricError>,
    duration_ms: f64,
    primary_success_rate: Result<f64, MetricError>,
    primary_duration_ms: f64,
    /// A webhook's answer by name (missing: accepted).
    hooks: BTreeMap<String, Result<(), String>>,
    called: Vec<String>,
    status: Status,
    ticks: u32,
    events: Vec<String>,
}

impl Checks for World {
    fn providers(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn webhook(&mut self, hook: &CanaryWebhook, phase: Phase) -> Result<(), String> {
        self.called
            .push(format!("{} {}", hook.name, phase.as_str()));
        self.hooks.get(&hook.name).cloned().unwrap_or(Ok(()))
    }
    fn primary_metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError> {
        match judge::kind(metric) {
            MetricKind::SuccessRate => self.primary_success_rate.clone(),
            MetricKind::Duration => Ok(self.primary_duration_ms),
            _ => Err(MetricError::Failed("no provider".into())),
        }
    }
    fn metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError> {
        match judge::kind(metric) {
            MetricKind::SuccessRate => self.success_rate.clone(),
            MetricKind::Duration => Ok(self.duration_ms),
            _ => Err(MetricError::Failed("no provider".into())),
        }
    }
}

impl World {
    fn new() -> World {
        World {
            hash: "rev1".into(),
            primary_spec: String::new(),
            canary_replicas: true,
            routes: Routes::PRIMARY,
            canary_ready: Readiness::Ready,
            primary_ready: Readiness::Ready,
            success_rate: Ok(100.0),
            duration_ms: 20.0,
            primary_success_rate: Ok(100.0),
            primary_duration_ms: 20.0,
            hooks: BTreeMap::new(),
            called: Vec::new(),
            status: Status::default(),
            ticks: 0,
            events: Vec::new(),
        }
    }

    /// One tick, its effects carried out as the controller would.
    fn tick(&mut self, s: &Settings) -> Tick {
        self.ticks += 1;
        let seen = Observed {
            now: format!("t{}", self.ticks),
            target_hash: self.hash.clone(),
            primary: self.primary_ready.clone(),
            canary: self.canary_ready.clone(),
            routes: self.routes,
        };
        let status = self.status.clone();
        let t = advance(s, &status, &seen, self);
        for e in &t.effects {
            match e {
                Effect::CreatePrimary if self.primary_spec.is_empty() => {
                    self.primary_spec = self.hash.clone()
                }
                Effect::CreatePrimary => {}
                Effect::ScaleToZero => self.canary_replicas = false,
                Effect::ScaleFromZero => self.canary_replicas = true,
                Effect::Promote => self.primary_spec = self.hash.clone(),
                Effect::SetRoutes(r) => self.routes = *r,
            }
        }
        self.status = t.status.clone();
        self.events
            .extend(t.events.iter().map(|e| e.message.clone()));
        t
    }

    /// Ticks until the phase is `phase` (at most `limit` ticks).
    fn until(&mut self, s: &Settings, phase: Phase, limit: u32) {
        for _ in 0..limit {
            self.tick(s);
            if self.status.phase == phase {
                return;
            }
        }
        panic!(
            "{} not reached in {limit} ticks: {:?}\n{:#?}",
            phase.as_str(),
            self.status,
            self.events
        );
    }

    /// A canary initialized on `rev1` whose target just changed to
    /// `rev2`: the run has started, its events are taken.
    fn started(s: &Settings) -> World {
        let mut w = World::new();
        w.until(s, Phase::Initialized, 1);
        w.hash = "rev2".into();
        w.until(s, Phase::Progressing, 1);
        w.take_events();
        w
    }

    fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }
}

const PROGRESSIVE: &str = "  analysis:\n    interval: 1m\n    threshold: 5\n    maxWeight: 50\n    stepWeight: 10\n    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n    - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}\n";

#[test]
fn a_progressive_canary_is_initialized_advanced_promoted_and_finalised() {
    let s = settings(PROGRESSIVE);
    let mut w = World::new();
    w.until(&s, Phase::Initialized, 1);
    assert_eq!(
        w.take_events(),
        [
            "all the metrics providers are available!",
            "Initialization done! podinfo.test"
        ]
    );
    assert!(!w.canary_replicas, "the target is scaled to zero");
    assert_eq!(w.primary_spec, "rev1");
    assert_eq!(w.status.last_promoted_spec, "rev1");
    // Nothing changes: nothing happens.
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Initialized);
    assert!(w.take_events().is_empty());

    w.hash = "rev2".into();
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Progressing);
    assert!(w.canary_replicas);
    assert_eq!(
        w.take_events(),
        ["New revision detected! Scaling up podinfo.test"]
    );
    w.tick(&s);
    assert_eq!(
        w.take_events(),
        [
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 10"
        ]
    );
    for weight in [20, 30, 40, 50] {
        let t = w.tick(&s);
        assert_eq!(
            t.analysis,
            [
                Judged {
                    name: "request-success-rate".into(),
                    value: Some(100.0),
                    min: Some(99.0),
                    max: None,
                    primary: None,
                    compared: None,
                    verdict: Judgement::Passed
                },
                Judged {
                    name: "request-duration".into(),
                    value: Some(20.0),
                    min: None,
                    max: Some(500.0),
                    primary: None,
                    compared: None,
                    verdict: Judgement::Passed
                }
            ]
        );
        assert_eq!(
            w.take_events(),
            [format!("Advance podinfo.test canary weight {weight}")]
        );
        assert_eq!(w.status.canary_weight, weight);
        assert_eq!(
            w.routes,
            Routes {
                primary: 100 - weight,
                canary: weight,
                mirrored: false
            }
        );
    }
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Promoting);
    assert_eq!(w.primary_spec, "rev2");
    assert_eq!(
        w.take_events(),
        ["Copying podinfo.test template spec to podinfo-primary.test"]
    );
    assert_eq!(w.status.canary_weight, 50, "kept while promoting");
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Finalising);
    assert_eq!(w.routes, Routes::PRIMARY);
    assert_eq!(w.take_events(), ["Routing all traffic to primary"]);
    let t = w.tick(&s);
    assert_eq!(w.status.phase, Phase::Succeeded);
    assert_eq!(t.outcome, Some(Outcome::Succeeded));
    assert!(!w.canary_replicas);
    assert_eq!(w.status.last_promoted_spec, "rev2");
    let t_events = w.take_events();
    assert_eq!(t_events, ["Promotion completed! Scaling down podinfo.test"]);
    assert_eq!(
        t.alerts,
        [Alert {
            message: "Canary analysis completed successfully, promotion finished.".into(),
            metadata: false,
            severity: "info"
        }]
    );
    let c = &w.status.conditions[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "Succeeded")
    );
}

#[test]
fn failed_checks_add_up_over_a_run_and_roll_it_back() {
    let s = settings(PROGRESSIVE);
    let mut w = World::started(&s);
    w.tick(&s); // pre-rollout, weight 10
    w.take_events();
    // Failures need not be consecutive: a pass between them keeps the
    // count.
    w.success_rate = Ok(69.1666);
    w.tick(&s);
    w.tick(&s);
    w.success_rate = Ok(100.0);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 20);
    w.success_rate = Ok(69.1666);
    w.tick(&s);
    w.tick(&s);
    w.tick(&s);
    assert_eq!(w.status.failed_checks, 5);
    let t = w.tick(&s);
    assert_eq!(t.outcome, Some(Outcome::Failed));
    assert_eq!(w.status.phase, Phase::Failed);
    assert_eq!(w.routes, Routes::PRIMARY);
    assert!(!w.canary_replicas);
    assert_eq!(
        w.primary_spec, "rev1",
        "the primary never took the failing revision"
    );
    let halt = "Halt podinfo.test advancement success rate 69.17% < 99%".to_owned();
    let advance = "Advance podinfo.test canary weight 20".to_owned();
    assert_eq!(
        w.take_events(),
        [
            halt.clone(),
            halt.clone(),
            advance,
            halt.clone(),
            halt.clone(),
            halt,
            "Rolling back podinfo.test failed checks threshold reached 5".into(),
            "Canary failed! Scaling down podinfo.test".into(),
        ]
    );
    // A failed revision stays failed until the next one.
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Failed);
    assert!(w.take_events().is_empty());
    w.hash = "rev3".into();
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Progressing);
}

#[test]
fn no_traffic_holds_the_analysis_unless_the_guard_is_off() {
    let s = settings(PROGRESSIVE);
    let mut w = World::started(&s);
    w.tick(&s);
    w.take_events();
    w.success_rate = Err(MetricError::NoValues("no values found".into()));
    for _ in 0..10 {
        w.tick(&s);
    }
    assert_eq!(
        (w.status.phase, w.status.failed_checks),
        (Phase::Progressing, 0)
    );
    assert_eq!(w.status.canary_weight, 10, "held where it was");
    let said = w.take_events();
    assert_eq!(said.len(), 10);
    assert_eq!(
        said[0],
        "Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: no values found (held: not a failed check until 1 requests reach it, as weft.dev/canary-min-requests says)"
    );
    // Traffic comes: the analysis goes on.
    w.success_rate = Ok(100.0);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 20);

    // `weft.dev/canary-min-requests: "0"`: Flagger's way, a failed check.
    let flagger = settings(PROGRESSIVE).with_annotations(
        &[(
            crate::settings::MIN_REQUESTS_ANNOTATION.to_owned(),
            "0".to_owned(),
        )]
        .into(),
    );
    let mut v = World::started(&flagger);
    v.tick(&flagger);
    v.take_events();
    v.success_rate = Err(MetricError::NoValues("no values found".into()));
    v.tick(&flagger);
    assert_eq!(
        v.take_events(),
        ["Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: no values found"]
    );
    assert_eq!(v.status.failed_checks, 1);
}

#[test]
fn provider_errors_are_counted_apart_and_roll_back_at_their_own_limit() {
    let s = settings(PROGRESSIVE);
    let mut w = World::started(&s);
    w.tick(&s);
    w.take_events();
    // A failing check first: it stays a failed check.
    w.success_rate = Ok(50.0);
    let t = w.tick(&s);
    assert_eq!(t.analysis[0].verdict, Judgement::Failed);
    assert_eq!(t.analysis[0].value, Some(50.0));
    w.take_events();
    w.success_rate = Err(MetricError::Failed("connection refused".into()));
    for n in 1..=4 {
        let t = w.tick(&s);
        assert_eq!(t.analysis[0].verdict, Judgement::ProviderError);
        assert_eq!(t.analysis[0].value, None);
        assert_eq!((w.status.failed_checks, w.status.provider_errors), (1, n));
    }
    assert_eq!(w.status.canary_weight, 10, "held where it was");
    let said = w.take_events();
    assert_eq!(
        said[0],
        "Prometheus query failed: connection refused (a metrics provider error, not a failed check: 1 of 5 allowed, as weft.dev/canary-provider-errors says)"
    );
    // The provider recovers: the run goes on, the count stays.
    w.success_rate = Ok(100.0);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 20);
    w.success_rate = Err(MetricError::Failed("connection refused".into()));
    w.tick(&s);
    assert_eq!(w.status.provider_errors, 5);
    let t = w.tick(&s);
    assert_eq!(t.outcome, Some(Outcome::Failed));
    let said = w.take_events();
    assert_eq!(
        said[said.len() - 2..],
        [
            "Rolling back podinfo.test metrics provider errors threshold reached 5",
            "Canary failed! Scaling down podinfo.test"
        ]
    );
    assert!(t
        .alerts
        .iter()
        .any(|a| a.message == "Metrics provider errors threshold reached 5"));
    // Failing starts the counts again, as Flagger's SyncStatus does.
    assert_eq!(w.status.provider_errors, 0);

    // `weft.dev/canary-provider-errors: "0"`: Flagger's way, a failed check.
    let flagger = settings(PROGRESSIVE).with_annotations(
        &[(
            crate::settings::PROVIDER_ERRORS_ANNOTATION.to_owned(),
            "0".to_owned(),
        )]
        .into(),
    );
    let mut v = World::started(&flagger);
    v.tick(&flagger);
    v.take_events();
    v.success_rate = Err(MetricError::Failed("connection refused".into()));
    let t = v.tick(&flagger);
    assert_eq!(t.analysis[0].verdict, Judgement::Failed);
    assert_eq!(
        v.take_events(),
        ["Prometheus query failed: connection refused"]
    );
    assert_eq!((v.status.failed_checks, v.status.provider_errors), (1, 0));
}

#[test]
fn the_canary_is_held_to_the_primary_where_the_annotation_says() {
    let s = settings(PROGRESSIVE).with_annotations(
        &[(
            crate::compare::ANNOTATION.to_owned(),
            "request-duration <= primary * 1.5, request-success-rate >= primary - 1".to_owned(),
        )]
        .into(),
    );
    let mut w = World::started(&s);
    w.tick(&s);
    w.take_events();
    // Well within the absolute limits (500 ms), but three times slower
    // than the primary: a failed check.
    w.primary_duration_ms = 40.0;
    w.duration_ms = 120.0;
    let t = w.tick(&s);
    assert_eq!(w.status.failed_checks, 1);
    let d = &t.analysis[1];
    assert_eq!(
        (d.value, d.primary, d.compared.as_deref(), d.verdict),
        (
            Some(120.0),
            Some(40.0),
            Some("<= primary * 1.5"),
            Judgement::Failed
        )
    );
    assert_eq!(
        w.take_events(),
        ["Halt podinfo.test advancement request-duration 120.00 > 60.00, the primary's 40.00 as weft.dev/canary-compare-to-primary <= primary * 1.5 says"]
    );
    // Close to the primary: it advances.
    w.duration_ms = 55.0;
    let t = w.tick(&s);
    assert_eq!(w.status.canary_weight, 20);
    assert_eq!(t.analysis[1].verdict, Judgement::Passed);
    // The success rate, one point under the primary's at most.
    w.take_events();
    w.primary_success_rate = Ok(99.95);
    w.success_rate = Ok(99.2);
    w.tick(&s);
    // 99.2 is within a point of 99.95.
    assert_eq!(w.take_events(), ["Advance podinfo.test canary weight 30"]);
    w.primary_success_rate = Ok(100.0);
    w.success_rate = Ok(99.5);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 40);
    // Past the limit: 99.5 is over the absolute 99 but more than a
    // point under the primary's 100.9 (a made-up value, to make the
    // point).
    w.primary_success_rate = Ok(100.9);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 40);
    assert_eq!(w.status.failed_checks, 2);
    assert_eq!(
        w.take_events().last().map(String::as_str),
        Some("Halt podinfo.test advancement request-success-rate 99.50 < 99.90, the primary's 100.90 as weft.dev/canary-compare-to-primary >= primary - 1 says")
    );
    w.primary_success_rate = Ok(100.0);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 50);
    // No traffic on the primary: nothing to compare with, the absolute
    // limits decide.
    w.primary_success_rate = Err(MetricError::NoValues("no values found".into()));
    w.success_rate = Ok(99.5);
    let t = w.tick(&s);
    assert_eq!(t.analysis[0].verdict, Judgement::Passed);
    assert_eq!(t.analysis[0].primary, None);
    assert_eq!(w.status.phase, Phase::Promoting);
}

#[test]
fn a_manual_revert_starts_no_run_and_a_new_revision_mid_run_restarts_it() {
    let s = settings(PROGRESSIVE);
    let mut w = World::started(&s);
    w.tick(&s);
    w.tick(&s);
    assert_eq!(w.status.canary_weight, 20);
    w.take_events();
    w.hash = "rev3".into();
    w.tick(&s);
    assert_eq!(
        w.take_events(),
        ["New revision detected! Restarting analysis for podinfo.test"]
    );
    assert_eq!(
        (w.status.phase, w.status.canary_weight),
        (Phase::Progressing, 0)
    );
    assert_eq!(w.routes, Routes::PRIMARY);
    assert_eq!(w.status.last_applied_spec, "rev3");
    // Back to the promoted spec by hand: no new run.
    let s2 = settings(PROGRESSIVE);
    let mut v = World::new();
    v.until(&s2, Phase::Initialized, 1);
    v.hash = "rev2".into();
    v.until(&s2, Phase::Progressing, 1);
    v.success_rate = Ok(1.0);
    v.until(&s2, Phase::Failed, 10);
    v.take_events();
    v.hash = "rev1".into();
    v.tick(&s2);
    assert_eq!(v.status.phase, Phase::Failed);
    assert!(v.take_events().is_empty());
}

#[test]
fn blue_green_runs_pre_rollout_hooks_first_and_switches_all_traffic_at_once() {
    let s = settings(
        "  analysis:\n    interval: 1m\n    threshold: 2\n    iterations: 2\n    webhooks:\n    - {name: smoke, type: pre-rollout, url: http://loadtester/}\n    - {name: load, url: http://loadtester/}\n    metrics:\n    - {name: request-success-rate, thresholdRange: {min: 99}}\n",
    );
    let mut w = World::started(&s);
    w.hooks
        .insert("smoke".into(), Err("smoke test failed".into()));
    w.tick(&s);
    assert_eq!(
        w.take_events(),
        [
            "Starting canary analysis for podinfo.test",
            "Halt podinfo.test advancement pre-rollout check smoke failed smoke test failed"
        ]
    );
    assert_eq!(w.status.failed_checks, 1);
    w.hooks.clear();
    w.tick(&s);
    assert_eq!(
        w.take_events(),
        [
            "Starting canary analysis for podinfo.test",
            "Pre-rollout check smoke passed",
            "Advance podinfo.test canary iteration 1/2"
        ]
    );
    assert_eq!(
        w.routes,
        Routes::PRIMARY,
        "blue/green moves no traffic while analysing"
    );
    w.tick(&s);
    assert_eq!(
        w.take_events(),
        ["Advance podinfo.test canary iteration 2/2"]
    );
    w.tick(&s);
    assert_eq!(w.take_events(), ["Routing all traffic to canary"]);
    assert_eq!(w.routes.canary, 100);
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Promoting);
    assert!(w.called.iter().any(|c| c == "load Progressing"));
    w.until(&s, Phase::Succeeded, 3);
}

#[test]
fn ab_testing_waits_at_the_promotion_gate_until_it_opens() {
    let s = settings(
        "  analysis:\n    interval: 1m\n    threshold: 5\n    iterations: 2\n    match: [{headers: {cookie: {regex: \"^(.*?;)?(canary=always)(;.*)?$\"}}}]\n    webhooks:\n    - {name: gate, type: confirm-promotion, url: http://loadtester/gate/check}\n",
    );
    let mut w = World::started(&s);
    w.tick(&s);
    assert_eq!(
        w.routes,
        Routes::CANARY,
        "the matched requests go to the canary"
    );
    w.tick(&s);
    w.take_events();
    w.hooks.insert("gate".into(), Err("closed".into()));
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::WaitingPromotion);
    assert_eq!(
        w.take_events(),
        ["Halt podinfo.test advancement waiting for promotion approval gate"]
    );
    // While the gate stays closed the last iteration is run again, as
    // Flagger does (it puts the iterations back one), and nothing is
    // promoted.
    for _ in 0..4 {
        w.tick(&s);
        assert_eq!(w.status.phase, Phase::WaitingPromotion);
        assert_eq!(w.routes, Routes::CANARY);
    }
    assert_eq!(w.primary_spec, "rev1");
    w.take_events();
    w.hooks.clear();
    w.until(&s, Phase::Promoting, 2);
    let events = w.take_events();
    assert_eq!(
        &events[events.len() - 2..],
        [
            "Confirm-promotion check gate passed",
            "Copying podinfo.test template spec to podinfo-primary.test"
        ]
    );
}

#[test]
fn skip_analysis_promotes_at_once() {
    let s = settings(
        "  skipAnalysis: true\n  analysis: {interval: 1m, maxWeight: 50, stepWeight: 10}\n",
    );
    let mut w = World::new();
    w.until(&s, Phase::Initialized, 1);
    assert_eq!(w.take_events(), ["Initialization done! podinfo.test"]);
    w.hash = "rev2".into();
    w.until(&s, Phase::Progressing, 1);
    let t = w.tick(&s);
    assert_eq!(t.outcome, Some(Outcome::Skipped));
    assert_eq!(w.status.phase, Phase::Succeeded);
    assert_eq!(w.primary_spec, "rev2");
    assert_eq!(
        w.take_events(),
        [
            "New revision detected! Scaling up podinfo.test",
            "Copying podinfo.test template spec to podinfo-primary.test",
            "Promotion completed! Canary analysis was skipped for podinfo.test"
        ]
    );
}

#[test]
fn promotion_steps_traffic_back_by_step_weight_promotion() {
    let s = settings(
        "  analysis: {interval: 1m, maxWeight: 50, stepWeight: 25, stepWeightPromotion: 30}\n",
    );
    let mut w = World::new();
    w.until(&s, Phase::Initialized, 1);
    w.hash = "rev2".into();
    w.until(&s, Phase::Promoting, 6);
    w.take_events();
    w.tick(&s);
    assert_eq!(w.take_events(), ["Advance podinfo.test primary weight 80"]);
    assert_eq!(w.status.canary_weight, 20);
    w.tick(&s);
    assert_eq!(w.take_events(), ["Advance podinfo.test primary weight 100"]);
    assert_eq!(w.status.phase, Phase::Finalising);
}

#[test]
fn a_canary_that_never_becomes_ready_is_rolled_back_and_a_suspended_one_waits() {
    let s = settings(PROGRESSIVE);
    let mut w = World::new();
    w.primary_ready = Readiness::Waiting("waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available".into());
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Initializing);
    assert_eq!(
        w.take_events().last().map(String::as_str),
        Some("podinfo-primary.test not ready: waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available")
    );
    w.primary_ready = Readiness::Ready;
    w.until(&s, Phase::Initialized, 1);
    w.hash = "rev2".into();
    w.until(&s, Phase::Progressing, 1);
    w.take_events();
    w.canary_ready =
        Readiness::Stuck("deployment \"podinfo\" exceeded its progress deadline".into());
    w.tick(&s);
    assert_eq!(w.status.phase, Phase::Failed);
    assert_eq!(
        w.take_events(),
        [
            "canary deployment podinfo.test not ready: deployment \"podinfo\" exceeded its progress deadline",
            "Canary failed! Scaling down podinfo.test"
        ]
    );
    let suspended = settings(&format!("  suspend: true\n{PROGRESSIVE}"));
    let mut v = World::new();
    v.tick(&suspended);
    assert_eq!(v.status.phase, Phase::New);
    assert_eq!(
        v.take_events(),
        ["skipping canary run as object is suspended"]
    );
}

#[test]
fn mirroring_shows_the_canary_a_copy_for_one_step_before_shifting() {
    let s = settings("  analysis: {interval: 1m, maxWeight: 20, stepWeight: 10, mirror: true, mirrorWeight: 50}\n");
    let mut w = World::started(&s);
    w.tick(&s);
    assert_eq!(
        w.routes,
        Routes {
            primary: 100,
            canary: 0,
            mirrored: true
        },
        "the first step only mirrors"
    );
    assert_eq!(
        w.take_events(),
        [
            "Starting canary analysis for podinfo.test",
            "Advance podinfo.test canary weight 0"
        ]
    );
    w.tick(&s);
    assert_eq!(
        w.routes,
        Routes {
            primary: 90,
            canary: 10,
            mirrored: false
        }
    );
    w.tick(&s);
    assert_eq!(
        w.routes,
        Routes {
            primary: 80,
            canary: 20,
            mirrored: false
        }
    );
    w.until(&s, Phase::Succeeded, 4);
}
