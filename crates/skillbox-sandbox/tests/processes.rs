//! Other processes, and creating them (threat models 3 and 8): no signal, ptrace, memory
//! access or System V shared memory reaches a process outside the run; with process
//! creation denied, no process is created, but threads are.
//!
//! Most children are a small Python program (the `PRELUDE` of `tests/probe/mod.rs` plus a
//! body) that makes one attempt after another and prints one line per attempt; the test
//! asserts on each attempt by name and, where a secret is involved, that no byte of it
//! reached the output in any form. Every denial is paired with a positive control (the same
//! attempt succeeding where it is granted, or an unconfined run succeeding), so that a
//! broken setup fails loudly instead of passing.
//!
//! The tests pass as root and as an unprivileged user (`setpriv --reuid=nobody ...`):
//! scratch directories are world-accessible, secrets are world-readable files (so only the
//! sandbox can stand between them and the child), and where behaviour legitimately differs
//! by uid the test branches on `geteuid()`.

mod common;
mod hosts;
mod probe;
use common::*;
use probe::*;

use libc::ESRCH;
use skillbox_sandbox::{ExitStatus, Guarantee, Limit, ProcessAccess, Via};

// ---------------------------------------------------------------------------------------
// other processes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn signals_ptrace_and_memory_of_an_outside_process_are_out_of_reach() {
    let outside_secret = unique_secret("OUTSIDE-ENV");
    let mut outside = std::process::Command::new("/bin/sleep")
        .arg("30")
        .env_clear()
        .env("SKILLBOX_OUTSIDE_SECRET", &outside_secret)
        .spawn()
        .expect("start /bin/sleep");
    let pid = outside.id() as i32;
    let cwd = scratch();
    let body = r##"
import signal, subprocess
pid = int(ARGS[0])
attempt("kill_term", lambda: os.kill(pid, signal.SIGTERM))
attempt("kill_kill", lambda: os.kill(pid, signal.SIGKILL))
attempt("kill_stop", lambda: os.kill(pid, signal.SIGSTOP))
# SIGWINCH: harmless to the test's own group should the denial ever fail.
attempt("killpg", lambda: os.killpg(os.getpgid(pid), signal.SIGWINCH))
def pidfd_kill():
    fd = sc(434, pid, 0)
    return sc(424, fd, signal.SIGKILL, 0, 0)
attempt("pidfd_send_signal", pidfd_kill)
attempt("pidfd_getfd", lambda: sc(438, sc(434, pid, 0), 0, 0))
attempt("ptrace_attach", lambda: sc(101, 16, pid, 0, 0))
attempt("ptrace_seize", lambda: sc(101, 0x4206, pid, 0, 0))
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.addressof(buf), 64)
remote = iovec(0x400000, 64)
attempt("process_vm_readv", lambda: sc(310, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0))
attempt("process_vm_writev", lambda: sc(311, pid, ctypes.addressof(local), 1, ctypes.addressof(remote), 1, 0))
attempt("proc_mem", lambda: read(f"/proc/{pid}/mem"))
attempt("proc_environ", lambda: read(f"/proc/{pid}/environ"))
attempt("proc_fd", lambda: os.readlink(f"/proc/{pid}/fd/0"))
attempt("proc_maps", lambda: read(f"/proc/{pid}/maps"))
# Control: the same calls on a process of the run's own tree work.
own = subprocess.Popen(["/bin/sleep", "30"], env={"SKILLBOX_OWN": "1"})
# The child's pid in whichever /proc the run sees (the host's, or its PID namespace's in a
# root of its own) is the one that /proc lists.
own_proc = read("/proc/thread-self/children").split()[0].decode()
def own_environ():
    # Until the exec, the child still has the probe's (empty) environment.
    import time
    for _ in range(500):
        e = read(f"/proc/{own_proc}/environ")
        if e:
            return e
        time.sleep(0.01)
    return e
