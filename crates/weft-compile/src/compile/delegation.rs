//! VirtualService delegation: a root VirtualService's HTTP route with
//! `delegate` is replaced by the routes of the VirtualService it names
//! (one without hosts), each with the root route's matches merged into
//! its own, as Istio merges them. Only one level: a delegate's own
//! `delegate` routes are dropped, as Istio drops them.
//!
//! A delegate route whose matches conflict with the root's (it would
//! match what the root route does not) is dropped; so is a route whose
//! delegate is missing or not exported to the root's namespace. The
//! analyzers say which.

use std::borrow::Cow;
use std::collections::BTreeMap;

use weft_api::resource::Resource;
use weft_api::types::common::StringMatch;
use weft_api::types::networking::{HttpMatchRequest, HttpRoute, VirtualService};

use super::Compiler;
use crate::host;

/// One HTTP route after delegation: the resource it was written in (a
/// delegate's destinations are named from its own namespace), where it
/// came from, and the route.
pub(crate) struct Expanded<'a> {
    pub owner: &'a Resource,
    /// Its place in the root's `http`, and in the delegate's.
    pub at: (usize, Option<usize>),
    pub route: Cow<'a, HttpRoute>,
}

/// `vs`'s HTTP routes with delegation resolved.
pub(crate) fn expand<'a>(
    c: &Compiler<'a>,
    root: &'a Resource,
    vs: &'a VirtualService,
) -> Vec<Expanded<'a>> {
    let mut out = Vec::with_capacity(vs.http.len());
    for (i, hr) in vs.http.iter().enumerate() {
        let Some(d) = &hr.delegate else {
            out.push(Expanded {
                owner: root,
                at: (i, None),
                route: Cow::Borrowed(hr),
            });
            continue;
        };
        let Some((owner, delegate)) = find(c, root, &d.name, &d.namespace) else {
            continue;
        };
        for (j, sub) in delegate.http.iter().enumerate() {
            if sub.delegate.is_some() {
                continue;
            }
            if let Some(merged) = merge_route(hr, sub) {
                out.push(Expanded {
                    owner,
                    at: (i, Some(j)),
                    route: Cow::Owned(merged),
                });
            }
        }
    }
    out
}

/// The delegates `vs`'s routes name that exist and are visible to it.
pub(crate) fn delegates_of<'a>(
    c: &'a Compiler<'a>,
    root: &'a Resource,
    vs: &'a VirtualService,
) -> impl Iterator<Item = &'a VirtualService> + 'a {
    vs.http
        .iter()
        .filter_map(|hr| hr.delegate.as_ref())
        .filter_map(move |d| find(c, root, &d.name, &d.namespace).map(|(_, v)| v))
}

/// The delegate `namespace/name` (namespace defaults to the root's) if it
/// is a VirtualService without hosts exported to the root's namespace.
pub(crate) fn find<'a>(
    c: &Compiler<'a>,
    root: &Resource,
    name: &str,
    namespace: &str,
) -> Option<(&'a Resource, &'a VirtualService)> {
    let namespace = if namespace.is_empty() {
        root.namespace()
    } else {
        namespace
    };
    c.index
        .virtual_services
        .iter()
        .find(|(r, v)| r.name() == name && r.namespace() == namespace && v.hosts.is_empty())
        .filter(|(r, v)| host::exported_to(&v.export_to, r.namespace(), root.namespace()))
        .copied()
}

/// The delegate route with the root's matches merged in and the root's
/// settings where the delegate has none; `None` where they conflict.
pub(crate) fn merge_route(root: &HttpRoute, delegate: &HttpRoute) -> Option<HttpRoute> {
    let matches = merge_matches(&root.matches, &delegate.matches)?;
    let mut out = delegate.clone();
    out.matches = matches;
    out.delegate = None;
    out.name = joined(&root.name, &delegate.name);
    macro_rules! inherit {
        ($($field:ident),*) => {
            $(if out.$field.is_none() {
                out.$field.clone_from(&root.$field);
            })*
        };
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percent,
        mirror_percentage,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors.clone_from(&root.mirrors);
    }
    Some(out)
}

