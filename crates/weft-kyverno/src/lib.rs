//! Kyverno's `validate` rules, evaluated by weft over its configuration:
//! the platform's existing ClusterPolicies and Policies judge what users
//! write with the outcomes Kyverno gives (pass, fail, skip, error) and
//! Kyverno's messages.

pub mod autogen;
pub mod engine;
pub mod generate;
pub mod jmes;
pub mod matcher;
pub mod mutate;
pub mod operators;
pub mod pattern;
pub mod scalar;
pub mod vars;
pub mod wildcard;
pub mod world;
