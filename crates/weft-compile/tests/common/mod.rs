//! Shared by the data-driven tests: a fixture is a YAML file whose leading
//! `# key: value` comments say how to run it.

use std::path::{Path, PathBuf};

use weft_api::load::{load_paths, Loaded};

/// The `# key: value` header lines of a fixture, in order.
pub fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.trim_start_matches('#').trim().split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

pub fn directive<'a>(ds: &'a [(String, String)], key: &str) -> Option<&'a str> {
    ds.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Loads the fixture plus every `# include:` path (relative to it).
pub fn load_fixture(path: &Path, ds: &[(String, String)]) -> Loaded {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut paths: Vec<PathBuf> = ds
        .iter()
        .filter(|(k, _)| k == "include")
        .map(|(_, v)| dir.join(v))
        .collect();
    paths.push(path.to_path_buf());
    load_paths(&paths)
}
