//! Connections the proxy does not read as HTTP: TCP routes, the SNI they
//! match on, protocol sniffing for undeclared ports, and passthrough to
//! where a captured connection was going.

pub mod counted;
pub mod passthrough;
pub mod sni;
pub mod sniff;
pub mod tcp;
