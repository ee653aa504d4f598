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

/// A model's content version: XXH3 (64 bit) of its JSON text, so the
/// control plane and a proxy agree on it without sharing anything else.
pub fn content_version(json: &str) -> String {
    content_version_of(json.as_bytes())
}

/// [`content_version`] of JSON text still in bytes.
pub fn content_version_of(json: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(json))
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn xxh3_64() {
        // XXH3-64 with seed 0, as the reference implementation gives: a
        // proxy and the control plane must agree on every version.
        assert_eq!(super::content_version(""), "2d06800538d394c2");
        assert_eq!(super::content_version("a"), "e6c632b61e964e1f");
    }
}

/// Whether an AuthorizationPolicy path is a template (`/api/{*}/items`,
/// `/files/{**}`) rather than an exact, prefix or suffix match.
pub fn is_path_template(path: &str) -> bool {
    path.contains("{*}") || path.contains("{**}")
}

/// What a literal segment of a path template may hold besides letters and
/// digits: RFC 3986's path characters, as Envoy's URI templates take them.
pub const PATH_TEMPLATE_PUNCTUATION: &str = "-._~%!$&'()+,;:@=";
