//! `weft canary promote|abort|retry|pause|resume`: manual control over a
//! canary, mapped onto Flagger's own gates so the Canary YAML stays
//! Flagger's. Pausing closes a gate before every traffic increase and
//! promotion; promoting opens the confirm gates the canary waits at;
//! aborting signals a rollback as a rollback webhook would; retrying
//! starts the failed revision again without touching its spec.

use weft_api::types::flagger::CanaryWebhook;

/// A user's request for one canary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Promote,
    Abort,
    Retry,
    Pause,
    Resume,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "promote" => Action::Promote,
            "abort" => Action::Abort,
            "retry" => Action::Retry,
            "pause" => Action::Pause,
            "resume" => Action::Resume,
            _ => return None,
        })
    }
}

/// What a user asked of one canary and has not been used up yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Manual {
    pub promote: bool,
    pub abort: bool,
    pub paused: bool,
    /// Start the failed revision again at the next tick.
    pub retry: bool,
}

/// The scheme of the gates weft adds; never sent over the network.
pub const SCHEME: &str = "weft:";

impl Manual {
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Promote => {
                self.promote = true;
                self.paused = false;
            }
            Action::Abort => self.abort = true,
            Action::Retry => self.retry = true,
            Action::Pause => self.paused = true,
            Action::Resume => self.paused = false,
        }
    }

    /// The gates these requests add to the canary's own webhooks.
    pub fn gates(&self) -> Vec<CanaryWebhook> {
        let gate = |name: &str, kind: &str| CanaryWebhook {
            name: name.into(),
            hook_type: kind.into(),
            url: format!("{SCHEME}{name}"),
            ..Default::default()
        };
        let mut out = Vec::new();
        if self.abort {
            out.push(gate("weft canary abort", "rollback"));
        }
        if self.paused {
            out.push(gate("weft canary pause", "confirm-traffic-increase"));
            out.push(gate("weft canary pause", "confirm-promotion"));
        }
        out
    }

    /// The answer of one of weft's gates, or of a user's gate this
    /// request overrides; `None` when the webhook is to be called.
    pub fn answer(&self, hook: &CanaryWebhook) -> Option<Result<(), String>> {
        if hook.url.starts_with(SCHEME) {
            return Some(match hook.hook_type.as_str() {
                // A rollback hook that answers 2xx asks for a rollback.
                "rollback" if self.abort => Ok(()),
                _ if self.paused => Err("paused by weft canary pause".into()),
                _ => Ok(()),
            });
        }
        let confirm = matches!(
            hook.hook_type.as_str(),
            "confirm-rollout" | "confirm-promotion" | "confirm-traffic-increase"
        );
        (self.promote && confirm).then_some(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pausing_closes_the_traffic_and_promotion_gates_and_promoting_opens_the_users() {
        let mut m = Manual::default();
        m.apply(Action::Pause);
        let gates = m.gates();
        assert_eq!(
            gates
                .iter()
                .map(|g| g.hook_type.as_str())
                .collect::<Vec<_>>(),
            ["confirm-traffic-increase", "confirm-promotion"]
        );
        assert!(matches!(m.answer(&gates[0]), Some(Err(_))));
        let users = CanaryWebhook {
            name: "gate".into(),
            hook_type: "confirm-promotion".into(),
            url: "http://loadtester/gate/check".into(),
            ..Default::default()
        };
        assert_eq!(m.answer(&users), None, "the user's gate is asked");
        m.apply(Action::Promote);
        assert!(!m.paused, "promoting resumes");
        assert_eq!(m.answer(&users), Some(Ok(())));
        m.apply(Action::Abort);
        let abort = &m.gates()[0];
        assert_eq!(abort.hook_type, "rollback");
        assert_eq!(m.answer(abort), Some(Ok(())));
        assert_eq!(Action::parse("resume"), Some(Action::Resume));
        assert_eq!(Action::parse("skip"), None);
    }
}
