//! Kyverno policies, checked as Kyverno's own admission checks them
//! before it takes one: each rule is named, matches something, and says
//! one thing to do. A rule weft does not run (image verification, a
//! mutate rule other than patchStrategicMerge, a generate rule other than
//! data or clone, CEL) is accepted with a warning that says so, so that
//! nobody believes a policy is in force that is not.

use super::Ctx;
use crate::path::FieldPath;
use crate::types::kyverno::{MatchResources, PolicySpec};

pub fn policy(ctx: &mut Ctx<'_>, p: &PolicySpec, spec: &FieldPath) {
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in p.rules.iter().enumerate() {
        let at = spec.key("rules").index(i);
        if rule.name.is_empty() {
            ctx.error(
                &at.key("name"),
                "a rule needs a name",
                "name the rule: its results are reported under it",
            );
        } else if !names.insert(rule.name.as_str()) {
            ctx.error(
                &at.key("name"),
                format!("rule name {:?} is used twice", rule.name),
                "give each rule of the policy its own name",
            );
        }
        if is_empty(&rule.match_) {
            ctx.error(
                &at.key("match"),
                "match cannot be empty",
                "say which resources the rule judges: match: {any: [{resources: {kinds: [Pod]}}]}",
            );
        }
        let generate_unsupported = rule
            .generate
            .as_ref()
            .is_some_and(|g| g.get("data").is_none() && g.get("clone").is_none());
        // weft runs patchStrategicMerge; not JSON patches, foreach
        // mutations or mutations of other resources (targets).
        let mutate_unsupported = rule
            .mutate
            .as_ref()
            .is_some_and(|m| m.get("patchStrategicMerge").is_none() || m.get("targets").is_some());
        for (field, what) in [
            (mutate_unsupported, "mutate"),
            (generate_unsupported, "generate"),
            (rule.verify_images.is_some(), "verifyImages"),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, what)| (at.key(what), what))
        {
            ctx.warn(
                &field,
                format!(
                    "weft does not run Kyverno's {what} rules{}: rule {:?} has no effect here",
                    match what {
                        "generate" => " other than data and clone",
                        "mutate" => " other than patchStrategicMerge on the resource itself",
                        _ => "",
                    },
                    rule.name
                ),
                match what {
                    "generate" => "describe the resource under generate.data, or copy one with generate.clone",
                    _ => "write the resources as they should be; weft's validate rules can refuse the ones that are not",
                },
            );
        }
        let Some(v) = &rule.validate else {
            continue;
        };
        let checks = [
            v.pattern.is_some(),
            v.any_pattern.is_some(),
            v.deny.is_some(),
            v.foreach.is_some(),
        ]
        .into_iter()
        .filter(|c| *c)
        .count();
        if checks > 1 {
            ctx.error(
                &at.key("validate"),
                "a validate rule has one of pattern, anyPattern, deny and foreach",
                "split the checks into rules of their own",
            );
        }
        for (present, what) in [
            (v.cel.is_some(), "cel"),
            (v.pod_security.is_some(), "podSecurity"),
            (v.manifests.is_some(), "manifests"),
            (v.assert.is_some(), "assert"),
        ] {
            if present && checks == 0 {
                ctx.warn(
                    &at.key("validate").key(what),
                    format!("weft does not evaluate validate.{what}: rule {:?} reports an error for every resource it matches (and refuses them under Enforce)", rule.name),
                    "write the check as a pattern, anyPattern, deny or foreach rule",
                );
            }
        }
    }
}

fn is_empty(m: &MatchResources) -> bool {
    m.any.is_empty()
        && m.all.is_empty()
        && m.resources.is_none()
        && m.subjects.is_none()
        && m.roles.is_none()
        && m.cluster_roles.is_none()
}
