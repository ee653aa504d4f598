//! One tick of a canary, as Flagger's `advanceCanary` runs it
//! (`pkg/controller/scheduler.go` and its hooks and metrics): the same
//! steps in the same order, the same status writes, the same events.
//! The tick is pure: the controller says what it observed ([`Observed`])
//! and answers webhooks and metrics ([`Checks`]); the tick returns the
//! status to record, the effects to carry out in order and the events.

use weft_api::types::flagger::{CanaryMetric, CanaryWebhook};

use crate::judge::{self, MetricError, MetricKind};
use crate::settings::{Settings, Strategy, TOTAL_WEIGHT};
use crate::status::{Phase, Status};

/// How a workload's replicas stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Not ready yet, with Flagger's reason ("waiting for rollout to
    /// finish: 0 of 1 (readyThreshold 100%) updated replicas are
    /// available"); the tick waits.
    Waiting(String),
    /// Past its progress deadline: the run fails.
    Stuck(String),
}

/// The weights the controller's VirtualService holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routes {
    pub primary: u32,
    pub canary: u32,
    pub mirrored: bool,
}

impl Routes {
    pub const PRIMARY: Routes = Routes {
        primary: TOTAL_WEIGHT,
        canary: 0,
        mirrored: false,
    };
    const CANARY: Routes = Routes {
        primary: 0,
        canary: TOTAL_WEIGHT,
        mirrored: false,
    };
}

/// What the controller saw before the tick.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Now, as Kubernetes writes times (`status::kube_time`).
    pub now: String,
    /// The hash of the target's spec and tracked configs.
    pub target_hash: String,
    pub primary: Readiness,
    pub canary: Readiness,
    pub routes: Routes,
}

/// The answers a tick asks for.
pub trait Checks {
    /// Whether the metric providers the analysis names answer.
    fn providers(&mut self) -> Result<(), String>;
    /// Calls a webhook; `Err` holds why it refused or failed.
    fn webhook(&mut self, hook: &CanaryWebhook, phase: Phase) -> Result<(), String>;
    /// A metric's value over its interval.
    fn metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError>;
    /// The same metric of the primary (`<target>-primary`), for weft's
    /// comparison with it.
    fn primary_metric(&mut self, metric: &CanaryMetric) -> Result<f64, MetricError>;
}

/// What the controller carries out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Make `<target>-primary` from the target's spec, if missing.
    CreatePrimary,
    ScaleToZero,
    ScaleFromZero,
    /// Copy the target's spec to the primary.
    Promote,
    SetRoutes(Routes),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub message: String,
}

/// An alert for the canary's alert providers, as Flagger's `alert`
/// raises it: with the canary's metadata (target, threshold, deadline,
/// routing) as fields or without.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub message: String,
    pub metadata: bool,
    /// "info", "warn" or "error".
    pub severity: &'static str,
}

/// How a run ended, for `flagger_canary_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Skipped,
    Failed,
}

/// What a tick decided.
#[derive(Debug, Clone)]
pub struct Tick {
    pub status: Status,
    pub effects: Vec<Effect>,
    pub events: Vec<Event>,
    /// Each metric judged this tick, in the order judged.
    pub analysis: Vec<Judged>,
    pub outcome: Option<Outcome>,
    pub alerts: Vec<Alert>,
}

/// One metric as a tick judged it: its value (when the provider gave
/// one), the limits it was held to and what came of it. The value is what
/// `flagger_canary_metric_analysis` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Judged {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The primary's value, when the metric is compared with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary: Option<f64>,
    /// The comparison's rule (`<= primary * 1.2`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compared: Option<String>,
    pub verdict: Judgement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Judgement {
    Passed,
    /// Outside its limits, or unusable: a failed check.
    Failed,
    /// Too little traffic behind it (the minimum-sample guard).
    Held,
    /// The metrics provider failed to answer.
    ProviderError,
}

/// What the analysis of a tick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    /// A failed check, counted toward the threshold.
    Fail,
    /// Too little traffic to judge (weft's minimum-sample guard): no
    /// step, no failed check.
    Hold,
    /// The metrics provider failed: counted apart from failed checks
    /// (`status.providerErrors`), no step.
    ProviderError,
}

