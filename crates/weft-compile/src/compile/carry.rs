//! What one configuration's compile hands the next, so that a change
//! rebuilds only what it touches.
//!
//! Virtual hosts and clusters are kept by *revisions* of what they were
//! built from instead of by the addresses of this configuration's
//! resources. A revision names one content of one resource: a
//! VirtualService, a service of the registry, the mesh's DestinationRules
//! or its workload instances keep theirs from one configuration to the
//! next while they compare equal, and get a new one when they change. So
//! a key that holds the same revisions names the same inputs, and what was
//! built for it last time is what would be built now. A VirtualService on
//! one service changes that service's virtual hosts' keys and nothing
//! else's: every other host and every cluster is taken as it was built,
//! the same `Arc`, which the control plane then finds already serialized.
//!
//! Keys hold every input the builders read (see `routes::HostKey` and
//! `clusters::ClusterMemoKey`); what a key cannot say cheaply it says
//! coarsely: a virtual host with routes of a VirtualService depends on the
//! ports of the services its destinations name, so it is keyed by the
//! revision of the whole service set, and a cluster by the revisions of
//! all DestinationRules (siblings define its subsets) and of all
//! instances (its endpoints). A coarse key rebuilds more than it must,
//! never less.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use weft_api::resource::Resource;
use weft_api::types::kube::ObjectMeta;
use weft_api::types::networking as net;

use super::index::Index;
use crate::registry::{Instance, MeshConfig, Registry, Service};

/// A memo kept across configurations: what this compile built or took
/// from the last one, and what the last one left. Only what this compile
/// used is handed on, so what the mesh no longer has is dropped.
pub(crate) struct Carried<K, V> {
    /// Shards, so that the compile's threads rarely wait on each other.
    now: Vec<Mutex<HashMap<K, V>>>,
    last: HashMap<K, V>,
    hasher: std::collections::hash_map::RandomState,
    /// How many were built in this compile, and how many taken from the
    /// last.
    built: AtomicUsize,
    taken: AtomicUsize,
}

const SHARDS: usize = 16;

