//! CPU time and resident memory of the processes under test, read from
//! /proc. A "proxy" may be several processes (nginx's master and workers),
//! so everything works on sets of pids.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second for /proc/PID/stat; Linux has used 100 on
/// every architecture weft builds for, but ask once to be sure.
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0)
}

/// User plus system CPU seconds of one process (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are at 11 and 12 after the name.
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / ticks_per_second())
}

/// Resident set size in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    kib_field(pid, "status", "VmRSS:")
}

/// Proportional set size in KiB: resident pages, each shared page counted
/// as its share among the processes mapping it (every weft proxy maps the
/// same binary, so this is what one more proxy costs).
pub fn pss_kib(pid: u32) -> Option<u64> {
    kib_field(pid, "smaps_rollup", "Pss:")
}

/// A `Key:   123 kB` line of `/proc/PID/<file>`.
fn kib_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// What the scheduler did with a process's threads, summed over
/// `/proc/PID/task/*`: where the time between a packet arriving and the
/// proxy answering it goes, besides the proxy's own work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sched {
    /// Nanoseconds runnable but waiting for a CPU (schedstat's second
    /// field): a wake-up that found no free core, or a core that had to be
    /// woken first.
    pub wait_ns: u64,
    /// Times a thread went to sleep (voluntary context switches): each is
    /// a later wake-up.
    pub sleeps: u64,
    /// Times a thread was switched out while it still had work
    /// (involuntary context switches).
    pub preemptions: u64,
}

impl Sched {
    pub fn since(self, before: Sched) -> Sched {
        Sched {
            wait_ns: self.wait_ns.saturating_sub(before.wait_ns),
            sleeps: self.sleeps.saturating_sub(before.sleeps),
            preemptions: self.preemptions.saturating_sub(before.preemptions),
        }
    }
}

/// The scheduler's totals for one process, all its threads. A thread
/// that ends between two readings takes its counts with it; the proxies
/// measured keep theirs for their whole life.
pub fn sched(pid: u32) -> Sched {
    let mut total = Sched::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for t in tasks.flatten() {
        let dir = t.path();
        if let Some(wait) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        {
            total.wait_ns += wait;
        }
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        for line in status.lines() {
            let count = |key: &str| {
                line.strip_prefix(key)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(n) = count("voluntary_ctxt_switches:") {
                total.sleeps += n;
            } else if let Some(n) = count("nonvoluntary_ctxt_switches:") {
                total.preemptions += n;
            }
        }
    }
    total
}

pub fn total_sched(pids: &[u32]) -> Sched {
    pids.iter()
        .map(|p| sched(*p))
        .fold(Sched::default(), |a, b| Sched {
            wait_ns: a.wait_ns + b.wait_ns,
            sleeps: a.sleeps + b.sleeps,
            preemptions: a.preemptions + b.preemptions,
        })
}

pub fn total_pss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| pss_kib(*p)).sum()
}

pub fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| cpu_seconds(*p)).sum()
}

pub fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| rss_kib(*p)).sum()
}

/// The pid and its children (nginx and HAProxy fork workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if parent(child) == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Processes whose command line holds every one of `needles` as an
/// argument.
pub fn find(needles: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        else {
            continue;
        };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if needles.iter().all(|n| args.contains(&n.as_bytes())) {
            out.push(pid);
        }
    }
    out
}

/// Samples the largest RSS of `pids` every 100 ms until told to stop.
pub struct PeakRss {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(pids: Vec<u32>) -> PeakRss {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(total_rss(&pids));
                std::thread::sleep(Duration::from_millis(100));
            }
            peak.max(total_rss(&pids))
        });
        PeakRss { stop, handle }
    }

    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_that_sleeps_is_counted_as_sleeping() {
        let me = std::process::id();
        let before = super::sched(me);
        for _ in 0..3 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let after = super::sched(me).since(before);
        assert!(after.sleeps >= 3, "{after:?}");
    }
}
