//! A whole mesh under `weft up`: the bundled bookinfo example on the
//! test's own loopback range.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{curl, World};

pub struct Mesh {
    pub w: World,
    pub cfg: PathBuf,
    pub ingress: String,
    pub admin: String,
}

/// The YAML of bookinfo tasks (`a.yaml,b.yaml`), as one file.
pub fn tasks_yaml(tasks: &str) -> String {
    tasks
        .split(',')
        .map(|t| {
            std::fs::read_to_string(super::repo().join("examples/bookinfo-tasks").join(t)).unwrap()
                + "\n---\n"
        })
        .collect()
}

pub fn up(net: u8) -> Mesh {
    up_with(net, "")
}

/// The bundled example plus `extra` YAML, started with `weft up`.
pub fn up_with(net: u8, extra: &str) -> Mesh {
    up_with_args(net, extra, &[])
}

/// As `up_with`, with more arguments for `weft up`.
pub fn up_with_args(net: u8, extra: &str, more: &[&str]) -> Mesh {
    up_with_env(net, extra, more, &[])
}

/// As `up_with_args`, with `env` in `weft up`'s environment (which every
/// process it starts inherits).
pub fn up_with_env(net: u8, extra: &str, more: &[&str], env: &[(&str, &str)]) -> Mesh {
    up_in(World::new(net), extra, more, env)
}

/// The bundled example plus `extra`, under `weft up` with `more`
/// arguments and `env`, in world `w` (`World::any()` for one the harness
/// allocates).
pub fn up_in(w: World, extra: &str, more: &[&str], env: &[(&str, &str)]) -> Mesh {
    let cfg = w.dir.join("config");
    std::fs::create_dir_all(&cfg).unwrap();
    for e in std::fs::read_dir(super::repo().join("examples/bookinfo")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, cfg.join(p.file_name().unwrap())).unwrap();
    }
    if !extra.is_empty() {
        std::fs::write(cfg.join("extra.yaml"), extra).unwrap();
    }
    let (xds, base) = (w.addr(0, 253, 15010).to_string(), w.ip(10, 1));
    let mut args = vec!["--xds", &xds, "--address-base", &base, "--explain"];
    args.extend_from_slice(more);
    start(w, &args, env)
}

/// `weft up` on the configuration the caller wrote to `w.dir/config`,
/// with the ingress on 127.N.0.254:8080, the admin API on
/// 127.N.0.253:15014, its run directory in `w.dir/run`, `more` arguments
/// and `env`; returns once it says it is ready.
pub fn start(mut w: World, more: &[&str], env: &[(&str, &str)]) -> Mesh {
    let cfg = w.dir.join("config");
    let ingress = w.addr(0, 254, 8080).to_string();
    let admin = w.addr(0, 253, 15014).to_string();
    let (c, run) = (
        cfg.display().to_string(),
        w.dir.join("run").display().to_string(),
    );
    let mut args = vec![
        "up",
        "-f",
        &c,
        "--ingress",
        &ingress,
        "--admin",
        &admin,
        "--run-dir",
        &run,
    ];
    args.extend_from_slice(more);
    w.spawn_with_env("up", &args, env, None);
    let started = Instant::now();
    while !w.log("up").contains("weft: ready") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "weft up did not become ready:\n{}",
            w.log("up")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Mesh {
        w,
        cfg,
        ingress,
        admin,
    }
}

impl Mesh {
    pub fn page(&self, user: Option<&str>) -> (u16, String) {
        let url = format!("http://{}/productpage", self.ingress);
        let cookie = user.map(|u| format!("user={u}"));
        let r = match &cookie {
            Some(c) => curl(&["-b", c, &url]),
            None => curl(&[&url]),
        };
        (r.status, r.body)
    }

    pub fn served_by(&self, n: usize, user: Option<&str>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let (_, body) = self.page(user);
            let who = body
                .split("Reviews served by: <u>")
                .nth(1)
                .and_then(|s| s.split('<').next())
                .unwrap_or("no page")
                .to_owned();
            *out.entry(who).or_default() += 1;
        }
        out
    }

    /// Writes a task's YAML as the routing configuration and waits until
    /// the control plane accepted it.
    pub fn apply(&self, task: &str) {
        self.write_config("routing.yaml", &tasks_yaml(task));
    }

    /// Writes `yaml` as the configuration file `name` and waits until the
    /// control plane accepted the change and pushed it.
    pub fn write_config(&self, name: &str, yaml: &str) {
        let before = self.w.log("up").matches("accepted").count();
        std::fs::write(self.cfg.join(name), yaml).unwrap();
        let started = Instant::now();
        while self.w.log("up").matches("accepted").count() == before {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "change not accepted:\n{}",
                self.w.log("up")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Pushes are a file write and a signal; give proxies a moment.
        std::thread::sleep(Duration::from_millis(300));
    }
}

impl Mesh {
    /// `weft status -o json` of the running mesh.
    pub fn status(&self) -> serde_json::Value {
        let o = super::weft()
            .args(["status", "-o", "json", "--admin", &self.admin])
            .output()
            .expect("weft status runs");
        serde_json::from_slice(&o.stdout).unwrap_or_default()
    }

    /// The proxy named `name` (`default/reviews-v1-0`) in `weft status`,
    /// once it reports its addresses.
    pub fn proxy(&self, name: &str) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            let found = status["proxies"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == name).cloned());
            if let Some(p) = found.filter(|p| !p["admin"].is_null()) {
                return p;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no proxy {name} in {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A sidecar's outbound proxy address, as `HTTP_PROXY` names it.
    pub fn outbound_of(&self, name: &str) -> String {
        let p = self.proxy(name);
        format!(
            "http://{}",
            p["outbound"].as_str().expect("outbound address")
        )
    }
}

impl Mesh {
    /// `weft status` as a user reads it.
    pub fn status_text(&self) -> String {
        let o = super::weft()
            .args(["status", "--admin", &self.admin])
            .output()
            .expect("weft status runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}
