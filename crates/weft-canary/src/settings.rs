//! A Canary's analysis settings with Flagger's defaults and clamps
//! (`pkg/apis/flagger/v1beta1/canary.go`): an interval of 60 s unless
//! given and never under 10 s, a threshold of at least 1, a progress
//! deadline of 600 s, ready thresholds of 100 %, metrics over 1m.

use std::time::Duration;

use weft_api::types::flagger::{Canary, CanaryAnalysis, CanaryMetric, CanaryWebhook};

/// Flagger's default `analysis.interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Flagger's floor on `analysis.interval`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Flagger's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
/// The interval of a metric that names none.
pub const DEFAULT_METRIC_INTERVAL: &str = "1m";
/// All the traffic there is to shift.
pub const TOTAL_WEIGHT: u32 = 100;

/// How the traffic moves, as Flagger tells from the analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Weights stepped up to `maxWeight` (or along `stepWeights`).
    Canary,
    /// `iterations` with no `match`: all or nothing after the analysis.
    BlueGreen,
    /// `iterations` and `match`: the matched requests go to the canary.
    AbTesting,
}

impl Strategy {
    /// The `deployment_strategy` label of Flagger's metrics.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::Canary => "canary",
            Strategy::BlueGreen => "blue-green",
            Strategy::AbTesting => "ab-testing",
        }
    }
}

/// What a Canary asks for, read once per tick.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Canary's own name and namespace.
    pub name: String,
    pub namespace: String,
    /// The workload released (`targetRef`).
    pub target_kind: String,
    pub target: String,
    /// The apex service (`service.name`, else the target's name).
    pub service: String,
    pub interval: Duration,
    pub threshold: u32,
    pub max_weight: u32,
    pub step_weight: u32,
    pub step_weights: Vec<u32>,
    pub step_weight_promotion: u32,
    pub iterations: u32,
    pub strategy: Strategy,
    pub mirror: bool,
    pub skip_analysis: bool,
    pub suspend: bool,
    pub progress_deadline: Duration,
    pub primary_ready_threshold: u32,
    pub canary_ready_threshold: u32,
    pub metrics: Vec<CanaryMetric>,
    pub webhooks: Vec<CanaryWebhook>,
    /// weft's minimum-sample guard (`weft.dev/canary-min-requests`, 1
    /// unless set): a metric with fewer requests behind it holds the
    /// analysis, neither passed nor failed. 0 is Flagger's behaviour,
    /// where no values is a failed check.
    pub min_requests: u32,
    /// How many metrics-provider failures a run takes before it is rolled
    /// back (`weft.dev/canary-provider-errors`; `threshold` unless set):
    /// they are counted apart from failed checks and hold the analysis,
    /// so a run rolled back for them says so. 0 is Flagger's behaviour,
    /// where a provider failure is a failed check.
    pub provider_errors: u32,
    /// weft's comparison with the primary
    /// (`weft.dev/canary-compare-to-primary`), one rule per metric; a
    /// malformed annotation is refused at admission, so it is empty here.
    pub compare: Vec<crate::compare::Rule>,
    /// The Prometheus the built-in metrics are asked of
    /// (`spec.metricsServer`); without one, the mesh's own telemetry.
    pub metrics_server: Option<String>,
    /// `analysis.sessionAffinity`.
    pub session_affinity: Option<SessionAffinity>,
    /// `service.name` as written, for the template model.
    pub ingress: String,
    pub route: String,
}

/// Flagger's `sessionAffinity`: cookies that keep a client on the
/// version it first reached during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionAffinity {
    pub cookie_name: String,
    pub primary_cookie_name: String,
    pub max_age: i64,
    pub domain: String,
    pub http_only: bool,
    pub partitioned: bool,
    pub path: String,
    pub same_site: String,
    pub secure: bool,
}

impl SessionAffinity {
    /// Flagger's default: a day.
    pub fn max_age(&self) -> i64 {
        if self.max_age == 0 {
            86_400
        } else {
            self.max_age
        }
    }

    /// A `Set-Cookie` value for `cookie` (`name=value`), as Flagger's
    /// `BuildCookie` writes it.
    pub fn build_cookie(&self, cookie: &str, max_age: i64) -> String {
        let mut c = format!("{cookie}; Max-Age={max_age}");
        if !self.domain.is_empty() {
            c.push_str(&format!("; Domain={}", self.domain));
        }
        if self.http_only {
            c.push_str("; HttpOnly");
        }
        if self.partitioned {
            c.push_str("; Partitioned");
        }
        if !self.path.is_empty() {
            c.push_str(&format!("; Path={}", self.path));
        }
        if !self.same_site.is_empty() {
            c.push_str(&format!("; SameSite={}", self.same_site));
        }
        if self.secure {
            c.push_str("; Secure");
        }
        c
    }
}