attempt("own_environ", own_environ)
attempt("own_kill", lambda: os.kill(own.pid, signal.SIGTERM))
attempt("own_wait", lambda: str(own.wait()))
"##;
    let mut policy = strict();
    // The most permissive process setting: signals stay scoped whatever it says.
    policy.processes = ProcessAccess::Full;
    // In a PID namespace no process outside the run has a pid there: naming one fails
    // with ESRCH before any permission is asked. Without one, Landlock's scope refuses.
    let unnamed = if hosts::expect_policy(&policy, false).pid_namespace { ESRCH } else { EPERM };
    let Some(p) = probe(policy, cwd.path(), body, &[pid.to_string()]).await else {
        let _ = outside.kill();
        let _ = outside.wait();
        return;
    };

    let alive = is_running(pid);
    let _ = outside.kill();
    let _ = outside.wait();
    assert!(alive, "the outside process was killed by the confined child\n{}", p.context());
    for name in ["kill_term", "kill_kill", "kill_stop", "killpg", "pidfd_send_signal"] {
        p.err(name, &[unnamed]);
    }
    p.err("pidfd_getfd", &[unnamed]);
    // ptrace and process_vm_* are seccomp's, which answers before the pid is looked up.
    for name in ["ptrace_attach", "ptrace_seize", "process_vm_readv", "process_vm_writev"] {
        p.err(name, &[EPERM]);
    }
    // (Listing /proc/PID/fd shows descriptor numbers to the same user; what they point to
    // needs ptrace access.)
    // Where /proc is the run's PID namespace's (process-visibility, or a root of its own),
    // the outside process has no entry there.
    let unseen: &[i32] = if p.own_proc() { &[ENOENT] } else { &[EACCES, EPERM] };
    for name in ["proc_mem", "proc_environ", "proc_fd", "proc_maps"] {
        p.err(name, unseen);
    }
    p.assert_no_leak(&outside_secret);
    // Controls.
    assert!(contains(&p.ok("own_environ"), b"SKILLBOX_OWN=1"));
    p.ok("own_kill");
    assert_eq!(p.ok_text("own_wait"), format!("-{}", libc::SIGTERM));
    assert!(!is_running(pid), "control: the test could not kill the outside process");
}

/// Threat model 3 and 8: System V IPC is neither path-based (Landlock) nor denied (seccomp),
/// so a run attaches to the shared memory of another process of the same user and reads it.
#[tokio::test]
async fn system_v_shared_memory_of_another_process_is_out_of_reach() {
    let secret = unique_secret("SHM");
    assert!(secret.len() <= 4096, "the secret fits the segment");
    // SAFETY: makes a private 4 KiB segment; no memory is touched. Removed at the end of the
    // test.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 4096, 0o600 | libc::IPC_CREAT) };
    assert!(id >= 0, "shmget");
    // SAFETY: attaches the segment just made at an address the kernel picks.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) }.cast::<u8>();
    assert!(p as isize != -1, "shmat");
    // SAFETY: `p` points at the 4096 writable bytes of the segment, which the secret fits
    // (asserted above), and does not overlap it.
    unsafe { std::ptr::copy_nonoverlapping(secret.as_ptr(), p, secret.len()) };
    // SAFETY: detaches the segment attached above; `p` is not used after.
    unsafe { libc::shmdt(p.cast::<libc::c_void>()) };
    let cwd = scratch();
    let body = r##"
libc.shmat.restype = ctypes.c_void_p
def shm():
    p = libc.shmat(int(ARGS[0]), None, 0o10000)  # SHM_RDONLY
    if p is None or p == ctypes.c_void_p(-1).value:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ctypes.string_at(p, 128).rstrip(b"\0")
attempt("shm", shm)
"##;
    let Some(p) = probe(strict(), cwd.path(), body, &[id.to_string()]).await else { return };
    // SAFETY: removes the segment created above.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    p.failed("shm");
    p.assert_no_leak(&secret);
}

// ---------------------------------------------------------------------------------------
// process creation
// ---------------------------------------------------------------------------------------

