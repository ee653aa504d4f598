//! Egress only through the egress gateway, enforced where the mesh meets
//! the outside: a filter table (`inet weft-egress`) in the mesh network's
//! namespace, where the gateways run and every node's traffic is routed.
//! What a pod sends beyond the mesh's own ranges is forwarded through
//! that namespace, so it is counted and logged with the Guardrail's name
//! there, and dropped when the Guardrail enforces; the egress gateway's
//! own connections start in that namespace and are never forwarded, so
//! they go out. A pod cannot get around it from inside its namespace,
//! root or not: the table is not in its namespace.

use std::fmt::Write;

use ipnet::IpNet;

use crate::apply::{run_tool, ApplyError};
use crate::guard::{counters_of, prefix_name, Counter};

pub const TABLE: &str = "weft-egress";

/// The Guardrail the mesh's egress is held to, and what is the mesh's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressGuard {
    /// `namespace/name`, as logs and counters name it.
    pub policy: String,
    /// Drop what leaves another way; otherwise only count and log it.
    pub enforce: bool,
    /// The mesh's own ranges (its network, services, pods): traffic
    /// within them is not egress.
    pub mesh: Vec<IpNet>,
}

/// The `nft -f` script that installs `g` (replacing what is there).
pub fn script(g: &EgressGuard) -> String {
    let verdict = if g.enforce { "drop" } else { "accept" };
    let name = prefix_name(&g.policy);
    let t = TABLE;
    let mut s = String::new();
    let _ = writeln!(s, "add table inet {t}");
    let _ = writeln!(s, "flush table inet {t}");
    let _ = writeln!(
        s,
        "add chain inet {t} forward {{ type filter hook forward priority 0 ; policy accept ; }}"
    );
    let _ = writeln!(
        s,
        "add rule inet {t} forward ct state established,related accept"
    );
    let v4: Vec<String> = g
        .mesh
        .iter()
        .filter(|n| matches!(n, IpNet::V4(_)))
        .map(ToString::to_string)
        .collect();
    if !v4.is_empty() {
        let _ = writeln!(
            s,
            "add rule inet {t} forward ip daddr {{ {} }} accept",
            v4.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "add rule inet {t} forward counter log prefix \"weft-guardrail {name} egress: \" {verdict}"
    );
    s
}

/// Holds the mesh network's namespace (`netns`, or here) to `guard`, or
/// lets it go (`None`).
pub fn install(netns: Option<&str>, guard: Option<&EgressGuard>) -> Result<(), ApplyError> {
    let script = match guard {
        Some(g) => script(g),
        None => format!("add table inet {TABLE}\ndelete table inet {TABLE}\n"),
    };
    run_tool(netns, "nft", "nftables", &["-f", "-"], Some(&script))
}

/// The egress guard's counter, with the Guardrail its rule names.
pub fn counters(netns: Option<&str>) -> Vec<Counter> {
    counters_of(netns, TABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_meshs_ranges_are_forwarded_freely() {
        let s = script(&EgressGuard {
            policy: "istio-system/platform".into(),
            enforce: true,
            mesh: vec!["198.18.0.0/15".parse().unwrap()],
        });
        assert!(s.contains("hook forward"), "{s}");
        assert!(s.contains("ip daddr { 198.18.0.0/15 } accept"), "{s}");
        assert!(
            s.contains("counter log prefix \"weft-guardrail istio-system/platform egress: \" drop"),
            "{s}"
        );
        let audit = script(&EgressGuard {
            enforce: false,
            ..EgressGuard {
                policy: "p".into(),
                enforce: true,
                mesh: vec![],
            }
        });
        assert!(audit.ends_with("egress: \" accept\n"), "{audit}");
    }
}
