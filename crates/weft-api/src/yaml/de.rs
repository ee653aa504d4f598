//! A serde `Deserializer` over a positioned [`Tree`].
//!
//! Typed resources are derived with serde, and every error a derived visitor
//! raises comes back with the line, column and field path of the node that
//! caused it. Unknown fields and enum values carry the list of valid names so
//! the diagnostic can suggest the one the user meant.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::diag::did_you_mean;
use crate::path::{FieldPath, PathRef};
use crate::yaml::tree::{Kind, Mark, NodeId, Resolved, Tree};

/// A typed-deserialization failure, positioned.
#[derive(Debug, Clone)]
pub struct DeError {
    pub message: String,
    pub fix: Option<String>,
    pub mark: Option<Mark>,
    pub path: Option<FieldPath>,
    /// Set by `missing_field`: the path is extended by it once known.
    missing: Option<&'static str>,
    /// Set for unknown fields: where the key itself was written.
    at_key: bool,
}

impl DeError {
    /// An error found outside the deserializer, at a known place.
    pub fn at(message: String, fix: Option<String>, mark: Mark, path: FieldPath) -> Self {
        DeError {
            message,
            fix,
            mark: Some(mark),
            path: Some(path),
            missing: None,
            at_key: false,
        }
    }

    fn plain(message: String) -> Self {
        DeError {
            message,
            fix: None,
            mark: None,
            path: None,
            missing: None,
            at_key: false,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{p}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

/// Turns serde's names for expected types into words a YAML author knows.
fn expected_words(exp: &dyn de::Expected) -> String {
    let raw = exp.to_string();
    match raw.as_str() {
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" => {
            format!("an integer ({raw})")
        }
        "f32" | "f64" => "a number".into(),
        "a boolean" | "bool" => "a boolean (true or false)".into(),
        "a string" | "string" => "a string".into(),
        "a sequence" => "a list".into(),
        "a map" => "a mapping".into(),
        _ => raw
            .strip_prefix("struct ")
            .map(|s| format!("a mapping ({s})"))
            .or_else(|| {
                raw.strip_prefix("enum ")
                    .map(|s| format!("one of the {s} values"))
            })
            .unwrap_or(raw),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::plain(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let expected = expected_words(exp);
        let mut e = DeError::plain(format!("expected {expected}, found {unexp}"));
        if expected == "a string" {
            e.fix = Some("quote the value, e.g. \"1\"; Kubernetes does not turn numbers or booleans into strings".into());
        } else if matches!(unexp, de::Unexpected::Str(_)) && expected.starts_with("an integer") {
            e.fix = Some("remove the quotes around the number".into());
        }
        e
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::plain(format!(
            "invalid value {unexp}: expected {}",
            expected_words(exp)
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::plain(format!("unknown field `{field}`"));
        e.at_key = true;
        e.fix = Some(match did_you_mean(field, expected) {
            Some(s) => format!(
                "did you mean `{s}`? valid fields here: {}",
                expected.join(", ")
            ),
            None => format!("valid fields here: {}", expected.join(", ")),
        });
        e
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut e = DeError::plain(format!("unknown value `{variant}`"));
        e.fix = Some(match did_you_mean(variant, expected) {
            Some(s) => format!(
                "did you mean `{s}`? expected one of: {}",
                expected.join(", ")
            ),
            None => format!("expected one of: {}", expected.join(", ")),
        });
        e
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::plain(format!("missing required field `{field}`"));
        e.missing = Some(field);
        e
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::plain(format!("field `{field}` is given twice"))
    }
}

/// Deserializes the node `id` of `tree` into `T`; `base` is the path of that
/// node inside its resource (e.g. `spec`).
pub fn from_node<'de, T: de::Deserialize<'de>>(
    tree: &'de Tree,
    id: NodeId,
    base: &FieldPath,
) -> Result<T, DeError> {
    let segs: Vec<String> = base
        .segments()
        .iter()
        .map(|s| match s {
            crate::path::Seg::Key(k) => k.clone(),
            crate::path::Seg::Index(i) => i.to_string(),
        })
        .collect();
    // Rebuild the base as a borrowed chain; bases are short (`spec`).
    fn chain<'a, T: de::Deserialize<'a>>(
        tree: &'a Tree,
        id: NodeId,
        segs: &[String],
        path: &PathRef<'_>,
    ) -> Result<T, DeError> {
        match segs.split_first() {
            None => T::deserialize(NodeDe { tree, id, path }),
            Some((first, rest)) => chain(tree, id, rest, &PathRef::Key(path, first)),
        }
    }
    chain(tree, id, &segs, &PathRef::Root)
}

#[derive(Clone, Copy)]
struct NodeDe<'de, 'p> {
    tree: &'de Tree,
    id: NodeId,
    path: &'p PathRef<'p>,
}

impl<'de> NodeDe<'de, '_> {
    fn place<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|mut e| {
            if e.mark.is_none() {
                let mut path = self.path.to_owned_path();
                if let Some(field) = e.missing.take() {
                    path = path.key(field);
                }
                e.mark = Some(self.tree.node(self.id).mark);
                e.path = Some(path);
            }
            e
        })
    }

    fn any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.tree.node(self.id);
        let r = match &node.kind {
            Kind::Seq(items) => visitor.visit_seq(SeqDe {
                tree: self.tree,
                items,
                next: 0,
                path: self.path,
            }),
            Kind::Map(entries) => visitor.visit_map(MapDe {
                tree: self.tree,
                entries,
                next: 0,
                path: self.path,
            }),
            Kind::Scalar { text, quoted } => match node.resolve() {
                Some(Resolved::Null) => visitor.visit_unit(),
                Some(Resolved::Bool(b)) => visitor.visit_bool(b),
                Some(Resolved::Int(i)) => visitor.visit_i64(i),
                Some(Resolved::Float(f)) => visitor.visit_f64(f),
                _ => {
                    let _ = quoted;
                    visitor.visit_borrowed_str(text.as_str())
                }
            },
        };
        self.place(r)
    }

    fn empty_if_null<V: Visitor<'de>>(self, visitor: V, as_map: bool) -> Result<V::Value, DeError> {
        if self.tree.node(self.id).is_null() {
            // Kubernetes treats `field:` (null) like an absent list or map.
            let r = if as_map {
                visitor.visit_map(MapDe {
                    tree: self.tree,
                    entries: &[],
                    next: 0,
                    path: self.path,
                })
            } else {
                visitor.visit_seq(SeqDe {
                    tree: self.tree,
                    items: &[],
                    next: 0,
                    path: self.path,
                })
            };
            return self.place(r);
        }
        self.any(visitor)
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'de, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.tree.node(self.id).is_null() {
            let r = visitor.visit_none();
            return self.place(r);
        }
        let r = visitor.visit_some(self);
        self.place(r)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.empty_if_null(visitor, false)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.empty_if_null(visitor, true)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.empty_if_null(visitor, true)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = visitor.visit_newtype_struct(self);
        self.place(r)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let node = self.tree.node(self.id);
        let r = match &node.kind {
            Kind::Scalar { text, .. } => visitor.visit_enum(text.as_str().into_deserializer()),
            _ => Err(DeError::plain(format!(
                "expected one of the allowed names, found {}",
                node.describe()
            ))),
        };
        self.place(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct SeqDe<'de, 'p> {
    tree: &'de Tree,
    items: &'de [NodeId],
    next: usize,
    path: &'p PathRef<'p>,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, DeError> {
        let Some(&id) = self.items.get(self.next) else {
            return Ok(None);
        };
        let path = PathRef::Index(self.path, self.next);
        self.next += 1;
        seed.deserialize(NodeDe {
            tree: self.tree,
            id,
            path: &path,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.next)
    }
}

struct MapDe<'de, 'p> {
    tree: &'de Tree,
    entries: &'de [(NodeId, NodeId)],
    next: usize,
    path: &'p PathRef<'p>,
}

impl<'de> de::MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(&(k, _)) = self.entries.get(self.next) else {
            return Ok(None);
        };
        let key = self.tree.scalar(k).unwrap_or("");
        let path = PathRef::Key(self.path, key);
        // Keys are strings whatever they look like (`80: ...` in a port map).
        let r = seed.deserialize(KeyDe {
            text: self.tree.scalar(k).unwrap_or(""),
        });
        NodeDe {
            tree: self.tree,
            id: k,
            path: &path,
        }
        .place(r)
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (k, v) = self.entries[self.next];
        self.next += 1;
        let key = self.tree.scalar(k).unwrap_or("");
        let path = PathRef::Key(self.path, key);
        seed.deserialize(NodeDe {
            tree: self.tree,
            id: v,
            path: &path,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.next)
    }
}

/// A mapping key: always a string, but numeric keys may be read as numbers
/// (PeerAuthentication's `portLevelMtls: {8080: ...}`).
struct KeyDe<'de> {
    text: &'de str,
}

