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
use weft_compile::registry::{AddressBook, Pool};

#[derive(Debug)]
pub struct AddressFile {
    path: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// `namespace/replica` → address.
    replicas: BTreeMap<String, Ipv4Addr>,
    /// Addresses whose replica moved to another pool (another node's
    /// range, another `--address-base`): never given again, as a stale
    /// process may hold one.
    #[serde(default)]
    retired: std::collections::BTreeSet<Ipv4Addr>,
}

impl AddressFile {
    pub fn new(path: PathBuf) -> AddressFile {
        AddressFile { path }
    }

    fn assign_locked(
        &self,
        pool: &Pool,
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
        let mut changed = false;
        // A replica whose address this pool does not hold has moved: its
        // old address is retired and it takes a new one.
        for r in replicas {
            if let Some(ip) = table.replicas.get(r).copied() {
                if !pool.allows(ip) {
                    table.replicas.remove(r);
                    table.retired.insert(ip);
                    changed = true;
                }
            }
        }
        let mut used: std::collections::BTreeSet<Ipv4Addr> = table
            .replicas
            .values()
            .chain(table.retired.iter())
            .copied()
            .collect();
        let mut free = (0..)
            .map_while(|n| pool.nth(n))
            .filter(|ip| pool.allows(*ip));
        for r in replicas {
            if table.replicas.contains_key(r) {
                continue;
            }
            // An exhausted pool leaves the replica without one.
            let Some(ip) = free.by_ref().find(|ip| !used.contains(ip)) else {
                break;
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
    fn assign(&self, pool: &Pool, replicas: &[String]) -> BTreeMap<String, Ipv4Addr> {
        match self.assign_locked(pool, replicas) {
            Ok(m) => m,
            Err(e) => {
                // Both processes fall back alike, so they still agree.
                tracing::error!(path = %self.path.display(), error = %e, "cannot keep replica addresses; giving them in name order");
                eprintln!(
                    "weft: cannot keep replica addresses in {}: {e}; giving them in name order",
                    self.path.display()
                );
                pool.in_order(replicas)
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
        let base = weft_compile::registry::Pool::Local("127.0.10.1".parse().unwrap());
        let first = book.assign(&base, &names(&["default/b-0", "default/c-0"]));
        assert_eq!(first["default/b-0"].to_string(), "127.0.10.1");
        assert_eq!(first["default/c-0"].to_string(), "127.0.10.2");
        // `a-0` sorts first, but takes the next free address.
        let second = book.assign(
            &base,
            &names(&["default/a-0", "default/b-0", "default/c-0"]),
        );
        assert_eq!(second["default/a-0"].to_string(), "127.0.10.3");
        assert_eq!(second["default/b-0"], first["default/b-0"]);
        assert_eq!(second["default/c-0"], first["default/c-0"]);
        // A removed replica's address is given to nobody else; it comes
        // back to the same replica.
        let third = book.assign(&base, &names(&["default/d-0"]));
        assert_eq!(third["default/d-0"].to_string(), "127.0.10.4");
        let again = book.assign(&base, &names(&["default/b-0", "default/d-0"]));
        assert_eq!(again["default/b-0"], first["default/b-0"]);
        // A second reader (the other process) sees the same table.
        let other = AddressFile::new(dir.join("addresses.json"));
        assert_eq!(
            other.assign(&base, &names(&["default/a-0"]))["default/a-0"],
            second["default/a-0"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_replica_moved_to_another_node_takes_an_address_there_and_its_old_one_is_never_reused() {
        let dir = std::env::temp_dir().join(format!("weft-addr-move-{}", std::process::id()));
        let book = AddressFile::new(dir.join("addresses.json"));
        let node = |cidr: &str| weft_compile::registry::Pool::Hosts(cidr.parse().unwrap());
        let (a, b) = (node("198.19.1.0/24"), node("198.19.2.0/24"));
        let first = book.assign(&a, &names(&["default/x-0", "default/y-0"]));
        assert_eq!(first["default/x-0"].to_string(), "198.19.1.2");
        assert_eq!(first["default/y-0"].to_string(), "198.19.1.3");
        let moved = book.assign(&b, &names(&["default/x-0"]));
        assert_eq!(moved["default/x-0"].to_string(), "198.19.2.2");
        // x-0's old address is retired, not handed to the next replica.
        let next = book.assign(&a, &names(&["default/y-0", "default/z-0"]));
        assert_eq!(next["default/y-0"].to_string(), "198.19.1.3");
        assert_eq!(next["default/z-0"].to_string(), "198.19.1.4");
        // A /30 holds one pod (.2); the next gets none.
        let tiny = node("198.19.3.0/30");
        let full = book.assign(&tiny, &names(&["default/p-0", "default/q-0"]));
        assert_eq!(full.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
