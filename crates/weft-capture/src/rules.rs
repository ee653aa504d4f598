//! The `nft -f` script for a [`Capture`]: Istio's tables, chains and
//! rules (as `istio-nftables` installs them for a sidecar), IPv4 only.
//!
//! Rules are listed chain by chain in the order they are evaluated, so
//! the script is also what `nft list ruleset` shows. Each table is added
//! and flushed before its rules, and the whole script is one `nft -f`
//! transaction: a pod's rules are replaced at once, never half-applied.

use std::fmt::Write;

use crate::settings::{Capture, DnsCapture, InterceptionMode, Select};
use crate::{ports, OUTBOUND_MARK, PROXY_ID};

pub const NAT: &str = "istio-proxy-nat";
pub const MANGLE: &str = "istio-proxy-mangle";
pub const RAW: &str = "istio-proxy-raw";

/// Every table capture may install, for removal.
pub const TABLES: [&str; 3] = [NAT, MANGLE, RAW];

const LOOPBACK: &str = "127.0.0.1/32";

/// One table's chains (in declaration order, with the hook of a base
/// chain) and rules (chain, rule).
struct Table {
    name: &'static str,
    chains: &'static [(&'static str, Option<&'static str>)],
    rules: Vec<(&'static str, String)>,
}

impl Table {
    fn new(name: &'static str, chains: &'static [(&'static str, Option<&'static str>)]) -> Table {
        Table {
            name,
            chains,
            rules: Vec::new(),
        }
    }

    fn add(&mut self, chain: &'static str, rule: impl Into<String>) {
        debug_assert!(self.chains.iter().any(|(c, _)| *c == chain), "{chain}");
        self.rules.push((chain, rule.into()));
    }

