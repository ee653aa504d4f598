//! What a proxy is sent: its model cut into sections
//! (`weft_model::sections`), each serialized once however many proxies
//! share it, and from those the messages a proxy's stream carries: all of
//! the model, only what changed since what the proxy holds, or, for a
//! proxy that takes no sections, the model whole.
//!
//! A model's sections are its own (identity, settings, listeners) and its
//! lists' (route tables, virtual hosts, clusters). Sidecars that see the
//! mesh alike have the same lists (the same shared hosts and clusters, in
//! the same order), so the lists' sections, their digest and their place
//! in the whole model are made once for all of them ([`Lists`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use prost::Message;
use weft_model::sections::{self, Digest, KeyRef, Piece, SectionKey, SectionKind};
use weft_model::wire::{Section, SectionRef, Sections};
use weft_model::{ProxyModel, Security};

/// One section, serialized.
#[derive(Debug)]
pub struct SectionBytes {
    pub key: SectionKey,
    pub version: String,
    pub json: Bytes,
}

impl SectionBytes {
    fn wire_key(&self) -> SectionRef {
        SectionRef {
            kind: self.key.kind.as_str().to_owned(),
            parent: self.key.parent.clone(),
            name: self.key.name.clone(),
        }
    }

    fn wire(&self) -> Section {
        Section {
            key: Some(self.wire_key()),
            version: self.version.clone(),
            json: self.json.clone(),
        }
    }
}

/// The sections of a model's lists, shared by every model that holds the
/// same lists (the compiler shares them between sidecars that see the
/// mesh alike).
#[derive(Debug, Default)]
pub struct Lists {
    /// In key order.
    sections: Vec<Arc<SectionBytes>>,
    digest: u64,
    bytes: usize,
    /// Where each goes in the whole model, by index into `sections`.
    tables: Vec<(String, Vec<usize>)>,
    clusters: Vec<usize>,
    /// The lists' order, for the layout of every model that has them.
    order: sections::ListsOrder,
}

impl Lists {
    /// The lists' addresses: the configuration being served holds them
    /// for as long as a cache lives, so they name one pair of lists.
    fn address(model: &ProxyModel) -> (usize, usize) {
        (
            Arc::as_ptr(&model.route_tables) as usize,
            Arc::as_ptr(&model.clusters) as usize,
        )
    }

    fn of(model: &ProxyModel, cache: &SectionCache) -> Result<Lists, ServeError> {
        let pieces = sections::split_lists(model)?;
        let mut out = Vec::with_capacity(pieces.len());
        let mut digest = Digest::default();
        for (key, piece) in &pieces {
            let s = cache.section(*key, piece)?;
            digest.add(s.key.borrowed(), &s.version);
            out.push(s);
        }
        let find = |kind: SectionKind, parent: &str, name: &str| {
            out.binary_search_by(|s| {
                (s.key.kind, s.key.parent.as_str(), s.key.name.as_str()).cmp(&(kind, parent, name))
            })
            .ok()
        };
        let tables = model
            .route_tables
            .iter()
            .map(|t| {
                let hosts = t
                    .virtual_hosts
                    .iter()
                    .filter_map(|v| find(SectionKind::VirtualHost, &t.name, &v.name))
                    .collect();
                (t.name.clone(), hosts)
            })
            .collect();
        let clusters = model
            .clusters
            .iter()
            .filter_map(|c| find(SectionKind::Cluster, "", &c.name))
            .collect();
        Ok(Lists {
            bytes: out.iter().map(|s| s.json.len()).sum(),
            digest: digest.finish(),
            sections: out,
            tables,
            clusters,
            order: sections::lists_order(model),
        })
    }
}