struct Run<'a> {
    s: &'a Settings,
    seen: &'a Observed,
    checks: &'a mut dyn Checks,
    t: Tick,
}

/// Runs one tick of the canary `s` whose recorded status is `status`.
pub fn advance(s: &Settings, status: &Status, seen: &Observed, checks: &mut dyn Checks) -> Tick {
    let mut run = Run {
        s,
        seen,
        checks,
        t: Tick {
            status: status.clone(),
            effects: Vec::new(),
            events: Vec::new(),
            analysis: Vec::new(),
            outcome: None,
            alerts: Vec::new(),
        },
    };
    run.tick();
    run.t
}

impl Run<'_> {
    fn info(&mut self, message: String) {
        self.t.events.push(Event {
            warning: false,
            message,
        });
    }

    fn warn(&mut self, message: String) {
        self.t.events.push(Event {
            warning: true,
            message,
        });
    }

    fn alert(&mut self, message: impl Into<String>, metadata: bool, severity: &'static str) {
        self.t.alerts.push(Alert {
            message: message.into(),
            metadata,
            severity,
        });
    }

    fn effect(&mut self, e: Effect) {
        self.t.effects.push(e);
    }

    fn phase(&self) -> Phase {
        self.t.status.phase
    }

    /// Flagger's `SyncStatus`: the phase and counters together, and the
    /// spec hash the run is about.
    fn sync(&mut self, phase: Phase, canary_weight: u32) {
        let now = self.seen.now.clone();
        let st = &mut self.t.status;
        st.set_condition(phase, &self.s.target_kind, &now);
        st.phase = phase;
        st.canary_weight = canary_weight;
        st.failed_checks = 0;
        st.provider_errors = 0;
        st.iterations = 0;
        st.last_applied_spec = self.seen.target_hash.clone();
        if phase == Phase::Initialized {
            st.last_promoted_spec = self.seen.target_hash.clone();
        }
        st.last_transition_time = now;
    }

    /// Flagger's `SetStatusPhase`: outside a run the weight and iterations
    /// go back to zero; a promotion records the spec it promoted.
    fn set_phase(&mut self, phase: Phase) {
        let now = self.seen.now.clone();
        let iterations = self.s.iterations;
        let st = &mut self.t.status;
        st.set_condition(phase, &self.s.target_kind, &now);
        st.phase = phase;
        st.last_transition_time = now;
        if !matches!(
            phase,
            Phase::Progressing | Phase::Waiting | Phase::Promoting
        ) {
            st.canary_weight = 0;
            st.iterations = 0;
            if phase == Phase::WaitingPromotion {
                st.iterations = iterations.saturating_sub(1);
            }
        }
        if matches!(phase, Phase::Initialized | Phase::Succeeded) {
            st.last_promoted_spec = st.last_applied_spec.clone();
        }
    }

    fn touch(&mut self, set: impl FnOnce(&mut Status)) {
        set(&mut self.t.status);
        self.t.status.last_transition_time = self.seen.now.clone();
    }

    /// Flagger's `hasSpecChanged`: a new hash is a new revision, unless
    /// it is the promoted one (a manual revert starts no run).
    fn spec_changed(&self, st: &Status) -> bool {
        let hash = &self.seen.target_hash;
        if st.last_applied_spec.is_empty() {
            return true;
        }
        if &st.last_promoted_spec == hash {
            return false;
        }
        &st.last_applied_spec != hash
    }

    fn hooks(&self, kind: &str) -> Vec<CanaryWebhook> {
        self.s
            .webhooks
            .iter()
            .filter(|w| w.hook_type == kind || (kind == "rollout" && w.hook_type.is_empty()))
            .cloned()
            .collect()
    }

    fn tick(&mut self) {
        let s = self.s;
        if s.suspend {
            self.info("skipping canary run as object is suspended".into());
            return;
        }
        if self.phase() == Phase::New {
            let now = self.seen.now.clone();
            let st = &mut self.t.status;
            st.set_condition(Phase::Initializing, &s.target_kind, &now);
            st.phase = Phase::Initializing;
            st.last_transition_time = now;
        }
        let initializing = self.phase() == Phase::Initializing;
        if !s.skip_analysis && initializing {
            match self.checks.providers() {
                Ok(()) => self.info("all the metrics providers are available!".into()),
                Err(e) => self.warn(format!("Error checking metric providers: {e}")),
            }
        }
        self.effect(Effect::CreatePrimary);
        if initializing && !s.skip_analysis {
            if let Readiness::Waiting(why) | Readiness::Stuck(why) = &self.seen.primary {
                let why = why.clone();
                self.warn(format!("{}.{} not ready: {why}", s.primary(), s.namespace));
                return;
            }
        }
        if initializing {
            self.effect(Effect::ScaleToZero);
            self.sync(Phase::Initialized, 0);
            self.info(format!("Initialization done! {}", s.canary_ref()));
            self.alert(
                format!("New {} detected, initialization completed.", s.target_kind),
                true,
                "info",
            );
        }

        let should_advance = match self.phase() {
            Phase::Progressing
            | Phase::Waiting
            | Phase::WaitingPromotion
            | Phase::Promoting
            | Phase::Finalising => true,
            Phase::Failed => {
                // The revision is judged against what the failed run was
                // about; the recorded hash follows the target anyway.
                let changed = self.spec_changed(&self.t.status.clone());
                self.t.status.last_applied_spec = self.seen.target_hash.clone();
                changed
            }
            _ => self.spec_changed(&self.t.status.clone()),
        };
        if !should_advance {
            return;
        }
        let max_weight = s.max_weight();

        if !s.skip_analysis {
            match self.seen.primary.clone() {
                Readiness::Ready => {}
                Readiness::Waiting(why) => {
                    self.warn(format!("{}.{} not ready: {why}", s.primary(), s.namespace));
                    return;
                }
                Readiness::Stuck(why) => {
                    self.warn(format!("{}.{} not ready: {why}", s.primary(), s.namespace));
                    if matches!(self.phase(), Phase::Promoting | Phase::Finalising) {
                        self.failed_promotion(&why);
                    } else {
                        self.rollback();
                    }
                    return;
                }
            }
        }
        let routes = self.seen.routes;

        // A run starts (through the confirm-rollout gate) or goes on.
        if !matches!(
            self.phase(),
            Phase::Progressing | Phase::WaitingPromotion | Phase::Promoting | Phase::Finalising
        ) {
            if !self.confirm_rollout() {
                return;
            }
            self.info(format!(
                "New revision detected! Scaling up {}",
                s.target_ref()
            ));
            self.alert(
                "New revision detected, progressing canary analysis.",
                true,
                "info",
            );
            self.effect(Effect::ScaleFromZero);
            self.sync(Phase::Progressing, 0);
            return;
        }

        if matches!(self.phase(), Phase::Progressing | Phase::WaitingPromotion)
            && self.spec_changed(&self.t.status.clone())
        {
            self.info(format!(
                "New revision detected! Restarting analysis for {}",
                s.target_ref()
            ));
            self.effect(Effect::SetRoutes(Routes::PRIMARY));
            self.sync(Phase::Progressing, 0);
            return;
        }

        match self.seen.canary.clone() {
            Readiness::Ready => {}
            Readiness::Waiting(why) => {
                self.warn(self.canary_not_ready(&why));
                return;
            }
            Readiness::Stuck(why) => {
                self.warn(self.canary_not_ready(&why));
                self.rollback();
                return;
            }
        }

        if s.skip_analysis {
            self.effect(Effect::SetRoutes(Routes::PRIMARY));
            self.copying();
            self.effect(Effect::Promote);
            self.effect(Effect::ScaleToZero);
            self.set_phase(Phase::Succeeded);
            self.t.outcome = Some(Outcome::Skipped);
            self.post_rollout(Phase::Succeeded);
            self.alert(
                "Canary analysis was skipped, promotion finished.",
                false,
                "info",
            );
            self.info(format!(
                "Promotion completed! Canary analysis was skipped for {}",
                s.target_ref()
            ));
            return;
        }

        if matches!(
            self.phase(),
            Phase::Progressing | Phase::Waiting | Phase::WaitingPromotion
        ) && self.rollback_requested()
        {
            self.warn(format!(
                "Rolling back {} manual webhook invoked",
                s.canary_ref()
            ));
            self.alert("Rolling back manual webhook invoked", false, "warn");
            self.rollback();
            return;
        }

        if self.phase() == Phase::Promoting {
            self.promotion_traffic_shift(routes);
            return;
        }

        if self.phase() == Phase::Finalising {
            self.effect(Effect::ScaleToZero);
            self.set_phase(Phase::Succeeded);
            self.t.outcome = Some(Outcome::Succeeded);
            self.post_rollout(Phase::Succeeded);
            self.alert(
                "Canary analysis completed successfully, promotion finished.",
                false,
                "info",
            );
            self.info(format!(
                "Promotion completed! Scaling down {}",
                s.target_ref()
            ));
            return;
        }

        if matches!(self.phase(), Phase::Progressing | Phase::WaitingPromotion)
            && (self.t.status.failed_checks >= s.threshold
                || (s.provider_errors > 0 && self.t.status.provider_errors >= s.provider_errors))
        {
            self.rollback();
            return;
        }

        // The first tick of a run only runs the pre-rollout hooks; the
        // others judge the metrics.
        let verdict = if routes.canary == 0
            && self.t.status.iterations == 0
            && !(s.mirror && routes.mirrored)
        {
            self.info(format!("Starting canary analysis for {}", s.target_ref()));
            if self.pre_rollout() {
                Verdict::Pass
            } else {
                Verdict::Fail
            }
        } else {
            self.analysis()
        };
        match verdict {
            Verdict::Pass => {}
            Verdict::Hold => return,
            Verdict::Fail => {
                let failed = self.t.status.failed_checks + 1;
                self.touch(|st| st.failed_checks = failed);
                return;
            }
            Verdict::ProviderError => {
                let errors = self.t.status.provider_errors + 1;
                self.touch(|st| st.provider_errors = errors);
                return;
            }
        }

        match s.strategy {
            Strategy::AbTesting => self.ab_testing(),
            Strategy::BlueGreen => self.blue_green(routes),
            Strategy::Canary => {
                if s.next_step_weight(routes.canary) > 0 {
                    if !routes.mirrored
                        && !matches!(
                            self.phase(),
                            Phase::Promoting | Phase::WaitingPromotion | Phase::Finalising
                        )
                        && !self.confirm_traffic_increase()
                    {
                        return;
                    }
                    self.canary_step(routes, max_weight);
                }
            }
        }
    }

    fn canary_not_ready(&self, why: &str) -> String {
        format!(
            "canary {} {} not ready: {why}",
            self.s.target_kind.to_ascii_lowercase(),
            self.s.target_ref()
        )
    }

    fn copying(&mut self) {
        self.info(format!(
            "Copying {} template spec to {}.{}",
            self.s.target_ref(),
            self.s.primary(),
            self.s.namespace
        ));
    }

    fn promote(&mut self) {
        self.copying();
        self.effect(Effect::Promote);
        self.set_phase(Phase::Promoting);
    }

    /// Steps the weight up, or promotes once it reached `maxWeight`.
    fn canary_step(&mut self, mut routes: Routes, max_weight: u32) {
        let s = self.s;
        if routes.canary < max_weight {
            let next = s.next_step_weight(routes.canary);
            // Mirroring first shows the canary a copy of the traffic for
            // one step, then shifts the first step to it.
            if s.mirror && routes.canary == 0 {
                if !routes.mirrored {
                    routes = Routes {
                        primary: TOTAL_WEIGHT,
                        canary: 0,
                        mirrored: true,
                    };
                } else {
                    routes = Routes {
                        primary: TOTAL_WEIGHT.saturating_sub(next),
                        canary: next,
                        mirrored: false,
                    };
                }
            } else {
                routes.primary = routes.primary.saturating_sub(next);
                routes.canary = (routes.canary + next).min(TOTAL_WEIGHT);
            }
            self.effect(Effect::SetRoutes(routes));
            let weight = routes.canary;
            self.touch(|st| st.canary_weight = weight);
            self.info(format!("Advance {} canary weight {weight}", s.canary_ref()));
            return;
        }
        if self.confirm_promotion() {
            self.promote();
        }
    }

    fn ab_testing(&mut self) {
        let s = self.s;
        let done = self.t.status.iterations;
        if s.iterations > done {
            self.effect(Effect::SetRoutes(Routes::CANARY));
            self.touch(|st| st.iterations = done + 1);
            self.info(format!(
                "Advance {} canary iteration {}/{}",
                s.canary_ref(),
                done + 1,
                s.iterations
            ));
            return;
        }
        if !self.confirm_promotion() {
            return;
        }
        if s.iterations == self.t.status.iterations {
            self.promote();
        }
    }

    fn blue_green(&mut self, routes: Routes) {
        let s = self.s;
        let done = self.t.status.iterations;
        if s.iterations > done {
            if s.mirror && !routes.mirrored {
                self.effect(Effect::SetRoutes(Routes {
                    primary: TOTAL_WEIGHT,
                    canary: 0,
                    mirrored: true,
                }));
            }
            self.touch(|st| st.iterations = done + 1);
            self.info(format!(
                "Advance {} canary iteration {}/{}",
                s.canary_ref(),
                done + 1,
                s.iterations
            ));
            return;
        }
        if !self.confirm_promotion() {
            return;
        }
        let done = self.t.status.iterations;
        if s.iterations == done {
            self.info(if s.mirror {
                "Stop traffic mirroring and route all traffic to canary".into()
            } else {
                "Routing all traffic to canary".into()
            });
            self.effect(Effect::SetRoutes(Routes::CANARY));
            self.touch(|st| st.iterations = done + 1);
            return;
        }
        if s.iterations < done {
            self.promote();
        }
    }

    /// After the primary took the new spec: traffic back to it, at once
    /// or by `stepWeightPromotion`.
    fn promotion_traffic_shift(&mut self, routes: Routes) {
        let s = self.s;
        if s.step_weight_promotion == 0 {
            self.info("Routing all traffic to primary".into());
            self.effect(Effect::SetRoutes(Routes::PRIMARY));
            self.set_phase(Phase::Finalising);
            return;
        }
        if routes.canary > 0 {
            let primary = (routes.primary + s.step_weight_promotion).min(TOTAL_WEIGHT);
            let canary = routes.canary.saturating_sub(s.step_weight_promotion);
            self.effect(Effect::SetRoutes(Routes {
                primary,
                canary,
                mirrored: false,
            }));
            self.info(format!(
                "Advance {} primary weight {primary}",
                s.canary_ref()
            ));
            if primary == TOTAL_WEIGHT {
                self.set_phase(Phase::Finalising);
            } else {
                self.touch(|st| st.canary_weight = canary);
            }
        }
    }

    fn rollback(&mut self) {
        let s = self.s;
        if self.t.status.failed_checks >= s.threshold {
            self.warn(format!(
                "Rolling back {} failed checks threshold reached {}",
                s.canary_ref(),
                self.t.status.failed_checks
            ));
            self.alert(
                format!(
                    "Failed checks threshold reached {}",
                    self.t.status.failed_checks
                ),
                false,
                "error",
            );
        }
        if s.provider_errors > 0 && self.t.status.provider_errors >= s.provider_errors {
            self.warn(format!(
                "Rolling back {} metrics provider errors threshold reached {}",
                s.canary_ref(),
                self.t.status.provider_errors
            ));
            self.alert(
                format!(
                    "Metrics provider errors threshold reached {}",
                    self.t.status.provider_errors
                ),
                false,
                "error",
            );
        }
        self.effect(Effect::SetRoutes(Routes::PRIMARY));
        self.warn(format!("Canary failed! Scaling down {}", s.canary_ref()));
        self.effect(Effect::ScaleToZero);
        self.sync(Phase::Failed, 0);
        self.t.outcome = Some(Outcome::Failed);
        self.post_rollout(Phase::Failed);
    }

    /// The primary broke while taking the new spec: the canary is the
    /// only healthy copy, so traffic goes to it.
    fn failed_promotion(&mut self, why: &str) {
        self.warn(format!(
            "Promotion of {} failed, primary not ready: {why}",
            self.s.target_ref()
        ));
        self.alert(
            format!("Promotion failed, primary not ready: {why}"),
            false,
            "error",
        );
        self.effect(Effect::SetRoutes(Routes::CANARY));
        self.sync(Phase::Failed, TOTAL_WEIGHT);
        self.t.outcome = Some(Outcome::Failed);
        self.post_rollout(Phase::Failed);
    }

    /// Calls the webhooks of `kind` in order, saying "`label` check NAME
    /// passed" of each that passes (when there is a label); the first
    /// refusal stops them and is returned with its reason.
    fn call_hooks(
        &mut self,
        kind: &str,
        phase: Phase,
        label: Option<&str>,
    ) -> Option<(CanaryWebhook, String)> {
        for hook in self.hooks(kind) {
            if let Err(why) = self.checks.webhook(&hook, phase) {
                return Some((hook, why));
            }
            if let Some(label) = label {
                self.info(format!("{label} check {} passed", hook.name));
            }
        }
        None
    }

    /// An alert about a gate, unless the hook mutes them.
    fn gate_alert(&mut self, hook: &CanaryWebhook, message: &str) {
        if !hook.mute_alert.unwrap_or(false) {
            self.alert(message, false, "warn");
        }
    }

    fn confirm_rollout(&mut self) -> bool {
        let phase = self.phase();
        let Some((hook, _)) = self.call_hooks("confirm-rollout", phase, Some("Confirm-rollout"))
        else {
            return true;
        };
        if self.phase() != Phase::Waiting {
            self.set_phase(Phase::Waiting);
            self.warn(format!(
                "Halt {} advancement waiting for approval {}",
                self.s.canary_ref(),
                hook.name
            ));
            self.gate_alert(&hook, "Canary is waiting for approval.");
        }
        false
    }

    fn confirm_traffic_increase(&mut self) -> bool {
        let Some((hook, _)) = self.call_hooks(
            "confirm-traffic-increase",
            Phase::Progressing,
            Some("Confirm-traffic-increase"),
        ) else {
            return true;
        };
        self.warn(format!(
            "Halt {} advancement waiting for traffic increase approval {}",
            self.s.canary_ref(),
            hook.name
        ));
        self.gate_alert(&hook, "Canary traffic increase is waiting for approval.");
        false
    }

    fn confirm_promotion(&mut self) -> bool {
        let Some((hook, _)) = self.call_hooks(
            "confirm-promotion",
            Phase::Progressing,
            Some("Confirm-promotion"),
        ) else {
            return true;
        };
        if self.phase() != Phase::WaitingPromotion {
            self.set_phase(Phase::WaitingPromotion);
            self.warn(format!(
                "Halt {} advancement waiting for promotion approval {}",
                self.s.canary_ref(),
                hook.name
            ));
            self.gate_alert(&hook, "Canary promotion is waiting for approval.");
        } else {
            let left = self.s.iterations.saturating_sub(1);
            self.touch(|st| st.iterations = left);
        }
        false
    }

    fn pre_rollout(&mut self) -> bool {
        let Some((hook, why)) =
            self.call_hooks("pre-rollout", Phase::Progressing, Some("Pre-rollout"))
        else {
            return true;
        };
        self.warn(format!(
            "Halt {} advancement pre-rollout check {} failed {why}",
            self.s.canary_ref(),
            hook.name
        ));
        false
    }

    fn post_rollout(&mut self, phase: Phase) {
        if let Some((hook, why)) = self.call_hooks("post-rollout", phase, Some("Post-rollout")) {
            self.warn(format!("Post-rollout hook {} failed {why}", hook.name));
        }
    }

    /// Whether a rollback hook asks for a rollback (answers 2xx).
    fn rollback_requested(&mut self) -> bool {
        let phase = self.phase();
        for hook in self.hooks("rollback") {
            if self.checks.webhook(&hook, phase).is_err() {
                self.info(format!(
                    "Rollback hook {} not signaling a rollback",
                    hook.name
                ));
            } else {
                self.warn(format!("Rollback check {} passed", hook.name));
                return true;
            }
        }
        false
    }

    /// The rollout webhooks, then the built-in and inline metrics, then
    /// the templates, each in the order written; the first failure halts.
    fn analysis(&mut self) -> Verdict {
        if let Some((hook, why)) = self.call_hooks("rollout", Phase::Progressing, None) {
            self.warn(format!(
                "Halt {} advancement external check {} failed {why}",
                self.s.canary_ref(),
                hook.name
            ));
            return Verdict::Fail;
        }
        let metrics = self.s.metrics.clone();
        let builtin = |k: MetricKind| {
            matches!(
                k,
                MetricKind::SuccessRate | MetricKind::Duration | MetricKind::Query
            )
        };
        for pass in [true, false] {
            for m in metrics.iter().filter(|m| builtin(judge::kind(m)) == pass) {
                if judge::kind(m) == MetricKind::Unusable {
                    self.t.analysis.push(Judged {
                        name: m.name.clone(),
                        value: None,
                        min: None,
                        max: None,
                        primary: None,
                        compared: None,
                        verdict: Judgement::Failed,
                    });
                    self.warn(
                        "Metric query failed for no usable metrics template and query were configured"
                            .into(),
                    );
                    return Verdict::Fail;
                }
                let value = self.checks.metric(m);
                let held =
                    self.s.min_requests > 0 && matches!(value, Err(MetricError::NoValues(_)));
                let provider_failed =
                    self.s.provider_errors > 0 && matches!(value, Err(MetricError::Failed(_)));
                let (min, max) = judge::bounds(m);
                let mut judged = Judged {
                    name: m.name.clone(),
                    value: value.as_ref().ok().copied(),
                    min,
                    max,
                    primary: None,
                    compared: None,
                    verdict: Judgement::Passed,
                };
                let verdict = match judge::judge(self.s, m, "istio", value) {
                    Ok(v) => self.compare(m, v, &mut judged),
                    Err(why) if held => {
                        self.warn(format!(
                            "{why} (held: not a failed check until {} requests reach it, as weft.dev/canary-min-requests says)",
                            self.s.min_requests
                        ));
                        Verdict::Hold
                    }
                    Err(why) if provider_failed => {
                        self.warn(format!(
                            "{why} (a metrics provider error, not a failed check: {} of {} allowed, as weft.dev/canary-provider-errors says)",
                            self.t.status.provider_errors + 1,
                            self.s.provider_errors
                        ));
                        Verdict::ProviderError
                    }
                    Err(why) => {
                        self.warn(why);
                        Verdict::Fail
                    }
                };
                judged.verdict = match verdict {
                    Verdict::Pass => Judgement::Passed,
                    Verdict::Fail => Judgement::Failed,
                    Verdict::Hold => Judgement::Held,
                    Verdict::ProviderError => Judgement::ProviderError,
                };
                self.t.analysis.push(judged);
                if verdict != Verdict::Pass {
                    return verdict;
                }
            }
        }
        Verdict::Pass
    }
}

