//! Field paths such as `spec.http[1].route[0].weight`, in the form users see
//! in `kubectl explain` and Istio's own messages.

use std::fmt;

use crate::yaml::tree::{Kind, Mark, NodeId, Tree};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// An owned path, built up by validators as they walk a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn key(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_owned()));
        FieldPath(v)
    }

    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        FieldPath(v)
    }

    pub fn segments(&self) -> &[Seg] {
        &self.0
    }

    pub fn parse(text: &str) -> Self {
        let mut segs = Vec::new();
        for part in text.split('.').filter(|p| !p.is_empty()) {
            let (name, rest) = part.split_once('[').unwrap_or((part, ""));
            if !name.is_empty() {
                segs.push(Seg::Key(name.to_owned()));
            }
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        FieldPath(segs)
    }

    /// Where this path points in `tree`, falling back to the deepest ancestor
    /// that exists (a missing field is reported where it should have been).
    /// When `at_key` is set and the last segment is a mapping key, the
    /// position of the key itself is returned.
    pub fn locate(&self, tree: &Tree, at_key: bool) -> Mark {
        self.locate_from(tree, tree.root_id(), at_key)
    }

    /// Like [`FieldPath::locate`], starting at node `start` (an object
    /// inside a `List`, say).
    pub fn locate_from(&self, tree: &Tree, start: NodeId, at_key: bool) -> Mark {
        let mut id: NodeId = start;
        let mut mark = tree.node(id).mark;
        let n = self.0.len();
        for (i, seg) in self.0.iter().enumerate() {
            let next = match (seg, &tree.node(id).kind) {
                (Seg::Key(k), Kind::Map(_)) => {
                    if at_key && i + 1 == n {
                        tree.get_key(id, k)
                    } else {
                        tree.get(id, k)
                    }
                }
                (Seg::Index(ix), Kind::Seq(items)) => items.get(*ix).copied(),
                _ => None,
            };
            match next {
                Some(next) => {
                    id = next;
                    mark = tree.node(id).mark;
                }
                None => break,
            }
        }
        mark
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_segments(f, self.0.iter())
    }
}

fn write_segments<'a>(
    f: &mut fmt::Formatter<'_>,
    segs: impl Iterator<Item = &'a Seg>,
) -> fmt::Result {
    let mut first = true;
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if k.contains(['.', '[', ']', ' ']) || k.is_empty() {
                    write!(f, "[{k:?}]")?;
                } else {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
            }
            Seg::Index(i) => write!(f, "[{i}]")?,
        }
        first = false;
    }
    Ok(())
}

/// A borrowed path used while deserializing: no allocation until an error
/// needs to be rendered.
#[derive(Debug, Clone, Copy)]
pub enum PathRef<'a> {
    Root,
    Key(&'a PathRef<'a>, &'a str),
    Index(&'a PathRef<'a>, usize),
}

impl PathRef<'_> {
    pub fn to_owned_path(&self) -> FieldPath {
        let mut segs = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                PathRef::Root => break,
                PathRef::Key(parent, k) => {
                    segs.push(Seg::Key((*k).to_owned()));
                    cur = parent;
                }
                PathRef::Index(parent, i) => {
                    segs.push(Seg::Index(*i));
                    cur = parent;
                }
            }
        }
        segs.reverse();
        FieldPath(segs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_kubectl() {
        let p = FieldPath::root()
            .key("spec")
            .key("http")
            .index(1)
            .key("route")
            .index(0)
            .key("weight");
        assert_eq!(p.to_string(), "spec.http[1].route[0].weight");
        assert_eq!(FieldPath::parse("spec.http[1].route[0].weight"), p);
    }

    #[test]
    fn odd_keys_are_quoted() {
        let p = FieldPath::root()
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(p.to_string(), "labels[\"app.kubernetes.io/name\"]");
    }
}
