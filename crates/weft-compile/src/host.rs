//! Host names as Istio treats them: short names, wildcards and `exportTo`.

/// Istio's `ResolveShortnameToFQDN`: a name without a dot is qualified with
/// the resource's namespace and the cluster domain; anything with a dot, an
/// IP address or `*` is taken as written. (`reviews.default` therefore does
/// *not* become `reviews.default.svc.cluster.local`, exactly as in Istio.)
pub fn resolve(host: &str, namespace: &str, domain_suffix: &str) -> String {
    if host == "*" || host.contains('.') || host.parse::<std::net::IpAddr>().is_ok() {
        return host.to_owned();
    }
    format!("{host}.{namespace}.svc.{domain_suffix}")
}

/// Whether `pattern` (possibly `*` or `*.suffix`) covers `host`.
pub fn matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Whether two host patterns can match a common host.
pub fn overlaps(a: &str, b: &str) -> bool {
    matches(a, b) || matches(b, a)
}

/// Whether a resource in `owner_ns` with this `exportTo` is visible from
/// `viewer_ns`. An empty list is Istio's default: everywhere.
pub fn exported_to(export_to: &[String], owner_ns: &str, viewer_ns: &str) -> bool {
    if export_to.is_empty() {
        return true;
    }
    export_to.iter().any(|e| match e.as_str() {
        "*" => true,
        "." => owner_ns == viewer_ns,
        "~" => false,
        ns => ns == viewer_ns,
    })
}

/// The names a client may use for a Kubernetes service host from
/// `client_ns`: the FQDN, and the short forms when in the same namespace.
pub fn aliases(host: &str, client_ns: &str, domain_suffix: &str) -> Vec<String> {
    let mut out = vec![host.to_owned()];
    let svc_suffix = format!(".svc.{domain_suffix}");
    if let Some(stem) = host.strip_suffix(&svc_suffix) {
        if let Some((name, ns)) = stem.split_once('.') {
            out.push(format!("{name}.{ns}.svc"));
            out.push(format!("{name}.{ns}"));
            if ns == client_ns {
                out.push(name.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_follows_istio() {
        let r = |h| resolve(h, "default", "cluster.local");
        assert_eq!(r("reviews"), "reviews.default.svc.cluster.local");
        assert_eq!(r("reviews.default"), "reviews.default");
        assert_eq!(r("*"), "*");
        assert_eq!(r("127.0.0.9"), "127.0.0.9");
    }

    #[test]
    fn wildcards() {
        assert!(matches("*.example.com", "a.example.com"));
        assert!(matches("*.example.com", "a.b.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("*", "anything"));
        assert!(overlaps("*.com", "*.example.com"));
        assert!(!overlaps("a.com", "b.com"));
    }

    #[test]
    fn export() {
        let v = |e: &[&str], o, w| {
            exported_to(&e.iter().map(|s| s.to_string()).collect::<Vec<_>>(), o, w)
        };
        assert!(v(&[], "a", "b"));
        assert!(v(&["."], "a", "a"));
        assert!(!v(&["."], "a", "b"));
        assert!(!v(&["~"], "a", "a"));
        assert!(v(&["b"], "a", "b"));
    }
}