impl<K: Hash + Eq, V: Clone> Default for Carried<K, V> {
    fn default() -> Self {
        Carried {
            now: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            last: HashMap::new(),
            hasher: Default::default(),
            built: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Carried<K, V> {
    fn shard(&self, key: &K) -> &Mutex<HashMap<K, V>> {
        let h = self.hasher.hash_one(key) as usize;
        &self.now[h % SHARDS]
    }

    /// What was built for `key`, in this compile or the last.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        // A poisoned shard only means a panic elsewhere; building again
        // is always correct.
        let mut now = self.shard(key).lock().ok()?;
        if let Some(found) = now.get(key) {
            return Some(found.clone());
        }
        let kept = self.last.get(key)?.clone();
        now.insert(key.clone(), kept.clone());
        self.taken.fetch_add(1, Ordering::Relaxed);
        Some(kept)
    }

    /// Keeps `value` for `key`, and gives back what is kept: where two
    /// threads built the same, the first one's, so every model holds
    /// one `Arc` of it.
    pub(crate) fn put(&self, key: K, value: V) -> V {
        self.built.fetch_add(1, Ordering::Relaxed);
        match self.shard(&key).lock() {
            Ok(mut m) => m.entry(key).or_insert(value).clone(),
            Err(_) => value,
        }
    }

    /// What this compile used, as the next one's `last`.
    fn hand_on(self) -> Carried<K, V> {
        let mut last = HashMap::new();
        for shard in self.now {
            if let Ok(m) = shard.into_inner() {
                last.extend(m);
            }
        }
        Carried {
            last,
            ..Carried::default()
        }
    }

    fn counts(&self) -> (usize, usize) {
        (
            self.built.load(Ordering::Relaxed),
            self.taken.load(Ordering::Relaxed),
        )
    }
}

/// One revision per content seen: 0 is "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Revision(u64);

impl Revision {
    pub(crate) const NONE: Revision = Revision(0);
}

/// The inputs the builders read, as the last configuration had them,
/// with their revisions.
#[derive(Default)]
struct Seen {
    next: u64,
    mesh: Option<(String, String, String)>,
    services: HashMap<String, (Service, Revision)>,
    virtual_services: HashMap<(String, String), ((ObjectMeta, net::VirtualService), Revision)>,
    destination_rules: (Vec<(ObjectMeta, net::DestinationRule)>, Revision),
    instances: (Vec<Instance>, Revision),
    service_set: Revision,
    /// The revisions of the VirtualServices without hosts (delegates).
    delegates: (Vec<Revision>, Revision),
}

impl Seen {
    fn fresh(&mut self) -> Revision {
        self.next += 1;
        Revision(self.next)
    }

    /// Revisions for inputs that nothing is compared with.
    fn first_sight(&mut self, index: &Index<'_>, registry: &Registry) -> Revisions {
        let mut revisions = Revisions::default();
        for svc in registry.services.values() {
            let rev = self.fresh();
            revisions
                .services
                .insert(std::ptr::from_ref(svc) as usize, rev);
        }
        for (r, _) in &index.virtual_services {
            let rev = self.fresh();
            revisions.virtual_services.insert(address(r), rev);
        }
        for (i, (r, _)) in index.destination_rules.iter().enumerate() {
            revisions.rules.insert(address(r), i + 1);
        }
        revisions.service_set = self.fresh();
        revisions.delegates = self.fresh();
        revisions.destination_rules = self.fresh();
        revisions.instances = self.fresh();
        revisions
    }
}

/// Virtual hosts and clusters one compile built, and those it took as the
/// last compile built them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reuse {
    pub hosts_built: usize,
    pub hosts_taken: usize,
    pub clusters_built: usize,
    pub clusters_taken: usize,
}

/// What a compile hands the next (see the module's comment). A fresh one
/// carries nothing: everything is built.
#[derive(Default)]
pub struct Carry {
    /// A compile whose carry is not handed on (an analyzer's, a one-off
    /// `weft proxy-config`) keeps no copies of its inputs.
    one_off: bool,
    seen: Seen,
    pub(crate) hosts: super::routes::HostMemo,
    pub(crate) clusters: super::clusters::Memo,
}

impl Carry {
    /// What this compile used, for the next one.
    pub(crate) fn hand_on(self) -> Carry {
        Carry {
            one_off: self.one_off,
            seen: self.seen,
            hosts: self.hosts.hand_on(),
            clusters: self.clusters.hand_on(),
        }
    }

    /// A carry for a compile that is not followed by another: its inputs
    /// are given revisions but not kept to compare with the next.
    pub fn one_off() -> Carry {
        Carry {
            one_off: true,
            ..Carry::default()
        }
    }

    /// What this compile built, and what it took from the last.
    pub fn counts(&self) -> Reuse {
        let (hosts_built, hosts_taken) = self.hosts.counts();
        let (clusters_built, clusters_taken) = self.clusters.counts();
        Reuse {
            hosts_built,
            hosts_taken,
            clusters_built,
            clusters_taken,
        }
    }

