//! Loading resources from files, directories and stdin.
//!
//! Loading never stops at the first problem: every file and every document
//! is read, each problem becomes a [`Diagnostic`], and the resources that
//! loaded cleanly are returned beside them.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::diag::{codes, did_you_mean, Diagnostic, Origin, Severity};
use crate::path::FieldPath;
use crate::resource::{Resource, ResourceKey, ResourceKind, SourceRef, Spec};
use crate::types::kube::{self, ObjectMeta};
use crate::validate;
use crate::yaml::{self, DeError, Kind, Limits, NodeId, Tree};

/// What a load produced.
#[derive(Debug, Default, Clone)]
pub struct Loaded {
    /// Resources that parsed and passed validation (warnings allowed).
    pub resources: Vec<Resource>,
    /// Resources that parsed but validation refused: never applied, but
    /// `weft analyze` still looks at them, as istioctl analyze does.
    pub refused: Vec<Resource>,
    pub diagnostics: Vec<Diagnostic>,
    /// Files read, for the summary line.
    pub files: usize,
}

impl Loaded {
    /// What analysis looks at: the admitted resources and those
    /// validation refused, as istioctl analyze looks at both.
    pub fn analyzed(&self) -> Vec<Resource> {
        self.resources
            .iter()
            .chain(&self.refused)
            .cloned()
            .collect()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    fn merge(&mut self, other: Loaded) {
        self.resources.extend(other.resources);
        self.refused.extend(other.refused);
        self.diagnostics.extend(other.diagnostics);
        self.files += other.files;
    }
}

const TOP_LEVEL_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
/// A ConfigMap has data instead of a spec.
const CONFIG_MAP_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "binaryData",
    "immutable",
];

/// The annotation `kubectl apply` keeps the whole applied object in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A Secret has data instead of a spec.
const SECRET_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "type",
    "data",
    "stringData",
    "immutable",
];

/// Reads every path: files, directories (recursively, `.yaml`, `.yml` and
/// `.json` files in name order) and `-` for stdin.
pub fn load_paths(paths: &[PathBuf]) -> Loaded {
    load_paths_with(paths, &mut Parsed::default())
}

/// Files already parsed, with the size and modification time each had
/// then. A process that reloads its configuration keeps one, so a change
/// parses only the files that changed: at 1000 services, parsing the
/// whole configuration again was a fifth of a change's cost.
#[derive(Debug, Default)]
pub struct Parsed {
    files: std::collections::HashMap<PathBuf, ParsedFile>,
}

#[derive(Debug)]
struct ParsedFile {
    len: u64,
    modified: std::time::SystemTime,
    loaded: Loaded,
}

impl Parsed {
    /// `path` as loaded, parsed again only if its size or modification
    /// time moved since (the same test the control plane's watch makes).
    fn load(&mut self, path: &Path, seen: &mut std::collections::HashSet<PathBuf>) -> Loaded {
        seen.insert(path.to_owned());
        let stamp = std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.len(), m.modified().ok()?)));
        if let (Some((len, modified)), Some(f)) = (stamp, self.files.get(path)) {
            if f.len == len && f.modified == modified {
                return f.loaded.clone();
            }
        }
        let loaded = load_file(path);
        match stamp {
            Some((len, modified)) => {
                self.files.insert(
                    path.to_owned(),
                    ParsedFile {
                        len,
                        modified,
                        loaded: loaded.clone(),
                    },
                );
            }
            None => {
                self.files.remove(path);
            }
        }
        loaded
    }
}

/// [`load_paths`], parsing again only the files that changed since they
/// were parsed into `parsed`; files no longer named are forgotten.
pub fn load_paths_with(paths: &[PathBuf], parsed: &mut Parsed) -> Loaded {
    let mut out = Loaded::default();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let limit = Limits::default().max_file_bytes as u64 + 1;
            match std::io::stdin().lock().take(limit).read_to_end(&mut bytes) {
                Ok(_) => out.merge(load_bytes("<stdin>", &bytes)),
                Err(e) => out.diagnostics.push(read_error("<stdin>", &e.to_string())),
            }
            continue;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let (files, diags) = files_under(path);
                out.diagnostics.extend(diags);
                for f in files {
                    out.merge(parsed.load(&f, &mut seen));
                }
            }
            Ok(_) => out.merge(parsed.load(path, &mut seen)),
            Err(e) => out.diagnostics.push(
                read_error(&path.display().to_string(), &e.to_string())
                    .with_fix("check the path passed to -f"),
            ),
        }
    }
    parsed.files.retain(|p, _| seen.contains(p));
    dedupe(&mut out);
    crate::diag::sort(&mut out.diagnostics);
    out
}

