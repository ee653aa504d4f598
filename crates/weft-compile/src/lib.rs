//! From resources to models: the service registry, the per-proxy compiler
//! and the cross-resource analyzers behind `weft analyze`.

pub mod analyze;
pub mod compile;
pub mod host;
pub mod registry;

pub use compile::{CompileError, Compiler, ProxyRef};
pub use registry::{MeshConfig, Registry};
