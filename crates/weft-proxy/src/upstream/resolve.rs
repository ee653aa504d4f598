//! Endpoints known by name: a ServiceEntry with `resolution: DNS` and no
//! endpoints sends to its host, which the proxy looks up itself, as
//! Envoy's DNS clusters do. The lookup goes through the system's resolver
//! (`getaddrinfo`: `/etc/hosts`, then the nameserver the proxy's
//! `resolv.conf` names, which under capture is the pod's), and answers
//! are kept for a while, so a request does not wait on DNS each time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an answer is used before it is looked up again: the TTL
/// Istio's DNS proxy gives, since `getaddrinfo` tells no record's own.
const ANSWER_TTL: Duration = Duration::from_secs(30);
/// A name that did not resolve is asked again after this long, so a
/// burst of requests makes one failed lookup, and a fixed resolver is
/// seen soon.
const FAILURE_TTL: Duration = Duration::from_secs(2);
/// The longest a lookup may take before the request fails.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A name an endpoint is reached by, and the egress policy that judges
/// what it resolves to.
#[derive(Clone)]
pub struct Named {
    pub host: Arc<str>,
    pub port: u16,
    /// The NetworkPolicies that hold the caller's egress, judged against
    /// the address the name resolves to.
    pub egress: Option<Arc<crate::policy::Egress>>,
}

impl std::fmt::Debug for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Named {
    /// `host:port` when `address` is one whose host is a name (not an IP
    /// literal).
    pub fn parse(address: &str, egress: Option<Arc<crate::policy::Egress>>) -> Option<Named> {
        let (host, port) = address.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        if host.is_empty() || host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            return None;
        }
        Some(Named {
            host: Arc::from(host),
            port,
            egress,
        })
    }

    /// The address to connect to: the name's first address (as Envoy's
    /// logical DNS takes it), if the caller's egress policies allow it.
    pub async fn resolve(&self) -> Result<SocketAddr, Unreached> {
        let ip = lookup(&self.host).await.map_err(Unreached::Unresolved)?;
        let addr = SocketAddr::new(ip, self.port);
        if let Some(why) = self.egress.as_ref().and_then(|e| e.denies(addr)) {
            return Err(Unreached::Denied(why));
        }
        Ok(addr)
    }
}

/// Why an endpoint has no address to connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreached {
    /// It has neither an address nor a name that resolves (Envoy: no
    /// healthy host).
    #[error("{0}")]
    Unresolved(String),
    /// It resolved to an address the caller's egress policies forbid.
    #[error("{0}")]
    Denied(String),
}

type Answer = Result<IpAddr, String>;
/// Each name's last answer, and until when it is used.
type Cache = Mutex<HashMap<Arc<str>, (Answer, Instant)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// `host`'s address, from the cache while its answer is fresh.
async fn lookup(host: &Arc<str>) -> Answer {
    let now = Instant::now();
    if let Ok(c) = cache().lock() {
        if let Some((answer, until)) = c.get(host) {
            if *until > now {
                return answer.clone();
            }
        }
    }
    let answer =
        match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((&**host, 0))).await {
            Err(_) => Err(format!(
                "DNS: {host} did not resolve within {} s",
                LOOKUP_TIMEOUT.as_secs()
            )),
            Ok(Err(e)) => Err(format!("DNS: {host} did not resolve: {e}")),
            Ok(Ok(addrs)) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                // IPv4 first, as Envoy's default lookup family (V4_PREFERRED).
                addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(addrs.first())
                    .map(SocketAddr::ip)
                    .ok_or_else(|| format!("DNS: {host} has no address"))
            }
        };
    let ttl = if answer.is_ok() {
        ANSWER_TTL
    } else {
        FAILURE_TTL
    };
    if let Ok(mut c) = cache().lock() {
        // Bounded by the names the model holds; entries long expired go.
        if c.len() > 4096 {
            c.retain(|_, (_, until)| *until > now);
        }
        c.insert(host.clone(), (answer.clone(), now + ttl));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::Named;

    #[test]
    fn only_names_are_named() {
        assert!(Named::parse("198.51.100.7:80", None).is_none());
        assert!(Named::parse("[2001:db8::1]:80", None).is_none());
        assert!(Named::parse("edition.cnn.com", None).is_none());
        assert!(Named::parse("edition.cnn.com:http", None).is_none());
        let n = Named::parse("edition.cnn.com:443", None).unwrap();
        assert_eq!((&*n.host, n.port), ("edition.cnn.com", 443));
    }

    #[tokio::test]
    async fn a_name_resolves_through_the_systems_resolver() {
        let n = Named::parse("localhost:8080", None).unwrap();
        let addr = n.resolve().await.unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 8080, "{addr}");
        let bad = Named::parse("no-such-host.invalid:80", None).unwrap();
        let err = bad.resolve().await.unwrap_err().to_string();
        assert!(
            err.starts_with("DNS: no-such-host.invalid did not resolve"),
            "{err}"
        );
    }
}