const PROC_BODY: &str = r##"
import subprocess, threading
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    return str(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
def raw(nr, *a):
    r = sc(nr, *a)
    if r == 0:
        os._exit(7)
    return str(os.waitstatus_to_exitcode(os.waitpid(r, 0)[1]))
def thread():
    box = []
    t = threading.Thread(target=lambda: box.append(sum(range(1000))))
    t.start()
    t.join()
    return str(box[0])
attempt("fork", fork)
attempt("raw_fork", lambda: raw(57))
attempt("raw_clone", lambda: raw(56, 17, 0, 0, 0, 0))
attempt("subprocess", lambda: str(subprocess.run(["/bin/true"]).returncode))
attempt("posix_spawn", lambda: str(os.waitpid(os.posix_spawn("/bin/true", ["/bin/true"], {}), 0)[1]))
attempt("thread", thread)
"##;

#[tokio::test]
async fn process_access_none_denies_processes_but_not_threads() {
    let cwd = scratch();
    let Some(p) = probe(strict(), cwd.path(), PROC_BODY, &[]).await else { return };
    for name in ["fork", "raw_fork", "raw_clone", "subprocess", "posix_spawn"] {
        p.err(name, &[EPERM]);
    }
    assert_eq!(p.ok_text("thread"), "499500");

    // Control: with process creation granted, the same calls work.
    let mut full = strict();
    full.processes = ProcessAccess::Full;
    let Some(p) = probe(full, cwd.path(), PROC_BODY, &[]).await else { return };
    assert_eq!(p.ok_text("fork"), "7");
    assert_eq!(p.ok_text("raw_fork"), "7");
    assert_eq!(p.ok_text("raw_clone"), "7");
    assert_eq!(p.ok_text("subprocess"), "0");
    assert_eq!(p.ok_text("posix_spawn"), "0");
    assert_eq!(p.ok_text("thread"), "499500");
}

/// A program that starts 40 sleeping processes, one after another, gives a supervisor a
/// second to see them (the watchdog looks every 10 ms), and ends them.
const MANY_BODY: &str = r##"
import subprocess, time
started, refused = [], 0
for _ in range(40):
    try:
        started.append(subprocess.Popen(["/bin/sleep", "61"]))
    except OSError:
        refused += 1
attempt("started", lambda: str(len(started)))
attempt("refused", lambda: str(refused))
time.sleep(1)
for p in started:
    p.kill()
    p.wait()
"##;

/// A process count holds on every host, by the mechanism the support matrix names for it
/// there (the host model checks the report's `processes` line): a kernel limit (a pids
/// cgroup, or `RLIMIT_NPROC` in the run's own user namespace) refuses the forks past it and
/// the run ends normally; the watchdog stops the run past it (`limit_exceeded`,
/// `processes`). Either way nothing of the run is left.
#[tokio::test]
async fn a_process_count_holds_by_the_mechanism_the_report_names() {
    let dir = scratch();
    let mut policy = writing(&[dir.path()]);
    policy.processes = ProcessAccess::Limited;
    policy.rlimits.processes = Some(6);
    let mut spec = probe_spec(policy, dir.path(), MANY_BODY, &[]);
    spec.timeout = std::time::Duration::from_secs(60);
    let mark = s(dir.path());
    spec.env.push((MARK.into(), mark.clone().into()));
    let Some(outcome) = hosts::run_ok(&spec).await else { return };
    let via = outcome.enforcement.line(Guarantee::Processes).unwrap().via.clone();
    let p = parse(outcome);
    if via.contains(&Via::Watchdog) {
        // Supervision: the run got past the count, and was stopped for it.
        assert_eq!(p.outcome.limit, Some(Limit::Processes), "{via:?}\n{}", p.context());
        let seen = p.outcome.processes_peak.unwrap_or(0);
        assert!(seen > 6, "the watchdog stopped the run at {seen} processes");
    } else {
        // A kernel limit: the forks past the count failed, and the run finished.
        assert_eq!(p.outcome.status, ExitStatus::Exited(0), "{via:?}\n{}", p.context());
        assert_eq!(p.outcome.limit, None, "{}", p.context());
        let started: u32 = p.ok_text("started").parse().unwrap();
        let refused: u32 = p.ok_text("refused").parse().unwrap();
        assert!(started < 6 && refused > 0, "{via:?}: {started} started, {refused} refused");
    }
    let left = wait_until_none_marked(&mark).await;
    for pid in &left {
        // SAFETY: kill takes plain integers; these are processes this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert!(left.is_empty(), "processes of the run were left: {left:?}");
}
