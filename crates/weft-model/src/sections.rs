//! A model in sections: what many proxies share (a cluster, a virtual
//! host) is one section, serialized once and sent once, and a change
//! sends only the sections it touched, as Istio's delta xDS sends only
//! the resources that changed.
//!
//! A model is cut along its lists: each listener, route table, virtual
//! host and cluster is a section, and so are the proxy's identity, its
//! security, its telemetry and its HTTP settings. The lists are put back
//! in their canonical order (listeners by direction, port and name; route
//! tables and virtual hosts by name; clusters by service, port and
//! subset); a list the compiler did not leave in that order carries its
//! order explicitly (in the route table's head, or in the layout), so
//! putting a model back together gives exactly the model that was cut.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{
    Cluster, HttpSettings, Listener, ProxyIdentity, ProxyModel, RouteTable, Security,
    TelemetryConfig, VirtualHost,
};

/// What a section holds. The order is the order keys sort in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SectionKind {
    Proxy,
    Http,
    Security,
    Telemetry,
    Layout,
    Listener,
    RouteTable,
    VirtualHost,
    Cluster,
}

impl SectionKind {
    pub const ALL: [SectionKind; 9] = [
        SectionKind::Proxy,
        SectionKind::Http,
        SectionKind::Security,
        SectionKind::Telemetry,
        SectionKind::Layout,
        SectionKind::Listener,
        SectionKind::RouteTable,
        SectionKind::VirtualHost,
        SectionKind::Cluster,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SectionKind::Proxy => "proxy",
            SectionKind::Http => "http",
            SectionKind::Security => "security",
            SectionKind::Telemetry => "telemetry",
            SectionKind::Layout => "layout",
            SectionKind::Listener => "listener",
            SectionKind::RouteTable => "routeTable",
            SectionKind::VirtualHost => "virtualHost",
            SectionKind::Cluster => "cluster",
        }
    }

    pub fn parse(s: &str) -> Option<SectionKind> {
        SectionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Names one section of one proxy's model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectionKey {
    pub kind: SectionKind,
    /// The route table a virtual host belongs to; empty for the others.
    pub parent: String,
    /// The listener's, table's, host's or cluster's name; empty for the
    /// sections a model has one of.
    pub name: String,
}

/// A section's key borrowed from the model it names a part of: cutting a
/// model allocates no key for a section the control plane already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyRef<'a> {
    pub kind: SectionKind,
    pub parent: &'a str,
    pub name: &'a str,
}

impl KeyRef<'_> {
    pub fn owned(&self) -> SectionKey {
        SectionKey {
            kind: self.kind,
            parent: self.parent.to_owned(),
            name: self.name.to_owned(),
        }
    }
}

impl SectionKey {
    pub fn borrowed(&self) -> KeyRef<'_> {
        KeyRef {
            kind: self.kind,
            parent: &self.parent,
            name: &self.name,
        }
    }
}

impl fmt::Display for SectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())?;
        if !self.parent.is_empty() {
            write!(f, " {}/", self.parent)?;
        } else if !self.name.is_empty() {
            f.write_str(" ")?;
        }
        f.write_str(&self.name)
    }
}

/// The model's version and whose it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyHead {
    pub model_version: u32,
    pub proxy: ProxyIdentity,
}

/// A route table without its virtual hosts, which are sections of their
/// own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableHead {
    pub name: String,
    /// The hosts' order when it is not by name; empty when it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
}

/// The order of the model's lists where it is not the canonical one
/// (present only then).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
}

impl Layout {
    fn is_empty(&self) -> bool {
        self.listeners.is_empty() && self.route_tables.is_empty() && self.clusters.is_empty()
    }
}