/// The annotation that sets [`Settings::provider_errors`].
pub const PROVIDER_ERRORS_ANNOTATION: &str = "weft.dev/canary-provider-errors";

/// The annotation that sets [`Settings::min_requests`].
pub const MIN_REQUESTS_ANNOTATION: &str = "weft.dev/canary-min-requests";

fn non_negative(v: Option<i64>) -> u32 {
    v.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32
}

impl Settings {
    pub fn of(name: &str, namespace: &str, canary: &Canary) -> Settings {
        let analysis: CanaryAnalysis = canary
            .analysis
            .clone()
            .or_else(|| canary.canary_analysis.clone())
            .unwrap_or_default();
        let has_analysis = canary.analysis.is_some() || canary.canary_analysis.is_some();
        let target = canary.target_ref.clone().unwrap_or_default();
        let service = canary
            .service
            .as_ref()
            .map(|s| s.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| target.name.clone());
        let iterations = non_negative(analysis.iterations);
        let strategy = if !analysis.matches.is_empty() && iterations > 0 {
            Strategy::AbTesting
        } else if iterations > 0 {
            Strategy::BlueGreen
        } else {
            Strategy::Canary
        };
        let threshold = non_negative(analysis.threshold).max(1);
        Settings {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            target_kind: target.kind.clone(),
            target: target.name.clone(),
            service,
            interval: interval(&analysis.interval),
            threshold,
            max_weight: non_negative(analysis.max_weight),
            step_weight: non_negative(analysis.step_weight),
            step_weights: analysis
                .step_weights
                .iter()
                .map(|w| non_negative(Some(*w)))
                .collect(),
            step_weight_promotion: non_negative(analysis.step_weight_promotion),
            iterations,
            strategy,
            mirror: analysis.mirror.unwrap_or(false),
            skip_analysis: !has_analysis || canary.skip_analysis,
            suspend: canary.suspend,
            progress_deadline: canary
                .progress_deadline_seconds
                .map_or(DEFAULT_PROGRESS_DEADLINE, |s| {
                    Duration::from_secs(s.max(0) as u64)
                }),
            primary_ready_threshold: analysis
                .primary_ready_threshold
                .map_or(100, |v| non_negative(Some(v))),
            canary_ready_threshold: analysis
                .canary_ready_threshold
                .map_or(100, |v| non_negative(Some(v))),
            metrics: analysis.metrics,
            webhooks: analysis.webhooks,
            min_requests: 1,
            provider_errors: threshold,
            compare: Vec::new(),
            metrics_server: canary.metrics_server.clone().filter(|m| !m.is_empty()),
            session_affinity: analysis
                .session_affinity
                .as_ref()
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            ingress: canary
                .ingress_ref
                .as_ref()
                .map_or_else(|| target.name.clone(), |r| r.name.clone()),
            route: canary
                .route_ref
                .as_ref()
                .map_or_else(|| target.name.clone(), |r| r.name.clone()),
        }
    }