/// The configuration files under `dir`, as every command reads a
/// directory: recursively, `.yaml`, `.yml` and `.json`, hidden ones left
/// out, in name order.
pub fn files_under(dir: &Path) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    collect_dir(dir, &mut files, &mut diags);
    files.sort();
    (files, diags)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(read_error(&dir.display().to_string(), &e.to_string()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_dir(&path, files, diags),
            Ok(_) => {
                let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    files.push(path);
                }
            }
            Err(_) => {}
        }
    }
}

fn load_file(path: &Path) -> Loaded {
    let name = path.display().to_string();
    let limit = Limits::default().max_file_bytes as u64 + 1;
    let read = std::fs::File::open(path).and_then(|f| {
        let mut bytes = Vec::new();
        f.take(limit).read_to_end(&mut bytes).map(|_| bytes)
    });
    match read {
        Ok(bytes) => load_bytes(&name, &bytes),
        Err(e) => Loaded {
            diagnostics: vec![read_error(&name, &e.to_string())],
            files: 1,
            ..Loaded::default()
        },
    }
}

fn read_error(file: &str, why: &str) -> Diagnostic {
    Diagnostic::new(
        Severity::Error,
        codes::READ,
        Origin {
            file: file.into(),
            line: 1,
            column: 1,
        },
        format!("cannot read: {why}"),
    )
}

