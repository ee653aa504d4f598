//! Names shared by the compiler, the proxy and the operator commands.

/// gRPC status names, indexed by their code.
pub const GRPC_STATUS: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a gRPC status name (UNKNOWN for names that are not one).
pub fn grpc_code(name: &str) -> u8 {
    GRPC_STATUS
        .iter()
        .position(|n| *n == name)
        .map_or(2, |i| i as u8)
}

/// Envoy-style cluster name: `outbound|9080|v1|reviews.default.svc.cluster.local`.
pub fn outbound_cluster(port: u32, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// The inbound cluster delivering to the local application.
pub fn inbound_cluster(port: u32) -> String {
    format!("inbound|{port}||")
}

/// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            outbound_cluster(9080, "v1", "reviews.default.svc.cluster.local"),
            "outbound|9080|v1|reviews.default.svc.cluster.local"
        );
        assert_eq!(
            spiffe_id("cluster.local", "default", "bookinfo-reviews"),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
    }
}

/// A model's content version: FNV-1a (64 bit) of its JSON text, so the
/// control plane and a proxy agree on it without sharing anything else.
pub fn content_version(json: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn fnv1a() {
        assert_eq!(super::content_version(""), "cbf29ce484222325");
        assert_eq!(super::content_version("a"), "af63dc4c8601ec8c");
    }
}