    /// Reads weft's own settings from the Canary's annotations.
    pub fn with_annotations(
        mut self,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Settings {
        if let Some(n) = annotations
            .get(MIN_REQUESTS_ANNOTATION)
            .and_then(|v| v.trim().parse().ok())
        {
            self.min_requests = n;
        }
        if let Some(n) = annotations
            .get(PROVIDER_ERRORS_ANNOTATION)
            .and_then(|v| v.trim().parse().ok())
        {
            self.provider_errors = n;
        }
        if let Some(Ok(rules)) = annotations
            .get(crate::compare::ANNOTATION)
            .map(|v| crate::compare::parse(v))
        {
            self.compare = rules;
        }
        self
    }

    /// What a metric's query is rendered with (Flagger's `toMetricModel`).
    pub fn template_model(
        &self,
        interval: &str,
        variables: &std::collections::BTreeMap<String, String>,
    ) -> crate::template::Model {
        crate::template::Model {
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            target: self.target.clone(),
            service: self.service.clone(),
            ingress: self.ingress.clone(),
            route: self.route.clone(),
            interval: interval.to_owned(),
            variables: variables.clone(),
        }
    }

    /// `<name>.<namespace>`, as Flagger names a canary in its messages.
    pub fn canary_ref(&self) -> String {
        format!("{}.{}", self.name, self.namespace)
    }

    /// `<target>.<namespace>`.
    pub fn target_ref(&self) -> String {
        format!("{}.{}", self.target, self.namespace)
    }

    /// The primary's name: `<target>-primary`.
    pub fn primary(&self) -> String {
        format!("{}-primary", self.target)
    }

    /// The weight at which the analysis ends and promotion begins: the
    /// last of `stepWeights` (at most 100), else `maxWeight`, else 100.
    pub fn max_weight(&self) -> u32 {
        if let Some(last) = self.step_weights.last() {
            return TOTAL_WEIGHT.min(*last);
        }
        if self.max_weight > 0 {
            return self.max_weight;
        }
        TOTAL_WEIGHT
    }

    /// How far the next step moves the canary from `canary_weight`. With
    /// `stepWeight`, that step whatever the weight (so the last step may
    /// overshoot `maxWeight`, as Flagger's does); with `stepWeights`, up
    /// to the next listed weight, never past 100.
    pub fn next_step_weight(&self, canary_weight: u32) -> u32 {
        if self.step_weight > 0 || self.step_weights.is_empty() {
            return self.step_weight;
        }
        let max_step = TOTAL_WEIGHT.saturating_sub(canary_weight);
        // At 100 only promotion is left: any step moves there.
        if max_step == 0 {
            return 1;
        }
        if canary_weight == 0 {
            return max_step.min(self.step_weights[0]);
        }
        for pair in self.step_weights.windows(2) {
            if pair[0] == canary_weight {
                return max_step.min(pair[1].saturating_sub(canary_weight));
            }
        }
        max_step
    }
}

/// Flagger's `GetAnalysisInterval`: 60 s when missing or unreadable, at
/// least 10 s.
pub fn interval(text: &str) -> Duration {
    if text.is_empty() {
        return DEFAULT_INTERVAL;
    }
    match weft_api::types::common::parse_duration(text) {
        Ok(d) => d.max(MIN_INTERVAL),
        Err(_) => DEFAULT_INTERVAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> Settings {
        let loaded = weft_api::load::load_bytes("canary.yaml", yaml.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let r = &loaded.resources[0];
        match &r.spec {
            weft_api::resource::Spec::Canary(c) => Settings::of(&r.meta.name, &r.meta.namespace, c),
            _ => panic!("not a Canary"),
        }
    }

    const HEAD: &str = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n";

    #[test]
    fn intervals_are_clamped_as_flagger_clamps_them() {
        assert_eq!(interval(""), Duration::from_secs(60));
        assert_eq!(interval("5s"), Duration::from_secs(10));
        assert_eq!(interval("30s"), Duration::from_secs(30));
        assert_eq!(interval("1m30s"), Duration::from_secs(90));
        assert_eq!(interval("soon"), Duration::from_secs(60));
    }

    #[test]
    fn step_weight_overshoots_max_weight_as_flaggers_does() {
        let s = settings(&format!(
            "{HEAD}  analysis: {{interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 15}}\n"
        ));
        assert_eq!(s.strategy, Strategy::Canary);
        assert_eq!(s.max_weight(), 50);
        // 0, 15, 30, 45, then 60: past maxWeight, where promotion starts.
        assert_eq!(s.next_step_weight(45), 15);
        assert_eq!(s.threshold, 5);
        assert_eq!(s.canary_ref(), "podinfo.test");
        assert_eq!(s.primary(), "podinfo-primary");
    }

    #[test]
    fn step_weights_walk_the_list_and_stop_at_the_last() {
        let s = settings(&format!(
            "{HEAD}  analysis: {{interval: 1m, stepWeights: [1, 5, 20, 60]}}\n"
        ));
        assert_eq!(s.max_weight(), 60);
        assert_eq!(s.next_step_weight(0), 1);
        assert_eq!(s.next_step_weight(1), 4);
        assert_eq!(s.next_step_weight(5), 15);
        assert_eq!(s.next_step_weight(20), 40);
        // A weight off the list steps the rest of the way.
        assert_eq!(s.next_step_weight(30), 70);
        assert_eq!(s.next_step_weight(100), 1);
        assert_eq!(s.threshold, 1, "a threshold of at least 1");
    }

    #[test]
    fn iterations_make_blue_green_and_a_match_makes_ab_testing() {
        let bg = settings(&format!(
            "{HEAD}  analysis: {{interval: 1m, iterations: 10}}\n"
        ));
        assert_eq!(bg.strategy, Strategy::BlueGreen);
        let ab = settings(&format!(
            "{HEAD}  analysis:\n    interval: 1m\n    iterations: 10\n    match: [{{headers: {{x-canary: {{exact: insider}}}}}}]\n"
        ));
        assert_eq!(ab.strategy, Strategy::AbTesting);
        assert!(!bg.skip_analysis);
        assert_eq!(bg.progress_deadline, Duration::from_secs(600));
        let skipped = settings(&format!(
            "{HEAD}  skipAnalysis: true\n  progressDeadlineSeconds: 60\n  analysis: {{interval: 1m, iterations: 1}}\n"
        ));
        assert!(skipped.skip_analysis);
        assert_eq!(skipped.progress_deadline, Duration::from_secs(60));
    }
}
