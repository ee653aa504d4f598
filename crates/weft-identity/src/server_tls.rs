//! What a Gateway server's TLS settings ask of rustls: the protocol
//! versions between `minProtocolVersion` and `maxProtocolVersion`, and the
//! TLS 1.2 suites `cipherSuites` names (OpenSSL's names, as Envoy takes
//! them; TLS 1.3's suites are not configurable, as in Envoy).

use std::sync::Arc;

use rustls::crypto::ring::cipher_suite as suite;
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

/// A TLS 1.2 suite rustls implements, by its OpenSSL name. Envoy also
/// knows CBC and non-ECDHE suites; rustls has none of them.
pub fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-AES256-GCM-SHA384" => suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-CHACHA20-POLY1305" => suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

/// A key-exchange group rustls (ring) implements, by Istio's name.
pub fn kx_group(name: &str) -> Option<rustls::NamedGroup> {
    Some(match name {
        "X25519" => rustls::NamedGroup::X25519,
        "P-256" => rustls::NamedGroup::secp256r1,
        "P-384" => rustls::NamedGroup::secp384r1,
        _ => return None,
    })
}

/// The suite names of a `cipherSuites` list in order, with BoringSSL's
/// equal-preference groups (`[A|B]`) opened.
pub fn suite_names(list: &[String]) -> impl Iterator<Item = &str> {
    list.iter().flat_map(|entry| {
        entry
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split('|')
            .map(str::trim)
    })
}

/// BoringSSL's reading of a suite list, for the suites rustls has: `ALL`
/// adds every one, a name adds it, `-NAME` removes it and `!NAME` removes
/// it for good; `+NAME` (move to the end) adds it where it stands.
fn tls12_list(list: &[String], every: &[SupportedCipherSuite]) -> Vec<SupportedCipherSuite> {
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    let mut banned: Vec<SupportedCipherSuite> = Vec::new();
    let same = |a: &SupportedCipherSuite, b: &SupportedCipherSuite| a.suite() == b.suite();
    for name in suite_names(list) {
        let (op, suite) = match name.chars().next() {
            Some(c @ ('-' | '!' | '+')) => (c, &name[1..]),
            _ => (' ', name),
        };
        let named: Vec<SupportedCipherSuite> = if suite == "ALL" {
            every.to_vec()
        } else {
            tls12_suite(suite).into_iter().collect()
        };
        for s in named {
            match op {
                '-' => out.retain(|o| !same(o, &s)),
                '!' => {
                    out.retain(|o| !same(o, &s));
                    banned.push(s);
                }
                _ if banned.iter().any(|b| same(b, &s)) || out.iter().any(|o| same(o, &s)) => {}
                _ => out.push(s),
            }
        }
    }
    out
}

/// The provider and protocol versions a server offers.
pub struct ServerOffer {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// Whether the server's order of suites wins over the client's (it
    /// does when `cipherSuites` gives one).
    pub server_order: bool,
}

