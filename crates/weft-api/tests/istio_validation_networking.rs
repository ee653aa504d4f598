//! Istio's validation of Gateway, Sidecar, DestinationRule, ServiceEntry,
//! WorkloadEntry and WorkloadGroup, rule by rule: each case is written
//! here from Istio's rule (istio/istio's `pkg/config/validation` and its
//! test tables), read and restated, not copied.

mod want;

use want::{check, Want};

fn gateway_tls(tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: g}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [a.example.com]\n    tls: {tls}\n"
    )
}

#[test]
fn gateway_tls_options() {
    let sds = "mode: SIMPLE, credentialName: c";
    check(
        "suites",
        &gateway_tls(&format!(
            "{{{sds}, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, \"[ECDHE-RSA-AES128-GCM-SHA256|ECDHE-RSA-CHACHA20-POLY1305]\"]}}"
        )),
        Want::Clean,
    );
    check(
        "invalid suite",
        &gateway_tls(&format!("{{{sds}, cipherSuites: [NOT-A-SUITE]}}")),
        Want::Warns("ignoring invalid cipher suites"),
    );
    check(
        "duplicate suite",
        &gateway_tls(&format!(
            "{{{sds}, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256]}}"
        )),
        Want::Warns("ignoring duplicate cipher suites"),
    );
    check(
        "suite rustls lacks",
        &gateway_tls(&format!("{{{sds}, cipherSuites: [AES128-SHA]}}")),
        Want::Warns("weft does not offer"),
    );
    check(
        "old version without suites",
        &gateway_tls(&format!("{{{sds}, minProtocolVersion: TLSV1_0}}")),
        Want::Warns("below TLSV1_2"),
    );
    // Istio has no rule for min above max; weft says the server can
    // never complete a handshake.
    check(
        "min above max",
        &gateway_tls(&format!(
            "{{{sds}, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}}"
        )),
        Want::Warns("refuses every handshake"),
    );
    check(
        "versions",
        &gateway_tls(&format!(
            "{{{sds}, minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_3}}"
        )),
        Want::Clean,
    );
    let hash = "DF:6F:F7:2F:E9:11:65:21:26:8F:65:68:FF:BD:60:FC:0F:94:D6:1F:A4:34:1E:D7:70:8A:A3:47:4B:8C:8F:9D";
    check(
        "pins",
        &gateway_tls(&format!(
            "{{mode: MUTUAL, credentialName: c, verifyCertificateHash: [\"{hash}\"], verifyCertificateSpki: [\"NvqYIYSbgK2vCJpQhObf77vv+bQWtc5ek5RIOwPiC9A=\"]}}"
        )),
        Want::Clean,
    );
    check(
        "bad hash pin",
        &gateway_tls("{mode: MUTUAL, credentialName: c, verifyCertificateHash: [abcd]}"),
        Want::Refused("not a SHA-256 certificate fingerprint"),
    );
    check(
        "bad spki pin",
        &gateway_tls("{mode: MUTUAL, credentialName: c, verifyCertificateSpki: [abcd]}"),
        Want::Refused("not a SHA-256 SPKI pin"),
    );
}