impl<'de> de::Deserializer<'de> for KeyDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_borrowed_str(self.text)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text.parse::<u32>() {
            Ok(n) => visitor.visit_u32(n),
            Err(_) => Err(DeError::plain(format!(
                "expected a port number as the key, found {:?}",
                self.text
            ))),
        }
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.text.parse::<u16>() {
            Ok(n) => visitor.visit_u16(n),
            Err(_) => Err(DeError::plain(format!(
                "expected a port number (1-65535) as the key, found {:?}",
                self.text
            ))),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::tree::{parse_documents, Limits};
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Route {
        host: String,
        #[serde(default)]
        weight: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Spec {
        #[serde(default)]
        hosts: Vec<String>,
        #[serde(default)]
        route: Vec<Route>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[allow(clippy::upper_case_acronyms)]
    enum Mode {
        STRICT,
        PERMISSIVE,
    }

    fn load(text: &str) -> Result<Spec, DeError> {
        let docs = parse_documents(text, &Limits::default()).unwrap();
        from_node(&docs[0], docs[0].root_id(), &FieldPath::root().key("spec"))
    }

    #[test]
    fn reads_typed_values() {
        let s =
            load("hosts: [a]\nroute:\n- host: b\n  weight: 50\nlabels: {app: x}\nmode: STRICT\n")
                .unwrap();
        assert_eq!(s.route[0].weight, Some(50));
        assert_eq!(s.mode, Some(Mode::STRICT));
    }

    #[test]
    fn wrong_type_names_path_and_position() {
        let e = load("route:\n- host: b\n  weight: fifty\n").unwrap_err();
        assert_eq!(e.path.unwrap().to_string(), "spec.route[0].weight");
        assert_eq!(
            e.mark.unwrap(),
            Mark {
                line: 3,
                column: 11
            }
        );
        assert!(e.message.contains("expected an integer"), "{}", e.message);
    }

    #[test]
    fn unknown_field_suggests() {
        let e = load("route:\n- host: b\n  wieght: 5\n").unwrap_err();
        assert_eq!(e.path.unwrap().to_string(), "spec.route[0].wieght");
        assert_eq!(e.mark.unwrap().line, 3);
        assert!(e.fix.unwrap().contains("did you mean `weight`"));
    }

    #[test]
    fn missing_field_points_at_parent() {
        let e = load("route:\n- weight: 5\n").unwrap_err();
        assert_eq!(e.path.unwrap().to_string(), "spec.route[0].host");
        assert_eq!(e.mark.unwrap().line, 2);
    }

    #[test]
    fn numbers_are_not_strings() {
        let e = load("labels: {version: 1}\n").unwrap_err();
        assert_eq!(e.path.unwrap().to_string(), "spec.labels.version");
        assert!(e.fix.unwrap().contains("quote"));
    }

    #[test]
    fn unknown_enum_value_suggests() {
        let e = load("mode: STRICTT\n").unwrap_err();
        assert!(e.fix.unwrap().contains("did you mean `STRICT`"));
    }

    #[test]
    fn null_lists_are_empty() {
        let s = load("hosts:\nroute: ~\n").unwrap();
        assert!(s.hosts.is_empty() && s.route.is_empty());
    }
}
