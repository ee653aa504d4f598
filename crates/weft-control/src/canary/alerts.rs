//! A canary's alerts, sent as Flagger's `alert` sends them: to each of
//! `analysis.alerts` whose severity admits the alert, through the
//! AlertProvider it names, with Flagger's Slack payload (which Slack,
//! Rocket.Chat and Discord's Slack-compatible hooks take). The address
//! (and a token) may come from the provider's Secret, as in Flagger.

use std::time::Duration;

use serde_json::{json, Value};
use weft_api::resource::{Resource, Spec};
use weft_canary::machine::Alert;
use weft_canary::settings::{Settings, Strategy};

/// Whether an alert of `severity` goes to a channel that asked for
/// `wanted`: everything to `info`, errors to `warn` too.
fn admits(wanted: &str, severity: &str) -> bool {
    wanted == "info" || wanted == severity || (severity == "error" && wanted == "warn")
}

/// Flagger's `alertMetadata`.
fn metadata(s: &Settings, canary: &Value) -> Vec<(String, String)> {
    let analysis = &canary["spec"]["analysis"];
    let mut fields = vec![
        (
            "Target".to_owned(),
            format!("{}/{}.{}", s.target_kind, s.target, s.namespace),
        ),
        ("Failed checks threshold".into(), s.threshold.to_string()),
        (
            "Progress deadline".into(),
            format!("{}s", s.progress_deadline.as_secs()),
        ),
    ];
    let max = analysis["maxWeight"].as_u64().unwrap_or(0);
    match s.strategy {
        Strategy::AbTesting => fields.push(("Traffic routing".into(), "A/B Testing".into())),
        Strategy::BlueGreen => fields.push(("Traffic routing".into(), "Blue/Green".into())),
        Strategy::Canary if s.step_weight > 0 => fields.push((
            "Traffic routing".into(),
            format!("Weight step: {} max: {max}", s.step_weight),
        )),
        Strategy::Canary if !s.step_weights.is_empty() => fields.push((
            "Traffic routing".into(),
            format!(
                "Weight steps: {} max: {max}",
                s.step_weights
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )),
        Strategy::Canary => {}
    }
    fields
}

/// Flagger's Slack message.
pub fn slack_payload(
    s: &Settings,
    channel: &str,
    username: &str,
    alert: &Alert,
    fields: &[(String, String)],
) -> Value {
    json!({
        "channel": channel,
        "username": username,
        "icon_url": "",
        "icon_emoji": ":rocket:",
        "attachments": [{
            "color": if alert.severity == "error" { "danger" } else { "good" },
            "author_name": format!("{}.{}", s.name, s.namespace),
            "text": alert.message,
            "mrkdwn_in": ["text"],
            "fields": fields
                .iter()
                .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
                .collect::<Vec<_>>(),
        }],
    })
}

/// Sends `alert` to the canary's providers; what could not be sent is
/// returned as Flagger logs it.
pub fn send(s: &Settings, canary: &Value, resources: &[Resource], alert: &Alert) -> Vec<String> {
    let mut failed = Vec::new();
    let fields = if alert.metadata {
        metadata(s, canary)
    } else {
        Vec::new()
    };
    for a in canary["spec"]["analysis"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let wanted = a["severity"].as_str().unwrap_or("info");
        if !admits(wanted, alert.severity) {
            continue;
        }
        let name = a["providerRef"]["name"].as_str().unwrap_or_default();
        let ns = a["providerRef"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(&s.namespace);
        let provider = resources.iter().find_map(|r| match &r.spec {
            Spec::AlertProvider(p) if r.namespace() == ns && r.name() == name => Some(p),
            _ => None,
        });
        let Some(p) = provider else {
            failed.push(format!(
                "alert provider {name}.{ns} error: alertprovider.flagger.app \"{name}\" not found"
            ));
            continue;
        };
        let mut address = p.address.clone();
        let mut token = String::new();
        if let Some(secret) = p.secret_ref.as_ref().and_then(|r| r["name"].as_str()) {
            let found = resources.iter().find_map(|r| match &r.spec {
                Spec::Secret(sec) if r.namespace() == ns && r.name() == secret => Some(sec),
                _ => None,
            });
            let Some(sec) = found else {
                failed.push(format!(
                    "alert provider {name}.{ns} secretRef error: secrets \"{secret}\" not found"
                ));
                continue;
            };
            match sec.data.get("address") {
                Some(a) => address = String::from_utf8_lossy(a).into_owned(),
                None => {
                    failed.push(format!(
                        "alert provider {name}.{ns} secret does not contain an address"
                    ));
                    continue;
                }
            }
            if let Some(t) = sec.data.get("token") {
                token = String::from_utf8_lossy(t).into_owned();
            }
        }
        let username = if p.username.is_empty() {
            "flagger"
        } else {
            &p.username
        };
        let channel = if p.channel.is_empty() {
            "general"
        } else {
            &p.channel
        };
        let url = match p.provider_type.as_str() {
            "slack" | "rocket" => address.clone(),
            // Discord takes Slack's payload at its hook's /slack path.
            "discord" if !address.ends_with("/slack") => format!("{address}/slack"),
            "discord" => address.clone(),
            other => {
                failed.push(format!(
                    "alert provider {name}.{ns} error: weft sends slack, rocket and discord alerts; {other} is not supported yet"
                ));
                continue;
            }
        };
        let body = slack_payload(s, channel, username, alert, &fields).to_string();
        if let Err(e) = super::checks::post_json(&url, &body, &token, Duration::from_secs(5)) {
            failed.push(format!(
                "alert provider {name}.{ns} send error: postMessage failed: {e}"
            ));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_reach_the_channels_that_asked() {
        assert!(admits("info", "warn"));
        assert!(admits("warn", "error"));
        assert!(admits("error", "error"));
        assert!(!admits("error", "warn"));
        assert!(!admits("warn", "info"));
    }
}