/// A merged route's or match's name: `root-delegate`, or whichever is set.
fn joined(root: &str, delegate: &str) -> String {
    match (root.is_empty(), delegate.is_empty()) {
        (_, true) => root.to_owned(),
        (true, false) => delegate.to_owned(),
        (false, false) => format!("{root}-{delegate}"),
    }
}

/// Each of the delegate's matches must fall within one of the root's;
/// the result has one match per such pair.
fn merge_matches(
    root: &[HttpMatchRequest],
    delegate: &[HttpMatchRequest],
) -> Option<Vec<HttpMatchRequest>> {
    if root.is_empty() {
        return Some(delegate.to_vec());
    }
    if delegate.is_empty() {
        return Some(root.to_vec());
    }
    let mut out = Vec::new();
    for sub in delegate {
        let before = out.len();
        for r in root {
            if !conflicts(r, sub) {
                out.push(merge_match(r, sub));
            }
        }
        if out.len() == before {
            return None;
        }
    }
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, delegate: &HttpMatchRequest) -> HttpMatchRequest {
    let mut out = delegate.clone();
    out.name = joined(&root.name, &delegate.name);
    for (mine, theirs) in [
        (&mut out.uri, &root.uri),
        (&mut out.scheme, &root.scheme),
        (&mut out.method, &root.method),
        (&mut out.authority, &root.authority),
    ] {
        if mine.is_none() {
            mine.clone_from(theirs);
        }
    }
    fn merged<V: Clone>(
        root: &BTreeMap<String, V>,
        leaf: &BTreeMap<String, V>,
    ) -> BTreeMap<String, V> {
        let mut m = root.clone();
        m.extend(leaf.iter().map(|(k, v)| (k.clone(), v.clone())));
        m
    }
    out.headers = merged(&root.headers, &delegate.headers);
    out.without_headers = merged(&root.without_headers, &delegate.without_headers);
    out.query_params = merged(&root.query_params, &delegate.query_params);
    out.source_labels = merged(&root.source_labels, &delegate.source_labels);
    if out.port.is_none() {
        out.port = root.port;
    }
    if out.source_namespace.is_none() {
        out.source_namespace.clone_from(&root.source_namespace);
    }
    if out.gateways.is_empty() {
        out.gateways.clone_from(&root.gateways);
    }
    if out.stat_prefix.is_none() {
        out.stat_prefix.clone_from(&root.stat_prefix);
    }
    out
}

/// Whether `leaf` could match a request `root` does not.
fn conflicts(root: &HttpMatchRequest, leaf: &HttpMatchRequest) -> bool {
    let pairs = [
        (&root.uri, &leaf.uri),
        (&root.scheme, &leaf.scheme),
        (&root.method, &leaf.method),
        (&root.authority, &leaf.authority),
    ];
    if pairs
        .iter()
        .any(|(r, l)| string_conflict(r.as_ref(), l.as_ref()))
    {
        return true;
    }
    let map_conflict = |root: &BTreeMap<String, StringMatch>,
                        leaf: &BTreeMap<String, StringMatch>| {
        leaf.iter()
            .any(|(k, l)| string_conflict(root.get(k), Some(l)))
    };
    if map_conflict(&root.headers, &leaf.headers)
        || map_conflict(&root.without_headers, &leaf.without_headers)
        || map_conflict(&root.query_params, &leaf.query_params)
    {
        return true;
    }
    if root.ignore_uri_case != leaf.ignore_uri_case {
        return true;
    }
    if let (Some(a), Some(b)) = (root.port, leaf.port) {
        if a != b {
            return true;
        }
    }
    if root
        .source_namespace
        .as_ref()
        .is_some_and(|ns| leaf.source_namespace.as_ref() != Some(ns))
    {
        return true;
    }
    if leaf
        .source_labels
        .iter()
        .any(|(k, v)| root.source_labels.get(k).is_some_and(|r| r != v))
    {
        return true;
    }
    if !root.gateways.is_empty() && !leaf.gateways.is_empty() {
        return leaf.gateways.iter().any(|g| !root.gateways.contains(g));
    }
    false
}