/// One section of a model as cut, borrowing from the model.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Piece<'a> {
    Proxy(ProxyHead),
    Http(&'a HttpSettings),
    Security(&'a Security),
    Telemetry(&'a TelemetryConfig),
    Layout(Layout),
    Listener(&'a Listener),
    RouteTable(TableHead),
    VirtualHost(&'a Arc<VirtualHost>),
    Cluster(&'a Arc<Cluster>),
}

/// One section as a proxy decoded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Owned {
    Proxy(ProxyHead),
    Http(HttpSettings),
    Security(Arc<Security>),
    Telemetry(Arc<TelemetryConfig>),
    Layout(Layout),
    Listener(Arc<Listener>),
    RouteTable(TableHead),
    VirtualHost(Arc<VirtualHost>),
    Cluster(Arc<Cluster>),
}

/// Why a model cannot be cut into sections (it is then sent whole).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("two sections would be named {0}")]
    Duplicate(String),
}

/// Why sections do not make a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    #[error("no {0} section")]
    Missing(&'static str),
    #[error("{0} belongs to route table {1}, which the model does not have")]
    Orphan(String, String),
    #[error("the {0} order names {1}, which the model does not have, or leaves one out")]
    Order(&'static str, String),
    #[error("section {0} holds something else")]
    Mismatch(String),
}

/// Cuts `model` into its sections, in key order: its own (identity,
/// settings, layout, listeners) then its lists' ([`split_lists`]).
pub fn split(model: &ProxyModel) -> Result<Vec<(KeyRef<'_>, Piece<'_>)>, SplitError> {
    let mut out = split_own(model)?;
    out.extend(split_lists(model)?);
    Ok(out)
}

/// The order of a model's route tables and clusters where it is not the
/// canonical one (empty where it is): part of the model's layout, but a
/// property of its lists, which many models share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListsOrder {
    pub route_tables: Vec<String>,
    pub clusters: Vec<String>,
}

/// `model`'s [`ListsOrder`].
pub fn lists_order(model: &ProxyModel) -> ListsOrder {
    let mut order = ListsOrder::default();
    if !in_order(&model.route_tables, |a, b| a.name < b.name) {
        order.route_tables = model.route_tables.iter().map(|t| t.name.clone()).collect();
    }
    if !in_order(&model.clusters, |a, b| cluster_order(a) < cluster_order(b)) {
        order.clusters = model.clusters.iter().map(|c| c.name.clone()).collect();
    }
    order
}

/// The sections of `model` that are its own (every kind before
/// [`SectionKind::RouteTable`]), in key order.
pub fn split_own(model: &ProxyModel) -> Result<Vec<(KeyRef<'_>, Piece<'_>)>, SplitError> {
    split_own_in(model, &lists_order(model))
}

/// [`split_own`], given `model`'s [`lists_order`] (made once for every
/// model with the same lists).
pub fn split_own_in<'a>(
    model: &'a ProxyModel,
    order: &ListsOrder,
) -> Result<Vec<(KeyRef<'a>, Piece<'a>)>, SplitError> {
    let ProxyModel {
        model_version,
        proxy,
        listeners,
        route_tables: _,
        clusters: _,
        security,
        telemetry,
        http,
    } = model;
    let one = |kind| KeyRef {
        kind,
        parent: "",
        name: "",
    };
    let mut out: Vec<(KeyRef<'_>, Piece<'_>)> = Vec::with_capacity(6 + listeners.len());
    let mut layout = Layout::default();
    out.push((
        one(SectionKind::Proxy),
        Piece::Proxy(ProxyHead {
            model_version: *model_version,
            proxy: proxy.clone(),
        }),
    ));
    if !http.is_default() {
        out.push((one(SectionKind::Http), Piece::Http(http)));
    }
    out.push((one(SectionKind::Security), Piece::Security(security)));
    out.push((one(SectionKind::Telemetry), Piece::Telemetry(telemetry)));
    for l in listeners {
        let key = KeyRef {
            kind: SectionKind::Listener,
            parent: "",
            name: &l.name,
        };
        out.push((key, Piece::Listener(l)));
    }
    if !in_order(listeners, |a, b| listener_order(a) < listener_order(b)) {
        layout.listeners = listeners.iter().map(|l| l.name.clone()).collect();
    }
    layout.route_tables.clone_from(&order.route_tables);
    layout.clusters.clone_from(&order.clusters);
    if !layout.is_empty() {
        out.push((one(SectionKind::Layout), Piece::Layout(layout)));
    }
    sorted(out)
}

/// The sections of `model`'s route tables, virtual hosts and clusters, in
/// key order: what proxies that see the mesh alike share.
pub fn split_lists(model: &ProxyModel) -> Result<Vec<(KeyRef<'_>, Piece<'_>)>, SplitError> {
    let mut out: Vec<(KeyRef<'_>, Piece<'_>)> = Vec::with_capacity(
        model.clusters.len()
            + model
                .route_tables
                .iter()
                .map(|t| 1 + t.virtual_hosts.len())
                .sum::<usize>(),
    );
    for t in model.route_tables.iter() {
        let order = if in_order(&t.virtual_hosts, |a, b| a.name < b.name) {
            Vec::new()
        } else {
            t.virtual_hosts.iter().map(|v| v.name.clone()).collect()
        };
        let key = KeyRef {
            kind: SectionKind::RouteTable,
            parent: "",
            name: &t.name,
        };
        out.push((
            key,
            Piece::RouteTable(TableHead {
                name: t.name.clone(),
                order,
            }),
        ));
        for v in &t.virtual_hosts {
            let key = KeyRef {
                kind: SectionKind::VirtualHost,
                parent: &t.name,
                name: &v.name,
            };
            out.push((key, Piece::VirtualHost(v)));
        }
    }
    for c in model.clusters.iter() {
        let key = KeyRef {
            kind: SectionKind::Cluster,
            parent: "",
            name: &c.name,
        };
        out.push((key, Piece::Cluster(c)));
    }
    sorted(out)
}

fn sorted<'a>(
    mut out: Vec<(KeyRef<'a>, Piece<'a>)>,
) -> Result<Vec<(KeyRef<'a>, Piece<'a>)>, SplitError> {
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(SplitError::Duplicate(w[0].0.owned().to_string()));
    }
    Ok(out)
}

