//! YAML and JSON with a position on every node.

pub mod de;
pub mod emit;
pub mod tree;

pub use de::{from_node, DeError};
pub use tree::{parse_documents, Kind, Limits, Mark, Node, NodeId, Resolved, Tree};
