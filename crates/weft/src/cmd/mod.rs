//! One module per subcommand.

pub mod analyze;
pub mod ca_args;
pub mod control_plane;
pub mod exec_child;
pub mod logs;
pub mod proxy;
pub mod proxy_config;
pub mod resources;
pub mod sample_app;
pub mod status;
pub mod up;
pub mod validate;

use std::path::PathBuf;

use weft_api::diag::Severity;
use weft_api::load::{load_paths, Loaded};

/// Loads configuration for a command that goes on with the valid part:
/// errors are printed to stderr (the resources they name are left out, as
/// a control plane would refuse them).
pub fn load_reporting_errors(paths: &[PathBuf]) -> Loaded {
    let loaded = load_paths(paths);
    for d in loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
    {
        eprintln!("{d}");
    }
    loaded
}
