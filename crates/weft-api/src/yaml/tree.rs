//! A YAML (and therefore JSON) document parsed into a tree whose every node
//! knows where it came from.
//!
//! serde-based YAML crates keep a position only for the first error they hit.
//! weft needs a position for *every* field, because cross-field validation
//! ("weights sum to 100") happens after deserialization and must still point
//! at the line the user wrote. The tree is built from yaml-rust2's event
//! stream, which already carries a marker on every event.
//!
//! Building is bounded: file size, nesting depth and the size of the tree
//! after alias expansion all have limits, so hostile input (alias bombs,
//! 10 MB documents, deep nesting) fails fast with a clear error.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Upper bounds on what one file may cost to load.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes in one file. Kubernetes itself refuses objects over 1.5 MiB.
    pub max_file_bytes: usize,
    /// Nesting depth of mappings and sequences.
    pub max_depth: usize,
    /// Nodes in one document counted after alias expansion.
    pub max_expanded_nodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 4 * 1024 * 1024,
            max_depth: 64,
            max_expanded_nodes: 1_000_000,
        }
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Mark {
    pub line: u32,
    pub column: u32,
}

impl Mark {
    fn from_marker(m: &Marker) -> Mark {
        Mark {
            line: u32::try_from(m.line()).unwrap_or(u32::MAX),
            column: u32::try_from(m.col() + 1).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Index of a node inside its [`Tree`].
pub type NodeId = u32;

#[derive(Debug, Clone)]
pub enum Kind {
    /// A scalar with its text and whether it was quoted (quoted scalars are
    /// always strings; plain ones resolve to null, bool, int, float or string).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<NodeId>),
    /// Keys are kept in the order written.
    Map(Vec<(NodeId, NodeId)>),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub mark: Mark,
    pub kind: Kind,
}

/// What a plain or quoted scalar means under YAML 1.2's core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        match &self.kind {
            Kind::Scalar { text, quoted: true } => Some(Resolved::Str(text)),
            Kind::Scalar {
                text,
                quoted: false,
            } => Some(resolve_plain(text)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Some(Resolved::Null))
    }

    /// A short description of what this node is, for "expected X, found Y".
    pub fn describe(&self) -> String {
        match self.resolve() {
            Some(Resolved::Null) => "null".into(),
            Some(Resolved::Bool(b)) => format!("boolean `{b}`"),
            Some(Resolved::Int(i)) => format!("integer `{i}`"),
            Some(Resolved::Float(x)) => format!("number `{x}`"),
            Some(Resolved::Str(s)) => format!("string {s:?}"),
            None => match self.kind {
                Kind::Seq(_) => "a list".into(),
                _ => "a mapping".into(),
            },
        }
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Resolved::Int(i);
    }
    let looks_numeric = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && text.bytes().any(|b| b.is_ascii_digit());
    if looks_numeric {
        if let Ok(f) = text.parse::<f64>() {
            return Resolved::Float(f);
        }
    }
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        _ => Resolved::Str(text),
    }
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = digits.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i64>().ok()?
    };
    Some(if neg { -value } else { value })
}

/// One YAML document: an arena of nodes and the id of its root.
#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
    root: NodeId,
}

