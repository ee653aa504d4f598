//! What a pod asks of capture, from Istio's annotations, with the
//! injector's defaults: every inbound port but the proxy's own, every
//! outbound address, REDIRECT.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;

use crate::{ports, PROXY_ID};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterceptionMode {
    /// NAT to the proxy's port; the application sees the proxy's address
    /// as its client's.
    Redirect,
    /// TPROXY: the inbound side keeps the client's address.
    Tproxy,
}

/// Ports or addresses to capture: all of them, or those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select<T> {
    All,
    Only(Vec<T>),
}

impl<T> Select<T> {
    pub fn is_empty(&self) -> bool {
        matches!(self, Select::Only(v) if v.is_empty())
    }
}

/// DNS capture: queries the workload sends are answered by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsCapture {
    Off,
    /// Every query on port 53, whatever server it names.
    All,
    /// Queries to these servers (the pod's `resolv.conf`).
    Servers(Vec<std::net::Ipv4Addr>),
}

/// One pod's capture, as `istio-iptables`/`istio-nftables` is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub mode: InterceptionMode,
    pub proxy_port: u16,
    pub inbound_port: u16,
    pub tunnel_port: u16,
    pub proxy_uids: Vec<u32>,
    pub proxy_gids: Vec<u32>,
    pub inbound_ports: Select<u16>,
    pub inbound_ports_exclude: Vec<u16>,
    pub outbound_ports_include: Vec<u16>,
    pub outbound_ports_exclude: Vec<u16>,
    pub outbound_ranges: Select<Ipv4Net>,
    pub outbound_ranges_exclude: Vec<Ipv4Net>,
    pub exclude_interfaces: Vec<String>,
    pub dns: DnsCapture,
}

impl Default for Capture {
    /// What Istio's injector asks for a pod with no annotations (DNS
    /// capture on, as weft's proxies answer DNS).
    fn default() -> Self {
        Capture {
            mode: InterceptionMode::Redirect,
            proxy_port: ports::OUTBOUND,
            inbound_port: ports::INBOUND,
            tunnel_port: ports::TUNNEL,
            proxy_uids: vec![PROXY_ID],
            proxy_gids: vec![PROXY_ID],
            inbound_ports: Select::All,
            inbound_ports_exclude: vec![ports::ADMIN, ports::HEALTH, ports::METRICS],
            outbound_ports_include: Vec::new(),
            outbound_ports_exclude: Vec::new(),
            outbound_ranges: Select::All,
            outbound_ranges_exclude: Vec::new(),
            exclude_interfaces: Vec::new(),
            dns: DnsCapture::All,
        }
    }
}

/// An annotation whose value capture cannot use.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("annotation {annotation}: {value:?} {why}; {fix}")]
pub struct SettingsError {
    pub annotation: String,
    pub value: String,
    pub why: String,
    pub fix: &'static str,
}

pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const EXCLUDE_INTERFACES: &str = "traffic.sidecar.istio.io/excludeInterfaces";

impl Capture {
    /// The capture a pod with `annotations` asks for; `None` when it asks
    /// for none (`interceptionMode: NONE`).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
    ) -> Result<Option<Capture>, SettingsError> {
        let mut c = Capture::default();
        let get = |k: &str| annotations.get(k).map(|v| v.trim());
        match get(INTERCEPTION_MODE) {
            None | Some("REDIRECT") => {}
            Some("TPROXY") => c.mode = InterceptionMode::Tproxy,
            Some("NONE") => return Ok(None),
            Some(other) => {
                return Err(SettingsError {
                    annotation: INTERCEPTION_MODE.into(),
                    value: other.into(),
                    why: "is not an interception mode".into(),
                    fix: "use REDIRECT, TPROXY or NONE",
                })
            }
        }
        if let Some(v) = get(INCLUDE_INBOUND_PORTS) {
            c.inbound_ports = select(INCLUDE_INBOUND_PORTS, v, port)?;
        }
        if let Some(v) = get(EXCLUDE_INBOUND_PORTS) {
            // The injector adds the proxy's own ports to what the pod says.
            for p in list(EXCLUDE_INBOUND_PORTS, v, port)? {
                if !c.inbound_ports_exclude.contains(&p) {
                    c.inbound_ports_exclude.push(p);
                }
            }
        }
        if let Some(v) = get(INCLUDE_OUTBOUND_PORTS) {
            c.outbound_ports_include = list(INCLUDE_OUTBOUND_PORTS, v, port)?;
        }
        if let Some(v) = get(EXCLUDE_OUTBOUND_PORTS) {
            c.outbound_ports_exclude = list(EXCLUDE_OUTBOUND_PORTS, v, port)?;
        }
        if let Some(v) = get(INCLUDE_OUTBOUND_IP_RANGES) {
            c.outbound_ranges = select(INCLUDE_OUTBOUND_IP_RANGES, v, cidr)?;
        }
        if let Some(v) = get(EXCLUDE_OUTBOUND_IP_RANGES) {
            if v == "*" {
                return Err(SettingsError {
                    annotation: EXCLUDE_OUTBOUND_IP_RANGES.into(),
                    value: v.into(),
                    why: "would exclude every address".into(),
                    fix: "list CIDRs, or set includeOutboundIPRanges to \"\" to capture no outbound traffic",
                });
            }
            c.outbound_ranges_exclude = list(EXCLUDE_OUTBOUND_IP_RANGES, v, cidr)?;
        }
        if let Some(v) = get(EXCLUDE_INTERFACES) {
            c.exclude_interfaces = list(EXCLUDE_INTERFACES, v, interface)?;
        }
        Ok(Some(c))
    }
}

