//! From resources to models: the service registry, the per-proxy compiler
//! and the cross-resource analyzers behind `weft analyze`.

pub mod analyze;
pub mod compile;
pub mod guardrails;
pub mod host;
pub mod kyverno;
pub mod nodes;
pub mod registry;

pub use compile::{Carry, CompileError, Compiler, ProxyRef, Reuse};
pub use registry::{MeshConfig, Registry};