impl Run<'_> {
    /// weft's comparison with the primary, for a metric whose value
    /// passed its own thresholds: the primary's value over the same
    /// interval sets the limit the rule makes. A primary without traffic
    /// (all of it on the canary, as in blue/green) cannot be compared
    /// with and leaves the verdict to the absolute thresholds.
    fn compare(&mut self, m: &CanaryMetric, value: f64, judged: &mut Judged) -> Verdict {
        let Some(rule) = self.s.compare.iter().find(|r| r.metric == m.name).cloned() else {
            return Verdict::Pass;
        };
        judged.compared = Some(rule.to_string());
        let primary = match self.checks.primary_metric(m) {
            Ok(p) => p,
            Err(MetricError::NoValues(_)) => return Verdict::Pass,
            Err(MetricError::Failed(e)) if self.s.provider_errors > 0 => {
                self.warn(format!(
                    "Prometheus query failed for the primary's {}: {e} (a metrics provider error, not a failed check: {} of {} allowed, as weft.dev/canary-provider-errors says)",
                    m.name,
                    self.t.status.provider_errors + 1,
                    self.s.provider_errors
                ));
                return Verdict::ProviderError;
            }
            Err(MetricError::Failed(e) | MetricError::Refused(e) | MetricError::Template(e)) => {
                self.warn(format!(
                    "Halt {} advancement {} of the primary could not be read: {e}",
                    self.s.canary_ref(),
                    m.name
                ));
                return Verdict::Fail;
            }
        };
        judged.primary = Some(primary);
        if rule.admits(value, primary) {
            return Verdict::Pass;
        }
        let op = match rule.bound {
            crate::compare::Bound::AtMost => ">",
            crate::compare::Bound::AtLeast => "<",
        };
        self.warn(format!(
            "Halt {} advancement {} {value:.2} {op} {:.2}, the primary's {primary:.2} as {} {rule} says",
            self.s.canary_ref(),
            m.name,
            rule.limit(primary),
            crate::compare::ANNOTATION,
        ));
        Verdict::Fail
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
