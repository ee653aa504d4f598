//! Hosts and VMs joining the mesh by auto-registration, as Istio's
//! (`istioctl x workload entry configure --autoregister`, then the VM's
//! agent connecting): a WorkloadGroup describes them, the control plane
//! hands out a bootstrap token for the group (`weft workload configure`
//! asks for one through the admin API), and a proxy that connects with it,
//! named `<namespace>/<group>-<its address>`, gets a WorkloadEntry made
//! from the group's template. The entry lives while the proxy is
//! connected and for a grace period after (Istio's
//! `PILOT_WORKLOAD_ENTRY_GRACE_PERIOD`, 10 s by default).
//!
//! A token registers new VMs until it expires (`--tokenDuration`, an hour
//! by default). A VM registered with it stays bound to it: it reconnects
//! and renews its certificate with the same token after that, but no new
//! VM can use it. Istio's VM keeps its identity the same way, with the
//! certificate the bootstrap token first got it. Grants are kept in the
//! run directory (0600), so they survive a restart of the control plane.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a registration outlives its proxy's last stream: Istio's
/// `PILOT_WORKLOAD_ENTRY_GRACE_PERIOD` (a duration, 10s by default).
pub fn grace_period() -> Duration {
    std::env::var("PILOT_WORKLOAD_ENTRY_GRACE_PERIOD")
        .ok()
        .and_then(|v| weft_api::types::common::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(10))
}

/// Istio's annotation naming the group an entry was registered from.
pub const AUTO_REGISTRATION_GROUP: &str = "istio.io/autoRegistrationGroup";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Grant {
    token: String,
    namespace: String,
    group: String,
    /// Seconds since the Unix epoch after which it registers no new VM.
    expires_unix: u64,
    /// Proxies registered with it, which keep using it.
    bound: BTreeSet<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    grants: Vec<Grant>,
}

/// The group tokens this control plane handed out.
#[derive(Debug)]
pub struct Grants {
    path: PathBuf,
    table: Mutex<Table>,
}

/// A proxy admitted by a group token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub proxy: String,
    pub namespace: String,
    pub group: String,
    pub address: IpAddr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("no group token matches")]
    Unknown,
    #[error("the bootstrap token of WorkloadGroup {0} expired; run `weft workload configure` again for a new one")]
    Expired(String),
    #[error("a proxy with WorkloadGroup {group}'s token must be named {namespace}/{group}-<its address>, not {proxy}")]
    Misnamed {
        proxy: String,
        namespace: String,
        group: String,
    },
    #[error("{proxy} names address {named}, but it connected from {peer}")]
    WrongAddress {
        proxy: String,
        named: IpAddr,
        peer: IpAddr,
    },
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The name of the WorkloadEntry a VM at `address` registers in `group`
/// (Istio's: `<group>-<address>`, an IPv6 address's colons as dashes).
pub fn entry_name(group: &str, address: IpAddr) -> String {
    format!("{group}-{}", address.to_string().replace(':', "-"))
}

impl Grants {
    /// The grants kept at `path` (none when it is missing or unreadable).
    pub fn load(path: PathBuf) -> Grants {
        let table = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Grants {
            path,
            table: Mutex::new(table),
        }
    }

