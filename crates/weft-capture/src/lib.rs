//! Transparent capture, as Istio's sidecar does it: nftables rules in a
//! pod's (or host's) network namespace that hand the workload's TCP to its
//! proxy (outbound to 15001, inbound to 15006, DNS to 15053), leaving the
//! tunnel port, the proxy's own ports and the proxy's own traffic alone.
//!
//! * [`settings`] reads what a pod asks for (Istio's
//!   `traffic.sidecar.istio.io/*` and `sidecar.istio.io/interceptionMode`
//!   annotations) into [`Capture`], with a clear error for a value that
//!   does not parse.
//! * [`rules`] turns a [`Capture`] into the `nft -f` script Istio's
//!   `istio-nftables` would install: the same tables (`inet
//!   istio-proxy-nat`, `istio-proxy-mangle`, `istio-proxy-raw`), chains and
//!   rules, so an Istio user reading `nft list ruleset` recognises them.
//! * [`apply`] installs a script atomically (one `nft -f` transaction) in
//!   a named network namespace, and removes it.

pub mod antispoof;
pub mod apply;
pub mod egress_guard;
pub mod guard;
pub mod rules;
pub mod settings;

pub use apply::{install, remove, ApplyError};
pub use rules::script;
pub use settings::{Capture, InterceptionMode, SettingsError};

/// The proxy's ports, as Istio numbers them.
pub mod ports {
    /// Outbound capture.
    pub const OUTBOUND: u16 = 15001;
    /// Inbound capture.
    pub const INBOUND: u16 = 15006;
    /// The mTLS tunnel (HBONE); never captured.
    pub const TUNNEL: u16 = 15008;
    /// The proxy's status and admin port (Istio's agent).
    pub const ADMIN: u16 = 15020;
    /// Health checks.
    pub const HEALTH: u16 = 15021;
    /// DNS answered by the proxy.
    pub const DNS: u16 = 15053;
    /// Prometheus metrics.
    pub const METRICS: u16 = 15090;
}

/// The user and group id the proxy runs as, and the mark TPROXY sets on
/// what it captured (Istio's 1337 for all three).
pub const PROXY_ID: u32 = 1337;
/// The mark the proxy's own loopback traffic carries in TPROXY mode.
pub const OUTBOUND_MARK: u32 = 1338;
/// The routing table TPROXY's marked packets are delivered locally by.
pub const TPROXY_ROUTE_TABLE: u32 = 133;
/// Where the inbound proxy connects to the application from, so the
/// rules can tell that connection from the application's own.
pub const INBOUND_PASSTHROUGH_SOURCE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 6);