/// Loads one file's contents. `name` is used in diagnostics.
pub fn load_bytes(name: &str, bytes: &[u8]) -> Loaded {
    let file: Arc<str> = name.into();
    let mut out = Loaded {
        files: 1,
        ..Loaded::default()
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let col = good.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            out.diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    codes::READ,
                    Origin {
                        file,
                        line: u32::try_from(line).unwrap_or(u32::MAX),
                        column: u32::try_from(col).unwrap_or(u32::MAX),
                    },
                    format!(
                        "file is not UTF-8 text (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                )
                .with_fix("save the file as UTF-8; YAML and JSON resources must be text"),
            );
            return out;
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = match yaml::parse_documents(text, &Limits::default()) {
        Ok(d) => d,
        Err(e) => {
            let mut d = Diagnostic::new(
                Severity::Error,
                codes::SYNTAX,
                Origin::new(&file, e.mark),
                e.message,
            );
            d.fix = e.fix;
            out.diagnostics.push(d);
            return out;
        }
    };
    for tree in docs {
        let tree = Arc::new(tree);
        let root = tree.root_id();
        decode_object(&file, &tree, root, &mut out);
    }
    out
}

fn decode_object(file: &Arc<str>, tree: &Arc<Tree>, node: NodeId, out: &mut Loaded) {
    let at = |path: &FieldPath| Origin::new(file, path.locate_from(tree, node, false));
    let schema_error = |path: &FieldPath, msg: String, fix: &str| {
        Diagnostic::new(Severity::Error, codes::SCHEMA, at(path), msg)
            .with_field(path)
            .with_fix(fix)
    };
    let root = FieldPath::root();
    if !matches!(tree.node(node).kind, Kind::Map(_)) {
        out.diagnostics.push(schema_error(
            &root,
            format!(
                "expected a resource (a mapping with apiVersion and kind), found {}",
                tree.node(node).describe()
            ),
            "each YAML document must be one Kubernetes-style object",
        ));
        return;
    }
    let api_version = tree
        .get(node, "apiVersion")
        .and_then(|n| tree.scalar(n))
        .unwrap_or("");
    let kind_name = tree
        .get(node, "kind")
        .and_then(|n| tree.scalar(n))
        .unwrap_or("");
    if api_version.is_empty() || kind_name.is_empty() {
        let missing = if api_version.is_empty() {
            "apiVersion"
        } else {
            "kind"
        };
        out.diagnostics.push(schema_error(
            &root.key(missing),
            format!("missing required field `{missing}`"),
            "every resource needs apiVersion and kind, e.g. apiVersion: networking.istio.io/v1, kind: VirtualService",
        ));
        return;
    }
    if kind_name == "List" {
        if let Some(items) = tree.get(node, "items") {
            if let Kind::Seq(children) = &tree.node(items).kind {
                for child in children.clone() {
                    decode_object(file, tree, child, out);
                }
            }
        }
        return;
    }
    let Some(kind) = ResourceKind::from_name(kind_name) else {
        unknown_kind(file, tree, node, api_version, kind_name, out);
        return;
    };
    if !kind.api_versions().contains(&api_version) {
        out.diagnostics.push(schema_error(
            &root.key("apiVersion"),
            format!("{kind} is not served at apiVersion `{api_version}`"),
            &format!("use one of: {}", kind.api_versions().join(", ")),
        ));
        return;
    }
    let top_level = match kind {
        ResourceKind::ConfigMap => CONFIG_MAP_FIELDS,
        ResourceKind::Secret => SECRET_FIELDS,
        _ => TOP_LEVEL_FIELDS,
    };
    if let Kind::Map(entries) = &tree.node(node).kind {
        for (k, _) in entries {
            let key = tree.scalar(*k).unwrap_or("");
            if !top_level.contains(&key) {
                let path = root.key(key);
                let fix = match did_you_mean(key, top_level) {
                    Some(s) => format!(
                        "did you mean `{s}`? a resource has apiVersion, kind, metadata and spec"
                    ),
                    None => "a resource has apiVersion, kind, metadata and spec".into(),
                };
                out.diagnostics.push(
                    Diagnostic::new(
                        Severity::Error,
                        codes::SCHEMA,
                        Origin::new(file, tree.node(*k).mark),
                        format!("unknown field `{key}`"),
                    )
                    .with_field(&path)
                    .with_fix(fix),
                );
                return;
            }
        }
    }

    let meta_path = root.key("metadata");
    let mut meta: ObjectMeta = match tree.get(node, "metadata") {
        Some(m) => match yaml::from_node(tree, m, &meta_path) {
            Ok(meta) => meta,
            Err(e) => {
                out.diagnostics.push(de_diagnostic(file, e, None));
                return;
            }
        },
        None => ObjectMeta::default(),
    };
    if meta.name.is_empty() {
        out.diagnostics.push(schema_error(
            &meta_path.key("name"),
            "missing required field `metadata.name`".into(),
            "give the resource a name: metadata: {name: my-resource}",
        ));
        return;
    }
    if kind == ResourceKind::Secret {
        // kubectl's copy of the whole object, values and all: nothing
        // needs it, and nothing may print it.
        meta.annotations.remove(LAST_APPLIED);
    }
    if kind.cluster_scoped() {
        // Kubernetes ignores a namespace on a cluster-scoped object.
        meta.namespace.clear();
    } else if meta.namespace.is_empty() {
        meta.namespace = "default".into();
    }
    let display = ResourceKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
    .to_string();
    let spec = match decode_spec(kind, tree, node) {
        Ok(spec) => spec,
        Err(e) => {
            out.diagnostics.push(de_diagnostic(file, e, Some(&display)));
            return;
        }
    };
    let resource = Resource {
        api_version: api_version.to_owned(),
        meta,
        spec,
        source: SourceRef {
            file: file.clone(),
            tree: tree.clone(),
            node,
        },
        managed_by: None,
    };
    let diags = validate::validate(&resource);
    let ok = !diags.iter().any(Diagnostic::is_error);
    out.diagnostics.extend(diags);
    if ok {
        out.resources.push(resource);
    } else {
        out.refused.push(resource);
    }
}

fn decode_spec(kind: ResourceKind, tree: &Tree, node: NodeId) -> Result<Spec, DeError> {
    let path = FieldPath::root().key("spec");
    let spec_node = tree.get(node, "spec");
    Ok(match kind {
        ResourceKind::VirtualService => Spec::VirtualService(de(tree, spec_node, &path)?),
        ResourceKind::DestinationRule => Spec::DestinationRule(de(tree, spec_node, &path)?),
        ResourceKind::Gateway => Spec::Gateway(de(tree, spec_node, &path)?),
        ResourceKind::ServiceEntry => Spec::ServiceEntry(de(tree, spec_node, &path)?),
        ResourceKind::Sidecar => Spec::Sidecar(de(tree, spec_node, &path)?),
        ResourceKind::WorkloadEntry => Spec::WorkloadEntry(de(tree, spec_node, &path)?),
        ResourceKind::WorkloadGroup => Spec::WorkloadGroup(de(tree, spec_node, &path)?),
        ResourceKind::PeerAuthentication => Spec::PeerAuthentication(de(tree, spec_node, &path)?),
        ResourceKind::RequestAuthentication => {
            Spec::RequestAuthentication(de(tree, spec_node, &path)?)
        }
        ResourceKind::AuthorizationPolicy => Spec::AuthorizationPolicy(de(tree, spec_node, &path)?),
        ResourceKind::Telemetry => Spec::Telemetry(de(tree, spec_node, &path)?),
        ResourceKind::Service => Spec::Service(de(tree, spec_node, &path)?),
        ResourceKind::Deployment => Spec::Deployment(de(tree, spec_node, &path)?),
        ResourceKind::Pod => Spec::Pod(de(tree, spec_node, &path)?),
        ResourceKind::Canary => Spec::Canary(Box::new(de(tree, spec_node, &path)?)),
        ResourceKind::MetricTemplate => Spec::MetricTemplate(de(tree, spec_node, &path)?),
        ResourceKind::AlertProvider => Spec::AlertProvider(de(tree, spec_node, &path)?),
        ResourceKind::Workload => Spec::Workload(de(tree, spec_node, &path)?),
        ResourceKind::Guardrail => Spec::Guardrail(de(tree, spec_node, &path)?),
        ResourceKind::Namespace => Spec::Namespace(de(tree, spec_node, &path)?),
        ResourceKind::Node => Spec::Node(de(tree, spec_node, &path)?),
        ResourceKind::Secret => Spec::Secret(secret(tree, node)?),
        ResourceKind::ClusterPolicy => Spec::ClusterPolicy(de(tree, spec_node, &path)?),
        ResourceKind::Policy => Spec::Policy(de(tree, spec_node, &path)?),
        ResourceKind::NetworkPolicy => Spec::NetworkPolicy(de(tree, spec_node, &path)?),
        ResourceKind::ConfigMap => Spec::ConfigMap(kube::ConfigMap {
            data: de::<BTreeMap<String, String>>(
                tree,
                tree.get(node, "data"),
                &FieldPath::root().key("data"),
            )?,
        }),
    })
}

/// A Secret's `data` (base64, decoded) with `stringData` laid over it.
/// No message here ever quotes a value: an error names the key and what
/// is wrong with its value, never the value.
fn secret(tree: &Tree, node: NodeId) -> Result<kube::Secret, DeError> {
    use base64::Engine;
    let mut data = BTreeMap::new();
    for (field, decode) in [("data", true), ("stringData", false)] {
        for (k, text, at) in secret_strings(tree, tree.get(node, field), field)? {
            let bytes = if decode {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|_| {
                        DeError::at(
                            format!("data.{k} is not base64"),
                            Some(
                                "encode the value with base64, or put it as text under stringData"
                                    .into(),
                            ),
                            at,
                            FieldPath::root().key(field).key(&k),
                        )
                    })?
            } else {
                text.into_bytes()
            };
            data.insert(k, bytes);
        }
    }
    let secret_type: Option<String> =
        de(tree, tree.get(node, "type"), &FieldPath::root().key("type"))?;
    Ok(kube::Secret {
        secret_type: secret_type.unwrap_or_else(|| "Opaque".into()),
        data,
    })
}

