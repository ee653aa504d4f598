//! The CPU scheduling policy a proxy runs under.
//!
//! A sidecar works in short bursts, each started by a packet from its
//! application or its peer. Under Linux's default policy a woken task
//! preempts the one that woke it: a sidecar writing a response wakes its
//! peer, is switched out before it is back in `epoll_wait`, and is switched
//! in again later only to go to sleep, a pair of context switches more for
//! every hop. `SCHED_BATCH` tasks do not preempt on wakeup, and a woken one
//! still goes to an idle CPU when there is one. On the benchmark's mesh
//! (bench/README.md) that took a fifth to a third off each sidecar's CPU
//! per request and 0.07-0.1 ms off the median, and a fifth off the
//! gateway's. The price: when every CPU is busy, a woken proxy waits for
//! the running task's slice to end instead of cutting in, so
//! `--cpu-policy normal` (or `WEFT_CPU_POLICY=normal`) is there for
//! latency-critical workloads on saturated nodes.

/// How the proxy's threads are scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CpuPolicy {
    /// `SCHED_BATCH`: no preemption on wakeup (the default).
    Batch,
    /// The kernel's default, `SCHED_OTHER`.
    Normal,
}

/// Puts the calling thread, and every thread it starts afterwards, under
/// `policy`. The nice value is kept: when the process runs under `nice`,
/// the policy is left alone rather than reset the operator's setting.
pub fn apply(policy: CpuPolicy) -> Result<(), String> {
    if policy == CpuPolicy::Normal {
        return Ok(());
    }
    match nice() {
        Some(0) => {}
        Some(n) => return Err(format!("the process runs at nice {n}; left at SCHED_OTHER")),
        None => return Err("cannot read the nice value from /proc/self/stat".into()),
    }
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    use thread_priority::{ThreadPriority, ThreadPriorityOsValue};
    set_thread_priority_and_policy(
        thread_native_id(),
        // Nice 0, as checked above.
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    )
    .map_err(|e| format!("SCHED_BATCH refused: {e:?}"))
}

/// This process's nice value: field 19 of `/proc/self/stat`, counted after
/// the command name (which may hold spaces and parentheses).
fn nice() -> Option<i32> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(16)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn nice_is_read_from_proc() {
        // The test runner is not under nice in CI; any value is a number.
        assert!(super::nice().is_some_and(|n| (-20..=19).contains(&n)));
    }
}
