//! A pod speaks only from its own address, as CNIs hold it (Calico's and
//! Cilium's anti-spoofing): in its node's namespace a bridge filter
//! (`bridge weft-antispoof`) drops what arrives from a pod's veth with
//! another source address (an IPv4 packet, or an ARP claim), counted and
//! logged, and any other kind of frame (pods have IPv4 addresses alone). The pod cannot touch it: it is outside the pod's namespace, so
//! root in the pod does not help.

use std::net::Ipv4Addr;

use crate::apply::{run_tool, ApplyError};

pub const TABLE: &str = "weft-antispoof";

/// The node's table: what comes in from a pod's veth (`wv*`) must carry
/// the address the pod was given on that veth.
pub fn table_script() -> String {
    let t = TABLE;
    [
        format!("add table bridge {t}"),
        format!("flush table bridge {t}"),
        format!("add set bridge {t} pods {{ type ifname . ipv4_addr ; }}"),
        format!(
            "add chain bridge {t} prerouting {{ type filter hook prerouting priority -200 ; policy accept ; }}"
        ),
        format!(
            "add rule bridge {t} prerouting iifname \"wv*\" ether type ip iifname . ip saddr != @pods counter log prefix \"weft-antispoof ip: \" drop"
        ),
        format!(
            "add rule bridge {t} prerouting iifname \"wv*\" ether type arp iifname . arp saddr ip != @pods counter log prefix \"weft-antispoof arp: \" drop"
        ),
        // Pods have IPv4 addresses alone: anything else from them (IPv6,
        // a VLAN tag around a spoofed packet) is not theirs to send.
        format!(
            "add rule bridge {t} prerouting iifname \"wv*\" ether type != {{ ip, arp }} counter drop"
        ),
    ]
    .join("\n")
        + "\n"
}

/// Lets the pod on veth `veth` speak from `addr`.
pub fn admit_script(veth: &str, addr: Ipv4Addr) -> String {
    format!("add element bridge {TABLE} pods {{ \"{veth}\" . {addr} }}\n")
}

/// Forgets the pod on `veth` (its pod is gone).
pub fn forget_script(veth: &str, addr: Ipv4Addr) -> String {
    format!("delete element bridge {TABLE} pods {{ \"{veth}\" . {addr} }}\n")
}

/// Installs the node's table in `netns`.
pub fn install(netns: &str) -> Result<(), ApplyError> {
    run_tool(
        Some(netns),
        "nft",
        "nftables",
        &["-f", "-"],
        Some(&table_script()),
    )
}

/// Lets the pod on `veth` speak from `addr` in node `netns`.
pub fn admit(netns: &str, veth: &str, addr: Ipv4Addr) -> Result<(), ApplyError> {
    run_tool(
        Some(netns),
        "nft",
        "nftables",
        &["-f", "-"],
        Some(&admit_script(veth, addr)),
    )
}

/// Forgets the pod on `veth` in node `netns` (quietly: the node may be
/// gone with it).
pub fn forget(netns: &str, veth: &str, addr: Ipv4Addr) {
    let _ = run_tool(
        Some(netns),
        "nft",
        "nftables",
        &["-f", "-"],
        Some(&forget_script(veth, addr)),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_pods_own_address_passes_its_veth() {
        let s = super::table_script();
        assert!(s.contains("iifname . ip saddr != @pods counter"), "{s}");
        assert!(s.contains("arp saddr ip != @pods"), "{s}");
        assert_eq!(
            super::admit_script("wv1a2b", "198.19.1.5".parse().unwrap()),
            "add element bridge weft-antispoof pods { \"wv1a2b\" . 198.19.1.5 }\n"
        );
    }
}
