//! A canary's alerts, sent as Flagger's `alert` sends them: to each of
//! `analysis.alerts` whose severity admits the alert, through the
//! AlertProvider it names, with Flagger's payloads: Slack's (which Slack,
//! Rocket.Chat and Discord's Slack-compatible hooks take), a Microsoft
//! Teams message card, a Google Chat card. The address (and Slack's
//! token) may come from the provider's Secret, as in Flagger.

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

/// Flagger's Microsoft Teams message card.
pub fn teams_payload(s: &Settings, alert: &Alert, fields: &[(String, String)]) -> Value {
    let who = format!("{}.{}", s.name, s.namespace);
    json!({
        "@type": "MessageCard",
        "@context": "http://schema.org/extensions",
        "themeColor": if alert.severity == "error" { "FF0000" } else { "0076D7" },
        "summary": who,
        "sections": [{
            "activityTitle": alert.message,
            "activitySubtitle": who,
            "facts": fields
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect::<Vec<_>>(),
        }],
    })
}

/// Flagger's Google Chat card: the message, then a section per field.
pub fn gchat_payload(s: &Settings, alert: &Alert, fields: &[(String, String)]) -> Value {
    let paragraph = |text: String| json!({"widgets": [{"textParagraph": {"text": text}}]});
    let mut sections = vec![paragraph(format!(
        "<font color=#848484><strong>{}</strong></font>",
        alert.message
    ))];
    sections.extend(fields.iter().map(|(k, v)| {
        paragraph(format!(
            "{k}<br><font color=#848484><strong>{v}</strong></font>"
        ))
    }));
    json!({
        "cards": [{
            "header": {
                "title": "Flagger",
                "subtitle": format!("{}.{}", s.name, s.namespace),
                "imageUrl": "https://flagger.app/favicon.png",
            },
            "sections": sections,
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
        let slack = || slack_payload(s, channel, username, alert, &fields);
        // Only Slack's API takes the token (chat.postMessage).
        let (url, body, token) = match p.provider_type.as_str() {
            "slack" => (address.clone(), slack(), token.as_str()),
            "rocket" => (address.clone(), slack(), ""),
            // Discord takes Slack's payload at its hook's /slack path.
            "discord" if !address.ends_with("/slack") => (format!("{address}/slack"), slack(), ""),
            "discord" => (address.clone(), slack(), ""),
            "msteams" => (address.clone(), teams_payload(s, alert, &fields), ""),
            "gchat" => (address.clone(), gchat_payload(s, alert, &fields), ""),
            other => {
                failed.push(format!(
                    "alert provider {name}.{ns} error: provider {other} not supported"
                ));
                continue;
            }
        };
        if address.is_empty() {
            // Flagger's notifier without an address does nothing.
            continue;
        }
        if let Err(e) =
            super::checks::post_json(&url, &body.to_string(), token, Duration::from_secs(5))
        {
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

    fn settings() -> Settings {
        let text = "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: podinfo, namespace: test}\nspec:\n  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n  service: {port: 9898}\n  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}\n";
        let loaded = weft_api::load::load_bytes("canary.yaml", text.as_bytes());
        match &loaded.resources[0].spec {
            Spec::Canary(c) => Settings::of("podinfo", "test", c),
            _ => panic!("not a Canary"),
        }
    }

    /// The cards are Flagger's, field for field.
    #[test]
    fn teams_and_google_chat_get_flaggers_cards() {
        let s = settings();
        let alert = Alert {
            message: "Canary analysis failed".into(),
            metadata: true,
            severity: "error",
        };
        let fields = vec![("Target".to_owned(), "Deployment/podinfo.test".to_owned())];
        assert_eq!(
            teams_payload(&s, &alert, &fields),
            json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "themeColor": "FF0000",
                "summary": "podinfo.test",
                "sections": [{
                    "activityTitle": "Canary analysis failed",
                    "activitySubtitle": "podinfo.test",
                    "facts": [{"name": "Target", "value": "Deployment/podinfo.test"}],
                }],
            })
        );
        assert_eq!(
            gchat_payload(&s, &alert, &fields),
            json!({"cards": [{
                "header": {"title": "Flagger", "subtitle": "podinfo.test", "imageUrl": "https://flagger.app/favicon.png"},
                "sections": [
                    {"widgets": [{"textParagraph": {"text": "<font color=#848484><strong>Canary analysis failed</strong></font>"}}]},
                    {"widgets": [{"textParagraph": {"text": "Target<br><font color=#848484><strong>Deployment/podinfo.test</strong></font>"}}]},
                ],
            }]})
        );
        let info = Alert {
            severity: "info",
            ..alert
        };
        assert_eq!(teams_payload(&s, &info, &[])["themeColor"], "0076D7");
    }

    #[test]
    fn severities_reach_the_channels_that_asked() {
        assert!(admits("info", "warn"));
        assert!(admits("warn", "error"));
        assert!(admits("error", "error"));
        assert!(!admits("error", "warn"));
        assert!(!admits("warn", "info"));
    }
}
