//! Resource types, one module per API group.

pub mod common;
pub mod flagger;
pub mod kube;
pub mod kyverno;
pub mod mesh;
pub mod networking;
pub mod security;
pub mod telemetry;
pub mod weft;