impl Tree {
    /// Kubernetes' YAML parser (go-yaml v2) ends a plain scalar at a `:`
    /// only when a space or a line break follows it, also inside `[...]`;
    /// YAML 1.2 (yaml-rust2) ends it at a `:` followed by `,` or `]` too.
    /// So `addresses: [127.0.0.1, 2001:db8::]` is two addresses to kubectl
    /// (and in Istio's own valid examples) but an address and the mapping
    /// `{"2001:db8:": null}` here. Such a mapping, a list item whose only
    /// key is a plain scalar written right before `:` and `,` or `]`, is
    /// read back as the scalar Kubernetes sees.
    fn read_colons_as_kubernetes_does(&mut self, text: &str) {
        let mut lines: Option<Vec<&str>> = None;
        let items: Vec<NodeId> = self
            .nodes
            .iter()
            .filter_map(|n| match &n.kind {
                Kind::Seq(items) => Some(items.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        for item in items {
            let Kind::Map(entries) = &self.node(item).kind else {
                continue;
            };
            let [(k, v)] = entries.as_slice() else {
                continue;
            };
            let (key, value) = (self.node(*k), self.node(*v));
            let Kind::Scalar {
                text: key_text,
                quoted: false,
            } = &key.kind
            else {
                continue;
            };
            if !value.is_null() || key_text.contains('\n') {
                continue;
            }
            let lines = lines.get_or_insert_with(|| text.lines().collect());
            let Some(line) = lines.get(key.mark.line.saturating_sub(1) as usize) else {
                continue;
            };
            let after: String = line
                .chars()
                .skip(key.mark.column.saturating_sub(1) as usize)
                .collect();
            let Some(rest) = after.strip_prefix(key_text.as_str()) else {
                continue;
            };
            if rest.starts_with(":,") || rest.starts_with(":]") {
                let mark = self.node(item).mark;
                self.nodes[item as usize] = Node {
                    mark,
                    kind: Kind::Scalar {
                        text: format!("{key_text}:"),
                        quoted: false,
                    },
                };
            }
        }
    }

    pub fn root(&self) -> &Node {
        self.node(self.root)
    }

    pub fn root_id(&self) -> NodeId {
        self.root
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The value under `key` if `id` is a mapping that has it.
    pub fn get(&self, id: NodeId, key: &str) -> Option<NodeId> {
        match &self.node(id).kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| self.scalar(*k) == Some(key))
                .map(|(_, v)| *v),
            _ => None,
        }
    }

    /// The key node for `key` (its position is where the user typed the key).
    pub fn get_key(&self, id: NodeId, key: &str) -> Option<NodeId> {
        match &self.node(id).kind {
            Kind::Map(entries) => entries
                .iter()
                .find(|(k, _)| self.scalar(*k) == Some(key))
                .map(|(k, _)| *k),
            _ => None,
        }
    }

    /// The node as JSON, as Kubernetes turns YAML into its objects:
    /// scalars by YAML 1.2's core schema, keys as strings.
    pub fn to_json(&self, id: NodeId) -> serde_json::Value {
        use serde_json::Value;
        let node = self.node(id);
        match &node.kind {
            Kind::Seq(items) => Value::Array(items.iter().map(|i| self.to_json(*i)).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let key = match self.node(*k).resolve() {
                            Some(Resolved::Str(s)) => s.to_owned(),
                            _ => self.scalar(*k).unwrap_or_default().to_owned(),
                        };
                        (key, self.to_json(*v))
                    })
                    .collect(),
            ),
            Kind::Scalar { .. } => match node.resolve() {
                Some(Resolved::Bool(b)) => Value::Bool(b),
                Some(Resolved::Int(i)) => Value::from(i),
                Some(Resolved::Float(f)) => serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
                Some(Resolved::Str(s)) => Value::String(s.to_owned()),
                Some(Resolved::Null) | None => Value::Null,
            },
        }
    }

    pub fn scalar(&self, id: NodeId) -> Option<&str> {
        match &self.node(id).kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Why a document could not be turned into a tree.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
    pub fix: Option<String>,
}

impl SyntaxError {
    fn new(mark: Mark, message: impl Into<String>, fix: Option<&str>) -> Self {
        SyntaxError {
            mark,
            message: message.into(),
            fix: fix.map(str::to_owned),
        }
    }
}

/// Parses every document of a YAML stream. A document that is empty (a bare
/// `---`) yields no tree.
pub fn parse_documents(text: &str, limits: &Limits) -> Result<Vec<Tree>, SyntaxError> {
    if text.len() > limits.max_file_bytes {
        return Err(SyntaxError::new(
            Mark { line: 1, column: 1 },
            format!(
                "file is {} bytes; weft reads at most {} bytes per file",
                text.len(),
                limits.max_file_bytes
            ),
            Some("split the resources across several files (Kubernetes itself stores at most 1.5 MiB per object)"),
        ));
    }
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut builder: Option<Builder> = None;
    loop {
        let (event, marker) = parser.next_token().map_err(|e| {
            if e.info().contains("recursion limit") {
                return SyntaxError::new(
                    Mark::from_marker(e.marker()),
                    "nesting is too deep for a resource",
                    Some("no weft or Istio resource nests this deep; check the file is what you meant to load"),
                );
            }
            SyntaxError::new(
                Mark::from_marker(e.marker()),
                format!("YAML syntax error: {}", e.info()),
                Some("check indentation and quoting around this position"),
            )
        })?;
        let mark = Mark::from_marker(&marker);
        match event {
            Event::StreamStart | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => builder = Some(Builder::new(*limits)),
            Event::DocumentEnd => {
                if let Some(b) = builder.take() {
                    if let Some(mut tree) = b.finish() {
                        tree.read_colons_as_kubernetes_does(text);
                        docs.push(tree);
                    }
                }
            }
            other => {
                let b = builder.get_or_insert_with(|| Builder::new(*limits));
                b.event(other, mark)?;
            }
        }
    }
    Ok(docs)
}

struct Open {
    mark: Mark,
    anchor: usize,
    is_map: bool,
    children: Vec<NodeId>,
    size: u64,
    seen_keys: HashMap<String, Mark>,
}

struct Builder {
    limits: Limits,
    nodes: Vec<Node>,
    /// Expanded size (nodes after alias expansion) of every node.
    sizes: Vec<u64>,
    anchors: HashMap<usize, NodeId>,
    stack: Vec<Open>,
    root: Option<NodeId>,
}

impl Builder {
    fn new(limits: Limits) -> Self {
        Builder {
            limits,
            nodes: Vec::new(),
            sizes: Vec::new(),
            anchors: HashMap::new(),
            stack: Vec::new(),
            root: None,
        }
    }

