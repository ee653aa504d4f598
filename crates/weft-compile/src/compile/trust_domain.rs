//! Principals in AuthorizationPolicies across the mesh's trust domain and
//! its aliases, as Istio migrates them: a principal written in any trust
//! domain of the bundle (the mesh's and MeshConfig's
//! `trustDomainAliases`), or in `cluster.local` (which stands for the
//! mesh's own), is matched in every one of them. A principal with `*` for
//! its trust domain, or not in SPIFFE form, is left as written; so is one
//! in a trust domain outside the bundle.

/// Whether `pattern` (`*suffix`) covers `a`.
fn suffix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_prefix('*').is_some_and(|p| a.ends_with(p))
}

/// Whether `pattern` (`prefix*`) covers `a`.
fn prefix_match(a: &str, pattern: &str) -> bool {
    pattern.strip_suffix('*').is_some_and(|p| a.starts_with(p))
}

/// Istio's `stringMatch`: equal, `*`, or a prefix or suffix pattern either
/// way round.
fn in_bundle(td: &str, bundle: &[String]) -> bool {
    bundle.iter().any(|s| {
        td == s
            || s == "*"
            || prefix_match(td, s)
            || prefix_match(s, td)
            || suffix_match(td, s)
            || suffix_match(s, td)
    })
}

/// `principals` with each one that names a trust domain of `bundle` (the
/// mesh's first) written for every trust domain of it.
pub fn with_aliases(principals: &[String], bundle: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in principals {
        let parts: Vec<&str> = p.split('/').collect();
        let enforced = parts.len() == 5 && parts[0] != "*";
        if !enforced || !(in_bundle(parts[0], bundle) || parts[0] == "cluster.local") {
            if !out.contains(p) {
                out.push(p.clone());
            }
            continue;
        }
        for td in bundle {
            let written = if suffix_match(td, parts[0]) {
                p.clone()
            } else {
                format!("{td}/{}", parts[1..].join("/"))
            };
            if !out.contains(&written) {
                out.push(written);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_aliases;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn principals_follow_the_trust_domain_and_its_aliases() {
        let bundle = v(&["new-td", "old-td"]);
        assert_eq!(
            with_aliases(&v(&["old-td/ns/foo/sa/bar"]), &bundle),
            v(&["new-td/ns/foo/sa/bar", "old-td/ns/foo/sa/bar"])
        );
        // cluster.local stands for the mesh's own trust domain.
        assert_eq!(
            with_aliases(&v(&["cluster.local/ns/foo/sa/bar"]), &bundle),
            v(&["new-td/ns/foo/sa/bar", "old-td/ns/foo/sa/bar"])
        );
        // Any trust domain, not SPIFFE form, or outside the bundle: as is.
        for p in ["*/ns/foo/sa/bar", "ns/foo/sa/bar", "other-td/ns/foo/sa/bar"] {
            assert_eq!(with_aliases(&v(&[p]), &bundle), v(&[p]));
        }
        // A suffix pattern stays as written where it covers a domain.
        assert_eq!(
            with_aliases(&v(&["*-td/ns/foo/sa/bar"]), &bundle),
            v(&["*-td/ns/foo/sa/bar"])
        );
        // With no alias, cluster.local becomes the mesh's trust domain.
        assert_eq!(
            with_aliases(&v(&["cluster.local/ns/foo/sa/bar"]), &v(&["example.org"])),
            v(&["example.org/ns/foo/sa/bar"])
        );
    }
}
