//! Flagger's metric query templates (`observers.RenderQuery`): Go's
//! `text/template` with one function per model field (`{{ name }}`,
//! `{{ namespace }}`, `{{ target }}`, `{{ service }}`, `{{ ingress }}`,
//! `{{ route }}`, `{{ interval }}`) and `{{ variables.KEY }}`, a missing
//! key being an error (`missingkey=error`). Queries use nothing else;
//! anything else is refused with the reason rather than passed on.

use std::collections::BTreeMap;

/// What a query is rendered with (Flagger's `MetricTemplateModel`).
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub name: String,
    pub namespace: String,
    pub target: String,
    pub service: String,
    pub ingress: String,
    pub route: String,
    pub interval: String,
    pub variables: BTreeMap<String, String>,
}

/// The query with every action replaced, or Flagger's error.
pub fn render(query: &str, m: &Model) -> Result<String, String> {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    let line_of = |consumed: usize| query[..consumed].matches('\n').count() + 1;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let at = query.len() - rest.len() + open;
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(format!(
                "template parsing failed: template: tmpl:{}: unclosed action",
                line_of(at)
            ));
        };
        let mut action = &after[..close];
        // `{{-` and `-}}` trim the text beside them.
        if let Some(a) = action.strip_prefix('-') {
            action = a;
            let trimmed = out.trim_end().len();
            out.truncate(trimmed);
        }
        let trim_after = action.ends_with('-');
        let action = action.trim_end_matches('-').trim();
        let value = match action {
            "name" => m.name.clone(),
            "namespace" => m.namespace.clone(),
            "target" => m.target.clone(),
            "service" => m.service.clone(),
            "ingress" => m.ingress.clone(),
            "route" => m.route.clone(),
            "interval" => m.interval.clone(),
            a if a.starts_with("variables.") => {
                let key = &a["variables.".len()..];
                match m.variables.get(key) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(format!(
                            "template excution failed: template: tmpl:{}: executing \"tmpl\" at <variables.{key}>: map has no entry for key \"{key}\"",
                            line_of(at)
                        ))
                    }
                }
            }
            a => {
                let word = a.split_whitespace().next().unwrap_or(a);
                return Err(format!(
                    "template parsing failed: template: tmpl:{}: function \"{word}\" not defined",
                    line_of(at)
                ));
            }
        };
        out.push_str(&value);
        rest = &after[close + 2..];
        if trim_after {
            rest = rest.trim_start();
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Flagger's built-in Istio queries, by metric name.
pub fn istio_query(metric: &str) -> Option<&'static str> {
    match metric {
        "request-success-rate" => Some(
            r#"sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}",response_code!~"5.*"}[{{ interval }}])) / sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) * 100"#,
        ),
        "request-duration" => Some(
            r#"histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="{{ namespace }}",destination_workload=~"{{ target }}"}[{{ interval }}])) by (le))"#,
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            name: "podinfo".into(),
            namespace: "test".into(),
            target: "podinfo".into(),
            service: "podinfo".into(),
            ingress: "podinfo".into(),
            route: "podinfo".into(),
            interval: "1m".into(),
            variables: [("direction".to_owned(), "inbound".to_owned())].into(),
        }
    }

    #[test]
    fn flaggers_variables_are_rendered() {
        let q = render(
            "sum(rate(x{ns=\"{{ namespace }}\", w=~\"{{target}}\", d=\"{{ variables.direction }}\"}[{{ interval }}]))",
            &model(),
        )
        .unwrap();
        assert_eq!(
            q,
            "sum(rate(x{ns=\"test\", w=~\"podinfo\", d=\"inbound\"}[1m]))"
        );
        assert_eq!(render("a {{- name -}} b", &model()).unwrap(), "apodinfob");
        let istio = render(istio_query("request-success-rate").unwrap(), &model()).unwrap();
        assert!(istio.contains("destination_workload=~\"podinfo\"") && istio.contains("[1m]"));
    }

    #[test]
    fn unknown_variables_and_functions_are_go_templates_errors() {
        assert_eq!(
            render("x{a=\"{{ variables.app }}\"}", &model()).unwrap_err(),
            "template excution failed: template: tmpl:1: executing \"tmpl\" at <variables.app>: map has no entry for key \"app\""
        );
        assert_eq!(
            render("\n{{ cluster }}", &model()).unwrap_err(),
            "template parsing failed: template: tmpl:2: function \"cluster\" not defined"
        );
        assert!(render("{{ name ", &model())
            .unwrap_err()
            .contains("unclosed action"));
    }
}
