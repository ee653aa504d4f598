//! What users write: Istio, Kubernetes, Flagger and `weft.dev` resources,
//! loaded from files with a position for every field, and validated with
//! Istio's own rules. Nothing downstream of this crate sees YAML.

pub mod annotations;
pub mod diag;
pub mod load;
pub mod path;
pub mod resource;
pub mod types;
pub mod validate;
pub mod yaml;
