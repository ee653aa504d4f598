//! weft knows every field Istio serves: each field of every served version
//! of the Istio kinds, as Istio's own CRDs list them
//! (`istio-fields.txt`, written by `scripts/istio-fields` from istio/istio
//! at the tag its first line names), is accepted in a resource of that
//! version. Accepted means no schema error: weft acts on it, or warns
//! that it does not (WEFT0006); a value weft's validation then rejects is
//! another test's business.

use weft_api::diag::{codes, Severity};
use weft_api::load::load_bytes;

/// One line of the list: where the field is, its type, and what a valid
/// value needs.
struct Field<'a> {
    api_version: &'a str,
    kind: &'a str,
    path: &'a str,
    ty: &'a str,
    hint: &'a str,
}

fn fields() -> Vec<Field<'static>> {
    include_str!("istio-fields.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            let mut next = || w.next().unwrap_or_default();
            Field {
                api_version: next(),
                kind: next(),
                path: next(),
                ty: next(),
                hint: next(),
            }
        })
        .collect()
}

/// Values of `f`'s type that Istio would take, as JSON (which is YAML):
/// every one of an enum's, one of anything else.
fn leaves_of(f: &Field<'_>) -> Vec<String> {
    if let Some(values) = f.hint.strip_prefix("enum=") {
        return values
            .split('|')
            .map(|v| match f.ty {
                "integer" => v.to_owned(),
                _ => format!("{v:?}"),
            })
            .collect();
    }
    vec![leaf(f)]
}

fn leaf(f: &Field<'_>) -> String {
    match (f.ty, f.hint) {
        (_, "duration") => "\"5s\"".into(),
        ("integer", h) => {
            let min = h
                .strip_prefix("min=")
                .and_then(|m| m.parse::<i64>().ok())
                .unwrap_or(1);
            min.max(1).to_string()
        }
        ("number", _) => "50".into(),
        ("boolean", _) => "true".into(),
        ("object", _) => "{}".into(),
        ("string", "format=byte") => "\"aGVsbG8=\"".into(),
        // Many strings are durations without a rule that says so; "5s"
        // is a fine string for the others.
        _ => "\"5s\"".into(),
    }
}

/// The spec that holds `f` and nothing else: `spec.http[].timeout` is
/// `{"http": [{"timeout": "5s"}]}`.
fn spec_with(f: &Field<'_>, leaf: &str) -> String {
    let mut value = leaf.to_owned();
    let rest = f.path.strip_prefix("spec").unwrap_or(f.path);
    // Segments from the leaf up: `.name`, `[]` or `{}`.
    let mut segments = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        if let Some(r) = s.strip_suffix("[]") {
            segments.push("[]".to_owned());
            s = r;
        } else if let Some(r) = s.strip_suffix("{}") {
            segments.push("{}".to_owned());
            s = r;
        } else {
            let at = s.rfind(['.', ']', '}']).unwrap_or(0);
            let (head, name) = if s.as_bytes()[at] == b'.' {
                (&s[..at], &s[at + 1..])
            } else {
                (&s[..at + 1], &s[at + 1..])
            };
            segments.push(format!(".{name}"));
            s = head;
        }
    }
    for seg in segments {
        value = match seg.as_str() {
            "[]" => format!("[{value}]"),
            // Some maps are keyed by port: a port is a fine key for all.
            "{}" => format!("{{\"8080\": {value}}}"),
            name => format!("{{{:?}: {value}}}", &name[1..]),
        };
    }
    value
}

/// Whether `path` is a leaf: no other field is under it.
fn leaves<'a>(all: &'a [Field<'static>]) -> Vec<&'a Field<'static>> {
    all.iter()
        .enumerate()
        .filter(|(i, f)| {
            all.get(i + 1).is_none_or(|next| {
                !(next.api_version == f.api_version
                    && next.kind == f.kind
                    && next
                        .path
                        .strip_prefix(f.path)
                        .is_some_and(|rest| rest.starts_with(['.', '[', '{'])))
            })
        })
        .map(|(_, f)| f)
        .collect()
}

