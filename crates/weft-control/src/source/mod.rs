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
}
