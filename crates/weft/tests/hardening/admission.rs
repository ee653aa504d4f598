//! Resources are admitted one by one: a broken file does not hold back an
//! unrelated, urgent change (a deny-all applied with `weft apply` is
//! enforced), and a resource that turns invalid keeps its last good
//! version serving, as does everything in a file that stops parsing.

use std::time::{Duration, Instant};

use crate::common::{self, mesh::up, mesh::Mesh};

const REVIEWS_V1: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
";

/// The same VirtualService with a negative weight.
const REVIEWS_BROKEN: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: -40
";

/// Waits until the control plane has loaded a configuration newer than
/// `after` (the refusals are in it, whatever else it admitted).
fn next_generation(m: &Mesh, after: u64) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let s = m.status();
        if s["controlPlane"]["generation"].as_u64().unwrap_or(0) > after {
            return s;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn generation(m: &Mesh) -> u64 {
    m.status()["controlPlane"]["generation"]
        .as_u64()
        .unwrap_or(0)
}

fn reviewers(m: &Mesh) -> Vec<String> {
    m.served_by(8, None).into_keys().collect()
}

#[test]
fn one_broken_resource_never_blocks_the_others() {
    let m = up(139);
    m.write_config("reviews.yaml", REVIEWS_V1);
    assert_eq!(reviewers(&m), vec!["reviews-v1-0".to_owned()]);

    // A broken, unrelated file: refused and reported with file and line.
    let before = generation(&m);
    std::fs::write(
        m.cfg.join("unrelated.yaml"),
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: details-bad}\nspec:\n  host: details\n  trafficPolicy: {loadBalancer: {simple: ROUND_ROBINN}}\n",
    )
    .unwrap();
    let status = next_generation(&m, before);
    let refused = &status["controlPlane"]["lastRefusedChange"];
    assert_eq!(refused[0]["line"], 6, "{status}");
    assert!(
        refused[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("unrelated.yaml"),
        "{status}"
    );

    // An urgent deny-all applied meanwhile is enforced at once.
    let deny = crate::task_file(&m.w, "authorization-allow-nothing.yaml");
    let o = common::weft()
        .args(["apply", "-f", deny.to_str().unwrap(), "--admin", &m.admin])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let started = Instant::now();
    while m.page(None).0 != 403 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the deny-all applied beside a broken file is not enforced"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = common::weft()
        .args([
            "delete",
            "AuthorizationPolicy",
            "allow-nothing",
            "--admin",
            &m.admin,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let started = Instant::now();
    while m.page(None).0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(100));
    }

    // The VirtualService turns invalid: refused, and its last good version
    // keeps routing every page to v1.
    let before = generation(&m);
    std::fs::write(m.cfg.join("reviews.yaml"), REVIEWS_BROKEN).unwrap();
    let status = next_generation(&m, before);
    let kept = status["controlPlane"]["keptLastGood"].to_string();
    assert!(kept.contains("VirtualService default/reviews"), "{status}");
    assert_eq!(reviewers(&m), vec!["reviews-v1-0".to_owned()]);
    let text = m.status_text();
    assert!(
        text.contains(
            "VirtualService default/reviews: refused; its last good version keeps serving"
        ),
        "{text}"
    );

    // A file that stops parsing keeps what it held, too.
    let before = generation(&m);
    std::fs::write(m.cfg.join("reviews.yaml"), "{ this is: [not yaml").unwrap();
    let status = next_generation(&m, before);
    assert!(
        status["controlPlane"]["keptLastGood"]
            .to_string()
            .contains("VirtualService default/reviews"),
        "{status}"
    );
    assert_eq!(reviewers(&m), vec!["reviews-v1-0".to_owned()]);

    // Fixed: the refusals clear (the two files may land in two loads).
    std::fs::remove_file(m.cfg.join("unrelated.yaml")).unwrap();
    std::fs::write(m.cfg.join("reviews.yaml"), REVIEWS_V1).unwrap();
    let started = Instant::now();
    loop {
        let status = m.status();
        if status["controlPlane"]["lastRefusedChange"].is_null() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
