//! Headless Chromium (Debian's) driven by Playwright from a script in
//! `tests/browser/`, which reports what it saw as one JSON object.

use std::path::PathBuf;
use std::process::Command;

/// The browser harness's directory, with playwright-core installed.
pub fn harness() -> PathBuf {
    let dir = super::repo().join("crates/weft/tests/browser");
    if !dir.join("node_modules/playwright-core").exists() {
        let ok = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "npm install of playwright-core failed in {}; scripts/test installs it",
            dir.display()
        );
    }
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: scripts/test installs it (apt-get install chromium)"
    );
    dir
}

/// Runs `script` with `env` and returns its report; a script that
/// printed no JSON fails the test with what it said.
pub fn run(script: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let dir = harness();
    let out = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("node {script}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{script}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
