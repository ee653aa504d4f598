//! Value rules of the security kinds, each written from Istio's reading
//! of the value: Go's `strconv.ParseUint` for ports, Go's `url.Parse` for
//! a `jwksUri`, the JWK parser Istio links for `jwks`.

use serde_json::Value;

/// At most this many `serviceAccounts` (Istio's limit and CRD maxItems).
pub const MAX_SERVICE_ACCOUNTS: usize = 16;

/// Why `v` is not `name` or `namespace/name`, as Istio reads a service
/// account in a source or a `source.serviceAccount` condition.
pub fn service_account_error(v: &str) -> Option<String> {
    if v.is_empty() {
        return Some("empty service account".into());
    }
    if v.contains('*') {
        return Some(format!(
            "service account {v:?} has a wildcard, which is not allowed"
        ));
    }
    if v.len() > 320 {
        return Some(format!(
            "service account {:?}… is longer than 320 characters",
            v.chars().take(24).collect::<String>()
        ));
    }
    match v.split_once('/') {
        Some((_, rest)) if rest.contains('/') => Some(format!(
            "service account {v:?} has more than one '/': write serviceAccount or namespace/serviceAccount"
        )),
        Some(("", _)) => Some(format!("service account {v:?} has an empty namespace")),
        Some((_, "")) => Some(format!("service account {v:?} has an empty service account name")),
        _ => None,
    }
}

/// Where a value's wildcard is, for values matched exactly, by prefix
/// (`x*`), by suffix (`*x`) or as anything (`*`): `None` when it is one
/// of those, else why not.
pub fn wildcard_error(v: &str) -> Option<&'static str> {
    match v.matches('*').count() {
        0 => None,
        1 if v.starts_with('*') || v.ends_with('*') => None,
        1 => Some("a wildcard in the middle"),
        _ => Some("more than one wildcard"),
    }
}

/// A port as Istio reads one in an AuthorizationPolicy: decimal digits
/// only (no sign, no spaces), at most 65535. 0 is accepted.
pub fn port(v: &str) -> Option<u16> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = v.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    digits.parse::<u16>().ok()
}

/// `^[-_A-Za-z0-9]+$`: the header names Istio takes for a claim copied
/// into a header.
pub fn is_strict_header_name(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Why `uri` is not an http(s) URL Go's `url.Parse` reads: the scheme
/// (any case), the port after the host, the host's characters and the
/// `%` escapes. `None` when it is one.
pub fn jwks_uri_error(uri: &str) -> Option<String> {
    if uri.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Some("it holds a control character".into());
    }
    let (rest, fragment) = uri.split_once('#').unwrap_or((uri, ""));
    if let Some(e) = escape_error(fragment) {
        return Some(e);
    }
    let Some((scheme, rest)) = scheme(rest) else {
        return Some("it has no scheme".into());
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Some(format!("scheme {scheme:?} is not http or https"));
    }
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let Some(after) = rest.strip_prefix("//") else {
        // Opaque (`https:x`) or a path alone: Go reads both.
        return escape_error(rest);
    };
    let (authority, path) = after.find('/').map_or((after, ""), |i| after.split_at(i));
    let host = match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user_ok = user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b));
            if !user_ok {
                return Some("its user information holds a character URLs do not allow".into());
            }
            if let Some(e) = escape_error(user) {
                return Some(e);
            }
            host
        }
        None => authority,
    };
    host_error(host).or_else(|| escape_error(path))
}

/// The scheme before the first `:`, as Go finds it: a letter, then
/// letters, digits, `+`, `-` or `.`.
fn scheme(s: &str) -> Option<(&str, &str)> {
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i > 0 => return Some((&s[..i], &s[i + 1..])),
            _ => return None,
        }
    }
    None
}

