//! The Istio annotations weft reads, parsed in one place so `weft validate`
//! reports exactly what the planner would ignore.

use std::collections::BTreeMap;

/// Istio's per-pod proxy settings: a `ProxyConfig` in YAML.
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";

/// The proxy's worker threads from `proxy.istio.io/config` (0: one per
/// core): `Ok(None)` when the annotation is absent or says nothing about
/// concurrency, `Err` with the reason when it cannot be read.
pub fn proxy_concurrency(annotations: &BTreeMap<String, String>) -> Result<Option<u32>, String> {
    let Some(text) = annotations.get(PROXY_CONFIG) else {
        return Ok(None);
    };
    let docs = crate::yaml::tree::parse_documents(text, &Default::default())
        .map_err(|e| format!("the annotation is not YAML: {e}"))?;
    let Some(tree) = docs.first() else {
        return Ok(None);
    };
    let Some(id) = tree.get(tree.root_id(), "concurrency") else {
        return Ok(None);
    };
    match tree.scalar(id).map(|v| (v, v.parse::<u32>())) {
        Some((_, Ok(n))) => Ok(Some(n)),
        Some((v, Err(_))) => Err(format!("concurrency {v:?} is not a whole number")),
        None => Err("concurrency is not a whole number".to_owned()),
    }
}

/// Istio's annotation that makes an AuthorizationPolicy a dry run.
pub const DRY_RUN: &str = "istio.io/dry-run";

/// Whether an AuthorizationPolicy is a dry run: `istio.io/dry-run` read as
/// Go's `strconv.ParseBool` reads it, as Istio does. `Err` for a value it
/// cannot read; Istio then enforces the policy, and so does weft.
pub fn dry_run(annotations: &BTreeMap<String, String>) -> Result<bool, String> {
    match annotations.get(DRY_RUN).map(String::as_str) {
        None => Ok(false),
        Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(true),
        Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(false),
        Some(other) => Err(format!("{DRY_RUN} is {other:?}, not true or false")),
    }
}

/// How to write the annotation, for the fix of a diagnostic.
pub const PROXY_CONFIG_FIX: &str = "concurrency must be a whole number of worker threads (0: one per core), e.g. proxy.istio.io/config: \"concurrency: 2\"; until then the proxy's default (one thread) applies";

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Result<Option<u32>, String> {
        proxy_concurrency(&BTreeMap::from([(
            PROXY_CONFIG.to_owned(),
            text.to_owned(),
        )]))
    }

    #[test]
    fn concurrency_is_read_from_proxy_config() {
        assert_eq!(of("concurrency: 3"), Ok(Some(3)));
        assert_eq!(of("concurrency: 0"), Ok(Some(0)));
        assert_eq!(of("holdApplicationUntilProxyStarts: true"), Ok(None));
        assert_eq!(proxy_concurrency(&BTreeMap::new()), Ok(None));
        assert!(of("concurrency: lots").unwrap_err().contains("\"lots\""));
        assert!(of("concurrency: -1").is_err());
        assert!(of("concurrency: [2]").is_err());
        assert!(of("{concurrency: 2").unwrap_err().contains("not YAML"));
    }
}