    fn save(&self, table: &Table) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(table).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::push::write_private(&self.path, &text)
    }

    /// A new token for WorkloadGroup `namespace/group`, registering VMs
    /// for `ttl`.
    pub fn issue(&self, namespace: &str, group: &str, ttl: Duration) -> std::io::Result<String> {
        let token = format!("{:032x}", crate::push::fastrand_u128());
        let mut table = self
            .table
            .lock()
            .map_err(|_| std::io::Error::other("grants poisoned"))?;
        let now = now_unix();
        // Expired grants that bound nobody are of no use to anyone.
        table
            .grants
            .retain(|g| g.expires_unix > now || !g.bound.is_empty());
        table.grants.push(Grant {
            token: token.clone(),
            namespace: namespace.to_owned(),
            group: group.to_owned(),
            expires_unix: now.saturating_add(ttl.as_secs()),
            bound: BTreeSet::new(),
        });
        self.save(&table)?;
        Ok(token)
    }

    /// Admits `proxy` presenting `token` from `peer`: a proxy the token
    /// registered before, or, while it has not expired, a new one named as
    /// the group's VMs are, at the address it connects from.
    pub fn admit(
        &self,
        proxy: &str,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Result<Admitted, Refused> {
        let mut table = self.table.lock().map_err(|_| Refused::Unknown)?;
        let grant = table
            .grants
            .iter_mut()
            .find(|g| crate::push::constant_time_eq(g.token.as_bytes(), token.as_bytes()))
            .ok_or(Refused::Unknown)?;
        let (namespace, name) = proxy.split_once('/').unwrap_or(("", proxy));
        let misnamed = || Refused::Misnamed {
            proxy: proxy.to_owned(),
            namespace: grant.namespace.clone(),
            group: grant.group.clone(),
        };
        let address = name
            .strip_prefix(&format!("{}-", grant.group))
            .filter(|_| namespace == grant.namespace)
            .and_then(|a| {
                a.parse::<IpAddr>()
                    .ok()
                    .or_else(|| a.replace('-', ":").parse().ok())
            })
            .ok_or_else(misnamed)?;
        if entry_name(&grant.group, address) != name {
            return Err(misnamed());
        }
        if let Some(peer) = peer.filter(|p| *p != address) {
            return Err(Refused::WrongAddress {
                proxy: proxy.to_owned(),
                named: address,
                peer,
            });
        }
        let admitted = Admitted {
            proxy: proxy.to_owned(),
            namespace: grant.namespace.clone(),
            group: grant.group.clone(),
            address,
        };
        if grant.bound.contains(proxy) {
            return Ok(admitted);
        }
        if grant.expires_unix <= now_unix() {
            return Err(Refused::Expired(format!(
                "{}/{}",
                grant.namespace, grant.group
            )));
        }
        grant.bound.insert(proxy.to_owned());
        if let Err(e) = self.save(&table) {
            tracing::warn!(error = %e, "cannot keep the VM registrations");
        }
        Ok(admitted)
    }

    /// Whether `token` is the one `proxy` registered with (the CA asks).
    pub fn bound(&self, proxy: &str, token: &str) -> bool {
        self.table
            .lock()
            .map(|t| {
                t.grants.iter().any(|g| {
                    g.bound.contains(proxy)
                        && crate::push::constant_time_eq(g.token.as_bytes(), token.as_bytes())
                })
            })
            .unwrap_or(false)
    }
}