/// Fields Istio's schema serves and its webhook refuses whatever their
/// value ("not supported yet"): weft's validation refuses them too, so
/// they are neither acted on nor warned about.
const REFUSED_BY_ISTIO: &[&str] = &[
    "VirtualService spec.http[].fault.abort.http2Error",
    "VirtualService spec.http[].fault.delay.exponentialDelay",
];

#[test]
fn every_field_istio_serves_is_accepted() {
    let all = fields();
    let header = include_str!("istio-fields.txt")
        .lines()
        .next()
        .unwrap_or_default();
    assert!(
        header.contains("Istio 1."),
        "the list names its Istio: {header}"
    );
    let leaves = leaves(&all);
    assert!(leaves.len() > 1500, "{} leaves", leaves.len());
    let mut refused = Vec::new();
    // Fields accepted without a WEFT0006 warning: each must be one the
    // compiler reads (`istio-fields-acted.txt`).
    let mut silent = std::collections::BTreeSet::new();
    for (f, value) in leaves
        .iter()
        .flat_map(|f| leaves_of(f).into_iter().map(move |v| (f, v)))
    {
        let doc = format!(
            "{{\"apiVersion\": {:?}, \"kind\": {:?}, \"metadata\": {{\"name\": \"t\", \"namespace\": \"default\"}}, \"spec\": {}}}\n",
            f.api_version,
            f.kind,
            spec_with(f, &value)
        );
        let loaded = load_bytes("field.yaml", doc.as_bytes());
        let schema: Vec<String> = loaded
            .diagnostics
            .iter()
            .filter(|d| {
                d.severity == Severity::Error
                    && (d.code == codes::SCHEMA || d.code == codes::UNKNOWN_KIND)
            })
            .map(|d| d.message.clone())
            .collect();
        if schema.is_empty()
            && !REFUSED_BY_ISTIO.contains(&format!("{} {}", f.kind, f.path).as_str())
            && !loaded
                .diagnostics
                .iter()
                .any(|d| d.code == codes::UNIMPLEMENTED)
        {
            silent.insert(format!("{} {}", f.kind, f.path));
        }
        if !schema.is_empty() {
            refused.push(format!(
                "{} {} {}: {}\n    {doc}",
                f.api_version,
                f.kind,
                f.path,
                schema.join("; ")
            ));
        }
    }
    assert!(
        refused.is_empty(),
        "{} of {} Istio fields are refused:\n{}",
        refused.len(),
        leaves.len(),
        refused.join("\n")
    );
    let acted_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/istio-fields-acted.txt");
    if std::env::var_os("UPDATE_ACTED").is_some() {
        let mut text = String::from(
            "# Istio fields weft accepts without a WEFT0006 warning because the compiler\n\
             # reads them (kind, path), checked by tests/istio_fields.rs. A field is here\n\
             # only if weft acts on it; otherwise it belongs in validate/unimplemented.rs.\n",
        );
        for f in &silent {
            text.push_str(f);
            text.push('\n');
        }
        std::fs::write(acted_path, text).expect("writes the acted-on list");
        return;
    }
    let acted: std::collections::BTreeSet<String> = include_str!("istio-fields-acted.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    let unexplained: Vec<&String> = silent.difference(&acted).collect();
    assert!(
        unexplained.is_empty(),
        "{} Istio fields are accepted with neither a WEFT0006 warning nor a place on the acted-on list: act on each and add it to istio-fields-acted.txt (UPDATE_ACTED=1), or add it to validate/unimplemented.rs:\n{}",
        unexplained.len(),
        unexplained.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    let stale: Vec<&String> = acted.difference(&silent).collect();
    assert!(
        stale.is_empty(),
        "istio-fields-acted.txt names fields that now warn or are gone (UPDATE_ACTED=1 rewrites it):\n{}",
        stale.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
}