    fn finish(self) -> Option<Tree> {
        let root = self.root?;
        if self.nodes[root as usize].is_null() {
            return None;
        }
        Some(Tree {
            nodes: self.nodes,
            root,
        })
    }

    fn push_node(&mut self, node: Node, size: u64) -> Result<NodeId, SyntaxError> {
        let id = NodeId::try_from(self.nodes.len())
            .map_err(|_| SyntaxError::new(node.mark, "document has too many nodes", None))?;
        self.nodes.push(node);
        self.sizes.push(size);
        Ok(id)
    }

    fn event(&mut self, event: Event, mark: Mark) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                check_tag(tag.as_ref(), mark)?;
                let quoted = !matches!(style, TScalarStyle::Plain);
                let id = self.push_node(
                    Node {
                        mark,
                        kind: Kind::Scalar { text, quoted },
                    },
                    1,
                )?;
                self.register(anchor, id);
                self.attach(id)
            }
            Event::Alias(anchor) => {
                let id = *self.anchors.get(&anchor).ok_or_else(|| {
                    SyntaxError::new(mark, "alias refers to an unknown or enclosing anchor", None)
                })?;
                self.attach(id)
            }
            Event::SequenceStart(anchor, ref tag) | Event::MappingStart(anchor, ref tag) => {
                check_tag(tag.as_ref(), mark)?;
                if self.stack.len() >= self.limits.max_depth {
                    return Err(SyntaxError::new(
                        mark,
                        format!("nesting is deeper than {} levels", self.limits.max_depth),
                        Some("no weft or Istio resource nests this deep; check the file is what you meant to load"),
                    ));
                }
                let is_map = matches!(event, Event::MappingStart(..));
                self.stack.push(Open {
                    mark,
                    anchor,
                    is_map,
                    children: Vec::new(),
                    size: 1,
                    seen_keys: HashMap::new(),
                });
                Ok(())
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let open = self
                    .stack
                    .pop()
                    .ok_or_else(|| SyntaxError::new(mark, "unbalanced collection end", None))?;
                // yaml-rust2 marks a block mapping after its first key;
                // the first child is where the user sees it start.
                let start = open
                    .children
                    .first()
                    .map_or(open.mark, |c| open.mark.min(self.nodes[*c as usize].mark));
                let kind = if open.is_map {
                    Kind::Map(
                        open.children
                            .chunks_exact(2)
                            .map(|kv| (kv[0], kv[1]))
                            .collect(),
                    )
                } else {
                    Kind::Seq(open.children)
                };
                let id = self.push_node(Node { mark: start, kind }, open.size)?;
                self.register(open.anchor, id);
                self.attach(id)
            }
            _ => Ok(()),
        }
    }

    fn register(&mut self, anchor: usize, id: NodeId) {
        if anchor != 0 {
            self.anchors.insert(anchor, id);
        }
    }

    fn attach(&mut self, id: NodeId) -> Result<(), SyntaxError> {
        let size = self.sizes[id as usize];
        let limit = self.limits.max_expanded_nodes;
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(id);
            return Ok(());
        };
        parent.size = parent.size.saturating_add(size);
        if parent.size > limit {
            return Err(SyntaxError::new(
                parent.mark,
                format!("document expands to more than {limit} nodes through aliases"),
                Some("this looks like a YAML alias bomb; write the values out instead of nesting aliases"),
            ));
        }
        if parent.is_map && parent.children.len() % 2 == 0 {
            let node = &self.nodes[id as usize];
            let key = match &node.kind {
                Kind::Scalar { text, .. } => text.clone(),
                _ => {
                    return Err(SyntaxError::new(
                        node.mark,
                        "mapping keys must be plain strings",
                        Some("use a string key such as `name:`"),
                    ))
                }
            };
            if let Some(first) = parent.seen_keys.get(&key) {
                return Err(SyntaxError::new(
                    node.mark,
                    format!(
                        "duplicate key `{key}` (first defined at line {})",
                        first.line
                    ),
                    Some("remove one of the two entries; YAML would silently keep only the last"),
                ));
            }
            parent.seen_keys.insert(key, node.mark);
        }
        parent.children.push(id);
        Ok(())
    }
}

