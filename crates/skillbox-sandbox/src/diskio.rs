//! Bytes a run wrote to disk, from the kernel's per-process I/O counters.
//!
//! There is no kernel quota on the total bytes a group of processes writes: `RLIMIT_FSIZE`
//! caps each file, and cgroup `io.max` limits bandwidth, not volume. So the total is enforced
//! by supervision: while the run lives, [`run`](crate::run()) samples the counters every
//! [`POLL`] and kills the run's process group once the sum passes the limit.
//!
//! The counter is `write_bytes` of `/proc/PID/io`: bytes the process dirtied in the page
//! cache of files with writeback (block-backed filesystems), plus direct I/O, counted when
//! the write happens, not when the page reaches the disk. It counts `mmap` writes, which
//! `wchar` misses, and it does not count pipes, sockets or terminals, which `wchar` does (a
//! skill flooding its stdout is the output cap's business, not this limit's). It does not
//! count tmpfs, whose pages are memory (and charged to a memory cgroup where there is one).
//! It is page-granular: a one-byte write dirties, and counts, a whole page.
//!
//! cgroup v2 `io.stat` is not used: it counts bytes when writeback submits them, up to
//! tens of seconds after the write, so a run could dirty far more than its limit before
//! the counter moved.
//!
//! The value for one process covers all its threads, living or dead, and every child it
//! waited for (the kernel adds a reaped child's counters to its parent's). So the sum over
//! the living (and zombie) processes of the run's group covers everything the run wrote,
//! except what a process wrote that exited unseen between two samples and was reaped
//! outside the run's processes: automatically, because its parent ignores `SIGCHLD`, or,
//! without a PID namespace, by the host's init after its parent died.
//!
//! The kernel makes the counters of a finished process (a zombie, or one past releasing its
//! memory on its way out) readable by root only. As a normal user, a finished process not
//! yet waited for therefore counts nothing until its parent reaps it; at the end of a run
//! with a PID namespace the kernel reaps them all into the first process, whose `wait4`
//! rusage (`ru_oublock`: the same bytes less writes cancelled by truncation) gives the total.
//! A *running* process whose counters cannot be read (non-dumpable without a PID namespace,
//! or running a program it may execute but not read) could write unseen, and the caller
//! stops the run.

use std::io::ErrorKind;
use std::time::Duration;

/// How often the total is sampled while the run lives. A run can overshoot its limit by
/// what it writes in one interval (plus the time to kill it).
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// A sample of the run's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Sum of `write_bytes` over the processes read.
    pub bytes: u64,
    /// Processes of the run whose counters exist but could not be read (permission): their
    /// writes are unknown.
    pub unreadable: usize,
}

/// What reading one process's counter gave.
enum Read {
    /// Its `write_bytes`.
    Bytes(u64),
    /// The process is gone (exited and reaped between listing and reading), or finished
    /// (a zombie, or past releasing its memory on the way out) and unreadable to a normal
    /// user: it writes nothing more.
    Gone,
    /// The counters exist but cannot be read (permission), or make no sense.
    Unreadable,
}

/// `write_bytes` of process `pid`: all its threads and the children it reaped.
fn process_write_bytes(pid: i32) -> Read {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/io")) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            return Read::Gone
        }
        // The file of a process without memory (exiting, or a zombie) belongs to root:
        // a finished process, whose writes its parent's count takes over once it reaps it.
        Err(_) if !has_memory(pid) => return Read::Gone,
        Err(_) => return Read::Unreadable,
    };
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Read::Unreadable, Read::Bytes)
}

/// True when this kernel keeps per-process I/O counters (`CONFIG_TASK_IO_ACCOUNTING`):
/// without them every process would count zero, and the total could not be enforced.
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let own = rustix::process::getpid().as_raw_nonzero().get();
        matches!(process_write_bytes(own), Read::Bytes(_))
    })
}

/// Fields of `/proc/PID/stat` after the command name (state, ppid, pgrp, ...), which every
/// user may read. `None` when the process is gone.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; the fields follow the
    // last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// True while `pid` still has an address space (its `vsize`, field 23 of `stat`, is not
/// zero): a running process, as opposed to one that has finished.
fn has_memory(pid: i32) -> bool {
    // Field 23 of stat is the 21st after the command name (index 20).
    stat_fields(pid).and_then(|f| f.get(20)?.parse::<u64>().ok()).is_some_and(|v| v > 0)
}

