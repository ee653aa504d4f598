//! `ipBlocks` tell mesh callers apart: a mesh request's source address is
//! the calling workload's own, and an address that belongs to a workload
//! is believed only from a caller holding that workload's certificate.

use std::time::{Duration, Instant};

use crate::common::curl;
use crate::common::mesh::{up, Mesh};

fn ip_of(m: &Mesh, proxy: &str) -> String {
    let outbound = m.proxy(proxy)["outbound"].as_str().unwrap().to_owned();
    outbound.rsplit_once(':').unwrap().0.to_owned()
}

fn policy(action: &str, ip: &str) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: ratings-by-address}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  action: {action}
  rules:
  - from:
    - source:
        ipBlocks: ["{ip}/32"]
"#
    )
}

/// Pages until both reviews v2 and v3 have served one; returns
/// (v2 showed stars, v3 showed stars), as each page says.
fn stars_by_version(m: &Mesh) -> (bool, bool) {
    let (mut v2, mut v3) = (None, None);
    let started = Instant::now();
    while v2.is_none() || v3.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "reviews v2 and v3 did not both serve"
        );
        let (_, page) = m.page(None);
        let stars = page.contains("glyphicon-star");
        if page.contains("served by: <u>reviews-v2-0") {
            v2 = Some(stars);
        } else if page.contains("served by: <u>reviews-v3-0") {
            v3 = Some(stars);
        }
    }
    (v2.unwrap_or(false), v3.unwrap_or(false))
}

#[test]
fn ip_blocks_match_the_calling_workload_and_a_borrowed_address_is_not_believed() {
    let m = up(138);
    let (v2, v3, ratings) = (
        ip_of(&m, "default/reviews-v2-0"),
        ip_of(&m, "default/reviews-v3-0"),
        ip_of(&m, "default/ratings-v1-0"),
    );
    assert_eq!(stars_by_version(&m), (true, true));

    // DENY reviews v2's address: only v2 loses its stars.
    m.write_config("ratings-policy.yaml", &policy("DENY", &v2));
    assert_eq!(stars_by_version(&m), (false, true));

    // ALLOW only v3's address: v2 is refused, v3 is not.
    m.write_config("ratings-policy.yaml", &policy("ALLOW", &v3));
    assert_eq!(stars_by_version(&m), (false, true));

    // Something on the host borrowing v3's address, in plain text, has no
    // certificate of reviews: not believed, so the ALLOW does not match.
    let borrowed = curl(&[
        "--interface",
        &v3,
        &format!("http://{ratings}:9080/ratings/0"),
    ]);
    assert_eq!(borrowed.status, 403, "{}", borrowed.body);
    assert!(
        borrowed
            .header("x-weft-reason")
            .unwrap_or_default()
            .contains("ratings-by-address"),
        "{}",
        borrowed.headers
    );
}
