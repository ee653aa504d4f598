//! Local replicas' addresses, remembered in the mesh's run directory
//! (`addresses.json`), so that adding or removing a workload moves no
//! other replica: an address, once given to a replica, is its own for as
//! long as the run directory lives and is never given to another (a stale
//! process may still hold it). The control plane and `weft up` both read
//! it; a lock on the file keeps them from giving one address twice.

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use weft_compile::registry::{local_address, AddressBook};

#[derive(Debug)]
pub struct AddressFile {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// The `--address-base` the table was made from; another base starts
    /// a new table.
    base: Option<Ipv4Addr>,
    /// `namespace/replica` → address.
    replicas: BTreeMap<String, Ipv4Addr>,
}

impl AddressFile {
    pub fn new(path: PathBuf) -> AddressFile {
        AddressFile { path }
    }

    fn assign_locked(
        &self,
        base: Ipv4Addr,
        replicas: &[String],
    ) -> std::io::Result<BTreeMap<String, Ipv4Addr>> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)?;
        // Released when the file is closed.
        file.lock()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut table: Table = serde_json::from_str(&text).unwrap_or_default();
        if table.base != Some(base) {
            table = Table {
                base: Some(base),
                replicas: BTreeMap::new(),
            };
        }
        let mut used: std::collections::BTreeSet<Ipv4Addr> =
            table.replicas.values().copied().collect();
        let mut next = 0u32;
        let mut changed = false;
        for r in replicas {
            if table.replicas.contains_key(r) {
                continue;
            }
            let ip = loop {
                let ip = local_address(base, next);
                next += 1;
                if !used.contains(&ip) {
                    break ip;
                }
            };
            used.insert(ip);
            table.replicas.insert(r.clone(), ip);
            changed = true;
        }
        if changed {
            let json = serde_json::to_string_pretty(&table).map_err(std::io::Error::other)?;
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(json.as_bytes())?;
            file.sync_data()?;
        }
        Ok(replicas
            .iter()
            .filter_map(|r| Some((r.clone(), *table.replicas.get(r)?)))
            .collect())
    }
}

impl AddressBook for AddressFile {
    fn assign(&self, base: Ipv4Addr, replicas: &[String]) -> BTreeMap<String, Ipv4Addr> {
        match self.assign_locked(base, replicas) {
            Ok(m) => m,
            Err(e) => {
                // Both processes fall back alike, so they still agree.
                tracing::error!(path = %self.path.display(), error = %e, "cannot keep replica addresses; giving them in name order");
                eprintln!(
                    "weft: cannot keep replica addresses in {}: {e}; giving them in name order",
                    self.path.display()
                );
                replicas
                    .iter()
                    .enumerate()
                    .map(|(n, r)| (r.clone(), local_address(base, n as u32)))
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AddressFile;
    use weft_compile::registry::AddressBook;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_new_replica_takes_a_new_address_and_moves_no_other() {
        let dir = std::env::temp_dir().join(format!("weft-addr-{}", std::process::id()));
        let book = AddressFile::new(dir.join("addresses.json"));
        let base = "127.0.10.1".parse().unwrap();
        let first = book.assign(base, &names(&["default/b-0", "default/c-0"]));
        assert_eq!(first["default/b-0"].to_string(), "127.0.10.1");
        assert_eq!(first["default/c-0"].to_string(), "127.0.10.2");
        // `a-0` sorts first, but takes the next free address.
        let second = book.assign(base, &names(&["default/a-0", "default/b-0", "default/c-0"]));
        assert_eq!(second["default/a-0"].to_string(), "127.0.10.3");
        assert_eq!(second["default/b-0"], first["default/b-0"]);
        assert_eq!(second["default/c-0"], first["default/c-0"]);
        // A removed replica's address is given to nobody else; it comes
        // back to the same replica.
        let third = book.assign(base, &names(&["default/d-0"]));
        assert_eq!(third["default/d-0"].to_string(), "127.0.10.4");
        let again = book.assign(base, &names(&["default/b-0", "default/d-0"]));
        assert_eq!(again["default/b-0"], first["default/b-0"]);
        // A second reader (the other process) sees the same table.
        let other = AddressFile::new(dir.join("addresses.json"));
        assert_eq!(
            other.assign(base, &names(&["default/a-0"]))["default/a-0"],
            second["default/a-0"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
