//! Helpers shared by the sandbox's test files: waiting for a process to say its pid, and
//! checking that a process, or every process of a run, is gone.

#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a killed process may take to disappear before a test fails.
pub(crate) const DEATH_LIMIT: Duration = Duration::from_secs(5);

/// The state letter of `/proc/PID/stat` (`R`, `S`, `Z`, ...), or `None` if there is no such
/// process.
pub(crate) fn proc_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses; the
    // state is the first field after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// True while `pid` is a process that can still run (exists and is not a zombie: a killed
/// grandchild is re-parented to PID 1, which in some containers never reaps).
pub(crate) fn is_running(pid: i32) -> bool {
    matches!(proc_state(pid), Some(state) if state != 'Z' && state != 'X')
}

/// Polls until `pid` can no longer run, for at most [`DEATH_LIMIT`]. Sleeps on the tokio
/// timer so that the runtime keeps reaping orphaned children meanwhile.
pub(crate) async fn wait_until_dead(pid: i32) -> bool {
    let deadline = Instant::now() + DEATH_LIMIT;
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !is_running(pid)
}

/// Waits (at most 10 s) for a complete `pid\n` file and returns the pid.
pub(crate) async fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().parse().expect("a pid");
            }
        }
        assert!(Instant::now() < deadline, "{} was never written", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The variable that marks every process of one run: the spec's environment is exactly what
/// the run's first process starts with, and its descendants inherit it. The test finds them
/// by it in the host's `/proc`, whichever `/proc` the run itself sees (its own, where a mount
/// namespace of its own confines its files) and whichever PID namespace it is in.
pub(crate) const MARK: &str = "SKILLBOX_TEST_RUN_MARK";

/// The processes of the host that can still run and whose environment holds `MARK=mark`.
/// (The watchdog reads the run's processes' `/proc/PID/io` with the same right.)
pub(crate) fn marked(mark: &str) -> Vec<i32> {
    let want = format!("{MARK}={mark}");
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_bytes()))
                && is_running(*pid)
        })
        .collect()
}

/// Polls until no process of the host is marked with `mark`, for at most [`DEATH_LIMIT`];
/// returns those still marked then. Sleeps on the tokio timer so that the runtime keeps
/// reaping orphaned children meanwhile.
pub(crate) async fn wait_until_none_marked(mark: &str) -> Vec<i32> {
    let deadline = Instant::now() + DEATH_LIMIT;
    loop {
        let left = marked(mark);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pid, as this process sees it, of the running process one of whose arguments is
/// exactly `token`, waiting (at most 10 s) for it to appear. A run sees only its own
/// processes, under pids of its own PID namespace, so a test finds the run's processes from
/// outside by an argument it gave them.
pub(crate) async fn wait_for_process_with_arg(token: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = process_with_arg(token) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no process with the argument {token} appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The running process one of whose arguments is exactly `token`, if there is one.
pub(crate) fn process_with_arg(token: &str) -> Option<i32> {
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == token.as_bytes()))
                && is_running(*pid)
        })
}