/// The string values of a Secret's map, each with where it is written,
/// checked without quoting it.
fn secret_strings(
    tree: &Tree,
    map: Option<NodeId>,
    field: &str,
) -> Result<Vec<(String, String, yaml::Mark)>, DeError> {
    let Some(map) = map else {
        return Ok(Vec::new());
    };
    let node = tree.node(map);
    let entries = match &node.kind {
        yaml::Kind::Map(entries) => entries,
        yaml::Kind::Scalar {
            text,
            quoted: false,
        } if text == "null" || text.is_empty() => return Ok(Vec::new()),
        _ => {
            return Err(DeError::at(
                format!("{field} must be a map of keys to strings"),
                Some(format!("write {field}: {{key: value}}")),
                node.mark,
                FieldPath::root().key(field),
            ))
        }
    };
    let mut out = Vec::new();
    for (k, v) in entries {
        let key = tree.scalar(*k).unwrap_or_default().to_owned();
        let value = tree.node(*v);
        let text = match &value.kind {
            yaml::Kind::Scalar { text, quoted } if *quoted || !looks_typed(text) => text.clone(),
            _ => return Err(DeError::at(
                format!("{field}.{key} must be a string"),
                Some(
                    "quote the value: Kubernetes does not turn numbers or booleans into strings"
                        .into(),
                ),
                value.mark,
                FieldPath::root().key(field).key(&key),
            )),
        };
        out.push((key, text, value.mark));
    }
    Ok(out)
}