/// Why a model cannot be served in sections.
#[derive(Debug, thiserror::Error)]
enum ServeError {
    #[error(transparent)]
    Split(#[from] sections::SplitError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Where the model's own sections go in its whole JSON.
#[derive(Debug, Default)]
struct Plan {
    model_version: u32,
    /// The proxy's identity alone (the proxy section also holds the
    /// model version).
    identity: Bytes,
    /// Indices into the own sections.
    listeners: Vec<usize>,
    security: usize,
    telemetry: usize,
    http: Option<usize>,
}

/// One proxy's model as served. Replicas of a workload share one.
#[derive(Debug)]
pub struct Served {
    /// The model's version: of its sections' keys and versions when it
    /// is in sections, of its JSON when it is not.
    pub version: String,
    /// Its own sections, in key order, and its lists'; `None` when the
    /// model could not be cut (it is then sent whole to every proxy).
    sections: Option<(Vec<Arc<SectionBytes>>, Arc<Lists>)>,
    plan: Plan,
    /// The JSON of the whole model, made when a proxy that takes no
    /// sections asks (or given, when there are no sections).
    whole: OnceLock<Bytes>,
    /// The whole model's size, for a proxy's limit.
    pub bytes: usize,
}

/// Sections serialized so far, shared by every model that has them, and
/// kept from one configuration to the next while they are served.
/// Clusters and virtual hosts are built once per configuration however
/// many models name them (and carried over unchanged from the last one),
/// so they are found by address first; every section is then kept once by
/// its key and content.
///
/// The server calls [`SectionCache::next_round`] before serving each
/// configuration: what the round before served and this one does not is
/// then dropped.
#[derive(Default)]
pub struct SectionCache {
    /// Each entry holds the cluster or host it was made from, so that its
    /// address names it for as long as the entry lives.
    by_address: Mutex<Rounds<usize, (Pin, Arc<SectionBytes>)>>,
    /// By a hash of key and JSON; an entry is used only when both are
    /// equal, so a collision costs sharing, never correctness.
    by_content: Mutex<Rounds<u64, Arc<SectionBytes>>>,
    /// Lists by their addresses, for one round: a configuration's lists
    /// are its own.
    lists: Mutex<HashMap<(usize, usize), Arc<Lists>>>,
}

/// What this round served, and what the last one did.
struct Rounds<K, V> {
    now: HashMap<K, V>,
    last: HashMap<K, V>,
}

impl<K, V> Default for Rounds<K, V> {
    fn default() -> Self {
        Rounds {
            now: HashMap::new(),
            last: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy, V: Clone> Rounds<K, V> {
    /// The entry for `key` this round, taken from the last if it is there.
    fn get(&mut self, key: K) -> Option<&V> {
        if !self.now.contains_key(&key) {
            let kept = self.last.remove(&key)?;
            self.now.insert(key, kept);
        }
        self.now.get(&key)
    }

    fn next(&mut self) {
        self.last = std::mem::take(&mut self.now);
    }
}

/// A shared piece a section was serialized from.
#[derive(Debug, Clone)]
#[expect(
    dead_code,
    reason = "held, never read: it keeps its address from being reused"
)]
enum Pin {
    Cluster(Arc<weft_model::Cluster>),
    VirtualHost(Arc<weft_model::VirtualHost>),
}

impl SectionCache {
    /// Starts serving a new configuration.
    pub fn next_round(&self) {
        if let Ok(mut m) = self.by_address.lock() {
            m.next();
        }
        if let Ok(mut m) = self.by_content.lock() {
            m.next();
        }
        if let Ok(mut m) = self.lists.lock() {
            m.clear();
        }
    }

    /// The lists of `model`, made once for every model with the same.
    fn lists(&self, model: &ProxyModel) -> Result<Arc<Lists>, ServeError> {
        let at = Lists::address(model);
        if let Some(found) = self.lists.lock().ok().and_then(|m| m.get(&at).cloned()) {
            return Ok(found);
        }
        let made = Arc::new(Lists::of(model, self)?);
        if let Ok(mut m) = self.lists.lock() {
            m.insert(at, made.clone());
        }
        Ok(made)
    }

    fn section(&self, key: KeyRef<'_>, piece: &Piece<'_>) -> serde_json::Result<Arc<SectionBytes>> {
        // An entry holds what it was made from, so an address names one.
        let shared = match piece {
            Piece::Cluster(c) => Some((Arc::as_ptr(c) as usize, Pin::Cluster(Arc::clone(c)))),
            Piece::VirtualHost(v) => {
                Some((Arc::as_ptr(v) as usize, Pin::VirtualHost(Arc::clone(v))))
            }
            _ => None,
        };
        if let Some((at, _)) = &shared {
            let found = self
                .by_address
                .lock()
                .ok()
                .and_then(|mut m| m.get(*at).map(|(_, s)| s.clone()));
            if let Some(found) = found.filter(|f| f.key.borrowed() == key) {
                return Ok(found);
            }
        }
        let json = serde_json::to_vec(piece)?;
        let version = weft_model::names::content_version_of(&json);
        let id = {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            for part in [key.kind.as_str(), key.parent, key.name] {
                h.update(part.as_bytes());
                h.update(&[0]);
            }
            h.update(&json);
            h.digest()
        };
        let fresh = |json: Vec<u8>, version: String| {
            Arc::new(SectionBytes {
                key: key.owned(),
                version,
                json: json.into(),
            })
        };
        let made = match self.by_content.lock() {
            Ok(mut m) => match m.get(id) {
                Some(found) if found.key.borrowed() == key && found.json[..] == json[..] => {
                    found.clone()
                }
                Some(_) => fresh(json, version),
                None => {
                    let made = fresh(json, version);
                    m.now.insert(id, made.clone());
                    made
                }
            },
            Err(_) => fresh(json, version),
        };
        if let (Some((at, pin)), Ok(mut m)) = (shared, self.by_address.lock()) {
            m.now.insert(at, (pin, made.clone()));
        }
        Ok(made)
    }

    /// How many distinct sections are held, and their bytes.
    pub fn held(&self) -> (usize, usize) {
        // A section found by address this round is not looked up by
        // content: count both, each once.
        let mut held: HashMap<*const SectionBytes, usize> = HashMap::new();
        if let Ok(m) = self.by_content.lock() {
            held.extend(m.now.values().map(|s| (Arc::as_ptr(s), s.json.len())));
        }
        if let Ok(m) = self.by_address.lock() {
            held.extend(m.now.values().map(|(_, s)| (Arc::as_ptr(s), s.json.len())));
        }
        (held.len(), held.values().sum())
    }
}

impl Served {
    /// A model sent whole only, as it is given.
    pub fn whole(version: String, json: Bytes) -> Served {
        Served {
            version,
            sections: None,
            plan: Plan::default(),
            bytes: json.len(),
            whole: OnceLock::from(json),
        }
    }

    /// `model` with `security` (its own, with key sets and roots filled
    /// in) in sections.
    pub fn of_model(
        model: &ProxyModel,
        security: &Security,
        cache: &SectionCache,
    ) -> serde_json::Result<Served> {
        match Served::in_sections_of(model, security, cache) {
            Ok(s) => Ok(s),
            Err(ServeError::Json(e)) => Err(e),
            Err(ServeError::Split(e)) => {
                tracing::warn!(workload = %model.proxy.workload, error = %e, "a model that cannot be cut into sections is sent whole");
                let mut whole = model.clone();
                whole.security = security.clone();
                let json = serde_json::to_vec(&whole)?;
                Ok(Served::whole(
                    weft_model::names::content_version_of(&json),
                    json.into(),
                ))
            }
        }
    }

    fn in_sections_of(
        model: &ProxyModel,
        security: &Security,
        cache: &SectionCache,
    ) -> Result<Served, ServeError> {
        let lists = cache.lists(model)?;
        let mut own = Vec::with_capacity(8 + model.listeners.len());
        let mut digest = Digest::default();
        for (key, piece) in sections::split_own_in(model, &lists.order)? {
            let piece = match piece {
                Piece::Security(_) => Piece::Security(security),
                other => other,
            };
            let s = cache.section(key, &piece)?;
            digest.add(s.key.borrowed(), &s.version);
            own.push(s);
        }
        let find = |kind: SectionKind, name: &str| {
            own.iter()
                .position(|s| s.key.kind == kind && s.key.name == name)
        };
        let plan = Plan {
            model_version: model.model_version,
            identity: serde_json::to_vec(&model.proxy)?.into(),
            listeners: model
                .listeners
                .iter()
                .filter_map(|l| find(SectionKind::Listener, &l.name))
                .collect(),
            security: find(SectionKind::Security, "").unwrap_or_default(),
            telemetry: find(SectionKind::Telemetry, "").unwrap_or_default(),
            http: find(SectionKind::Http, ""),
        };
        Ok(Served {
            version: sections::combine(digest.finish(), lists.digest),
            bytes: own.iter().map(|s| s.json.len()).sum::<usize>() + lists.bytes,
            sections: Some((own, lists)),
            plan,
            whole: OnceLock::new(),
        })
    }

    pub fn in_sections(&self) -> bool {
        self.sections.is_some()
    }

    /// The whole model's JSON: exactly what serializing the model gives.
    pub fn whole_json(&self) -> Bytes {
        self.whole
            .get_or_init(|| {
                let Some((own, lists)) = &self.sections else {
                    return Bytes::new();
                };
                let p = &self.plan;
                let mut out = Vec::with_capacity(self.bytes + 4096);
                let list = |out: &mut Vec<u8>, from: &[Arc<SectionBytes>], items: &[usize]| {
                    out.push(b'[');
                    for (n, i) in items.iter().enumerate() {
                        if n > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(&from[*i].json);
                    }
                    out.push(b']');
                };
                out.extend_from_slice(b"{\"modelVersion\":");
                out.extend_from_slice(p.model_version.to_string().as_bytes());
                out.extend_from_slice(b",\"proxy\":");
                out.extend_from_slice(&p.identity);
                out.extend_from_slice(b",\"listeners\":");
                list(&mut out, own, &p.listeners);
                out.extend_from_slice(b",\"routeTables\":[");
                for (n, (name, hosts)) in lists.tables.iter().enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"name\":");
                    // A name is a string; serializing one cannot fail.
                    let _ = serde_json::to_writer(&mut out, name);
                    out.extend_from_slice(b",\"virtualHosts\":");
                    list(&mut out, &lists.sections, hosts);
                    out.push(b'}');
                }
                out.extend_from_slice(b"],\"clusters\":");
                list(&mut out, &lists.sections, &lists.clusters);
                out.extend_from_slice(b",\"security\":");
                out.extend_from_slice(&own[p.security].json);
                out.extend_from_slice(b",\"telemetry\":");
                out.extend_from_slice(&own[p.telemetry].json);
                if let Some(h) = p.http {
                    out.extend_from_slice(b",\"http\":");
                    out.extend_from_slice(&own[h].json);
                }
                out.push(b'}');
                out.into()
            })
            .clone()
    }

    /// Every section, encoded: what a proxy is sent when it holds nothing
    /// of this model that the control plane knows of. Not kept: a whole
    /// mesh's model is megabytes, and every replica's stream would keep
    /// one alive for as long as the model serves.
    pub fn full(&self) -> Bytes {
        let sections = match &self.sections {
            Some((own, lists)) => own
                .iter()
                .chain(&lists.sections)
                .map(|s| s.wire())
                .collect(),
            None => Vec::new(),
        };
        Sections {
            full: true,
            base: String::new(),
            sections,
            removed: Vec::new(),
        }
        .encode_to_vec()
        .into()
    }

    /// What changed from `from` (which the proxy holds) to this model, or
    /// `None` when either is not in sections.
    pub fn change_from(&self, from: &Served) -> Option<Bytes> {
        let (new_own, new_lists) = self.sections.as_ref()?;
        let (old_own, old_lists) = from.sections.as_ref()?;
        let mut change = Sections {
            full: false,
            base: from.version.clone(),
            sections: Vec::new(),
            removed: Vec::new(),
        };
        diff(new_own, old_own, &mut change);
        // Lists many proxies share are most often the very same.
        if !Arc::ptr_eq(new_lists, old_lists) {
            diff(&new_lists.sections, &old_lists.sections, &mut change);
        }
        Some(change.encode_to_vec().into())
    }
}

/// Adds to `change` what differs from `old` to `new`, both in key order.
fn diff(new: &[Arc<SectionBytes>], old: &[Arc<SectionBytes>], change: &mut Sections) {
    let (mut i, mut j) = (0, 0);
    while i < new.len() || j < old.len() {
        match (new.get(i), old.get(j)) {
            (Some(n), Some(o)) => match n.key.cmp(&o.key) {
                std::cmp::Ordering::Equal => {
                    if !Arc::ptr_eq(n, o) && n.version != o.version {
                        change.sections.push(n.wire());
                    }
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    change.sections.push(n.wire());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    change.removed.push(o.wire_key());
                    j += 1;
                }
            },
            (Some(n), None) => {
                change.sections.push(n.wire());
                i += 1;
            }
            (None, Some(o)) => {
                change.removed.push(o.wire_key());
                j += 1;
            }
            (None, None) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use std::collections::BTreeMap;
    use std::path::Path;
    use weft_compile::MeshConfig;

    fn served(files: &[&str]) -> BTreeMap<String, Arc<Served>> {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut store = Store::of_files(
            files.iter().map(|f| examples.join(f)).collect(),
            MeshConfig::default(),
        );
        let config = store.load(None);
        assert!(config.refused.is_empty(), "{:?}", config.refused);
        let cache = SectionCache::default();
        config
            .models
            .iter()
            .map(|(name, c)| {
                let s = Served::of_model(&c.model, &c.model.security, &cache).expect("served");
                (name.clone(), Arc::new(s))
            })
            .collect()
    }

    /// A VirtualService on one service changes that service's virtual
    /// hosts (and the clusters its routes name) and nothing else: what a
    /// proxy is sent is in the order of the route, not of the mesh.
    #[test]
    fn a_route_change_sends_that_route() {
        let before = served(&["bookinfo"]);
        let after = served(&["bookinfo", "bookinfo-tasks/virtual-service-reviews-v3.yaml"]);
        let name = before
            .keys()
            .find(|n| n.contains("productpage"))
            .expect("productpage")
            .clone();
        let (b, a) = (&before[&name], &after[&name]);
        assert_ne!(a.version, b.version);
        let unchanged = Sections::decode(&*a.change_from(a).expect("sections")).expect("decodes");
        assert!(unchanged.sections.is_empty() && unchanged.removed.is_empty());
        let change = a.change_from(b).expect("sections");
        let decoded = Sections::decode(&*change).expect("decodes");
        assert!(!decoded.full);
        assert_eq!(decoded.base, b.version);
        let keys: Vec<String> = decoded
            .sections
            .iter()
            .filter_map(|s| s.key.as_ref())
            .chain(&decoded.removed)
            .map(|k| format!("{} {}/{}", k.kind, k.parent, k.name))
            .collect();
        assert!(!keys.is_empty());
        assert!(
            keys.iter().all(|k| k.contains("reviews")),
            "only reviews' sections: {keys:?}"
        );
        assert!(
            change.len() * 3 < a.full().len(),
            "{} bytes for the change, {} for the model",
            change.len(),
            a.full().len()
        );
    }
}
