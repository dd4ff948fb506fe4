//! A run's cgroups do not outlive it: a cancelled run's groups are removed once its killed
//! processes have left them, while the process that made them lives on (an MCP server), and
//! a process that exits normally leaves no group at all, under any cgroup mount.
//!
//! Each check runs in a helper process (this test binary again, with `--ignored` and an
//! environment variable), so that "nothing of that pid is left" can be checked from outside
//! after it has exited. Only a process that may create cgroups (root, or a delegated
//! hierarchy) makes any; elsewhere skillbox bounds runs with rlimits, there is nothing to
//! remove, and the tests say so loudly. As root they must find groups to check.

mod hosts;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skillbox_sandbox::{run, ChildSpec, Guarantee, Policy, ProcessAccess};
use tokio::io::AsyncReadExt;

fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode and no memory effects.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the runs of [`limited`] are refused on this host, with and without a PID
/// namespace: then no run makes a group, and that is checked instead (the refusal, exactly
/// as the support matrix says).
fn all_refused_here() -> bool {
    let dir = std::env::temp_dir();
    // (Runs are made as the tests make them: see `hosts::as_tested`.)
    let refused =
        [false, true].map(|ns| hosts::expect(&hosts::weaker(&limited(&dir, "true", ns))).refused());
    if !refused.iter().all(|r| *r) {
        return false;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for ns in [false, true] {
        assert!(rt.block_on(hosts::run(&limited(&dir, "true", ns))).is_none());
    }
    true
}

/// Whether runs of this process get cgroups. Where they cannot, says so loudly (a normal
/// user without a delegated hierarchy, or a profile that mounts the tree read-only:
/// skillbox makes no group, so there is nothing to remove); root must be able to, unless
/// the profile took the cgroups away.
fn groups_are_made_here() -> bool {
    let f = hosts::facts();
    if f.cgroups {
        return true;
    }
    eprintln!(
        "!!! NOT CHECKED: this process cannot create cgroups (no writable or delegated \
         hierarchy on profile {}), so skillbox makes no group for a run here and none can be \
         left behind",
        f.profile
    );
    assert!(
        !is_root() || !f.profile_leaves_cgroups,
        "root must be able to create cgroups on this host"
    );
    false
}

/// Mount points of the cgroup hierarchies (v1 and v2).
fn cgroup_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            matches!(fields.get(sep + 1), Some(&"cgroup") | Some(&"cgroup2"))
                .then(|| PathBuf::from(fields[4]))
        })
        .collect()
}

/// Every directory named `skillbox-<pid>-<n>` under any cgroup mount.
fn groups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("skillbox-{pid}-");
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = cgroup_mounts().into_iter().map(|m| (m, 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
                found.push(e.path());
            } else if depth < 8 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    found.sort();
    found
}

/// The groups of `pid` that hold a process.
fn populated_groups_of(pid: u32) -> Vec<PathBuf> {
    groups_of(pid)
        .into_iter()
        .filter(|g| {
            std::fs::read_to_string(g.join("cgroup.procs")).is_ok_and(|s| !s.trim().is_empty())
        })
        .collect()
}

/// Runs this test binary's `helper` test with `mode`, and returns its pid once it has
/// exited successfully.
fn run_helper(helper: &str, mode: &str) -> u32 {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", helper, "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the helper failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

const HELPER_ENV: &str = "SKILLBOX_CGROUP_CLEANUP_HELPER";

/// The limits that give a run a group in every hierarchy: pids, memory and cpu.
fn limited(dir: &Path, script: &str, pid_namespace: bool) -> ChildSpec {
    let mut spec = ChildSpec::new("/bin/sh", dir);
    spec.args = vec!["-c".into(), script.into()];
    spec.env = vec![("PATH".into(), "/usr/bin:/bin".into())];
    let mut policy = Policy::strict();
    policy.write = vec![dir.to_path_buf()];
    policy.processes = ProcessAccess::Limited;
    policy.rlimits.processes = Some(16);
    policy.rlimits.memory = Some(128 << 20);
    policy.rlimits.cpu_percent = Some(50);
    policy.pid_namespace = pid_namespace;
    spec.policy = policy;
    spec.timeout = Duration::from_secs(120);
    spec
}

/// How long the kernel may take to let the killed processes of a run leave its groups,
/// and skillbox to remove them.
const KERNEL_WAIT: Duration = Duration::from_secs(10);

/// Many runs cancelled mid-run (their future dropped while a shell and its background
/// `sleep` are running), with and without a PID namespace: each run's groups are gone
/// shortly after, while the process lives on; the last run is cancelled just before the
/// process exits, and what the exit leaves is checked from outside: nothing of its pid,
/// under any cgroup mount.
#[test]
fn cancelled_runs_leave_no_cgroup_during_the_process_or_after_it() {
    if !groups_are_made_here() || all_refused_here() {
        return;
    }
    let pid = run_helper("cleanup_helper", "cancel");
    assert_eq!(groups_of(pid), Vec::<PathBuf>::new(), "groups left after a normal exit");
}

/// Runs that end normally, then a normal exit: no group of the process is left (those of
/// the runs, and the sets made ahead for a next run that never came).
#[test]
fn a_process_whose_runs_ended_leaves_no_cgroup_at_exit() {
    if !groups_are_made_here() || all_refused_here() {
        return;
    }
    let pid = run_helper("cleanup_helper", "normal");
    assert_eq!(groups_of(pid), Vec::<PathBuf>::new(), "groups left after a normal exit");
}

/// Watches the directories this process's groups are made in (every hierarchy's group of
/// this process) for new entries, with inotify: a group made and removed again between two
/// looks at the directory is still seen.
struct Creations {
    fd: std::os::fd::OwnedFd,
}

impl Creations {
    fn watch() -> Self {
        use std::os::fd::FromRawFd;
        // SAFETY: inotify_init1 takes flags only; the descriptor is owned by `fd` below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(raw >= 0, "inotify_init1: {}", std::io::Error::last_os_error());
        // SAFETY: `raw` is a fresh descriptor, owned by nothing else.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let mut watched = 0;
        for mount in cgroup_mounts() {
            for rel in own.lines().filter_map(|l| l.splitn(3, ':').nth(2)) {
                let dir = mount.join(rel.trim_start_matches('/'));
                let Ok(c) = std::ffi::CString::new(dir.to_str().unwrap()) else { continue };
                if !dir.is_dir() {
                    continue;
                }
                use std::os::fd::AsRawFd;
                // SAFETY: reads the NUL-terminated path; `fd` is an inotify descriptor.
                let wd =
                    unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_CREATE) };
                watched += usize::from(wd >= 0);
            }
        }
        assert!(watched > 0, "no cgroup directory could be watched");
        Self { fd }
    }

    /// Names created since the last call that are groups of `pid`.
    fn created_by(&self, pid: u32) -> Vec<String> {
        use std::os::fd::AsRawFd;
        let prefix = format!("skillbox-{pid}-");
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: read writes at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return names;
            }
            let mut at = 0;
            while at + 16 <= n as usize {
                let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
                let name = &buf[at + 16..at + 16 + len];
                let name = String::from_utf8_lossy(name).trim_end_matches('\0').to_string();
                if name.starts_with(&prefix) {
                    names.push(name);
                }
                at += 16 + len;
            }
        }
    }
}