fn host_error(host: &str) -> Option<String> {
    let (name, colon_port) = if host.starts_with('[') {
        match host.rfind(']') {
            Some(i) => host.split_at(i + 1),
            None => return Some(format!("host {host:?} has '[' without ']'")),
        }
    } else {
        host.rfind(':').map_or((host, ""), |i| host.split_at(i))
    };
    if let Some(digits) = colon_port.strip_prefix(':') {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(format!("port {digits:?} after the host is not a number"));
        }
    } else if !colon_port.is_empty() {
        return Some(format!("{colon_port:?} follows the host"));
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            let ok = hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                && (bytes[i + 1] >= b'8' || &name[i..i + 3] == "%25");
            if !ok {
                return Some(format!("host {name:?} has an invalid % escape"));
            }
            i += 3;
            continue;
        }
        let allowed =
            b >= 0x80 || b.is_ascii_alphanumeric() || b"!$&'()*+,;=:[]<>\"-_.~".contains(&b);
        if !allowed {
            return Some(format!("host {name:?} holds {:?}", char::from(b)));
        }
        i += 1;
    }
    None
}

/// Every `%` must be followed by two hex digits.
fn escape_error(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let bad = bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    bad.then(|| format!("{s:?} has a '%' not followed by two hex digits"))
}

/// How an inline `jwks` reads: `Ok((keys, single))` where `single` says
/// it is one key rather than a set; `Err` with why Istio's parser refuses
/// it.
pub fn parse_jwks(text: &str) -> Result<(Vec<Value>, bool), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("it is not JSON ({e})"))?;
    let Some(obj) = v.as_object() else {
        return Err("it is not a JSON object".into());
    };
    let (keys, single) = match obj.get("keys") {
        Some(Value::Array(keys)) => (keys.clone(), false),
        Some(_) => return Err("\"keys\" is not a list".into()),
        None => (vec![v.clone()], true),
    };
    for (i, k) in keys.iter().enumerate() {
        let what = if single {
            "the key".to_owned()
        } else {
            format!("key {i}")
        };
        match k.get("kty").and_then(Value::as_str) {
            Some("RSA" | "EC" | "OKP" | "oct") => {}
            Some(other) => {
                return Err(format!(
                    "{what} has key type {other:?}; JSON Web Keys are RSA, EC, OKP or oct"
                ))
            }
            None => return Err(format!("{what} has no key type (kty)")),
        }
    }
    Ok((keys, single))
}

/// Whether a parsed key carries private material: a symmetric key, or
/// an RSA, EC or OKP key with its private exponent or scalar `d`.
pub fn is_private_key(k: &Value) -> bool {
    k.get("kty").and_then(Value::as_str) == Some("oct") || k.get("d").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_go_reads_them() {
        assert_eq!(port("80"), Some(80));
        assert_eq!(port("080"), Some(80));
        assert_eq!(port("0"), Some(0));
        assert_eq!(port("65535"), Some(65535));
        for bad in ["", "+80", "-1", " 80", "65536", "http", "99999999999"] {
            assert_eq!(port(bad), None, "{bad}");
        }
    }

    #[test]
    fn jwks_uris_read_as_go_reads_them() {
        for ok in [
            "https://example.com/.well-known/jwks.json",
            "HTTPS://127.0.0.1/k",
            "http://[::1]:8080/k",
            "https://example.com/a b",
            "https://user@example.com:443/k?x=%zz",
        ] {
            assert_eq!(jwks_uri_error(ok), None, "{ok}");
        }
        for bad in [
            "example.com/jwks",
            "ftp://example.com/k",
            "https://foo.com:not-a-number",
            "https://127.0.0.1/%zz",
            "https://127.0.0 .1/k",
            "https://ex%41mple.com/k",
            "https://[::1/k",
        ] {
            assert!(jwks_uri_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn service_accounts() {
        for ok in ["sa", "ns/sa"] {
            assert_eq!(service_account_error(ok), None, "{ok}");
        }
        for bad in ["", "ns/*", "a/b/c", "/sa", "ns/"] {
            assert!(service_account_error(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn wildcards() {
        for ok in ["*", "a*", "*a", "abc"] {
            assert_eq!(wildcard_error(ok), None, "{ok}");
        }
        assert_eq!(wildcard_error("a*b"), Some("a wildcard in the middle"));
        assert_eq!(wildcard_error("*a*"), Some("more than one wildcard"));
    }
}
