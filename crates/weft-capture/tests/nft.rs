//! The scripts against the real `nft`, in network namespaces made for the
//! test (root only; skipped with a line saying why elsewhere).

use std::process::Command;

use weft_capture::settings::{DnsCapture, Select};
use weft_capture::{install, remove, Capture, InterceptionMode};

struct Namespace(String);

impl Namespace {
    fn new(tag: &str) -> Option<Namespace> {
        let name = format!("weft-capt-{}-{tag}", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &name]).output();
        match made {
            Ok(o) if o.status.success() => Some(Namespace(name)),
            Ok(o) => {
                eprintln!(
                    "skipped: `ip netns add` failed (root is needed): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: `ip` is not available here: {e}");
                None
            }
        }
    }

    fn ruleset(&self) -> String {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft", "list", "ruleset"])
            .output()
            .expect("nft");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn nft_present() -> bool {
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!("skipped: `nft` is not installed (Debian's nftables package)");
        return false;
    }
    true
}

#[test]
fn every_shape_of_capture_installs_replaces_and_goes() {
    if !nft_present() {
        return;
    }
    let Some(ns) = Namespace::new("shapes") else {
        return;
    };
    let shapes = [
        Capture::default(),
        Capture {
            dns: DnsCapture::Off,
            ..Capture::default()
        },
        Capture {
            mode: InterceptionMode::Tproxy,
            ..Capture::default()
        },
        Capture {
            dns: DnsCapture::Servers(vec!["198.51.100.53".parse().unwrap()]),
            inbound_ports: Select::Only(vec![9080, 9443]),
            outbound_ports_exclude: vec![5432],
            outbound_ports_include: vec![3306],
            outbound_ranges: Select::Only(vec!["198.51.100.0/24".parse().unwrap()]),
            outbound_ranges_exclude: vec!["198.51.100.128/25".parse().unwrap()],
            exclude_interfaces: vec!["eth1".into()],
            ..Capture::default()
        },
    ];
    for c in &shapes {
        install(Some(&ns.0), c).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        let rules = ns.ruleset();
        assert!(rules.contains("table inet istio-proxy-nat"), "{rules}");
        assert!(rules.contains("chain istio-output"), "{rules}");
        assert!(rules.contains("redirect to :15001"), "{rules}");
        // Installing again replaces: no rule is there twice.
        install(Some(&ns.0), c).unwrap();
        let again = ns.ruleset();
        assert_eq!(again.matches("redirect to :15001").count(), 1, "{again}");
    }
    remove(Some(&ns.0)).unwrap();
    assert!(!ns.ruleset().contains("istio-proxy"), "{}", ns.ruleset());
    // Removing what is not there is no error.
    remove(Some(&ns.0)).unwrap();
}

#[test]
fn a_missing_namespace_is_a_clear_error() {
    if !nft_present() {
        return;
    }
    let e = install(Some("weft-capt-no-such-namespace"), &Capture::default()).unwrap_err();
    assert!(e.to_string().contains("weft-capt-no-such-namespace"), "{e}");
}