/// Istio's rule: a leaf must be within its root's match (a prefix within
/// a prefix, an exact within a prefix, an equal exact); regexes do not mix.
fn string_conflict(root: Option<&StringMatch>, leaf: Option<&StringMatch>) -> bool {
    let (Some(root), Some(leaf)) = (root, leaf) else {
        return false;
    };
    let (r_exact, r_prefix, r_regex) = (
        root.exact.as_deref(),
        root.prefix.as_deref(),
        root.regex.as_deref(),
    );
    let (l_exact, l_prefix, l_regex) = (
        leaf.exact.as_deref(),
        leaf.prefix.as_deref(),
        leaf.regex.as_deref(),
    );
    let set = |x: Option<&str>| x.is_some_and(|s| !s.is_empty());
    if set(r_regex) && (set(l_regex) || set(l_prefix) || set(l_exact)) {
        return true;
    }
    if set(l_regex) && (set(r_regex) || set(r_prefix) || set(r_exact)) {
        return true;
    }
    if let Some(exact) = r_exact.filter(|e| !e.is_empty()) {
        return set(l_prefix) || l_exact != Some(exact);
    }
    if let Some(prefix) = r_prefix.filter(|p| !p.is_empty()) {
        if let Some(p) = l_prefix.filter(|p| !p.is_empty()) {
            return !p.starts_with(prefix);
        }
        if let Some(e) = l_exact.filter(|e| !e.is_empty()) {
            return !e.starts_with(prefix);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(prefix: Option<&str>, exact: Option<&str>) -> HttpMatchRequest {
        HttpMatchRequest {
            uri: Some(StringMatch {
                prefix: prefix.map(str::to_owned),
                exact: exact.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_delegate_match_must_fall_within_the_roots() {
        let root = [uri(Some("/productpage"), None)];
        // Within: a longer prefix, an exact path under it.
        let within = merge_matches(&root, &[uri(Some("/productpage/v1"), None)]).expect("merges");
        assert_eq!(
            within[0].uri.as_ref().and_then(|u| u.prefix.as_deref()),
            Some("/productpage/v1")
        );
        assert!(merge_matches(&root, &[uri(None, Some("/productpage/x"))]).is_some());
        // Outside: a sibling prefix.
        assert!(merge_matches(&root, &[uri(Some("/reviews"), None)]).is_none());
        // A root exact admits only itself.
        let exact = [uri(None, Some("/a"))];
        assert!(merge_matches(&exact, &[uri(None, Some("/a"))]).is_some());
        assert!(merge_matches(&exact, &[uri(Some("/a"), None)]).is_none());
        // No match on one side takes the other's.
        assert_eq!(merge_matches(&root, &[]).map(|m| m.len()), Some(1));
        assert_eq!(merge_matches(&[], &root).map(|m| m.len()), Some(1));
    }

    #[test]
    fn a_delegate_route_inherits_what_it_does_not_set() {
        let root = HttpRoute {
            name: "root".into(),
            timeout: Some(weft_api::types::common::Duration(
                std::time::Duration::from_secs(3),
            )),
            matches: vec![uri(Some("/api"), None)],
            ..Default::default()
        };
        let leaf = HttpRoute {
            name: "leaf".into(),
            matches: vec![HttpMatchRequest {
                headers: [(
                    "x-user".to_owned(),
                    StringMatch {
                        exact: Some("ann".into()),
                        ..Default::default()
                    },
                )]
                .into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let merged = merge_route(&root, &leaf).expect("merges");
        assert_eq!(merged.name, "root-leaf");
        assert_eq!(merged.timeout, root.timeout);
        let m = &merged.matches[0];
        assert_eq!(
            m.uri.as_ref().and_then(|u| u.prefix.as_deref()),
            Some("/api")
        );
        assert!(m.headers.contains_key("x-user"));
    }
}
