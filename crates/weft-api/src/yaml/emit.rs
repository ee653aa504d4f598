//! Writing YAML, for `proxy-config -o yaml` and golden files.

use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

fn convert(v: &serde_json::Value) -> Yaml {
    match v {
        serde_json::Value::Null => Yaml::Null,
        serde_json::Value::Bool(b) => Yaml::Boolean(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        serde_json::Value::String(s) => Yaml::String(s.clone()),
        serde_json::Value::Array(a) => Yaml::Array(a.iter().map(convert).collect()),
        serde_json::Value::Object(o) => {
            let mut h = Hash::new();
            for (k, v) in o {
                h.insert(Yaml::String(k.clone()), convert(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// Renders any serializable value as YAML (without the leading `---`).
pub fn to_yaml_string<T: serde::Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let json = serde_json::to_value(value)?;
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    // Emitting into a String cannot fail for values built from JSON.
    let _ = emitter.dump(&convert(&json));
    let body = out.strip_prefix("---\n").unwrap_or(&out).to_owned();
    Ok(body + "\n")
}

/// A node of a parsed document as JSON, scalars resolved by YAML 1.2's
/// core schema (for showing resources back to users, `weft get`).
pub fn node_to_json(tree: &crate::yaml::Tree, id: crate::yaml::NodeId) -> serde_json::Value {
    use crate::yaml::{Kind, Resolved};
    let node = tree.node(id);
    match &node.kind {
        Kind::Seq(items) => {
            serde_json::Value::Array(items.iter().map(|i| node_to_json(tree, *i)).collect())
        }
        Kind::Map(entries) => serde_json::Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        tree.scalar(*k).unwrap_or("").to_owned(),
                        node_to_json(tree, *v),
                    )
                })
                .collect(),
        ),
        Kind::Scalar { .. } => match node.resolve() {
            Some(Resolved::Null) | None => serde_json::Value::Null,
            Some(Resolved::Bool(b)) => serde_json::Value::Bool(b),
            Some(Resolved::Int(i)) => serde_json::Value::from(i),
            Some(Resolved::Float(f)) => serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Some(Resolved::Str(s)) => serde_json::Value::String(s.to_owned()),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_through_the_loader() {
        let v =
            serde_json::json!({"name": "x", "port": 9080, "flags": ["a", "true", "1"], "ok": true});
        let text = super::to_yaml_string(&v).unwrap();
        let docs = crate::yaml::parse_documents(&text, &Default::default()).unwrap();
        let t = &docs[0];
        assert_eq!(t.scalar(t.get(t.root_id(), "name").unwrap()), Some("x"));
        assert!(
            text.contains("\"true\"") || text.contains("'true'"),
            "{text}"
        );
    }
}