fn listener_order(l: &Listener) -> (crate::Direction, u32, &str) {
    (l.direction, l.port, &l.name)
}

fn cluster_order(c: &Cluster) -> (&str, u32, &str, &str) {
    (&c.service, c.port, &c.subset, &c.name)
}

/// Whether each of `items` comes strictly before the next (so a sort
/// gives them back as they are).
fn in_order<T>(items: &[T], before: impl Fn(&T, &T) -> bool) -> bool {
    items.windows(2).all(|w| before(&w[0], &w[1]))
}

/// A model's version from its sections' keys and versions, in key order:
/// what the control plane names a model in sections by, and what a proxy
/// checks the sections it holds against (so one that missed or kept a
/// section finds out, and asks for all of its model). It is made of two
/// digests, of the proxy's own sections and of its lists' (those from
/// [`SectionKind::RouteTable`] on), so that the control plane digests
/// lists many proxies share once.
pub fn version_of<'a>(sections: impl IntoIterator<Item = (&'a SectionKey, &'a str)>) -> String {
    let mut own = Digest::default();
    let mut lists = Digest::default();
    for (key, version) in sections {
        let d = if key.kind < SectionKind::RouteTable {
            &mut own
        } else {
            &mut lists
        };
        d.add(key.borrowed(), version);
    }
    combine(own.finish(), lists.finish())
}

/// The version of a model whose own sections digest to `own` and whose
/// lists' to `lists`.
pub fn combine(own: u64, lists: u64) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&own.to_le_bytes());
    h.update(&lists.to_le_bytes());
    format!("{:016x}", h.digest())
}

/// A digest over sections' keys and versions, in the order added.
#[derive(Default)]
pub struct Digest(xxhash_rust::xxh3::Xxh3);

