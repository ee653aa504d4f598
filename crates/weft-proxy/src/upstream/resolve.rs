//! Endpoints known by name: a ServiceEntry with `resolution: DNS` and no
//! endpoints sends to its host, which the proxy looks up itself, as
//! Envoy's DNS clusters do. The lookup goes through the system's resolver
//! (`getaddrinfo`: `/etc/hosts`, then the nameserver the proxy's
//! `resolv.conf` names, which under capture is the pod's), and answers
//! are kept for a while, so a request does not wait on DNS each time. As
//! Envoy's STRICT_DNS cluster, connections take the answer's addresses in
//! turn, one lookup runs for a name at a time, and a failed lookup keeps
//! the last good answer serving while it is asked again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Which of the answer's addresses the next connection takes.
    turn: Arc<AtomicUsize>,
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
            turn: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The address to connect to: the name's addresses in turn (IPv4
    /// first, as Envoy's default lookup family), if the caller's egress
    /// policies allow it.
    pub async fn resolve(&self) -> Result<SocketAddr, Unreached> {
        let ips = lookup(&self.host).await.map_err(Unreached::Unresolved)?;
        let ip = ips[self.turn.fetch_add(1, Ordering::Relaxed) % ips.len()];
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

/// A lookup's addresses (never empty), or why there are none.
type Answer = Result<Arc<[IpAddr]>, String>;

/// What is known of a name.
struct Known {
    answer: Answer,
    /// Until when the answer is used without asking again.
    fresh_until: Instant,
    /// Held by the one lookup of this name under way.
    asking: Arc<tokio::sync::Mutex<()>>,
}

type Cache = Mutex<HashMap<Arc<str>, Known>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cached answer for `host` while fresh; else the lock its lookup
/// takes, with the answer to fall back on.
fn cached(
    host: &Arc<str>,
    now: Instant,
) -> Result<Answer, (Arc<tokio::sync::Mutex<()>>, Option<Answer>)> {
    let Ok(mut c) = cache().lock() else {
        return Err((Arc::new(tokio::sync::Mutex::new(())), None));
    };
    match c.get(host) {
        Some(k) if k.fresh_until > now => Ok(k.answer.clone()),
        Some(k) => Err((k.asking.clone(), Some(k.answer.clone()))),
        None => {
            // Bounded by the names the models hold; long-stale ones go.
            if c.len() > 4096 {
                c.retain(|_, k| k.fresh_until + ANSWER_TTL > now);
            }
            let asking = Arc::new(tokio::sync::Mutex::new(()));
            c.insert(
                host.clone(),
                Known {
                    answer: Err(format!("DNS: {host} was not looked up yet")),
                    fresh_until: now,
                    asking: asking.clone(),
                },
            );
            Err((asking, None))
        }
    }
}

/// `host`'s addresses: from the cache while fresh; else one lookup for
/// all who ask, and while it fails, the last good answer.
async fn lookup(host: &Arc<str>) -> Answer {
    let (asking, before) = match cached(host, Instant::now()) {
        Ok(answer) => return answer,
        Err(stale) => stale,
    };
    let _one = asking.lock().await;
    // Another caller may have looked it up while this one waited.
    if let Ok(answer) = cached(host, Instant::now()) {
        return answer;
    }
    let answer = ask(host).await;
    let good_before = before.filter(|b| b.is_ok());
    let (kept, ttl) = match (&answer, good_before) {
        (Ok(_), _) => (answer.clone(), ANSWER_TTL),
        // Envoy keeps the hosts it had while DNS fails.
        (Err(why), Some(good)) => {
            tracing::warn!(%host, error = %why, "DNS lookup failed; the last answer keeps serving");
            (good, FAILURE_TTL)
        }
        (Err(_), None) => (answer.clone(), FAILURE_TTL),
    };
    if let Ok(mut c) = cache().lock() {
        if let Some(k) = c.get_mut(host) {
            k.answer = kept.clone();
            k.fresh_until = Instant::now() + ttl;
        }
    }
    kept
}

/// One lookup through the system's resolver.
async fn ask(host: &str) -> Answer {
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((host, 0))).await {
        Err(_) => Err(format!(
            "DNS: {host} did not resolve within {} s",
            LOOKUP_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("DNS: {host} did not resolve: {e}")),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            // The IPv4 addresses when there are any, as Envoy's default
            // lookup family (V4_PREFERRED).
            if ips.iter().any(IpAddr::is_ipv4) {
                ips.retain(IpAddr::is_ipv4);
            }
            ips.dedup();
            if ips.is_empty() {
                Err(format!("DNS: {host} has no address"))
            } else {
                Ok(ips.into())
            }
        }
    }
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
