//! Names shared by the compiler, the proxy and the operator commands.

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
