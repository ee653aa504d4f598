//! The names a proxy answers for, from its model: every virtual host's
//! domains (the service's host, its short forms in reach and its
//! addresses) and every TCP service's host, each with the service's IPv4
//! addresses, as Istio's DNS proxy takes its name table from istiod.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use weft_model::{Listener, ListenerTarget, RouteTable};

#[derive(Debug, Default)]
pub struct NameTable {
    by_name: HashMap<String, Vec<Ipv4Addr>>,
    /// The cluster's service domains (`svc.cluster.local`), from the
    /// Kubernetes hosts seen: a name under one that the table lacks does
    /// not exist, as the cluster's DNS would say.
    service_domains: Vec<String>,
}

/// A domain without its port (`reviews:9080` → `reviews`).
fn host_of(domain: &str) -> &str {
    match domain.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    }
}

impl NameTable {
    /// The names of a model's route tables and listeners.
    pub fn of(tables: &[RouteTable], listeners: &[Listener]) -> NameTable {
        let mut table = NameTable::default();
        for vh in tables.iter().flat_map(|t| t.virtual_hosts.iter()) {
            let addresses: Vec<Ipv4Addr> = vh
                .domains
                .iter()
                .filter_map(|d| match host_of(d).parse::<IpAddr>() {
                    Ok(IpAddr::V4(a)) => Some(a),
                    _ => None,
                })
                .collect();
            if addresses.is_empty() {
                continue;
            }
            for d in &vh.domains {
                let host = host_of(d);
                if host.parse::<IpAddr>().is_err() && !host.contains('*') {
                    table.add(host, &addresses);
                }
            }
        }
        for l in listeners {
            if !matches!(l.target, ListenerTarget::Tcp(_)) || l.service.is_empty() {
                continue;
            }
            let addresses: Vec<Ipv4Addr> =
                l.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            if !addresses.is_empty() && !l.service.contains('*') {
                table.add(&l.service, &addresses);
            }
        }
        table
    }

    fn add(&mut self, name: &str, addresses: &[Ipv4Addr]) {
        let name = name.to_ascii_lowercase();
        if let Some((_, domain)) = name.split_once(".svc.") {
            let domain = format!("svc.{domain}");
            if !self.service_domains.contains(&domain) {
                self.service_domains.push(domain);
            }
        }
        let known = self.by_name.entry(name).or_default();
        for a in addresses {
            if !known.contains(a) {
                known.push(*a);
            }
        }
    }

    /// The addresses of `name` (any case, with or without the root's dot).
    pub fn lookup(&self, name: &str) -> Option<&[Ipv4Addr]> {
        let name = name.strip_suffix('.').unwrap_or(name);
        self.by_name
            .get(name.to_ascii_lowercase().as_str())
            .map(Vec::as_slice)
    }

    /// Whether `name` is under the cluster's service domain, where the
    /// table knows every name there is.
    pub fn in_service_domain(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.service_domains.iter().any(|d| {
            name.len() > d.len()
                && name.ends_with(d.as_str())
                && name[..name.len() - d.len()].ends_with('.')
        })
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// The outbound TCP listener of `echo.default.svc.cluster.local:9000` at
/// 198.18.0.9, for tests.
#[cfg(test)]
pub(crate) fn echo_listener() -> Listener {
    Listener {
        name: "outbound|9000||echo.default.svc.cluster.local".into(),
        direction: weft_model::Direction::Outbound,
        port: 9000,
        service: "echo.default.svc.cluster.local".into(),
        bind: String::new(),
        addresses: vec!["198.18.0.9".into()],
        protocol: weft_model::Protocol::Tcp,
        target: ListenerTarget::Tcp(Vec::new()),
        tls: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weft_model::VirtualHost;

    #[test]
    fn hosts_aliases_and_tcp_services_with_their_addresses() {
        let tables = vec![RouteTable {
            name: "9080".into(),
            virtual_hosts: vec![
                Arc::new(VirtualHost {
                    name: "reviews.default.svc.cluster.local:9080".into(),
                    domains: [
                        "reviews.default.svc.cluster.local:9080",
                        "reviews.default.svc.cluster.local",
                        "reviews:9080",
                        "reviews",
                        "198.18.0.7:9080",
                        "198.18.0.7",
                    ]
                    .map(String::from)
                    .to_vec(),
                    routes: Vec::new(),
                }),
                // No address (loopback mode): not answered.
                Arc::new(VirtualHost {
                    name: "ratings:9080".into(),
                    domains: vec!["ratings".into()],
                    routes: Vec::new(),
                }),
            ],
        }];
        let t = NameTable::of(&tables, &[echo_listener()]);
        let seven: &[Ipv4Addr] = &[Ipv4Addr::new(198, 18, 0, 7)];
        assert_eq!(t.lookup("reviews"), Some(seven));
        assert_eq!(t.lookup("Reviews.Default.svc.cluster.local."), Some(seven));
        assert_eq!(
            t.lookup("echo.default.svc.cluster.local"),
            Some(&[Ipv4Addr::new(198, 18, 0, 9)][..])
        );
        assert_eq!(t.lookup("ratings"), None);
        assert_eq!(t.lookup("198.18.0.7"), None);
        assert!(t.in_service_domain("nope.default.svc.cluster.local."));
        assert!(!t.in_service_domain("svc.cluster.local"));
        assert!(!t.in_service_domain("example.org"));
        assert_eq!(t.len(), 3);
    }
}
