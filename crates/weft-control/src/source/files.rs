//! Resources from files and directories of YAML, as `weft up -f` and
//! `weft control-plane -f` name them. What the admin API applies is
//! written to a directory of its own, whose resources replace same-named
//! ones from the user's files (as `kubectl apply` would); the user's files
//! are never written. Changes made on disk are noticed by their sizes and
//! modification times, checked every 50 ms once the files hold still.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use weft_api::load::{load_paths_with, Loaded, Parsed};
use weft_api::resource::{Resource, ResourceKey};

use super::{ConfigSource, SourceError};

/// How often the files are checked for a change.
const FILE_CHECK: Duration = Duration::from_millis(50);

pub struct FilesSource {
    paths: Vec<PathBuf>,
    /// Where applied resources are written.
    applied: Option<PathBuf>,
    /// Watched too: a secret made or removed changes what the analyzers
    /// say of the resources.
    secrets: Option<PathBuf>,
    /// Where status is recorded, a file per resource.
    status: Option<PathBuf>,
    /// What controllers manage, a file per owner: `managed/` holds their
    /// resources, `scale/` the replicas they set.
    managed: Option<PathBuf>,
    scale: Option<PathBuf>,
    state: Mutex<State>,
    registered: Mutex<BTreeMap<String, Vec<Resource>>>,
    revision: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// The files as last parsed: a change parses only what changed.
    parsed: Parsed,
    parsed_applied: Parsed,
    parsed_managed: Parsed,
    /// Where each resource of the user's files was, as last listed.
    defined_in: HashMap<ResourceKey, (String, u32)>,
    fingerprint: u64,
}

impl FilesSource {
    pub fn new(paths: Vec<PathBuf>) -> FilesSource {
        let (revision, _) = tokio::sync::watch::channel(0);
        FilesSource {
            paths,
            applied: None,
            secrets: None,
            status: None,
            managed: None,
            scale: None,
            state: Mutex::new(State::default()),
            registered: Mutex::new(BTreeMap::new()),
            revision,
        }
    }

    /// Applied resources are written under `dir`, and their status under
    /// its sibling `status/`.
    pub fn with_applied(mut self, dir: PathBuf) -> FilesSource {
        self.status = dir.parent().map(|p| p.join("status"));
        self.managed = dir.parent().map(|p| p.join("managed"));
        self.scale = dir.parent().map(|p| p.join("scale"));
        self.applied = Some(dir);
        self
    }

    pub fn with_secrets(mut self, dir: Option<PathBuf>) -> FilesSource {
        self.secrets = dir;
        self
    }

    fn watched(&self) -> Vec<PathBuf> {
        let mut all = self.paths.clone();
        all.extend(self.applied.iter().cloned());
        all.extend(self.managed.iter().cloned());
        all.extend(self.scale.iter().cloned());
        all.extend(self.secrets.iter().cloned());
        all
    }

    /// Whether the files changed since the last list or check (a size or
    /// modification time, a file added or removed).
    pub fn changed_on_disk(&self) -> bool {
        let fp = fingerprint(&self.watched());
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if fp == state.fingerprint {
            return false;
        }
        state.fingerprint = fp;
        true
    }

    /// Checks the files every 50 ms and moves the revision once a change
    /// holds still for one check (editors write in several steps), at
    /// most a second after it began. Runs until the source is dropped by
    /// everyone but this task.
    pub fn spawn_watcher(self: &std::sync::Arc<Self>) {
        let me = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FILE_CHECK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(source) = me.upgrade() else { return };
                if !source.changed_on_disk() {
                    continue;
                }
                for _ in 0..20 {
                    tokio::time::sleep(FILE_CHECK).await;
                    if !source.changed_on_disk() {
                        break;
                    }
                }
                source.bump();
            }
        });
    }

    fn bump(&self) {
        self.revision.send_modify(|r| *r += 1);
    }

    /// After a write of our own: the watcher need not notice it again.
    fn wrote(&self) {
        let fp = fingerprint(&self.watched());
        if let Ok(mut state) = self.state.lock() {
            state.fingerprint = fp;
        }
        self.bump();
    }

    /// Every controller's replicas, merged.
    fn scale_overrides(&self) -> BTreeMap<String, u32> {
        let mut all = BTreeMap::new();
        let Some(dir) = &self.scale else {
            return all;
        };
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") {
                let parsed: Option<BTreeMap<String, u32>> = std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                all.extend(parsed.unwrap_or_default());
            }
        }
        all
    }

    fn owner_file(dir: &Path, owner: &str, ext: &str) -> PathBuf {
        let safe: String = owner
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        dir.join(format!("{safe}.{ext}"))
    }

    fn applied_file(&self, key: &ResourceKey) -> Option<PathBuf> {
        self.applied
            .as_ref()
            .map(|d| d.join(format!("{}.{}.{}.yaml", key.kind, key.namespace, key.name)))
    }
}