fn check_tag(tag: Option<&Tag>, mark: Mark) -> Result<(), SyntaxError> {
    match tag {
        None => Ok(()),
        Some(t) if t.handle == "tag:yaml.org,2002:" || t.handle == "!!" => Ok(()),
        Some(t) => Err(SyntaxError::new(
            mark,
            format!("unsupported YAML tag `{}{}`", t.handle, t.suffix),
            Some("remove the tag; Kubernetes resources use plain YAML"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Tree {
        let mut docs = parse_documents(text, &Limits::default()).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn a_colon_before_a_flow_indicator_ends_no_scalar_as_in_kubernetes() {
        let docs = parse_documents(
            "a: [127.0.0.1, 2001:db8::, fe80::]\nb: [x: 1]\nc:\n- d::\n",
            &Limits::default(),
        )
        .expect("parses");
        let t = &docs[0];
        let root = t.root_id();
        let a = t.get(root, "a").expect("a");
        let Kind::Seq(items) = &t.node(a).kind else {
            panic!("a list")
        };
        let texts: Vec<_> = items.iter().map(|i| t.scalar(*i)).collect();
        assert_eq!(
            texts,
            [Some("127.0.0.1"), Some("2001:db8::"), Some("fe80::")]
        );
        // A real mapping in a list, and a block list's `d::` (go-yaml
        // reads `{"d:": null}` there too), stay mappings.
        for key in ["b", "c"] {
            let n = t.get(root, key).expect("the key");
            let Kind::Seq(items) = &t.node(n).kind else {
                panic!("a list")
            };
            assert!(matches!(t.node(items[0]).kind, Kind::Map(_)), "{key}");
        }
    }

    #[test]
    fn positions_are_one_based() {
        let t = one("a: 1\nb:\n  c: x\n");
        let b = t.get(t.root_id(), "b").unwrap();
        let c = t.get(b, "c").unwrap();
        assert_eq!(t.node(c).mark, Mark { line: 3, column: 6 });
        let key = t.get_key(b, "c").unwrap();
        assert_eq!(t.node(key).mark, Mark { line: 3, column: 3 });
    }

    #[test]
    fn scalars_resolve_by_core_schema() {
        let t = one("[1, '1', true, ~, 1.5, v1, 0x10, -3]");
        let Kind::Seq(items) = &t.root().kind else {
            panic!()
        };
        let got: Vec<_> = items
            .iter()
            .map(|i| t.node(*i).resolve().unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                Resolved::Int(1),
                Resolved::Str("1"),
                Resolved::Bool(true),
                Resolved::Null,
                Resolved::Float(1.5),
                Resolved::Str("v1"),
                Resolved::Int(16),
                Resolved::Int(-3)
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = parse_documents("a: 1\nb: 2\na: 3\n", &Limits::default()).unwrap_err();
        assert!(e.message.contains("duplicate key `a`"), "{e}");
        assert!(e.message.contains("line 1"), "{e}");
        assert_eq!(e.mark.line, 3);
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse_documents(&s, &Limits::default()).unwrap_err();
        assert!(e.message.contains("alias"), "{e}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let s = "[".repeat(10_000);
        let e = parse_documents(&s, &Limits::default()).unwrap_err();
        assert!(
            e.message.contains("nesting") || e.message.contains("syntax"),
            "{e}"
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\n---\na: 1\n---\n", &Limits::default()).unwrap();
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn json_is_yaml() {
        let t = one(r#"{"kind": "Service", "spec": {"ports": [{"port": 80}]}}"#);
        assert_eq!(
            t.scalar(t.get(t.root_id(), "kind").unwrap()),
            Some("Service")
        );
    }
}