fn items(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn list<T>(
    annotation: &str,
    v: &str,
    parse: fn(&str) -> Result<T, (String, &'static str)>,
) -> Result<Vec<T>, SettingsError> {
    items(v)
        .map(|item| {
            parse(item).map_err(|(why, fix)| SettingsError {
                annotation: annotation.into(),
                value: item.into(),
                why,
                fix,
            })
        })
        .collect()
}

fn select<T>(
    annotation: &str,
    v: &str,
    parse: fn(&str) -> Result<T, (String, &'static str)>,
) -> Result<Select<T>, SettingsError> {
    if items(v).any(|i| i == "*") {
        return Ok(Select::All);
    }
    list(annotation, v, parse).map(Select::Only)
}

fn port(s: &str) -> Result<u16, (String, &'static str)> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err((
            "is not a port".into(),
            "list port numbers from 1 to 65535, separated by commas",
        )),
    }
}

fn cidr(s: &str) -> Result<Ipv4Net, (String, &'static str)> {
    if s.contains(':') {
        return Err((
            "is an IPv6 range; weft's pods have IPv4 addresses only".into(),
            "list IPv4 CIDRs such as 198.51.100.0/24",
        ));
    }
    // Istio takes a bare address as a /32.
    let parsed = if s.contains('/') {
        s.parse::<Ipv4Net>().ok().map(|n| n.trunc())
    } else {
        s.parse::<std::net::Ipv4Addr>().ok().map(Ipv4Net::from)
    };
    parsed.ok_or_else(|| {
        (
            "is not an IPv4 CIDR".into(),
            "list CIDRs such as 198.51.100.0/24, separated by commas",
        )
    })
}

fn interface(s: &str) -> Result<String, (String, &'static str)> {
    let ok = s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err((
            "is not an interface name".into(),
            "name interfaces as `ip link` shows them (at most 15 characters)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_pod_without_annotations_takes_the_injectors_defaults() {
        let c = Capture::from_annotations(&BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(c, Capture::default());
        assert_eq!(c.inbound_ports_exclude, vec![15020, 15021, 15090]);
    }

    #[test]
    fn annotations_are_read_as_istio_writes_them() {
        let c = Capture::from_annotations(&ann(&[
            (INTERCEPTION_MODE, "TPROXY"),
            (INCLUDE_INBOUND_PORTS, "9080, 9443"),
            (EXCLUDE_INBOUND_PORTS, "9090,15020"),
            (INCLUDE_OUTBOUND_IP_RANGES, "198.51.100.0/24,203.0.113.7"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "198.51.100.128/25"),
            (EXCLUDE_OUTBOUND_PORTS, "5432"),
            (INCLUDE_OUTBOUND_PORTS, "3306"),
            (EXCLUDE_INTERFACES, "eth1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.mode, InterceptionMode::Tproxy);
        assert_eq!(c.inbound_ports, Select::Only(vec![9080, 9443]));
        assert_eq!(c.inbound_ports_exclude, vec![15020, 15021, 15090, 9090]);
        assert_eq!(
            c.outbound_ranges,
            Select::Only(vec![
                "198.51.100.0/24".parse().unwrap(),
                "203.0.113.7/32".parse().unwrap()
            ])
        );
        assert_eq!(c.outbound_ports_exclude, vec![5432]);
        assert_eq!(c.outbound_ports_include, vec![3306]);
        assert_eq!(c.exclude_interfaces, vec!["eth1".to_owned()]);
        assert_eq!(
            Capture::from_annotations(&ann(&[(INTERCEPTION_MODE, "NONE")])).unwrap(),
            None
        );
        let none = Capture::from_annotations(&ann(&[(INCLUDE_INBOUND_PORTS, "")]))
            .unwrap()
            .unwrap();
        assert!(none.inbound_ports.is_empty());
    }

    #[test]
    fn bad_values_name_the_annotation_and_the_fix() {
        let e = Capture::from_annotations(&ann(&[(EXCLUDE_INBOUND_PORTS, "80,http")])).unwrap_err();
        assert_eq!(e.annotation, EXCLUDE_INBOUND_PORTS);
        assert_eq!(e.value, "http");
        assert!(e.to_string().contains("list port numbers"), "{e}");
        for (k, v) in [
            (INTERCEPTION_MODE, "redirect"),
            (INCLUDE_OUTBOUND_IP_RANGES, "198.51.100.0/33"),
            (INCLUDE_OUTBOUND_IP_RANGES, "2001:db8::/32"),
            (EXCLUDE_OUTBOUND_IP_RANGES, "*"),
            (INCLUDE_OUTBOUND_PORTS, "0"),
            (EXCLUDE_INTERFACES, "an interface name too long"),
        ] {
            assert!(
                Capture::from_annotations(&ann(&[(k, v)])).is_err(),
                "{k}: {v}"
            );
        }
    }
}