/// The WorkloadEntry a VM at `address` registers from WorkloadGroup
/// `group` (as Istio's `workloadEntryFromGroup`): the template, its
/// address, the group's metadata labels over the template's, the group's
/// annotations and `istio.io/autoRegistrationGroup`. YAML, to be loaded as
/// any resource is.
pub fn entry_yaml(
    namespace: &str,
    group: &str,
    wg: &weft_api::types::networking::WorkloadGroup,
    address: IpAddr,
) -> String {
    let template = wg.template.clone().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = template.labels.clone();
    let mut annotations: BTreeMap<String, String> = BTreeMap::new();
    if let Some(m) = &wg.metadata {
        labels.extend(m.labels.clone());
        annotations.extend(m.annotations.clone());
    }
    annotations.insert(AUTO_REGISTRATION_GROUP.to_owned(), group.to_owned());
    let mut spec = serde_json::json!({
        "address": address.to_string(),
        "labels": labels,
    });
    if !template.ports.is_empty() {
        spec["ports"] = serde_json::json!(template.ports);
    }
    if !template.service_account.is_empty() {
        spec["serviceAccount"] = serde_json::json!(template.service_account);
    }
    if !template.network.is_empty() {
        spec["network"] = serde_json::json!(template.network);
    }
    if !template.locality.is_empty() {
        spec["locality"] = serde_json::json!(template.locality);
    }
    if let Some(w) = template.weight {
        spec["weight"] = serde_json::json!(w);
    }
    let doc = serde_json::json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": entry_name(group, address),
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    });
    // JSON is YAML.
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(tag: &str) -> (Grants, PathBuf) {
        let dir = std::env::temp_dir().join(format!("weft-grants-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Grants::load(dir.join("groups.json")), dir)
    }

    #[test]
    fn a_group_token_registers_its_vms_by_name_and_address_and_binds_them() {
        let (g, dir) = grants("bind");
        let token = g.issue("vms", "db", Duration::from_secs(60)).unwrap();
        let ip: IpAddr = "198.19.0.200".parse().unwrap();
        let ok = g.admit("vms/db-198.19.0.200", &token, Some(ip)).unwrap();
        assert_eq!(
            (ok.namespace.as_str(), ok.group.as_str(), ok.address),
            ("vms", "db", ip)
        );
        assert!(g.bound("vms/db-198.19.0.200", &token));
        assert!(!g.bound("vms/db-198.19.0.201", &token));
        // Another group's name, another namespace, another address.
        assert!(matches!(
            g.admit("vms/web-198.19.0.200", &token, Some(ip)),
            Err(Refused::Misnamed { .. })
        ));
        assert!(matches!(
            g.admit("other/db-198.19.0.200", &token, Some(ip)),
            Err(Refused::Misnamed { .. })
        ));
        assert!(matches!(
            g.admit("vms/db-198.19.0.9", &token, Some(ip)),
            Err(Refused::WrongAddress { .. })
        ));
        assert_eq!(
            g.admit("vms/db-198.19.0.200", "nope", Some(ip)),
            Err(Refused::Unknown)
        );
        // IPv6, named as Istio names it.
        let v6: IpAddr = "fd00::5".parse().unwrap();
        assert_eq!(entry_name("db", v6), "db-fd00--5");
        assert!(g.admit("vms/db-fd00--5", &token, Some(v6)).is_ok());
        // Kept across a restart.
        let again = Grants::load(dir.join("groups.json"));
        assert!(again.bound("vms/db-198.19.0.200", &token));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_expired_token_registers_no_new_vm_but_keeps_those_it_bound() {
        let (g, dir) = grants("expiry");
        let token = g.issue("vms", "db", Duration::from_secs(0)).unwrap();
        let ip: IpAddr = "198.19.0.7".parse().unwrap();
        assert!(matches!(
            g.admit("vms/db-198.19.0.7", &token, Some(ip)),
            Err(Refused::Expired(_))
        ));
        let live = g.issue("vms", "db", Duration::from_secs(60)).unwrap();
        assert!(g.admit("vms/db-198.19.0.7", &live, Some(ip)).is_ok());
        if let Ok(mut t) = g.table.lock() {
            for grant in &mut t.grants {
                grant.expires_unix = 0;
            }
        }
        assert!(g.admit("vms/db-198.19.0.7", &live, Some(ip)).is_ok());
        assert!(matches!(
            g.admit("vms/db-198.19.0.8", &live, "198.19.0.8".parse().ok()),
            Err(Refused::Expired(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_entry_is_the_groups_template_at_the_vms_address() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: db, namespace: vms}\nspec:\n  metadata: {labels: {app: db, version: v2}, annotations: {team: data}}\n  template: {serviceAccount: db-sa, ports: {tcp: 5432}, labels: {version: v1, tier: back}, locality: r1/z1}\n";
        let loaded = weft_api::load::load_bytes("wg.yaml", yaml.as_bytes());
        let weft_api::resource::Spec::WorkloadGroup(wg) = &loaded.resources[0].spec else {
            panic!("{:?}", loaded.diagnostics)
        };
        let text = entry_yaml("vms", "db", wg, "198.19.0.200".parse().unwrap());
        let entry = weft_api::load::load_bytes("<registered>", text.as_bytes());
        assert!(entry.diagnostics.is_empty(), "{:?}", entry.diagnostics);
        let r = &entry.resources[0];
        assert_eq!(r.name(), "db-198.19.0.200");
        assert_eq!(r.namespace(), "vms");
        assert_eq!(
            r.meta
                .annotations
                .get(AUTO_REGISTRATION_GROUP)
                .map(String::as_str),
            Some("db")
        );
        assert_eq!(
            r.meta.annotations.get("team").map(String::as_str),
            Some("data")
        );
        let weft_api::resource::Spec::WorkloadEntry(we) = &r.spec else {
            panic!()
        };
        assert_eq!(we.address, "198.19.0.200");
        assert_eq!(we.service_account, "db-sa");
        assert_eq!(we.locality, "r1/z1");
        assert_eq!(we.ports.get("tcp"), Some(&5432));
        // The group's metadata labels win over the template's.
        assert_eq!(we.labels.get("version").map(String::as_str), Some("v2"));
        assert_eq!(we.labels.get("tier").map(String::as_str), Some("back"));
    }
}