/// A plain scalar YAML reads as null, a boolean or a number.
fn looks_typed(text: &str) -> bool {
    matches!(
        text,
        "null" | "~" | "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
    ) || text.parse::<f64>().is_ok()
}

/// A value under an optional key; its default when the key is absent.
fn de<T: DeserializeOwned + Default>(
    tree: &Tree,
    node: Option<NodeId>,
    path: &FieldPath,
) -> Result<T, DeError> {
    match node {
        Some(n) => yaml::from_node(tree, n, path),
        None => Ok(T::default()),
    }
}

fn de_diagnostic(file: &Arc<str>, e: DeError, resource: Option<&str>) -> Diagnostic {
    let mut d = Diagnostic::new(
        Severity::Error,
        codes::SCHEMA,
        Origin::new(file, e.mark.unwrap_or_default()),
        e.message,
    );
    if let Some(p) = &e.path {
        d = d.with_field(p);
    }
    if let Some(r) = resource {
        d = d.with_resource(r);
    }
    d.fix = e.fix;
    d
}

fn unknown_kind(
    file: &Arc<str>,
    tree: &Tree,
    node: NodeId,
    api_version: &str,
    kind_name: &str,
    out: &mut Loaded,
) {
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    let ours = [
        "networking.istio.io",
        "security.istio.io",
        "telemetry.istio.io",
        "flagger.app",
        "weft.dev",
    ];
    let path = FieldPath::root().key("kind");
    let origin = Origin::new(file, path.locate_from(tree, node, false));
    let names: Vec<&str> = ResourceKind::ALL.iter().map(|k| k.name()).collect();
    if let Some((_, _, why)) = NOT_APPLIED
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind_name)
    {
        // Istio's and Flagger's own kinds are valid in a directory users
        // apply as it is: refusing one would stop the whole directory.
        out.diagnostics.push(
            Diagnostic::new(
                Severity::Warning,
                codes::UNIMPLEMENTED,
                origin,
                format!("{kind_name} ({api_version}) is accepted but not applied by weft: {why}"),
            )
            .with_field(&path)
            .with_fix("keep it for Istio; weft behaves as if it were absent"),
        );
        return;
    }
    if ours.contains(&group) {
        let mut d = Diagnostic::new(
            Severity::Error,
            codes::UNKNOWN_KIND,
            origin,
            format!("unknown kind `{kind_name}` in {group}"),
        )
        .with_field(&path);
        d.fix = Some(match did_you_mean(kind_name, &names) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("weft reads: {}", names.join(", ")),
        });
        out.diagnostics.push(d);
    } else {
        out.diagnostics.push(
            Diagnostic::new(
                Severity::Warning,
                codes::UNKNOWN_KIND,
                origin,
                format!("skipped {kind_name} ({api_version}): not a kind weft reads"),
            )
            .with_field(&path),
        );
    }
}

/// Kinds of Istio and Flagger that weft reads but does not model yet:
/// `(group, kind, what is not applied)`.
const NOT_APPLIED: &[(&str, &str, &str)] = &[
    (
        "networking.istio.io",
        "EnvoyFilter",
        "its patches are to Envoy's configuration, which weft's proxy does not have",
    ),
    (
        "networking.istio.io",
        "ProxyConfig",
        "proxy settings (concurrency, image, environment variables) are not applied",
    ),
    (
        "extensions.istio.io",
        "WasmPlugin",
        "Wasm plugins do not run in weft's proxy",
    ),
    (
        "extensions.istio.io",
        "TrafficExtension",
        "traffic extensions do not run in weft's proxy",
    ),
];

