//! What the user wrote where the typed resource cannot tell: a null list
//! item reads as an empty object, and an empty map as an absent one.
//! Istio's webhook sees the difference (a nil message, an empty map), so
//! some rules look at the positioned tree.

use crate::path::{FieldPath, Seg};
use crate::yaml::tree::{Kind, Node};

use super::Ctx;

/// The node at `path` below the resource's root, if it was written there.
fn node_at<'a>(ctx: &'a Ctx<'_>, path: &FieldPath) -> Option<&'a Node> {
    let source = &ctx.resource.source;
    let tree = &source.tree;
    let mut id = source.node;
    for seg in path.segments() {
        id = match (seg, &tree.node(id).kind) {
            (Seg::Key(k), Kind::Map(_)) => tree.get(id, k)?,
            (Seg::Index(i), Kind::Seq(items)) => *items.get(*i)?,
            _ => return None,
        };
    }
    Some(tree.node(id))
}

/// Whether `path` was written, with any value.
pub fn is_written(ctx: &Ctx<'_>, path: &FieldPath) -> bool {
    node_at(ctx, path).is_some()
}

/// Whether `path` was written as `~`, `null` or nothing at all.
pub fn is_null(ctx: &Ctx<'_>, path: &FieldPath) -> bool {
    node_at(ctx, path).is_some_and(Node::is_null)
}

/// Whether `path` was written as a mapping with no entries (`{}`).
pub fn is_empty_map(ctx: &Ctx<'_>, path: &FieldPath) -> bool {
    node_at(ctx, path).is_some_and(|n| matches!(&n.kind, Kind::Map(e) if e.is_empty()))
}

/// Whether `path` was written as a string with no characters (`""`), as
/// opposed to being left out or written as null.
pub fn is_empty_string(ctx: &Ctx<'_>, path: &FieldPath) -> bool {
    node_at(ctx, path)
        .is_some_and(|n| matches!(&n.kind, Kind::Scalar { text, quoted: true } if text.is_empty()))
}
