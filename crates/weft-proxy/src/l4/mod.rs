//! Connections the proxy does not read as HTTP: TCP routes, the SNI they
//! match on, and protocol sniffing for undeclared ports.

pub mod counted;
pub mod sni;
pub mod sniff;
pub mod tcp;