    fn write(&self, out: &mut String) {
        if self.rules.is_empty() {
            return;
        }
        let t = self.name;
        let _ = writeln!(out, "add table inet {t}");
        let _ = writeln!(out, "flush table inet {t}");
        for (chain, hook) in self.chains {
            if !self.rules.iter().any(|(c, _)| c == chain) {
                continue;
            }
            match hook {
                Some(h) => {
                    let _ = writeln!(out, "add chain inet {t} {chain} {{ {h} ; }}");
                }
                None => {
                    let _ = writeln!(out, "add chain inet {t} {chain}");
                }
            }
        }
        for (chain, _) in self.chains {
            for (c, rule) in &self.rules {
                if c == chain {
                    let _ = writeln!(out, "add rule inet {t} {chain} {rule}");
                }
            }
        }
    }
}

const NAT_CHAINS: &[(&str, Option<&str>)] = &[
    ("prerouting", Some("type nat hook prerouting priority -100")),
    ("output", Some("type nat hook output priority -100")),
    ("istio-inbound", None),
    ("istio-redirect", None),
    ("istio-in-redirect", None),
    ("istio-output", None),
    ("istio-output-dns", None),
];

const MANGLE_CHAINS: &[(&str, Option<&str>)] = &[
    (
        "prerouting",
        Some("type filter hook prerouting priority -150"),
    ),
    ("output", Some("type route hook output priority -150")),
    ("istio-divert", None),
    ("istio-tproxy", None),
    ("istio-inbound", None),
];

const RAW_CHAINS: &[(&str, Option<&str>)] = &[
    (
        "prerouting",
        Some("type filter hook prerouting priority -300"),
    ),
    ("output", Some("type filter hook output priority -300")),
    ("istio-inbound", None),
    ("istio-output-dns", None),
];

/// The script that installs `c`.
pub fn script(c: &Capture) -> String {
    let mut nat = Table::new(NAT, NAT_CHAINS);
    let mut mangle = Table::new(MANGLE, MANGLE_CHAINS);
    let mut raw = Table::new(RAW, RAW_CHAINS);
    let tproxy = c.mode == InterceptionMode::Tproxy;
    let dns = c.dns != DnsCapture::Off;
    let tunnel = c.tunnel_port;

    for i in &c.exclude_interfaces {
        nat.add("prerouting", format!("iifname {i} counter return"));
        nat.add("output", format!("oifname {i} counter return"));
        if tproxy {
            mangle.add("prerouting", format!("iifname {i} counter return"));
            mangle.add("output", format!("oifname {i} counter return"));
        }
    }
    nat.add(
        "istio-inbound",
        format!("meta l4proto tcp tcp dport {tunnel} counter return"),
    );
    nat.add(
        "istio-redirect",
        format!("meta l4proto tcp counter redirect to :{}", c.proxy_port),
    );
    nat.add(
        "istio-in-redirect",
        format!("meta l4proto tcp counter redirect to :{}", c.inbound_port),
    );

    // Inbound.
    if !c.inbound_ports.is_empty() {
        if tproxy {
            inbound_tproxy(c, &mut mangle);
        } else {
            nat.add("prerouting", "meta l4proto tcp counter jump istio-inbound");
            match &c.inbound_ports {
                Select::All => {
                    for p in &c.inbound_ports_exclude {
                        nat.add(
                            "istio-inbound",
                            format!("meta l4proto tcp tcp dport {p} counter return"),
                        );
                    }
                    nat.add(
                        "istio-inbound",
                        "meta l4proto tcp counter jump istio-in-redirect",
                    );
                }
                Select::Only(list) => {
                    for p in list {
                        nat.add(
                            "istio-inbound",
                            format!(
                                "meta l4proto tcp tcp dport {p} counter jump istio-in-redirect"
                            ),
                        );
                    }
                }
            }
        }
    }

    // Outbound.
    nat.add("output", "counter jump istio-output");
    for p in &c.outbound_ports_exclude {
        nat.add("istio-output", format!("tcp dport {p} counter return"));
        nat.add("istio-output", format!("udp dport {p} counter return"));
    }
    nat.add(
        "istio-output",
        format!(
            "oifname lo ip saddr {}/32 counter return",
            crate::INBOUND_PASSTHROUGH_SOURCE
        ),
    );
    // The proxy's own traffic is left alone, except that what it sends to
    // its own pod's address over loopback is inbound traffic.
    let includes_loopback = match &c.outbound_ranges {
        Select::All => false,
        Select::Only(r) => r.iter().any(|n| n.addr().is_loopback()),
    };
    for (key, ids, dns_aware) in [
        ("skuid", &c.proxy_uids, dns),
        ("skgid", &c.proxy_gids, false),
    ] {
        for id in ids {
            let not_to = if dns_aware {
                format!("{{ 53, {tunnel} }}")
            } else {
                tunnel.to_string()
            };
            nat.add(
                "istio-output",
                format!("oifname lo meta l4proto tcp ip daddr != {LOOPBACK} tcp dport != {not_to} {key} {id} counter jump istio-in-redirect"),
            );
            if !includes_loopback {
                if dns {
                    nat.add(
                        "istio-output",
                        format!("oifname lo meta l4proto tcp tcp dport != 53 {key} != {id} counter return"),
                    );
                } else {
                    nat.add(
                        "istio-output",
                        format!("oifname lo {key} != {id} counter return"),
                    );
                }
            }
            nat.add("istio-output", format!("{key} {id} counter return"));
        }
    }
    if dns {
        dns_redirect(c, &mut nat, &mut raw);
    }
    nat.add(
        "istio-output",
        format!("ip daddr {LOOPBACK} counter return"),
    );
    for n in &c.outbound_ranges_exclude {
        nat.add("istio-output", format!("ip daddr {n} counter return"));
    }
    for p in &c.outbound_ports_include {
        nat.add(
            "istio-output",
            format!("tcp dport {p} counter jump istio-redirect"),
        );
    }
    match &c.outbound_ranges {
        Select::All => nat.add("istio-output", "counter jump istio-redirect"),
        Select::Only(list) => {
            for n in list {
                nat.add(
                    "istio-output",
                    format!("ip daddr {n} counter jump istio-redirect"),
                );
            }
        }
    }
    if tproxy {
        tproxy_marks(c, &mut mangle);
    }

    let mut out = String::new();
    nat.write(&mut out);
    mangle.write(&mut out);
    raw.write(&mut out);
    out
}

/// TPROXY's inbound side: new connections to captured ports are handed to
/// the inbound port with the client's address kept, and marked so their
/// replies are routed back to the proxy.
fn inbound_tproxy(c: &Capture, mangle: &mut Table) {
    let inbound = c.inbound_port;
    mangle.add("istio-divert", format!("counter meta mark set {PROXY_ID}"));
    mangle.add("istio-divert", "counter accept");
    mangle.add(
        "istio-tproxy",
        format!("meta l4proto tcp ip daddr != {LOOPBACK} tproxy ip to :{inbound} meta mark set {PROXY_ID} counter accept"),
    );
    mangle.add("prerouting", "meta l4proto tcp counter jump istio-inbound");
    // What the proxy itself sent, and its connections to the application,
    // are not captured again.
    mangle.add(
        "istio-inbound",
        format!("meta l4proto tcp mark {PROXY_ID} counter return"),
    );
    mangle.add(
        "istio-inbound",
        format!(
            "iifname lo meta l4proto tcp ip saddr {}/32 counter return",
            crate::INBOUND_PASSTHROUGH_SOURCE
        ),
    );
    mangle.add(
        "istio-inbound",
        format!("iifname lo meta l4proto tcp mark != {OUTBOUND_MARK} counter return"),
    );
    match &c.inbound_ports {
        Select::All => {
            for p in &c.inbound_ports_exclude {
                mangle.add(
                    "istio-inbound",
                    format!("meta l4proto tcp tcp dport {p} counter return"),
                );
            }
            mangle.add(
                "istio-inbound",
                "meta l4proto tcp ct state related,established counter jump istio-divert",
            );
            mangle.add(
                "istio-inbound",
                "meta l4proto tcp counter jump istio-tproxy",
            );
        }
        Select::Only(list) => {
            for p in list {
                mangle.add(
                    "istio-inbound",
                    format!("meta l4proto tcp ct state related,established tcp dport {p} counter jump istio-divert"),
                );
                mangle.add(
                    "istio-inbound",
                    format!("meta l4proto tcp tcp dport {p} counter jump istio-tproxy"),
                );
            }
        }
    }
}

/// TPROXY's marks: a captured connection's mark is kept in conntrack so
/// its replies carry it, and the proxy's loopback traffic is marked apart.
fn tproxy_marks(c: &Capture, mangle: &mut Table) {
    mangle.add(
        "prerouting",
        format!("meta l4proto tcp mark {PROXY_ID} counter ct mark set mark"),
    );
    mangle.add(
        "output",
        format!("oifname lo meta l4proto tcp mark {PROXY_ID} counter return"),
    );
    for (key, ids) in [("skuid", &c.proxy_uids), ("skgid", &c.proxy_gids)] {
        for id in ids {
            mangle.add(
                "output",
                format!("oifname lo meta l4proto tcp ip daddr != {LOOPBACK} {key} {id} counter meta mark set {OUTBOUND_MARK}"),
            );
        }
    }
    mangle.add(
        "output",
        format!("meta l4proto tcp ct mark {PROXY_ID} counter meta mark set ct mark"),
    );
}

/// DNS to the proxy's port 15053, and conntrack zones that keep the
/// proxy's own queries upstream apart from the workload's redirected ones
/// (the same five-tuple otherwise).
fn dns_redirect(c: &Capture, nat: &mut Table, raw: &mut Table) {
    let to = ports::DNS;
    nat.add("istio-output", "counter jump istio-output-dns");
    match &c.dns {
        DnsCapture::Off => {}
        DnsCapture::All => {
            nat.add(
                "istio-output-dns",
                format!("meta l4proto tcp tcp dport 53 counter redirect to :{to}"),
            );
            nat.add(
                "istio-output-dns",
                format!("udp dport 53 counter redirect to :{to}"),
            );
        }
        DnsCapture::Servers(servers) => {
            for s in servers {
                nat.add(
                    "istio-output-dns",
                    format!("ip daddr {s}/32 tcp dport 53 counter redirect to :{to}"),
                );
            }
            for s in servers {
                nat.add(
                    "istio-output-dns",
                    format!("ip daddr {s}/32 udp dport 53 counter redirect to :{to}"),
                );
            }
        }
    }
    raw.add("output", "counter jump istio-output-dns");
    for (key, ids) in [("skuid", &c.proxy_uids), ("skgid", &c.proxy_gids)] {
        for id in ids {
            raw.add(
                "istio-output-dns",
                format!("udp dport 53 meta {key} {id} counter ct zone set 1"),
            );
            raw.add(
                "istio-output-dns",
                format!("udp sport {to} meta {key} {id} counter ct zone set 2"),
            );
        }
    }
    match &c.dns {
        DnsCapture::Off => {}
        DnsCapture::All => {
            raw.add("prerouting", "counter jump istio-inbound");
            raw.add("istio-output-dns", "udp dport 53 counter ct zone set 2");
            raw.add("istio-inbound", "udp sport 53 counter ct zone set 1");
        }
        DnsCapture::Servers(servers) => {
            if !servers.is_empty() {
                raw.add("prerouting", "counter jump istio-inbound");
            }
            for s in servers {
                raw.add(
                    "istio-output-dns",
                    format!("udp dport 53 ip daddr {s}/32 counter ct zone set 2"),
                );
                raw.add(
                    "istio-inbound",
                    format!("udp sport 53 ip saddr {s}/32 counter ct zone set 1"),
                );
            }
        }
    }
}

/// The script that removes every table capture installs. Each is added
/// first, so one that is not there is no error (`nft` before 1.0.8 has no
/// `destroy`), and all go in one transaction.
pub fn removal() -> String {
    TABLES
        .iter()
        .map(|t| format!("add table inet {t}\ndelete table inet {t}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<&str> {
        s.lines().collect()
    }

    /// Istio's injector defaults without DNS capture: the `nft list
    /// ruleset` an Istio user knows (istio-nftables, inbound `*` with the
    /// proxy's ports excluded).
    #[test]
    fn the_default_pod_has_istios_rules() {
        let c = Capture {
            dns: DnsCapture::Off,
            ..Capture::default()
        };
        let want = "\
add table inet istio-proxy-nat
flush table inet istio-proxy-nat
add chain inet istio-proxy-nat prerouting { type nat hook prerouting priority -100 ; }
add chain inet istio-proxy-nat output { type nat hook output priority -100 ; }
add chain inet istio-proxy-nat istio-inbound
add chain inet istio-proxy-nat istio-redirect
add chain inet istio-proxy-nat istio-in-redirect
add chain inet istio-proxy-nat istio-output
add rule inet istio-proxy-nat prerouting meta l4proto tcp counter jump istio-inbound
add rule inet istio-proxy-nat output counter jump istio-output
add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15008 counter return
add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15020 counter return
add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15021 counter return
add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 15090 counter return
add rule inet istio-proxy-nat istio-inbound meta l4proto tcp counter jump istio-in-redirect
add rule inet istio-proxy-nat istio-redirect meta l4proto tcp counter redirect to :15001
add rule inet istio-proxy-nat istio-in-redirect meta l4proto tcp counter redirect to :15006
add rule inet istio-proxy-nat istio-output oifname lo ip saddr 127.0.0.6/32 counter return
add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skuid 1337 counter jump istio-in-redirect
add rule inet istio-proxy-nat istio-output oifname lo skuid != 1337 counter return
add rule inet istio-proxy-nat istio-output skuid 1337 counter return
add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skgid 1337 counter jump istio-in-redirect
add rule inet istio-proxy-nat istio-output oifname lo skgid != 1337 counter return
add rule inet istio-proxy-nat istio-output skgid 1337 counter return
add rule inet istio-proxy-nat istio-output ip daddr 127.0.0.1/32 counter return
add rule inet istio-proxy-nat istio-output counter jump istio-redirect
";
        assert_eq!(lines(&script(&c)), lines(want));
    }

    #[test]
    fn ranges_ports_and_interfaces_as_istio_orders_them() {
        let c = Capture {
            dns: DnsCapture::Off,
            inbound_ports: Select::Only(vec![9080]),
            outbound_ports_exclude: vec![5432],
            outbound_ports_include: vec![3306],
            outbound_ranges: Select::Only(vec!["198.51.100.0/24".parse().unwrap()]),
            outbound_ranges_exclude: vec!["198.51.100.128/25".parse().unwrap()],
            exclude_interfaces: vec!["eth1".into()],
            ..Capture::default()
        };
        let s = script(&c);
        let output: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("add rule inet istio-proxy-nat istio-output "))
            .collect();
        assert_eq!(output.first(), Some(&"tcp dport 5432 counter return"));
        assert_eq!(output.get(1), Some(&"udp dport 5432 counter return"));
        assert_eq!(
            &output[output.len() - 4..],
            [
                "ip daddr 127.0.0.1/32 counter return",
                "ip daddr 198.51.100.128/25 counter return",
                "tcp dport 3306 counter jump istio-redirect",
                "ip daddr 198.51.100.0/24 counter jump istio-redirect",
            ]
        );
        assert!(s.contains(
            "add rule inet istio-proxy-nat istio-inbound meta l4proto tcp tcp dport 9080 counter jump istio-in-redirect"
        ));
        assert!(!s.contains("dport 15020"), "only listed ports are captured");
        assert!(s.contains("add rule inet istio-proxy-nat prerouting iifname eth1 counter return"));
        assert!(s.contains("add rule inet istio-proxy-nat output oifname eth1 counter return"));
        assert!(!s.contains(MANGLE) && !s.contains(RAW));
    }

    #[test]
    fn no_inbound_ports_no_prerouting() {
        let c = Capture {
            dns: DnsCapture::Off,
            inbound_ports: Select::Only(Vec::new()),
            ..Capture::default()
        };
        let s = script(&c);
        assert!(!s.contains("prerouting"), "{s}");
        // The tunnel port's rule stays, as in Istio's.
        assert!(s.contains("istio-inbound meta l4proto tcp tcp dport 15008 counter return"));
    }

    #[test]
    fn dns_capture_redirects_port_53_and_keeps_the_proxys_queries_apart() {
        let s = script(&Capture::default());
        for rule in [
            "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != { 53, 15008 } skuid 1337 counter jump istio-in-redirect",
            "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp tcp dport != 53 skuid != 1337 counter return",
            "add rule inet istio-proxy-nat istio-output oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != 15008 skgid 1337 counter jump istio-in-redirect",
            "add rule inet istio-proxy-nat istio-output counter jump istio-output-dns",
            "add rule inet istio-proxy-nat istio-output-dns meta l4proto tcp tcp dport 53 counter redirect to :15053",
            "add rule inet istio-proxy-nat istio-output-dns udp dport 53 counter redirect to :15053",
            "add rule inet istio-proxy-raw output counter jump istio-output-dns",
            "add rule inet istio-proxy-raw istio-output-dns udp dport 53 meta skuid 1337 counter ct zone set 1",
            "add rule inet istio-proxy-raw istio-output-dns udp sport 15053 meta skgid 1337 counter ct zone set 2",
            "add rule inet istio-proxy-raw istio-output-dns udp dport 53 counter ct zone set 2",
            "add rule inet istio-proxy-raw istio-inbound udp sport 53 counter ct zone set 1",
        ] {
            assert!(s.contains(rule), "missing: {rule}\n{s}");
        }
        let dns_jump = s
            .find("istio-output counter jump istio-output-dns")
            .unwrap();
        let loopback = s
            .find("istio-output ip daddr 127.0.0.1/32 counter return")
            .unwrap();
        assert!(dns_jump < loopback, "DNS to 127.0.0.x is captured too");
    }

    #[test]
    fn tproxy_marks_and_diverts() {
        let c = Capture {
            mode: InterceptionMode::Tproxy,
            dns: DnsCapture::Off,
            ..Capture::default()
        };
        let s = script(&c);
        let inbound: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("add rule inet istio-proxy-mangle istio-inbound "))
            .collect();
        assert_eq!(
            inbound,
            [
                "meta l4proto tcp mark 1337 counter return",
                "iifname lo meta l4proto tcp ip saddr 127.0.0.6/32 counter return",
                "iifname lo meta l4proto tcp mark != 1338 counter return",
                "meta l4proto tcp tcp dport 15020 counter return",
                "meta l4proto tcp tcp dport 15021 counter return",
                "meta l4proto tcp tcp dport 15090 counter return",
                "meta l4proto tcp ct state related,established counter jump istio-divert",
                "meta l4proto tcp counter jump istio-tproxy",
            ]
        );
        assert!(s.contains(
            "add chain inet istio-proxy-mangle output { type route hook output priority -150 ; }"
        ));
        assert!(s.contains("istio-tproxy meta l4proto tcp ip daddr != 127.0.0.1/32 tproxy ip to :15006 meta mark set 1337 counter accept"));
        assert!(s.contains("add rule inet istio-proxy-mangle output meta l4proto tcp ct mark 1337 counter meta mark set ct mark"));
        // Inbound goes through mangle, not NAT.
        assert!(!s.contains("istio-proxy-nat prerouting"));
    }
}
