//! Helpers for end-to-end tests: real `weft` processes, real curl, on a
//! loopback range of the test's own (127.N.0.0/16) so tests never collide.
#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod mesh;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `done` every 50 ms until it holds; fails with `why()` once
/// `within` has passed.
pub fn wait_until(within: Duration, mut done: impl FnMut() -> bool, why: impl Fn() -> String) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{}", why());
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn weft() -> Command {
    Command::new(env!("CARGO_BIN_EXE_weft"))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A child process killed when the test ends, pass or fail.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Drop for Proc {
    /// SIGTERM first, so `weft up` can stop what it started; SIGKILL after
    /// three seconds.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status();
    }
}

pub fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after 20 s");
}

/// One test's private world: a temp dir and a loopback /16.
pub struct World {
    pub net: u8,
    pub dir: PathBuf,
    pub procs: Vec<Proc>,
    /// Held while the world lives: the lock on its allocated /16.
    _net_lock: Option<std::fs::File>,
}

/// The /16s `World::any` gives out; tests that still name theirs use
/// ones below.
const ALLOCATED_NETS: std::ops::RangeInclusive<u8> = 150..=250;

impl World {
    /// A world on a loopback /16 of its own, chosen here: each test runs
    /// in its own process, so the /16 is held by a lock file that the
    /// kernel releases when the test ends, however it ends.
    #[allow(dead_code)]
    pub fn any() -> World {
        let locks = std::env::temp_dir().join("weft-e2e-nets");
        std::fs::create_dir_all(&locks).expect("lock dir");
        for net in ALLOCATED_NETS {
            let Ok(file) = std::fs::File::create(locks.join(format!("{net}.lock"))) else {
                continue;
            };
            if file.try_lock().is_ok() {
                let mut w = World::new(net);
                w._net_lock = Some(file);
                return w;
            }
        }
        panic!("every loopback /16 in {ALLOCATED_NETS:?} is taken by a running test");
    }

    pub fn new(net: u8) -> World {
        let dir = std::env::temp_dir().join(format!("weft-e2e-{net}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        World {
            net,
            dir,
            procs: Vec::new(),
            _net_lock: None,
        }
    }

    /// `127.<net>.<a>.<b>`
    pub fn ip(&self, a: u8, b: u8) -> String {
        format!("127.{}.{a}.{b}", self.net)
    }

    pub fn addr(&self, a: u8, b: u8, port: u16) -> SocketAddr {
        format!("{}:{port}", self.ip(a, b))
            .parse()
            .expect("address")
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).expect("write fixture");
        p
    }

    /// Compiles the model of `workload` from `files`, local replicas
    /// addressed from 127.<net>.0.1 up.
    pub fn model(&self, workload: &str, files: &[PathBuf], out: &str) -> PathBuf {
        let mut cmd = weft();
        cmd.current_dir(repo())
            .arg("proxy-config")
            .arg(workload)
            .arg("-o")
            .arg("json")
            .arg("--local-address-base")
            .arg(self.ip(0, 1));
        for f in files {
            cmd.arg("-f").arg(f);
        }
        let o = cmd.output().expect("weft proxy-config runs");
        assert!(
            o.status.success(),
            "proxy-config failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let path = self.dir.join(out);
        std::fs::write(&path, &o.stdout).expect("write model");
        path
    }

    pub fn spawn(&mut self, name: &str, args: &[&str], wait_for: Option<SocketAddr>) {
        self.spawn_with_env(name, args, &[], wait_for);
    }

    /// As `spawn`, with `env` added to the process's environment.
    pub fn spawn_with_env(
        &mut self,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
        wait_for: Option<SocketAddr>,
    ) {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).expect("log file");
        let err = log.try_clone().expect("log file");
        let mut args = args.to_vec();
        // A proxy run from a model file has no CA to get an identity from:
        // these tests exercise the data plane alone, in plain text. The
        // mTLS tests run proxies with a control plane.
        if args.first() == Some(&"proxy") && args.contains(&"--model") {
            args.push("--no-mtls");
        }
        let child = weft()
            .args(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn weft");
        self.procs.push(Proc {
            child,
            name: name.to_owned(),
        });
        if let Some(a) = wait_for {
            wait_port(a);
        }
    }

    /// An httpbin sample app named `name` at `addr`.
    pub fn httpbin(&mut self, name: &str, addr: SocketAddr, extra: &[&str]) {
        let a = addr.to_string();
        let mut args = vec![
            "sample-app",
            "httpbin",
            "--listen",
            a.as_str(),
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        self.spawn(name, &args, Some(addr));
    }

    pub fn proc(&self, name: &str) -> &Proc {
        self.procs.iter().find(|p| p.name == name).expect("process")
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.procs.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Runs curl with `args` and returns status, headers and body.
pub fn curl(args: &[&str]) -> Reply {
    let o = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "20",
            "-D",
            "-",
            "-o",
            "/dev/stderr",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl runs");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let (headers, code) = out.rsplit_once('\n').unwrap_or((&out, "0"));
    Reply {
        status: code.trim().parse().unwrap_or(0),
        headers: headers.to_owned(),
        body: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The lines of metric `name` (any labels) in Prometheus `metrics` text
/// that contain `filter`.
pub fn metric_lines(metrics: &str, name: &str, filter: &str) -> Vec<String> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(filter))
        .map(str::to_owned)
        .collect()
}

/// The sum of the values of `metric_lines(metrics, name, filter)`.
pub fn metric_sum(metrics: &str, name: &str, filter: &str) -> u64 {
    metric_lines(metrics, name, filter)
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

/// `/proc/PID` of each proxy whose command line holds `needle`.
pub fn proxy_dirs(needle: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            (args.contains(&&b"proxy"[..]) && args.contains(&needle.as_bytes())).then(|| e.path())
        })
        .collect()
}

/// The scheduling policy of every thread of the proxies whose command
/// line holds `needle` (field 41 of `/proc/PID/task/TID/stat`: 0 is
/// SCHED_OTHER, 3 SCHED_BATCH).
pub fn proxy_thread_policies(needle: &str) -> Vec<u32> {
    proxy_dirs(needle)
        .iter()
        .flat_map(|d| std::fs::read_dir(d.join("task")).unwrap().flatten())
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let (_, after_name) = stat.rsplit_once(')')?;
            after_name.split_whitespace().nth(38)?.parse().ok()
        })
        .collect()
}
