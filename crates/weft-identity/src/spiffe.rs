//! SPIFFE IDs as Istio uses them: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.

use std::fmt;
use std::str::FromStr;

use crate::IdentityError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| IdentityError::BadSpiffeId {
            id: s.chars().take(200).collect(),
            why: why.to_owned(),
        };
        let rest = s
            .strip_prefix("spiffe://")
            .ok_or_else(|| bad("it must start with spiffe://"))?;
        let (td, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("it has no path after the trust domain"))?;
        let valid_td = !td.is_empty()
            && td
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
        if !valid_td {
            return Err(bad(
                "the trust domain must be lowercase letters, digits, '-', '.' or '_'",
            ));
        }
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            ["ns", ns, "sa", sa] if !ns.is_empty() && !sa.is_empty() => {
                Ok(SpiffeId::new(td, ns, sa))
            }
            _ => Err(bad("the path must be /ns/<namespace>/sa/<service-account>")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_malformed_ids() {
        let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(id.namespace, "default");
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        for bad in [
            "",
            "http://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local",
            "spiffe:///ns/a/sa/b",
            "spiffe://Cluster/ns/a/sa/b",
            "spiffe://cluster.local/ns/a/sa/",
            "spiffe://cluster.local/ns/a/sa/b/c",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad} was accepted");
        }
    }
}