/// The offer for `minProtocolVersion`, `maxProtocolVersion` (each
/// `TLSV1_0`..`TLSV1_3`, empty for no bound) and `cipherSuites`; an
/// error when nothing could be negotiated, so the server fails closed
/// rather than offering what it was told not to.
pub fn offer(
    min: &str,
    max: &str,
    cipher_suites: &[String],
    ecdh_curves: &[String],
) -> Result<ServerOffer, String> {
    let base = crate::provider();
    let tls13_ok = matches!(max, "" | "TLSV1_3");
    let tls12_allowed = matches!(min, "" | "TLSV1_0" | "TLSV1_1" | "TLSV1_2")
        && matches!(max, "" | "TLSV1_2" | "TLSV1_3");
    let all = cipher_suites.is_empty() || suite_names(cipher_suites).any(|n| n == "ALL");
    let every: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_none())
        .copied()
        .collect();
    let tls12 = if cipher_suites.is_empty() {
        every
    } else {
        tls12_list(cipher_suites, &every)
    };
    let tls12_ok = tls12_allowed && !tls12.is_empty();
    let mut versions = Vec::new();
    if tls13_ok {
        versions.push(&rustls::version::TLS13);
    }
    if tls12_ok {
        versions.push(&rustls::version::TLS12);
    }
    if versions.is_empty() {
        return Err(if !tls12_allowed {
            format!(
                "minProtocolVersion {min:?} to maxProtocolVersion {max:?} leaves no version weft speaks (TLS 1.2 and 1.3)"
            )
        } else {
            format!(
                "cipherSuites {cipher_suites:?} names no TLS 1.2 suite weft offers, and TLS 1.3 is excluded"
            )
        });
    }
    let mut suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_some())
        .copied()
        .collect();
    suites.extend(tls12);
    let mut kx_groups = base.kx_groups.clone();
    if !ecdh_curves.is_empty() {
        kx_groups = ecdh_curves
            .iter()
            .filter_map(|c| kx_group(c))
            .filter_map(|name| base.kx_groups.iter().find(|g| g.name() == name).copied())
            .collect();
        if kx_groups.is_empty() {
            return Err(format!(
                "ecdhCurves {ecdh_curves:?} names no key exchange weft offers (X25519, P-256, P-384)"
            ));
        }
    }
    let provider = CryptoProvider {
        cipher_suites: suites,
        kx_groups,
        ..(*base).clone()
    };
    Ok(ServerOffer {
        provider: Arc::new(provider),
        versions,
        server_order: !all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(offer: &ServerOffer) -> Vec<String> {
        offer
            .provider
            .cipher_suites
            .iter()
            .filter(|s| s.tls13().is_none())
            .map(|s| format!("{:?}", s.suite()))
            .collect()
    }

    #[test]
    fn versions_follow_the_bounds() {
        let v = |min, max| {
            offer(min, max, &[], &[]).map(|o| {
                o.versions
                    .iter()
                    .map(|v| format!("{:?}", v.version))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        assert_eq!(v("", "").unwrap(), "TLSv1_3,TLSv1_2");
        assert_eq!(v("TLSV1_3", "").unwrap(), "TLSv1_3");
        assert_eq!(v("TLSV1_0", "TLSV1_2").unwrap(), "TLSv1_2");
        assert!(v("", "TLSV1_1").unwrap_err().contains("no version"));
    }

    #[test]
    fn ecdh_curves_pick_the_key_exchanges() {
        let o = offer("", "", &[], &["P-384".to_owned(), "P-521".to_owned()]).unwrap();
        let names: Vec<_> = o.provider.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(names, [rustls::NamedGroup::secp384r1]);
        assert!(offer("", "", &[], &["P-521".to_owned()]).is_err());
    }

    #[test]
    fn cipher_suites_pick_and_order_the_tls12_suites() {
        let list = vec![
            "[ECDHE-RSA-CHACHA20-POLY1305|ECDHE-RSA-AES256-GCM-SHA384]".to_owned(),
            "AES128-SHA".to_owned(),
            "ECDHE-RSA-CHACHA20-POLY1305".to_owned(),
        ];
        let o = offer("", "", &list, &[]).unwrap();
        assert_eq!(
            names(&o),
            [
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"
            ]
        );
        assert!(o.server_order);
        // Only suites rustls lacks: TLS 1.2 is not offered, 1.3 still is.
        let cbc = vec!["AES128-SHA".to_owned()];
        assert_eq!(offer("", "", &cbc, &[]).unwrap().versions.len(), 1);
        assert!(offer("", "TLSV1_2", &cbc, &[]).is_err());
        assert!(
            !offer("", "", &["ALL".to_owned()], &[])
                .unwrap()
                .server_order
        );
        // BoringSSL's operators: ALL, then one removed and one banned.
        let minus = vec![
            "ALL".to_owned(),
            "-ECDHE-RSA-CHACHA20-POLY1305".to_owned(),
            "!ECDHE-ECDSA-CHACHA20-POLY1305".to_owned(),
            "ECDHE-ECDSA-CHACHA20-POLY1305".to_owned(),
        ];
        let left = names(&offer("", "", &minus, &[]).unwrap());
        assert_eq!(left.len(), 4, "{left:?}");
        assert!(left.iter().all(|n| !n.contains("CHACHA20")), "{left:?}");
    }
}
