//! Where the control plane's resources come from and go to, behind one
//! trait. Files on disk are the first source ([`files::FilesSource`]); a
//! Kubernetes API server and etcd are others to come. Everything that
//! reads or writes resources (the store that compiles them, the admin
//! API's apply and delete, a canary controller writing its status, a VM
//! registering its WorkloadEntry) goes through a [`ConfigSource`].

pub mod files;

use weft_api::diag::Diagnostic;
use weft_api::load::Loaded;
use weft_api::resource::{Resource, ResourceKey};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("no {0}")]
    NotFound(ResourceKey),
    /// The resource is there, but not as something this source may
    /// change (a file the user wrote, say).
    #[error("{key} is defined in {file}:{line}; remove it there")]
    NotOwned {
        key: ResourceKey,
        file: String,
        line: u32,
    },
    #[error("the resources have errors")]
    Invalid(Vec<Diagnostic>),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// A source of resources.
pub trait ConfigSource: Send + Sync {
    /// Every resource now, each admitted on its own (what does not parse
    /// or validate is in the diagnostics), registrations included.
    fn list(&self) -> Loaded;

    /// A revision that moves whenever what [`ConfigSource::list`] returns
    /// may have changed: a write through this source moves it at once,
    /// a change made elsewhere (an editor, another API client) when the
    /// source notices.
    fn watch(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Creates or replaces `resources`, as `kubectl apply` does. Returns
    /// their names.
    fn apply(&self, resources: &[Resource]) -> Result<Vec<String>, SourceError>;

    /// Deletes one resource this source may change.
    fn delete(&self, key: &ResourceKey) -> Result<(), SourceError>;

    /// Records a resource's `status` (a Canary's phase, a Gateway's
    /// addresses), apart from its spec, as Kubernetes' status subresource.
    fn write_status(
        &self,
        key: &ResourceKey,
        status: &serde_json::Value,
    ) -> Result<(), SourceError>;

    /// The status last recorded for a resource.
    fn read_status(&self, key: &ResourceKey) -> Option<serde_json::Value>;

    /// Resources that exist only while `owner` lives (a VM's
    /// WorkloadEntry, a node's registration): listed from now until
    /// [`ConfigSource::release`], replacing what `owner` registered before.
    fn register(&self, owner: &str, resources: Vec<Resource>);

    /// `owner` is gone: what it registered is no longer listed.
    fn release(&self, owner: &str);

    /// Resources a controller owns (a Canary's primary, Services,
    /// DestinationRules and VirtualService), kept by the source apart from
    /// what users write and listed in place of same-named ones, as Flagger
    /// takes over a user's Service or VirtualService; and the replicas it
    /// sets on workloads it does not own (a Canary's target scaled to
    /// zero), as Kubernetes' scale subresource. Replaces what `owner`
    /// managed before; survives restarts.
    fn manage(&self, owner: &str, managed: &Managed) -> Result<(), SourceError>;

    /// `owner` lets go of everything it managed: the user's own versions
    /// come back.
    fn unmanage(&self, owner: &str) -> Result<(), SourceError>;

    /// What `owner` manages now.
    fn managed(&self, owner: &str) -> Managed;

    /// Every owner that manages something now (`Kind/namespace/name`),
    /// so a controller that restarts can let go of what the owners
    /// deleted meanwhile managed.
    fn managed_owners(&self) -> Vec<String> {
        Vec::new()
    }

    /// Keeps what a controller says of a resource beyond its status (a
    /// Canary's events and decisions, its manual requests) under
    /// `record`, as Kubernetes keeps Events apart from the object; `Null`
    /// removes it.
    fn write_record(
        &self,
        _key: &ResourceKey,
        _record: &str,
        _value: &serde_json::Value,
    ) -> Result<(), SourceError> {
        Ok(())
    }

    /// A record kept by `write_record`.
    fn read_record(&self, _key: &ResourceKey, _record: &str) -> Option<serde_json::Value> {
        None
    }
}

/// What one controller owns: resources as documents (YAML or JSON), and
/// replicas set on others' workloads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Managed {
    pub documents: String,
    /// `Kind/namespace/name` → replicas.
    pub scale: std::collections::BTreeMap<String, u32>,
}

/// The key a scale override is kept under.
pub fn scale_key(key: &ResourceKey) -> String {
    format!("{}/{}/{}", key.kind, key.namespace, key.name)
}
