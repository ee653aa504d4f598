//! The status Flagger records on a Canary (`status.phase`,
//! `canaryWeight`, `failedChecks`, `iterations`, the spec hashes,
//! `lastTransitionTime` and the `Promoted` condition), with the same
//! field names, so `kubectl get canary -o yaml` habits carry over.

use serde::{Deserialize, Serialize};

/// Flagger's canary phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Phase {
    /// Never looked at: the first tick initializes it.
    #[default]
    #[serde(rename = "")]
    New,
    Initializing,
    Initialized,
    Waiting,
    Progressing,
    WaitingPromotion,
    Promoting,
    Finalising,
    Succeeded,
    Failed,
    Terminating,
    Terminated,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::New => "",
            Phase::Initializing => "Initializing",
            Phase::Initialized => "Initialized",
            Phase::Waiting => "Waiting",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Promoting => "Promoting",
            Phase::Finalising => "Finalising",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Terminating => "Terminating",
            Phase::Terminated => "Terminated",
        }
    }

    /// `flagger_canary_status`, as Flagger sets it: 0 while progressing,
    /// 2 once failed, 1 otherwise.
    pub fn metric_value(self) -> u8 {
        match self {
            Phase::Progressing => 0,
            Phase::Failed => 2,
            _ => 1,
        }
    }
}

/// Flagger's `Promoted` condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub last_update_time: String,
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
}

/// A Canary's `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Status {
    pub phase: Phase,
    pub canary_weight: u32,
    pub failed_checks: u32,
    /// weft's: the metrics provider's failures in this run, counted apart
    /// from failed checks (`weft.dev/canary-provider-errors`).
    #[serde(skip_serializing_if = "is_zero")]
    pub provider_errors: u32,
    pub iterations: u32,
    /// The hash of the target's spec the current run is about.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_applied_spec: String,
    /// The hash of the spec the primary runs: going back to it by hand
    /// starts no run.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_promoted_spec: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_transition_time: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Session affinity (`analysis.sessionAffinity`): the cookie that
    /// holds a client on the canary during a run (`name=value`), the one
    /// of the last run (expired on sight), and the primary's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session_affinity_cookie: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub previous_session_affinity_cookie: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub primary_session_affinity_cookie: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Status {
    /// The `Promoted` condition's status, reason and message for a phase,
    /// as Flagger's `MakeStatusConditions` words them.
    fn promoted(phase: Phase, target_kind: &str) -> (&'static str, String) {
        match phase {
            Phase::New | Phase::Initializing => (
                "Unknown",
                format!("New {target_kind} detected, starting initialization."),
            ),
            Phase::Initialized => ("True", format!("{target_kind} initialization completed.")),
            Phase::Waiting | Phase::WaitingPromotion => ("Unknown", "Waiting for approval.".into()),
            Phase::Progressing => (
                "Unknown",
                "New revision detected, progressing canary analysis.".into(),
            ),
            Phase::Promoting => (
                "Unknown",
                "Canary analysis completed, starting primary rolling update.".into(),
            ),
            Phase::Finalising => (
                "Unknown",
                "Canary analysis completed, routing all traffic to primary.".into(),
            ),
            Phase::Succeeded => (
                "True",
                "Canary analysis completed successfully, promotion finished.".into(),
            ),
            Phase::Failed => (
                "False",
                format!("Canary analysis failed, {target_kind} scaled to zero."),
            ),
            Phase::Terminating | Phase::Terminated => (
                "Unknown",
                format!("New {target_kind} detected, starting initialization."),
            ),
        }
    }

    /// Sets the `Promoted` condition for `phase`, unless it already says
    /// the same (same status and reason); the transition time moves only
    /// when the condition's status does.
    pub fn set_condition(&mut self, phase: Phase, target_kind: &str, now: &str) {
        let (status, message) = Status::promoted(phase, target_kind);
        let current = self
            .conditions
            .iter()
            .find(|c| c.condition_type == "Promoted");
        if current.is_some_and(|c| c.status == status && c.reason == phase.as_str()) {
            return;
        }
        let transition = match current {
            Some(c) if c.status == status => c.last_transition_time.clone(),
            _ => now.to_owned(),
        };
        self.conditions = vec![Condition {
            condition_type: "Promoted".into(),
            status: status.into(),
            last_update_time: now.to_owned(),
            last_transition_time: transition,
            reason: phase.as_str().into(),
            message,
        }];
    }
}

/// Kubernetes' form of a time (`metav1.Time`): RFC 3339 in UTC, to the
/// second.
pub fn kube_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_reads_and_writes_flaggers_fields() {
        let text = r#"{"phase":"Progressing","canaryWeight":20,"failedChecks":1,"iterations":0,"lastAppliedSpec":"5d8b4c","lastPromotedSpec":"7f9c","lastTransitionTime":"2026-12-07T10:00:00Z"}"#;
        let s: Status = serde_json::from_str(text).unwrap();
        assert_eq!(s.phase, Phase::Progressing);
        assert_eq!(s.canary_weight, 20);
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
        let new: Status = serde_json::from_str("{}").unwrap();
        assert_eq!(new.phase, Phase::New);
    }

    #[test]
    fn the_promoted_condition_moves_its_transition_time_only_with_its_status() {
        let mut s = Status::default();
        s.set_condition(Phase::Progressing, "Deployment", "t1");
        s.set_condition(Phase::Promoting, "Deployment", "t2");
        let c = &s.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("Unknown", "Promoting")
        );
        assert_eq!(
            (c.last_transition_time.as_str(), c.last_update_time.as_str()),
            ("t1", "t2")
        );
        assert_eq!(
            c.message,
            "Canary analysis completed, starting primary rolling update."
        );
        s.set_condition(Phase::Failed, "Deployment", "t3");
        let c = &s.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.last_transition_time.as_str()),
            ("False", "t3")
        );
        assert_eq!(
            c.message,
            "Canary analysis failed, Deployment scaled to zero."
        );
    }

    #[test]
    fn kubernetes_time_is_rfc3339_to_the_second() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_796_650_000).unwrap();
        assert_eq!(kube_time(t), "2026-12-07T13:26:40Z");
    }
}