impl Digest {
    pub fn add(&mut self, key: KeyRef<'_>, version: &str) {
        for part in [key.kind.as_str(), key.parent, key.name, version] {
            self.0.update(part.as_bytes());
            self.0.update(&[0]);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0.digest()
    }
}

/// Decodes one section's JSON as its kind says.
pub fn decode(kind: SectionKind, json: &[u8]) -> Result<Owned, serde_json::Error> {
    Ok(match kind {
        SectionKind::Proxy => Owned::Proxy(serde_json::from_slice(json)?),
        SectionKind::Http => Owned::Http(serde_json::from_slice(json)?),
        SectionKind::Security => Owned::Security(Arc::new(serde_json::from_slice(json)?)),
        SectionKind::Telemetry => Owned::Telemetry(Arc::new(serde_json::from_slice(json)?)),
        SectionKind::Layout => Owned::Layout(serde_json::from_slice(json)?),
        SectionKind::Listener => Owned::Listener(Arc::new(serde_json::from_slice(json)?)),
        SectionKind::RouteTable => Owned::RouteTable(serde_json::from_slice(json)?),
        SectionKind::VirtualHost => Owned::VirtualHost(Arc::new(serde_json::from_slice(json)?)),
        SectionKind::Cluster => Owned::Cluster(Arc::new(serde_json::from_slice(json)?)),
    })
}

/// Puts sections back together into the model they were cut from.
pub fn assemble<'a>(
    sections: impl IntoIterator<Item = (&'a SectionKey, &'a Owned)>,
) -> Result<ProxyModel, AssembleError> {
    let mut head = None;
    let mut http = HttpSettings::default();
    let mut security = None;
    let mut telemetry = None;
    let mut layout = Layout::default();
    let mut listeners: Vec<Listener> = Vec::new();
    let mut tables: BTreeMap<&str, (&TableHead, Vec<&Arc<VirtualHost>>)> = BTreeMap::new();
    let mut hosts: Vec<(&str, &Arc<VirtualHost>)> = Vec::new();
    let mut clusters: Vec<Arc<Cluster>> = Vec::new();
    for (key, s) in sections {
        match (key.kind, s) {
            (SectionKind::Proxy, Owned::Proxy(h)) => head = Some(h),
            (SectionKind::Http, Owned::Http(h)) => http = *h,
            (SectionKind::Security, Owned::Security(s)) => security = Some(s),
            (SectionKind::Telemetry, Owned::Telemetry(t)) => telemetry = Some(t),
            (SectionKind::Layout, Owned::Layout(l)) => layout = l.clone(),
            (SectionKind::Listener, Owned::Listener(l)) => listeners.push((**l).clone()),
            (SectionKind::RouteTable, Owned::RouteTable(t)) => {
                tables.insert(&key.name, (t, Vec::new()));
            }
            (SectionKind::VirtualHost, Owned::VirtualHost(v)) => hosts.push((&key.parent, v)),
            (SectionKind::Cluster, Owned::Cluster(c)) => clusters.push(c.clone()),
            _ => return Err(AssembleError::Mismatch(key.to_string())),
        }
    }
    let head = head.ok_or(AssembleError::Missing("proxy"))?;
    let security = security.ok_or(AssembleError::Missing("security"))?;
    let telemetry = telemetry.ok_or(AssembleError::Missing("telemetry"))?;
    for (table, host) in hosts {
        match tables.get_mut(table) {
            Some((_, list)) => list.push(host),
            None => return Err(AssembleError::Orphan(host.name.clone(), table.to_owned())),
        }
    }
    let mut route_tables: Vec<RouteTable> = Vec::with_capacity(tables.len());
    for (name, (head, mut list)) in tables {
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let list = arrange(list, &head.order, |v| &v.name, "virtual host")?;
        route_tables.push(RouteTable {
            name: name.to_owned(),
            virtual_hosts: list.into_iter().cloned().collect(),
        });
    }
    let route_tables = arrange(
        route_tables,
        &layout.route_tables,
        |t| &t.name,
        "route table",
    )?;
    listeners.sort_by(|a, b| listener_order(a).cmp(&listener_order(b)));
    let listeners = arrange(listeners, &layout.listeners, |l| &l.name, "listener")?;
    clusters.sort_by(|a, b| cluster_order(a).cmp(&cluster_order(b)));
    let clusters = arrange(clusters, &layout.clusters, |c| &c.name, "cluster")?;
    Ok(ProxyModel {
        model_version: head.model_version,
        proxy: head.proxy.clone(),
        listeners,
        route_tables: Arc::new(route_tables),
        clusters: Arc::new(clusters),
        security: (**security).clone(),
        telemetry: (**telemetry).clone(),
        http,
    })
}

/// `items` in the explicit `order` when there is one (which must name
/// each exactly once), else as they are.
fn arrange<T>(
    items: Vec<T>,
    order: &[String],
    name: impl Fn(&T) -> &String,
    what: &'static str,
) -> Result<Vec<T>, AssembleError> {
    if order.is_empty() {
        return Ok(items);
    }
    let mut by_name: BTreeMap<String, T> = BTreeMap::new();
    for item in items {
        by_name.insert(name(&item).clone(), item);
    }
    let mut out = Vec::with_capacity(order.len());
    let mut seen = BTreeSet::new();
    for n in order {
        match by_name.remove(n) {
            Some(item) if seen.insert(n) => out.push(item),
            _ => return Err(AssembleError::Order(what, n.clone())),
        }
    }
    if let Some(left) = by_name.into_keys().next() {
        return Err(AssembleError::Order(what, left));
    }
    Ok(out)
}
