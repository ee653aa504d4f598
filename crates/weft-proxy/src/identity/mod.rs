//! The proxy's identity and what it proves with it: the workload
//! certificate and the mTLS tunnel (HBONE), credentials named by
//! `credentialName`, and gateway TLS termination.

pub mod credentials;
pub mod gateway_tls;
pub mod mesh;
pub mod tunnel;