    /// The revisions of this configuration's inputs, keeping those of
    /// what compares equal to the last configuration's.
    pub(crate) fn revise(
        &mut self,
        index: &Index<'_>,
        registry: &Registry,
        mesh: &MeshConfig,
    ) -> Revisions {
        if self.one_off {
            return self.seen.first_sight(index, registry);
        }
        let mesh_now = (
            mesh.trust_domain.clone(),
            mesh.root_namespace.clone(),
            mesh.domain_suffix.clone(),
        );
        if self.seen.mesh.as_ref() != Some(&mesh_now) {
            // Every builder reads these: nothing carries over.
            let next = self.seen.next;
            *self = Carry::default();
            self.seen.next = next;
            self.seen.mesh = Some(mesh_now);
        }
        let seen = &mut self.seen;
        let mut revisions = Revisions::default();

        let mut last = std::mem::take(&mut seen.services);
        let mut service_set_changed = last.len() != registry.services.len();
        for (host, svc) in &registry.services {
            let rev = match last.remove(host) {
                Some((old, rev)) if old == *svc => {
                    seen.services.insert(host.clone(), (old, rev));
                    rev
                }
                _ => {
                    service_set_changed = true;
                    let rev = seen.fresh();
                    seen.services.insert(host.clone(), (svc.clone(), rev));
                    rev
                }
            };
            revisions
                .services
                .insert(std::ptr::from_ref(svc) as usize, rev);
        }
        if service_set_changed || seen.service_set == Revision::NONE {
            seen.service_set = seen.fresh();
        }
        revisions.service_set = seen.service_set;

        let mut last = std::mem::take(&mut seen.virtual_services);
        let mut delegates = Vec::new();
        for (r, vs) in &index.virtual_services {
            let key = (r.namespace().to_owned(), r.name().to_owned());
            let rev = match last.remove(&key) {
                Some(((meta, old), rev)) if meta == r.meta && old == **vs => {
                    seen.virtual_services.insert(key, ((meta, old), rev));
                    rev
                }
                _ => {
                    let rev = seen.fresh();
                    seen.virtual_services
                        .insert(key, ((r.meta.clone(), (*vs).clone()), rev));
                    rev
                }
            };
            revisions.virtual_services.insert(address(r), rev);
            if vs.hosts.is_empty() {
                delegates.push(rev);
            }
        }
        if seen.delegates.0 != delegates || seen.delegates.1 == Revision::NONE {
            seen.delegates = (delegates, seen.fresh());
        }
        revisions.delegates = seen.delegates.1;

        let same_rules = seen.destination_rules.0.len() == index.destination_rules.len()
            && seen
                .destination_rules
                .0
                .iter()
                .zip(&index.destination_rules)
                .all(|((meta, old), (r, dr))| *meta == r.meta && old == *dr);
        if !same_rules || seen.destination_rules.1 == Revision::NONE {
            let rev = seen.fresh();
            seen.destination_rules = (
                index
                    .destination_rules
                    .iter()
                    .map(|(r, dr)| (r.meta.clone(), (*dr).clone()))
                    .collect(),
                rev,
            );
        }
        revisions.destination_rules = seen.destination_rules.1;
        // Under one revision of the rules, a rule's place names it.
        for (i, (r, _)) in index.destination_rules.iter().enumerate() {
            revisions.rules.insert(address(r), i + 1);
        }

        if seen.instances.0 != registry.instances || seen.instances.1 == Revision::NONE {
            let rev = seen.fresh();
            seen.instances = (registry.instances.clone(), rev);
        }
        revisions.instances = seen.instances.1;
        revisions
    }
}

fn address(r: &Resource) -> usize {
    std::ptr::from_ref(r) as usize
}

/// The revisions of one configuration's inputs, by their addresses in
/// it (which it holds for as long as its compiler lives).
#[derive(Debug, Default)]
pub(crate) struct Revisions {
    services: HashMap<usize, Revision>,
    virtual_services: HashMap<usize, Revision>,
    /// DestinationRules, by their place from 1.
    rules: HashMap<usize, usize>,
    pub(crate) service_set: Revision,
    /// Of every delegate VirtualService: a root's routes are theirs.
    pub(crate) delegates: Revision,
    pub(crate) destination_rules: Revision,
    pub(crate) instances: Revision,
}

impl Revisions {
    pub(crate) fn of_service(&self, svc: Option<&Service>) -> Revision {
        svc.and_then(|s| self.services.get(&(std::ptr::from_ref(s) as usize)))
            .copied()
            .unwrap_or(Revision::NONE)
    }

    /// A DestinationRule's place among the rules, 0 for none: what names
    /// it under `destination_rules`.
    pub(crate) fn of_rule(&self, r: Option<&Resource>) -> usize {
        r.and_then(|r| self.rules.get(&address(r)))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn of_virtual_service(&self, r: Option<&Resource>) -> Revision {
        r.and_then(|r| self.virtual_services.get(&address(r)))
            .copied()
            .unwrap_or(Revision::NONE)
    }
}
