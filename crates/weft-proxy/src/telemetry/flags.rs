//! Envoy's response flags: a short code in the access log for every reply
//! the proxy produces itself, so an operator can tell a 503 from the app
//! from a 503 weft chose.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFlag {
    /// No route (or virtual host) matched.
    NoRoute,
    /// No healthy upstream host.
    NoHealthyUpstream,
    /// Upstream connection failure.
    UpstreamConnectionFailure,
    /// Upstream overflow: a connection-pool limit was reached.
    UpstreamOverflow,
    /// Upstream retry limit exceeded.
    UpstreamRetryLimitExceeded,
    /// Upstream request timeout.
    UpstreamRequestTimeout,
    /// The request was delayed by fault injection.
    DelayInjected,
    /// The request was aborted by fault injection.
    FaultInjected,
    /// The downstream connection terminated.
    DownstreamConnectionTermination,
    /// The downstream request was malformed: a path that cannot be
    /// normalized, a broken body, headers HTTP does not allow.
    DownstreamProtocolError,
    /// The upstream connection terminated mid-request.
    UpstreamConnectionTermination,
    /// Denied by an authorization policy.
    RbacDenied,
    /// Denied by an external authorizer (CUSTOM AuthorizationPolicy).
    UnauthorizedExternalService,
    /// A JWT that RequestAuthentication rejected (weft's flag: Envoy puts
    /// this only in its response code details).
    JwtRejected,
}

impl ResponseFlag {
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::DelayInjected => "DI",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::RbacDenied => "RBAC",
            ResponseFlag::JwtRejected => "JWT",
            ResponseFlag::UnauthorizedExternalService => "UAEX",
        }
    }
}

impl ResponseFlag {
    /// The flag's bit in Envoy's `response.flags` attribute (0 for
    /// weft's own RBAC and JWT flags, which Envoy has no bit for).
    pub fn envoy_bit(self) -> u64 {
        match self {
            ResponseFlag::NoHealthyUpstream => 0x2,
            ResponseFlag::UpstreamRequestTimeout => 0x4,
            ResponseFlag::UpstreamConnectionFailure => 0x20,
            ResponseFlag::UpstreamConnectionTermination => 0x40,
            ResponseFlag::UpstreamOverflow => 0x80,
            ResponseFlag::NoRoute => 0x100,
            ResponseFlag::DelayInjected => 0x200,
            ResponseFlag::FaultInjected => 0x400,
            ResponseFlag::UnauthorizedExternalService => 0x1000,
            ResponseFlag::DownstreamConnectionTermination => 0x4000,
            ResponseFlag::UpstreamRetryLimitExceeded => 0x8000,
            ResponseFlag::DownstreamProtocolError => 0x40000,
            ResponseFlag::RbacDenied | ResponseFlag::JwtRejected => 0,
        }
    }
}

/// The order Envoy's access log prints flags in.
const ENVOY_ORDER: [&str; 15] = [
    "UH", "UF", "UO", "NR", "URX", "DC", "UT", "UC", "DI", "FI", "UAEX", "DPE", "RBAC", "JWT", "NC",
];

/// The flags of one request, as Envoy prints them: `UF,URX`, or `-`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags(Vec<ResponseFlag>);

impl Flags {
    pub fn add(&mut self, f: ResponseFlag) {
        if !self.0.contains(&f) {
            self.0.push(f);
            // Envoy prints flags in one fixed order.
            self.0
                .sort_by_key(|f| ENVOY_ORDER.iter().position(|c| *c == f.code()));
        }
    }

    pub fn contains(&self, f: ResponseFlag) -> bool {
        self.0.contains(&f)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The flags as Envoy's bit vector.
    pub fn envoy_bits(&self) -> u64 {
        self.0.iter().fold(0, |bits, f| bits | f.envoy_bit())
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.code())?;
        }
        Ok(())
    }
}
