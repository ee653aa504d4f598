//! How each metric of an analysis is judged and what is said when it
//! halts the advance, word for word as Flagger's
//! `scheduler_metrics.go` says it: the built-ins `request-success-rate`
//! (a percentage) and `request-duration` (milliseconds), an inline
//! `query`, and a MetricTemplate's query, each against its
//! `thresholdRange` or the legacy `threshold`.

use std::time::Duration;

use weft_api::types::flagger::CanaryMetric;

use crate::settings::Settings;

/// What a metric is, by Flagger's rules: the two built-in names first,
/// then a template reference, then an inline query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    SuccessRate,
    Duration,
    /// An inline PromQL `query`.
    Query,
    /// A `templateRef`.
    Template,
    /// Neither a built-in nor a query nor a template.
    Unusable,
}

pub fn kind(m: &CanaryMetric) -> MetricKind {
    match m.name.as_str() {
        "request-success-rate" => MetricKind::SuccessRate,
        "request-duration" => MetricKind::Duration,
        _ if m.template_ref.is_some() => MetricKind::Template,
        _ if m.query.as_deref().is_some_and(|q| !q.is_empty()) => MetricKind::Query,
        _ => MetricKind::Unusable,
    }
}

/// Why a metric has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricError {
    /// The query ran and found nothing (Flagger's `ErrNoValuesFound`):
    /// usually no traffic reached the canary.
    NoValues(String),
    /// The provider failed to answer: down, unreachable, or an error of
    /// its own (a 5xx). It may well answer next time.
    Failed(String),
    /// The provider refused the query as written (a 4xx, several series
    /// where one was expected), or it could not be written (no metrics
    /// server, a query that does not render). Asking again will not help.
    Refused(String),
    /// The MetricTemplate the metric names is missing or unusable; the
    /// message is whole.
    Template(String),
}

/// One metric's verdict: its value when it passed, else the message that
/// halts the advance.
pub type Verdict = Result<f64, String>;

/// Judges `value` for `metric`. `provider` is the metrics provider
/// Flagger names in its no-values message (`istio`).
pub fn judge(
    s: &Settings,
    metric: &CanaryMetric,
    provider: &str,
    value: Result<f64, MetricError>,
) -> Verdict {
    let who = s.canary_ref();
    let kind = kind(metric);
    let name = &metric.name;
    let value = match value {
        Ok(v) => v,
        Err(MetricError::NoValues(e)) => {
            return Err(match kind {
                MetricKind::SuccessRate => format!(
                    "Halt advancement no values found for {provider} metric {name} probably {} is not receiving traffic: {e}",
                    s.target_ref()
                ),
                MetricKind::Duration => format!(
                    "Halt advancement no values found for {provider} metric {name} probably {} is not receiving traffic",
                    s.target_ref()
                ),
                MetricKind::Template => {
                    format!("Halt advancement no values found for custom metric: {name}: {e}")
                }
                _ => format!("Halt advancement no values found for metric: {name}"),
            })
        }
        Err(MetricError::Failed(e) | MetricError::Refused(e)) => {
            return Err(match kind {
                MetricKind::SuccessRate | MetricKind::Duration => {
                    format!("Prometheus query failed: {e}")
                }
                MetricKind::Template => format!("Metric query failed for {name}: {e}"),
                _ => format!("Prometheus query failed for {name}: {e}"),
            })
        }
        Err(MetricError::Template(e)) => return Err(e),
    };
    let range = metric.threshold_range.as_ref();
    let (min, max) = (range.and_then(|r| r.min), range.and_then(|r| r.max));
    match kind {
        MetricKind::SuccessRate => {
            let below = |limit: f64| {
                format!(
                    "Halt {who} advancement success rate {value:.2}% < {}%",
                    go_float(limit)
                )
            };
            if let Some(r) = range {
                if let Some(min) = r.min.filter(|m| value < *m) {
                    return Err(below(min));
                }
                if let Some(max) = r.max.filter(|m| value > *m) {
                    return Err(format!(
                        "Halt {who} advancement success rate {value:.2}% > {}%",
                        go_float(max)
                    ));
                }
            } else if let Some(t) = metric.threshold.filter(|t| *t > value) {
                return Err(below(t));
            }
        }
        MetricKind::Duration => {
            // Flagger reads the p99 as whole milliseconds, and limits as
            // milliseconds too.
            let took = Duration::from_millis(value.max(0.0) as u64);
            let limit = |ms: f64| Duration::from_millis(ms.max(0.0) as u64);
            let say = |op: &str, ms: f64| {
                format!(
                    "Halt {who} advancement request duration {} {op} {}",
                    go_duration(took),
                    go_duration(limit(ms))
                )
            };
            if range.is_some() {
                if let Some(min) = min.filter(|m| took < limit(*m)) {
                    return Err(say("<", min));
                }
                if let Some(max) = max.filter(|m| took > limit(*m)) {
                    return Err(say(">", max));
                }
            } else {
                let t = metric.threshold.unwrap_or(0.0);
                if took > limit(t) {
                    return Err(say(">", t));
                }
            }
        }
        _ => {
            if range.is_some() {
                if let Some(min) = min.filter(|m| value < *m) {
                    return Err(format!(
                        "Halt {who} advancement {name} {value:.2} < {}",
                        go_float(min)
                    ));
                }
                if let Some(max) = max.filter(|m| value > *m) {
                    return Err(format!(
                        "Halt {who} advancement {name} {value:.2} > {}",
                        go_float(max)
                    ));
                }
            } else {
                let t = metric.threshold.unwrap_or(0.0);
                if value > t {
                    return Err(format!(
                        "Halt {who} advancement {name} {value:.2} > {}",
                        go_float(t)
                    ));
                }
            }
        }
    }
    Ok(value)
}

