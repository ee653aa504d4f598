//! A proxy holds a socket per connection on each side, so a burst of a few
//! thousand concurrent requests needs more file descriptors than the usual
//! soft limit of 1024. Every weft process raises its soft limit to the hard
//! one at start (and, as root, the hard one up to 1 Mi), as Envoy's and
//! Istio's deployments do for their proxies.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// What the hard limit is raised to when the process may (root).
const WANTED: u64 = 1 << 20;

pub fn raise() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .unwrap_or(WANTED)
        .min(WANTED);
    if hard < ceiling && setrlimit(Resource::RLIMIT_NOFILE, ceiling, ceiling).is_ok() {
        return;
    }
    if soft < hard {
        if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            eprintln!("weft: cannot raise the open-file limit from {soft} to {hard}: {e}");
        }
    }
}