/// Two documents that define the same resource: the first wins, as a
/// `kubectl apply` of the directory would end with the last; weft refuses to
/// guess and reports both places.
fn dedupe(out: &mut Loaded) {
    let mut seen: BTreeMap<ResourceKey, Origin> = BTreeMap::new();
    let mut kept = Vec::with_capacity(out.resources.len());
    for r in std::mem::take(&mut out.resources) {
        let key = r.key();
        if let Some(first) = seen.get(&key) {
            out.diagnostics.push(
                Diagnostic::new(
                    Severity::Error,
                    codes::DUPLICATE,
                    r.origin(),
                    format!("{key} is defined twice (first at {first}); this one is ignored"),
                )
                .with_resource(key.to_string())
                .with_fix("rename one of them or delete the copy"),
            );
            continue;
        }
        seen.insert(key, r.origin());
        kept.push(r);
    }
    out.resources = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  ports: [{{name: http, port: 80}}]\n")
    }

    fn names(l: &Loaded) -> Vec<String> {
        l.resources.iter().map(|r| r.name().to_owned()).collect()
    }

    /// A Secret's data is decoded, stringData laid over it, and its
    /// values never printed; data that is not base64 is refused where it
    /// is written.
    #[test]
    fn secrets_decode_and_never_print_their_values() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata: {tls.crt: Y2VydA==, tls.key: b2xk}\nstringData: {tls.key: hunter2}\n";
        let loaded = load_bytes("s.yaml", yaml.as_bytes());
        assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
        let Spec::Secret(secret) = &loaded.resources[0].spec else {
            panic!("not a Secret");
        };
        assert_eq!(secret.text(&["tls.crt"]).as_deref(), Some("cert"));
        assert_eq!(secret.text(&["tls.key"]).as_deref(), Some("hunter2"));
        assert_eq!(secret.secret_type, "kubernetes.io/tls");
        let shown = format!("{:?}", loaded.resources[0]);
        assert!(
            !shown.contains("hunter2") && !shown.contains("cert\""),
            "{shown}"
        );
        let bad = load_bytes(
            "bad.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  tls.crt: not base64!\n",
        );
        let d = &bad.diagnostics[0];
        assert!(d.message.contains("data.tls.crt is not base64"), "{d}");
        assert!(!format!("{d}").contains("not base64!"), "{d}");
        assert_eq!(d.origin.line, 5, "{d}");
        assert!(bad.resources.is_empty());
        // A value YAML reads as a number: refused without quoting it.
        let typed = load_bytes(
            "typed.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pin: 918273}\n",
        );
        let d = &typed.diagnostics[0];
        assert!(d.message.contains("stringData.pin must be a string"), "{d}");
        assert!(!format!("{d}").contains("918273"), "{d}");
        // kubectl's last-applied copy holds the values: it is dropped.
        let applied = load_bytes(
            "applied.yaml",
            b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{\"stringData\":{\"k\":\"hunter2\"}}'}\nstringData: {k: hunter2}\n",
        );
        assert!(applied.diagnostics.is_empty(), "{:?}", applied.diagnostics);
        assert!(!format!("{:?}", applied.resources[0]).contains("hunter2"));
    }

    /// Set apart: the kernel's file clock ticks every few milliseconds, and
    /// a rewrite within one tick keeps its time.
    fn touch(path: &Path, secs: u64) {
        let f = std::fs::File::options()
            .write(true)
            .open(path)
            .expect("open");
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .expect("set mtime");
    }

    #[test]
    fn a_reload_parses_again_only_what_changed_and_forgets_what_went() {
        let dir = std::env::temp_dir().join(format!("weft-parsed-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (a, b) = (dir.join("a.yaml"), dir.join("b.yaml"));
        std::fs::write(&a, service("alpha")).expect("write");
        std::fs::write(&b, service("beta")).expect("write");
        touch(&a, 1_000);
        touch(&b, 1_000);
        let mut parsed = Parsed::default();
        let first = load_paths_with(std::slice::from_ref(&dir), &mut parsed);
        assert_eq!(names(&first), ["alpha", "beta"]);
        let fresh = load_paths(std::slice::from_ref(&dir));
        let specs = |l: &Loaded| {
            l.resources
                .iter()
                .map(|r| (r.meta.clone(), r.spec.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(specs(&first), specs(&fresh));

        // Same size and time: the parse is reused (the file's new text is
        // not read, which is how we can tell).
        std::fs::write(&a, service("gamma")).expect("write");
        touch(&a, 1_000);
        assert_eq!(
            names(&load_paths_with(std::slice::from_ref(&dir), &mut parsed)),
            ["alpha", "beta"]
        );

        // A new time: parsed again.
        touch(&a, 2_000);
        assert_eq!(
            names(&load_paths_with(std::slice::from_ref(&dir), &mut parsed)),
            ["gamma", "beta"]
        );

        std::fs::remove_file(&b).expect("rm");
        let after = load_paths_with(std::slice::from_ref(&dir), &mut parsed);
        assert_eq!(names(&after), ["gamma"]);
        assert_eq!(parsed.files.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
