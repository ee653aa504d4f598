//! No bypass of the mesh, enforced in a pod's own namespace: a filter
//! table (`inet weft-guard`) beside the capture tables that lets out only
//! what went to the proxy (anything to loopback, where capture redirects
//! the workload's TCP and DNS) and the proxy's own traffic, and lets in
//! only what the proxy takes (the inbound capture and tunnel ports, its
//! status and metrics ports, what TPROXY marked) and replies. Anything
//! else (a process that excluded a port, a raw socket to a peer's
//! application port, a connection straight to the application) is
//! counted and logged with the Guardrail's name, and dropped when the
//! Guardrail enforces.

use std::fmt::Write;

use crate::apply::{run_tool, ApplyError};
use crate::{ports, PROXY_ID};

pub const TABLE: &str = "weft-guard";

/// The Guardrail a pod is held to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    /// `namespace/name`, as logs and counters name it.
    pub policy: String,
    /// Drop what would bypass the mesh; otherwise only count and log it.
    pub enforce: bool,
}

/// A Guardrail's name as a log prefix may hold it: at most 127 bytes,
/// and no quotes.
pub(crate) fn prefix_name(policy: &str) -> String {
    policy
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.'))
        .take(64)
        .collect()
}

/// The `nft -f` script that installs `g` (replacing what is there).
pub fn script(g: &Guard) -> String {
    let verdict = if g.enforce { "drop" } else { "accept" };
    let name = prefix_name(&g.policy);
    let mut s = String::new();
    let t = TABLE;
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "flush table inet {t}");
    let _ = writeln!(
        s,
        "add chain inet {t} output {{ type filter hook output priority 0 ; policy accept ; }}"
    );
    let _ = writeln!(
        s,
        "add chain inet {t} input {{ type filter hook input priority 0 ; policy accept ; }}"
    );
    let _ = writeln!(s, "add rule inet {t} output oifname \"lo\" accept");
    // What capture redirected to the proxy (the route may still name the
    // interface it would have left by).
    let _ = writeln!(s, "add rule inet {t} output ct status dnat accept");
    let _ = writeln!(s, "add rule inet {t} output ip daddr 127.0.0.0/8 accept");
    let _ = writeln!(s, "add rule inet {t} output meta skgid {PROXY_ID} accept");
    let _ = writeln!(
        s,
        "add rule inet {t} output counter log prefix \"weft-guardrail {name} outbound: \" {verdict}"
    );
    let _ = writeln!(s, "add rule inet {t} input iifname \"lo\" accept");
    let _ = writeln!(
        s,
        "add rule inet {t} input ct state established,related accept"
    );
    let _ = writeln!(
        s,
        "add rule inet {t} input tcp dport {{ {}, {}, {}, {}, {} }} accept",
        ports::INBOUND,
        ports::TUNNEL,
        ports::ADMIN,
        ports::HEALTH,
        ports::METRICS
    );
    let _ = writeln!(s, "add rule inet {t} input meta mark {PROXY_ID} accept");
    let _ = writeln!(
        s,
        "add rule inet {t} input counter log prefix \"weft-guardrail {name} inbound: \" {verdict}"
    );
    s
}

/// Holds `netns` (or here) to `guard`, or lets it go (`None`).
pub fn install(netns: Option<&str>, guard: Option<&Guard>) -> Result<(), ApplyError> {
    let script = match guard {
        Some(g) => script(g),
        // Adding first makes deleting a table that is not there no error.
        None => format!("add table inet {TABLE}\ndelete table inet {TABLE}\n"),
    };
    run_tool(netns, "nft", "nftables", &["-f", "-"], Some(&script))
}

/// One of the guard's counters, as its rule names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The Guardrail, from the rule's log prefix.
    pub policy: String,
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Whether the rule drops (Enforce) or only counts (Audit).
    pub drops: bool,
    pub packets: u64,
}

/// The guard's counters in `netns` (or here), each with the Guardrail
/// its rule names; none when no guard is installed.
pub fn counters(netns: Option<&str>) -> Vec<Counter> {
    counters_of(netns, TABLE)
}

/// The counters of a guard table (`table`) whose rules log
/// `weft-guardrail NS/NAME DIRECTION: `.
pub fn counters_of(netns: Option<&str>, table: &str) -> Vec<Counter> {
    let Some(out) = crate::apply::command(netns, "nft", &["-j", "list", "table", "inet", table])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
    else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for item in v["nftables"].as_array().into_iter().flatten() {
        let Some(exprs) = item["rule"]["expr"].as_array() else {
            continue;
        };
        let packets = exprs.iter().find_map(|e| e["counter"]["packets"].as_u64());
        let prefix = exprs.iter().find_map(|e| e["log"]["prefix"].as_str());
        let (Some(packets), Some(prefix)) = (packets, prefix) else {
            continue;
        };
        // "weft-guardrail NS/NAME outbound: "
        let mut words = prefix
            .trim()
            .trim_end_matches(':')
            .split_whitespace()
            .skip(1);
        let (Some(policy), Some(direction)) = (words.next(), words.next()) else {
            continue;
        };
        found.push(Counter {
            policy: policy.to_owned(),
            direction: direction.to_owned(),
            drops: exprs.iter().any(|e| e.get("drop").is_some()),
            packets,
        });
    }
    found
}

/// Guard counters as Prometheus metrics, `reason` the Guardrail rule
/// they enforce: packets dropped under Enforce
/// (`weft_policy_dropped_total`), or let through and counted under Audit
/// (`weft_policy_audited_total`).
pub fn render(counters: &[Counter], reason: &str) -> String {
    let mut out = String::new();
    for (name, help, drops) in [
        (
            "weft_policy_dropped_total",
            "Packets a Guardrail dropped for going around the mesh.",
            true,
        ),
        (
            "weft_policy_audited_total",
            "Packets an audited Guardrail counted going around the mesh.",
            false,
        ),
    ] {
        let mine: Vec<_> = counters.iter().filter(|c| c.drops == drops).collect();
        if mine.is_empty() {
            continue;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for c in mine {
            out.push_str(&format!(
                "{name}{{policy=\"{}\",direction=\"{}\",reason=\"{reason}\"}} {}\n",
                c.policy, c.direction, c.packets
            ));
        }
    }
    out
}

/// What the guard counted in `netns`: packets stopped (or, auditing,
/// seen) going out and coming in; `None` when no guard is installed.
pub fn counted(netns: Option<&str>) -> Option<(u64, u64)> {
    let all = counters(netns);
    if all.is_empty() {
        return None;
    }
    let sum = |d: &str| {
        all.iter()
            .filter(|c| c.direction == d)
            .map(|c| c.packets)
            .sum()
    };
    Some((sum("outbound"), sum("inbound")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_lets_through_only_the_proxys_ways() {
        let s = script(&Guard {
            policy: "istio-system/platform\"; drop".into(),
            enforce: true,
        });
        assert!(s.contains("add rule inet weft-guard output oifname \"lo\" accept"));
        assert!(s.contains("output meta skgid 1337 accept"));
        assert!(s.contains("input tcp dport { 15006, 15008, 15020, 15021, 15090 } accept"));
        assert!(s.contains(
            "output counter log prefix \"weft-guardrail istio-system/platformdrop outbound: \" drop"
        ));
        let audit = script(&Guard {
            policy: "team/rails".into(),
            enforce: false,
        });
        assert!(audit.contains("inbound: \" accept"), "{audit}");
        assert!(!audit.contains(" drop"), "{audit}");
    }
}