impl ConfigSource for FilesSource {
    fn list(&self) -> Loaded {
        let fp = fingerprint(&self.watched());
        let Ok(mut state) = self.state.lock() else {
            return Loaded::default();
        };
        state.fingerprint = fp;
        let state = &mut *state;
        let mut loaded = load_paths_with(&self.paths, &mut state.parsed);
        state.defined_in = loaded
            .resources
            .iter()
            .map(|r| {
                let o = r.origin();
                (r.key(), (o.file.to_string(), o.line))
            })
            .collect();
        if let Some(dir) = self.applied.as_ref().filter(|d| d.is_dir()) {
            let applied = load_paths_with(std::slice::from_ref(dir), &mut state.parsed_applied);
            let keys: std::collections::BTreeSet<_> =
                applied.resources.iter().map(|r| r.key()).collect();
            loaded.resources.retain(|r| !keys.contains(&r.key()));
            loaded.resources.extend(applied.resources);
            loaded.diagnostics.extend(applied.diagnostics);
        }
        if let Some(dir) = self.managed.as_ref().filter(|d| d.is_dir()) {
            let mut managed = load_paths_with(std::slice::from_ref(dir), &mut state.parsed_managed);
            for r in &mut managed.resources {
                r.managed_by = Some(owner_of_file(&r.origin().file));
            }
            let owners: BTreeMap<ResourceKey, String> = managed
                .resources
                .iter()
                .map(|r| (r.key(), owner_named_by(&r.origin().file)))
                .collect();
            for r in loaded
                .resources
                .iter()
                .filter(|r| owners.contains_key(&r.key()))
            {
                let owner = &owners[&r.key()];
                loaded.diagnostics.push(
                    weft_api::diag::Diagnostic::new(
                        weft_api::diag::Severity::Info,
                        weft_api::diag::codes::TAKEN_OVER,
                        r.origin(),
                        format!(
                            "{} is taken over by {owner} while it exists; this one serves again when {owner} is deleted",
                            r.display_name()
                        ),
                    )
                    .with_resource(r.display_name()),
                );
            }
            loaded.resources.retain(|r| !owners.contains_key(&r.key()));
            loaded.resources.extend(managed.resources);
            loaded.diagnostics.extend(managed.diagnostics);
        }
        let scale = self.scale_overrides();
        if !scale.is_empty() {
            for r in &mut loaded.resources {
                let Some(n) = scale.get(&super::scale_key(&r.key())) else {
                    continue;
                };
                match &mut r.spec {
                    weft_api::resource::Spec::Workload(w) => w.replicas = Some(*n),
                    weft_api::resource::Spec::Deployment(d) => d.replicas = Some(i64::from(*n)),
                    _ => {}
                }
            }
        }
        if let Ok(registered) = self.registered.lock() {
            let present: std::collections::BTreeSet<_> =
                loaded.resources.iter().map(|r| r.key()).collect();
            loaded.resources.extend(
                registered
                    .values()
                    .flatten()
                    .filter(|r| !present.contains(&r.key()))
                    .cloned(),
            );
        }
        loaded
    }

    fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revision.subscribe()
    }

    fn apply(&self, resources: &[Resource]) -> Result<Vec<String>, SourceError> {
        writable(self.applied.as_deref(), "applied resources")?;
        let mut applied = Vec::new();
        for r in resources {
            let object = weft_api::yaml::emit::node_to_json(&r.source.tree, r.source.node);
            let text = weft_api::yaml::emit::to_yaml_string(&object).unwrap_or_default();
            let Some(file) = self.applied_file(&r.key()) else {
                continue;
            };
            write_atomically(&file, text.as_bytes())?;
            applied.push(r.display_name());
        }
        self.wrote();
        Ok(applied)
    }

    fn delete(&self, key: &ResourceKey) -> Result<(), SourceError> {
        if let Some(file) = self.applied_file(key).filter(|f| f.exists()) {
            std::fs::remove_file(&file).map_err(|source| SourceError::Io {
                what: format!("cannot remove {}", file.display()),
                source,
            })?;
            self.wrote();
            return Ok(());
        }
        let defined = self
            .state
            .lock()
            .ok()
            .and_then(|s| s.defined_in.get(key).cloned());
        match defined {
            Some((file, line)) => Err(SourceError::NotOwned {
                key: key.clone(),
                file,
                line,
            }),
            None => Err(SourceError::NotFound(key.clone())),
        }
    }

    fn write_status(
        &self,
        key: &ResourceKey,
        status: &serde_json::Value,
    ) -> Result<(), SourceError> {
        let dir = writable(self.status.as_deref(), "status")?;
        let file = dir.join(status_name(key));
        let text = serde_json::to_vec_pretty(status).unwrap_or_default();
        write_atomically(&file, &text)
    }

    fn read_status(&self, key: &ResourceKey) -> Option<serde_json::Value> {
        let text = std::fs::read(self.status.as_ref()?.join(status_name(key))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn write_record(
        &self,
        key: &ResourceKey,
        record: &str,
        value: &serde_json::Value,
    ) -> Result<(), SourceError> {
        let dir = writable(self.status.as_deref(), "status")?;
        let file = dir.join(record_name(key, record));
        if value.is_null() {
            return match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(SourceError::Io {
                    what: format!("cannot remove {}", file.display()),
                    source: e,
                }),
                _ => Ok(()),
            };
        }
        write_atomically(&file, &serde_json::to_vec(value).unwrap_or_default())
    }

    fn read_record(&self, key: &ResourceKey, record: &str) -> Option<serde_json::Value> {
        let text = std::fs::read(self.status.as_ref()?.join(record_name(key, record))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn managed_owners(&self) -> Vec<String> {
        let Some(dir) = &self.managed else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut owners: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".yaml")?;
                let owner = owner_of_file(&name);
                (owner.split('/').count() == 3).then_some(owner)
            })
            .collect();
        owners.sort();
        owners
    }

    fn register(&self, owner: &str, resources: Vec<Resource>) {
        if let Ok(mut r) = self.registered.lock() {
            r.insert(owner.to_owned(), resources);
        }
        self.bump();
    }

    fn manage(&self, owner: &str, managed: &super::Managed) -> Result<(), SourceError> {
        let dir = writable(self.managed.as_deref(), "managed resources")?.to_owned();
        let scale_dir = writable(self.scale.as_deref(), "managed replicas")?.to_owned();
        if self.managed(owner) == *managed {
            return Ok(());
        }
        let file = Self::owner_file(&dir, owner, "yaml");
        write_atomically(&file, managed.documents.as_bytes())?;
        let scale = Self::owner_file(&scale_dir, owner, "json");
        let text = serde_json::to_vec_pretty(&managed.scale).unwrap_or_default();
        write_atomically(&scale, &text)?;
        self.wrote();
        Ok(())
    }

    fn unmanage(&self, owner: &str) -> Result<(), SourceError> {
        let mut removed = false;
        for (dir, ext) in [(&self.managed, "yaml"), (&self.scale, "json")] {
            let Some(dir) = dir else { continue };
            let file = Self::owner_file(dir, owner, ext);
            if file.exists() {
                std::fs::remove_file(&file).map_err(|source| SourceError::Io {
                    what: format!("cannot remove {}", file.display()),
                    source,
                })?;
                removed = true;
            }
        }
        if removed {
            self.wrote();
        }
        Ok(())
    }

    fn managed(&self, owner: &str) -> super::Managed {
        let read = |dir: &Option<PathBuf>, ext: &str| {
            dir.as_ref()
                .and_then(|d| std::fs::read(Self::owner_file(d, owner, ext)).ok())
        };
        super::Managed {
            documents: read(&self.managed, "yaml")
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            scale: read(&self.scale, "json")
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        }
    }

    fn release(&self, owner: &str) {
        let removed = self
            .registered
            .lock()
            .ok()
            .and_then(|mut r| r.remove(owner))
            .is_some();
        if removed {
            self.bump();
        }
    }
}