/// `skillbox info` and `doctor` preview runs: a preview reports the groups a run would get
/// and makes none. Watched with inotify, so a group made and removed at once is seen too;
/// the control is a run of the same spec, whose groups the same watch does see.
#[test]
fn a_preview_makes_no_cgroup() {
    if !groups_are_made_here() {
        return;
    }
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let spec = limited(dir.path(), "echo ran", true);
    let creations = Creations::watch();
    let Some(report) = hosts::preview(&spec) else {
        assert_eq!(
            creations.created_by(me),
            Vec::<String>::new(),
            "a refused preview made cgroups"
        );
        return;
    };
    let cgroups = hosts::facts().cgroups;
    let line = |g| report.line(g).unwrap().detail.clone();
    assert_eq!(line(Guarantee::Memory).starts_with("memory cgroup"), cgroups);
    assert_eq!(line(Guarantee::CpuShare).starts_with("cpu cgroup"), cgroups);
    assert_eq!(line(Guarantee::Processes).starts_with("pids cgroup"), cgroups);
    assert_eq!(creations.created_by(me), Vec::<String>::new(), "a preview made cgroups");

    // Control: a run of the same spec makes its groups, and the watch sees them.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let out = rt.block_on(hosts::run_ok(&spec)).expect("the preview was not refused");
    assert_eq!(out.stdout.to_text(), "ran\n", "{out:?}");
    assert_eq!(out.enforcement, report, "the run got what the preview said");
    assert!(!creations.created_by(me).is_empty(), "control: the run's groups were not seen");
}

#[test]
#[ignore = "helper of the tests of this file; does nothing alone"]
fn cleanup_helper() {
    let Some(mode) = std::env::var_os(HELPER_ENV) else { return };
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    if mode == "normal" {
        for i in 0..5 {
            let spec = limited(dir.path(), "echo ran", i % 2 == 1);
            let Some(out) = rt.block_on(hosts::run_ok(&spec)) else { continue };
            assert_eq!(out.stdout.to_text(), "ran\n", "{out:?}");
        }
        assert!(!groups_of(me).is_empty(), "runs with limits as root made no group");
        return;
    }
    assert_eq!(mode, "cancel");
    // The shell says it is running through a FIFO, which this side holds open for reading
    // and writing, so that the read waits for the shell's line instead of seeing an end.
    let fifo = dir.path().join("ready.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let runs = 20;
    let mut cancelled: Vec<Vec<PathBuf>> = Vec::new();
    for i in 0..runs {
        let spec = limited(dir.path(), "sleep 30 & echo ready > ready.fifo; wait", i % 2 == 1);
        // Refused for `file-metadata` and `process-visibility` alone: checked, then made
        // with weaker isolation asked for.
        let spec = rt.block_on(hosts::as_tested(&spec));
        if hosts::expect(&spec).refused() {
            assert!(rt.block_on(hosts::run(&spec)).is_none());
            continue;
        }
        let groups = rt.block_on(async {
            let mut ready = tokio::net::unix::pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(&fifo)
                .unwrap();
            let running = run(&spec);
            tokio::pin!(running);
            let mut line = [0u8; 6];
            tokio::select! {
                r = &mut running => panic!("run {i} ended before it was cancelled: {r:?}"),
                r = ready.read_exact(&mut line) => r.unwrap(),
            };
            let groups = populated_groups_of(me);
            assert!(!groups.is_empty(), "run {i} is in no group of this process");
            groups
            // `running` is dropped here: the run is cancelled.
        });
        cancelled.push(groups);
    }
    // The last run was cancelled just now; the exit must deal with its groups.
    let _last = cancelled.pop();
    let deadline = Instant::now() + KERNEL_WAIT;
    let left = loop {
        let left: Vec<&PathBuf> = cancelled.iter().flatten().filter(|g| g.exists()).collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        left.is_empty(),
        "groups of cancelled runs still there after {KERNEL_WAIT:?}: {left:?}"
    );
    drop(rt);
}
