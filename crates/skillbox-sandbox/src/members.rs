//! Which processes belong to a run, for the watchdog that sums their write counters and
//! counts them: the run's cgroup where it lists them, else a walk of `/proc`.
//!
//! Without a PID namespace the run's processes cannot leave its process group (seccomp
//! denies `setsid` and `setpgid`), so the group finds them all. With one, programs may start
//! sessions of their own, and a process that did is found by its PID namespace instead
//! (`/proc/PID/ns/pid` names the same namespace as the first process's). Reading that link
//! needs the process to be dumpable, which the run's filter keeps it (no `PR_SET_DUMPABLE`
//! 0): a process that executed a program it may run but not read becomes non-dumpable and
//! is not found once it left the group.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

/// How often the watchdog counts a run's processes where it holds a process count: a fork
/// bomb overshoots by what it starts in one interval. A count walks `/proc` (a `getpgid` per
/// process of the host: about 30 µs for 100 processes here).
pub(crate) const PROCESS_POLL: Duration = Duration::from_millis(10);

/// What the `RLIMIT_NPROC` backstop of a watched run allows beyond the host's thread count
/// and the run's own count: room for the user's other processes to grow while the run
/// lives (they count against the same limit), and the most a fork bomb that outruns the
/// watchdog can add.
pub(crate) const NPROC_MARGIN: u64 = 512;

/// Threads on the host now: the fourth field of `/proc/loadavg` (`running/total`), read with
/// one small file. The count of the user's own threads would need a read per process.
pub(crate) fn host_threads() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().nth(3)?.split('/').nth(1)?.parse().ok()
}

/// Where the run's processes are found.
pub(crate) enum Members<'a> {
    /// Listed by the run's cgroup (every process of the run is in it, and cannot leave it).
    Cgroup(&'a crate::cgroup::RunCgroup),
    /// The process group `pgid`, and with `namespace` (device and inode of a PID
    /// namespace's link) every process in that namespace.
    Walk { pgid: i32, namespace: Option<(u64, u64)> },
}

impl Members<'_> {
    /// The pids of the run's processes now, or `None` when they cannot be listed (no
    /// `/proc`, or the cgroup's list unreadable): the caller must then treat the run's
    /// counts as unknown.
    pub(crate) fn list(&self) -> Option<Vec<i32>> {
        match self {
            Members::Cgroup(cg) => cg.members(),
            Members::Walk { pgid, namespace } => walk(*pgid, *namespace),
        }
    }
}

/// The PID namespace of process `pid`, as the device and inode of its `/proc/PID/ns/pid`
/// link; `None` when it cannot be read.
pub(crate) fn namespace_of(pid: i32) -> Option<(u64, u64)> {
    let m = std::fs::metadata(format!("/proc/{pid}/ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Every process of `/proc` in group `pgid` (asked of `getpgid`, one system call each) or,
/// with `namespace`, in that PID namespace (a `stat` of its namespace link, made only for
/// processes outside the group).
fn walk(pgid: i32, namespace: Option<(u64, u64)>) -> Option<Vec<i32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let members = dir
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let in_group = crate::diskio::process_group(pid)? == pgid;
            (in_group || namespace.is_some_and(|ns| namespace_of(pid) == Some(ns))).then_some(pid)
        })
        .collect();
    Some(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process is found by its group and by its namespace, and a process of another
    /// group and namespace is not.
    #[test]
    fn a_walk_finds_the_group_and_the_namespace() {
        let own = std::process::id() as i32;
        let pgid = rustix::process::getpgrp().as_raw_nonzero().get();
        let by_group = walk(pgid, None).unwrap();
        assert!(by_group.contains(&own));
        let ns = namespace_of(own).unwrap();
        let by_namespace = walk(i32::MAX, Some(ns)).unwrap();
        assert!(by_namespace.contains(&own), "found by its PID namespace");
        let nowhere = walk(i32::MAX, Some((0, 0))).unwrap();
        assert!(nowhere.is_empty(), "{nowhere:?}");
    }
}