/// The owner a managed file is kept for (`managed/Canary_test_podinfo.yaml`
/// is `Canary test/podinfo`; Kubernetes names hold no `_`).
/// The owner (`Kind/namespace/name`) a managed file belongs to: kinds,
/// namespaces and names have no `_`, so the file `Kind_namespace_name`
/// names it.
fn owner_of_file(file: &str) -> String {
    let stem = Path::new(file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(file);
    stem.splitn(3, '_').collect::<Vec<_>>().join("/")
}

/// The owner as messages name it: `Kind namespace/name`.
fn owner_named_by(file: &str) -> String {
    let owner = owner_of_file(file);
    match owner.split_once('/') {
        Some((kind, rest)) if rest.contains('/') => format!("{kind} {rest}"),
        _ => owner,
    }
}

/// `dir`, made if missing; an error naming `what` when there is none.
fn writable<'a>(dir: Option<&'a Path>, what: &str) -> Result<&'a Path, SourceError> {
    let Some(dir) = dir else {
        return Err(SourceError::Io {
            what: format!("this control plane has no directory for {what}"),
            source: std::io::Error::from(std::io::ErrorKind::Unsupported),
        });
    };
    std::fs::create_dir_all(dir).map_err(|source| SourceError::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

fn status_name(key: &ResourceKey) -> String {
    format!("{}.{}.{}.json", key.kind, key.namespace, key.name)
}

/// Where a resource's `record` is kept, beside its status.
fn record_name(key: &ResourceKey, record: &str) -> String {
    format!("{}.{}.{}.{record}.json", key.kind, key.namespace, key.name)
}

/// Writes `bytes` to `file` through a temporary file and a rename, so a
/// reader (the watcher, a reload) never sees half of it.
/// Owner-only (0600): an applied resource may be a Secret.
fn write_atomically(file: &Path, bytes: &[u8]) -> Result<(), SourceError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = file.with_extension("tmp~");
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|source| SourceError::Io {
            what: format!("cannot write {}", file.display()),
            source,
        })
}

fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    let mut files = Vec::new();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            p.hash(&mut h);
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else {
            files.push((
                p,
                meta.len(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    files.sort();
    files.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::FilesSource;
    use crate::source::{ConfigSource, SourceError};
    use weft_api::resource::ResourceKind;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}\n";

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("weft-files-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("config")).expect("temp dir");
        d
    }

    fn names(s: &FilesSource) -> Vec<String> {
        s.list()
            .resources
            .iter()
            .map(|r| r.display_name())
            .collect()
    }

    #[test]
    fn applied_resources_replace_files_and_only_they_can_be_deleted() {
        let d = dir("apply");
        std::fs::write(d.join("config/vs.yaml"), VS).expect("write");
        let s = FilesSource::new(vec![d.join("config")]).with_applied(d.join("applied"));
        let mut revision = s.watch();
        assert_eq!(names(&s), ["VirtualService default/reviews"]);
        let key = s.list().resources[0].key();
        // A file the user wrote is theirs to change.
        match s.delete(&key) {
            Err(SourceError::NotOwned { file, line, .. }) => {
                assert!(file.ends_with("vs.yaml") && line == 1, "{file}:{line}")
            }
            other => panic!("{other:?}"),
        }
        let other = VS.replace("name: reviews", "name: ratings");
        let applied = weft_api::load::load_bytes("<apply>", other.as_bytes());
        let said = s.apply(&applied.resources).expect("applied");
        assert_eq!(said, ["VirtualService default/ratings"]);
        assert!(
            revision.has_changed().expect("open"),
            "an apply moves the revision at once"
        );
        revision.mark_unchanged();
        assert!(!s.changed_on_disk(), "its own write is not noticed again");
        assert_eq!(names(&s).len(), 2);
        let ratings = weft_api::resource::ResourceKey {
            kind: ResourceKind::VirtualService,
            namespace: "default".into(),
            name: "ratings".into(),
        };
        s.delete(&ratings).expect("deleted");
        assert!(revision.has_changed().expect("open"));
        assert_eq!(names(&s), ["VirtualService default/reviews"]);
        assert!(matches!(s.delete(&ratings), Err(SourceError::NotFound(_))));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn registrations_live_with_their_owner_and_status_is_kept_apart() {
        let d = dir("register");
        let s = FilesSource::new(vec![d.join("config")]).with_applied(d.join("applied"));
        let entry = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm-1}\nspec: {address: 127.0.0.9, labels: {app: legacy}}\n";
        let r = weft_api::load::load_bytes("<vm>", entry.as_bytes()).resources;
        assert_eq!(r.len(), 1);
        s.register("vm-1's proxy", r.clone());
        assert_eq!(names(&s), ["WorkloadEntry default/vm-1"]);
        s.register("vm-1's proxy", r);
        assert_eq!(
            names(&s).len(),
            1,
            "a new registration replaces the owner's last"
        );
        s.release("vm-1's proxy");
        assert!(names(&s).is_empty());

        let key = weft_api::resource::ResourceKey {
            kind: ResourceKind::WorkloadEntry,
            namespace: "default".into(),
            name: "vm-1".into(),
        };
        assert!(s.read_status(&key).is_none());
        let status = serde_json::json!({"phase": "Ready"});
        s.write_status(&key, &status).expect("written");
        assert_eq!(s.read_status(&key), Some(status));
        assert!(names(&s).is_empty(), "status is not a resource");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn managed_resources_replace_the_users_until_let_go_and_scale_their_workloads() {
        let d = dir("managed");
        std::fs::create_dir_all(d.join("config")).unwrap();
        let workload = "apiVersion: weft.dev/v1\nkind: Workload\nmetadata: {name: podinfo}\nspec: {command: sleep, replicas: 2}\n---\n";
        std::fs::write(d.join("config/a.yaml"), format!("{workload}{VS}")).unwrap();
        let s = FilesSource::new(vec![d.join("config")]).with_applied(d.join("applied"));
        let taken = VS.replace("host: reviews}", "host: reviews-primary}");
        let owner = "Canary/default/reviews";
        let managed = crate::source::Managed {
            documents: taken.clone(),
            scale: [("Workload/default/podinfo".to_owned(), 0)].into(),
        };
        s.manage(owner, &managed).unwrap();
        assert_eq!(s.managed(owner), managed);
        assert_eq!(s.managed_owners(), [owner]);
        // A controller's records of the owner, kept beside its status.
        let key = weft_api::resource::ResourceKey {
            kind: ResourceKind::Canary,
            namespace: "default".into(),
            name: "reviews".into(),
        };
        let events = serde_json::json!([{"type": "Normal", "message": "hi"}]);
        s.write_record(&key, "events", &events).unwrap();
        assert_eq!(s.read_record(&key, "events"), Some(events));
        assert_eq!(s.read_record(&key, "decisions"), None);
        s.write_record(&key, "events", &serde_json::Value::Null)
            .unwrap();
        assert_eq!(s.read_record(&key, "events"), None);
        s.write_record(&key, "events", &serde_json::Value::Null)
            .unwrap();
        let listed = s.list();
        let vs = listed
            .resources
            .iter()
            .filter(|r| r.kind() == ResourceKind::VirtualService)
            .collect::<Vec<_>>();
        assert_eq!(vs.len(), 1);
        assert!(
            vs[0].origin().file.contains("managed"),
            "{}",
            vs[0].origin().file
        );
        let said: Vec<_> = listed
            .diagnostics
            .iter()
            .filter(|d| d.code == weft_api::diag::codes::TAKEN_OVER)
            .collect();
        assert_eq!(said.len(), 1, "{:?}", listed.diagnostics);
        assert_eq!(
            said[0].message,
            "VirtualService default/reviews is taken over by Canary default/reviews while it exists; this one serves again when Canary default/reviews is deleted"
        );
        assert!(said[0].origin.file.contains("config"), "at the user's own");
        let replicas = listed.resources.iter().find_map(|r| match &r.spec {
            weft_api::resource::Spec::Workload(w) => w.replicas,
            _ => None,
        });
        assert_eq!(replicas, Some(0));
        s.unmanage(owner).unwrap();
        let listed = s.list();
        let vs = listed
            .resources
            .iter()
            .find(|r| r.kind() == ResourceKind::VirtualService)
            .unwrap();
        assert!(vs.origin().file.contains("config"), "the user's comes back");
        assert!(s.managed_owners().is_empty());
        let replicas = listed.resources.iter().find_map(|r| match &r.spec {
            weft_api::resource::Spec::Workload(w) => w.replicas,
            _ => None,
        });
        assert_eq!(replicas, Some(2));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn a_change_on_disk_moves_the_revision_once_it_holds_still() {
        let d = dir("watch");
        let s = std::sync::Arc::new(FilesSource::new(vec![d.join("config")]));
        let _ = s.list();
        let mut revision = s.watch();
        s.spawn_watcher();
        std::fs::write(d.join("config/vs.yaml"), VS).expect("write");
        tokio::time::timeout(std::time::Duration::from_secs(5), revision.changed())
            .await
            .expect("noticed")
            .expect("open");
        assert_eq!(names(&s), ["VirtualService default/reviews"]);
        let _ = std::fs::remove_dir_all(&d);
    }
}