/// The process group of `pid`, or `None` when it is gone. Asked of `getpgid(2)`, which
/// Linux answers for any process of the caller's PID namespace, zombies included: a system
/// call where reading `/proc/PID/stat` cost an open, a read and a close (about 18 µs per
/// process here, for every process of the host at each sample).
pub(crate) fn process_group(pid: i32) -> Option<i32> {
    // libc, not rustix: the kernel answers 0 for a process whose group leader lies outside
    // our PID namespace (common in containers), which rustix's `Pid` cannot hold (it
    // asserts the group is positive).
    // SAFETY: getpgid reads nothing from and writes nothing to this process's memory.
    let pgid = unsafe { libc::getpgid(pid) };
    (pgid >= 0).then_some(pgid)
}

/// Sums the counters of the one process `pid`.
pub(crate) fn of_process(pid: i32) -> Sample {
    match process_write_bytes(pid) {
        Read::Bytes(v) => Sample { bytes: v, unreadable: 0 },
        Read::Gone => Sample::default(),
        Read::Unreadable => Sample { bytes: 0, unreadable: 1 },
    }
}

/// Sums the counters of the processes `pids` (the members of the run's cgroup).
pub(crate) fn of_pids(pids: impl IntoIterator<Item = i32>) -> Sample {
    let mut sample = Sample::default();
    for pid in pids {
        match process_write_bytes(pid) {
            Read::Bytes(v) => sample.bytes = sample.bytes.saturating_add(v),
            Read::Gone => {}
            Read::Unreadable => sample.unreadable += 1,
        }
    }
    sample
}

/// Sums the counters of every process whose process group is `pgid` (the run's group: the
/// sandbox denies `setsid` and `setpgid`, so no process of the run leaves it). Lists
/// `/proc` and asks each process's group of `getpgid` (one system call per process of the
/// host), so [`of_pids`] is preferred where the run has a cgroup.
pub(crate) fn of_group(pgid: i32) -> Sample {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // No /proc: nothing can be read, which the caller must treat as unknown.
        return Sample { bytes: 0, unreadable: 1 };
    };
    let members = dir.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
        (process_group(pid)? == pgid).then_some(pid)
    });
    of_pids(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_counters_are_readable_and_grow_with_a_written_file() {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        let pgid = rustix::process::getpgrp().as_raw_nonzero().get();
        assert!(available(), "this kernel keeps no per-process I/O counters");
        let before = of_process(pid);
        assert_eq!(before.unreadable, 0, "/proc/self/io must be readable");
        let dir = std::env::temp_dir().join(format!("skillbox-diskio-{pid}"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("f"), vec![7u8; 1 << 20]).expect("write");
        let after = of_process(pid);
        let _ = std::fs::remove_dir_all(&dir);
        // Unless the temp dir is tmpfs, which the counter does not see.
        let tmpfs = is_tmpfs(&std::env::temp_dir());
        if !tmpfs {
            assert!(after.bytes >= before.bytes + (1 << 20), "{before:?} -> {after:?}");
        }
        // The group may hold processes of another user (a root shell that started this
        // test as nobody), whose counters are unreadable; this process's are counted.
        let group = of_group(pgid);
        assert!(group.bytes >= after.bytes, "the group includes this process");
    }

    /// `getpgid` gives every process the group its `/proc/PID/stat` shows (the way the group
    /// was read before).
    #[test]
    fn process_groups_are_the_ones_proc_shows() {
        let mut compared = 0;
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let from_stat = stat_fields(pid).and_then(|f| f.get(2)?.parse::<i32>().ok());
            let from_call = process_group(pid);
            // A process that exits between the two reads answers one of them only.
            if let (Some(a), Some(b)) = (from_stat, from_call) {
                assert_eq!(a, b, "process {pid}");
                compared += 1;
            }
        }
        assert!(compared > 3, "only {compared} processes compared");
        let own = rustix::process::getpgrp().as_raw_nonzero().get();
        assert_eq!(process_group(std::process::id() as i32), Some(own));
        assert_eq!(process_group(i32::MAX), None);
    }

    #[test]
    fn a_missing_process_counts_nothing() {
        assert_eq!(of_process(i32::MAX), Sample::default());
        assert_eq!(of_group(i32::MAX), Sample::default());
    }

    fn is_tmpfs(p: &std::path::Path) -> bool {
        rustix::fs::statfs(p).is_ok_and(|s| s.f_type == libc::TMPFS_MAGIC)
    }
}