/// The limits a metric is judged against, as `judge` applies them: the
/// `thresholdRange`, else the legacy `threshold` (a minimum for the
/// success rate, a maximum for everything else).
pub fn bounds(metric: &CanaryMetric) -> (Option<f64>, Option<f64>) {
    if let Some(r) = &metric.threshold_range {
        return (r.min, r.max);
    }
    match kind(metric) {
        MetricKind::SuccessRate => (metric.threshold, None),
        _ => (None, Some(metric.threshold.unwrap_or(0.0))),
    }
}

/// A float as Go's `%v` prints it for the values thresholds take
/// (`99`, `99.5`, `0.25`).
pub fn go_float(v: f64) -> String {
    format!("{v}")
}

/// A duration as Go's `time.Duration.String` prints it, to the
/// millisecond: `0s`, `432ms`, `1.5s`, `1m30s`, `1h0m0s`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_api::types::flagger::ThresholdRange;

    fn podinfo() -> Settings {
        let loaded = weft_api::load::load_bytes(
            "c.yaml",
            b"apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, maxWeight: 50, stepWeight: 10}\n",
        );
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        match &loaded.resources[0].spec {
            weft_api::resource::Spec::Canary(c) => Settings::of("podinfo", "test", c),
            _ => panic!("not a Canary"),
        }
    }

    fn metric(name: &str, min: Option<f64>, max: Option<f64>) -> CanaryMetric {
        CanaryMetric {
            name: name.into(),
            threshold_range: Some(ThresholdRange { min, max }),
            ..Default::default()
        }
    }

    #[test]
    fn the_success_rate_halts_below_its_minimum_in_flaggers_words() {
        let s = podinfo();
        let m = metric("request-success-rate", Some(99.0), None);
        assert_eq!(judge(&s, &m, "istio", Ok(99.5)), Ok(99.5));
        assert_eq!(
            judge(&s, &m, "istio", Ok(69.1666)),
            Err("Halt podinfo.test advancement success rate 69.17% < 99%".into())
        );
        assert_eq!(
            judge(&s, &m, "istio", Err(MetricError::NoValues("no values found".into()))),
            Err("Halt advancement no values found for istio metric request-success-rate probably podinfo.test is not receiving traffic: no values found".into())
        );
        let legacy = CanaryMetric {
            name: "request-success-rate".into(),
            threshold: Some(99.5),
            ..Default::default()
        };
        assert_eq!(
            judge(&s, &legacy, "istio", Ok(98.0)),
            Err("Halt podinfo.test advancement success rate 98.00% < 99.5%".into())
        );
    }

    #[test]
    fn the_duration_is_whole_milliseconds_printed_as_go_prints_durations() {
        let s = podinfo();
        let m = metric("request-duration", None, Some(500.0));
        assert_eq!(judge(&s, &m, "istio", Ok(499.9)), Ok(499.9));
        assert_eq!(
            judge(&s, &m, "istio", Ok(1532.7)),
            Err("Halt podinfo.test advancement request duration 1.532s > 500ms".into())
        );
        assert_eq!(
            judge(
                &s,
                &m,
                "istio",
                Err(MetricError::Failed("connection refused".into()))
            ),
            Err("Prometheus query failed: connection refused".into())
        );
    }

    #[test]
    fn custom_metrics_say_their_name() {
        let s = podinfo();
        let mut m = metric("404s percentage", None, Some(5.0));
        m.template_ref = Some(Default::default());
        assert_eq!(kind(&m), MetricKind::Template);
        assert_eq!(
            judge(&s, &m, "istio", Ok(7.25)),
            Err("Halt podinfo.test advancement 404s percentage 7.25 > 5".into())
        );
        assert_eq!(
            judge(&s, &m, "istio", Err(MetricError::NoValues("no values found".into()))),
            Err("Halt advancement no values found for custom metric: 404s percentage: no values found".into())
        );
        let none = CanaryMetric {
            name: "mystery".into(),
            ..Default::default()
        };
        assert_eq!(kind(&none), MetricKind::Unusable);
    }

    #[test]
    fn go_durations() {
        for (ms, want) in [
            (0, "0s"),
            (432, "432ms"),
            (1500, "1.5s"),
            (1532, "1.532s"),
            (60_000, "1m0s"),
            (90_250, "1m30.25s"),
            (3_600_000, "1h0m0s"),
        ] {
            assert_eq!(go_duration(Duration::from_millis(ms)), want);
        }
    }
}
