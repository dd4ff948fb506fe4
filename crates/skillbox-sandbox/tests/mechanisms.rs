//! The mechanisms that keep a guarantee where the strongest one is missing (issue 20), each
//! checked by its effect on a host that lacks the stronger one. The host is simulated by
//! re-running one of this file's helper tests under `skillbox-hostsim PROFILE`, which
//! refuses user namespaces or caps the Landlock ABI for everything it starts (see
//! crates/skillbox-hostsim): the helper then asserts the effects there, and the test here
//! asserts that it ran and passed.
//!
//! - a datagram socket pair reaches no Unix socket outside the run below full network
//!   (seccomp; it did before, at `none`, through `sendto` to a pathname socket);
//! - a program may start a session of its own where a PID namespace holds the run, and the
//!   session still ends with the run;
//! - without user namespaces: the supervisor kills the run when skillbox is killed, the run
//!   cannot signal the supervisor (Landlock scopes), setsid stays denied, and a process
//!   count is held by the watchdog where no pids cgroup is (for root too, under
//!   `docker-default`, whose cgroups are read-only); each run there asks for weaker
//!   isolation: no mount namespace keeps `file-metadata` or `process-visibility`, and the
//!   run is refused otherwise;
//! - at Landlock ABI 2, which does not see truncation, seccomp keeps a readable file from
//!   being truncated.
//!
//! The tests pass as root and as `nobody`; where what they see depends on the user (a pids
//! cgroup for root where the profile leaves the cgroups writable), they branch on the
//! tests' host model (tests/hosts).

mod common;
mod hosts;
mod probe;
use common::*;
use probe::*;

use std::fs;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

use skillbox_sandbox::{
    run, ChildSpec, Guarantee, Limit, MechanismState, NetworkAccess, Policy, ProcessAccess, Via,
};

/// Set in a helper test's environment when it runs under a simulated host.
const INNER: &str = "SKILLBOX_MECHANISMS_INNER";

/// The hostsim binary the workspace builds (`cargo build -p skillbox-hostsim`; the test
/// script builds it), next to this test binary's directory.
fn hostsim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(|deps| deps.parent()).unwrap().join("skillbox-hostsim");
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p skillbox-hostsim`)",
        path.display()
    );
    path
}

/// Runs the helper test `name` of this binary under `profile`, and fails unless it ran and
/// passed there.
fn under(profile: &str, name: &str) {
    let out = std::process::Command::new(hostsim())
        .arg(profile)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(INNER, profile)
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} under {profile} failed:\n{text}");
    assert!(text.contains("1 passed"), "{name} did not run under {profile}:\n{text}");
}

/// Whether this helper runs under the simulated host it was started for; a helper run on
/// its own does nothing.
fn inner() -> Option<String> {
    std::env::var(INNER).ok()
}

/// A probe on a host without user namespaces, where a run with a PID namespace asked for is
/// refused (no mount namespace keeps `file-metadata` or `process-visibility`) unless weaker
/// isolation is asked for: the matrix says so, the run is checked to be refused naming
/// exactly those, then made with weaker isolation asked for (`hosts::as_tested`), and both
/// lines checked to say so.
async fn probe_weaker(policy: Policy, cwd: &std::path::Path, body: &str, args: &[String]) -> Probe {
    let spec = probe_spec(policy, cwd, body, args);
    assert!(hosts::refused_for_retried_alone(&spec), "the matrix refuses it for these alone");
    let p = probe_run(&spec).await.expect(RUNS);
    for g in [Guarantee::FileMetadata, Guarantee::ProcessVisibility] {
        assert_eq!(p.outcome.enforcement.state(g), Some(MechanismState::NotEnforced), "{g}");
    }
    p
}

/// Whether a process can make a user namespace here, asked of `unshare(1)`, not of
/// skillbox's own probe (which is under test).
fn user_namespaces_work() -> bool {
    std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "true"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------
// datagram socket pairs
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_datagram_pair_reaches_no_unix_socket_outside_below_full_network() {
    let dir = scratch();
    let path = dir.path().join("dgram.sock");
    let by_path = UnixDatagram::bind(&path).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    let name = unique_secret("dgram");
    let by_name =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    for s in [&by_path, &by_name] {
        s.set_nonblocking(true).unwrap();
    }
    let received = || {
        let mut buf = [0u8; 64];
        let mut n = 0;
        while by_path.recv(&mut buf).is_ok() {
            n += 1;
        }
        while by_name.recv(&mut buf).is_ok() {
            n += 1;
        }
        n
    };
    let body = r##"
def pair(kind):
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    return a
attempt("dgram_pair", lambda: pair(socket.SOCK_DGRAM).close())
attempt("to_path", lambda: str(pair(socket.SOCK_DGRAM).sendto(b"x", ARGS[0])))
attempt("to_abstract", lambda: str(pair(socket.SOCK_DGRAM).sendto(b"x", "\0" + ARGS[1])))
attempt("stream_pair", lambda: pair(socket.SOCK_STREAM).close())
attempt("seqpacket_pair", lambda: pair(socket.SOCK_SEQPACKET).close())
attempt("stream_to_path", lambda: str(pair(socket.SOCK_STREAM).sendto(b"x", ARGS[0])))
"##;
    let args = [s(&path), name.clone()];
    for network in [NetworkAccess::None, NetworkAccess::HttpsOnly] {
        let mut policy = Policy::strict();
        policy.network = network;
        let p = probe(policy, dir.path(), body, &args).await.expect(RUNS);
        for attempt in ["dgram_pair", "to_path", "to_abstract"] {
            p.err(attempt, &[EPERM]);
        }
        p.ok("stream_pair");
        p.ok("seqpacket_pair");
        p.failed("stream_to_path");
        assert_eq!(received(), 0, "{network:?}: a datagram left the run\n{}", p.context());
    }
    // Control: with full network the pair reaches the pathname socket (the abstract one
    // stays scoped out by Landlock, or unnamed in the run's network of sockets).
    let mut policy = Policy::strict();
    policy.network = NetworkAccess::Full;
    let p = probe(policy, dir.path(), body, &args).await.expect(RUNS);
    assert_eq!(p.ok_text("to_path"), "1");
    assert_eq!(received(), 1, "control: the datagram to the path was not seen");
}

// ---------------------------------------------------------------------------------------
// sessions
// ---------------------------------------------------------------------------------------

/// A program that starts a helper in a session of its own (Python's
/// `start_new_session=True`) writes the helper's pid and session, then waits for it.
const SESSION_BODY: &str = r##"
import subprocess, time
out = ARGS[0]
def session():
    # The run sees only its own processes: the test finds the helper by its argument.
    code = ("import os, time\n"
            f"open({out!r} + '.tmp', 'w').write(str(os.getsid(0) == os.getpid()) + '\\n')\n"
            f"os.rename({out!r} + '.tmp', {out!r})\n"
            "time.sleep(60)\n")
    subprocess.Popen(["/usr/bin/python3", "-c", code, out], start_new_session=True)
    for _ in range(500):
        if os.path.exists(out):
            return open(out).read()
        time.sleep(0.02)
    return "never started"
attempt("setsid_child", session)
def own_group():
    # In a child: the run's first process leads its session, which may never change group.
    pid = os.fork()
    if pid == 0:
        try:
            os.setpgid(0, 0)
            os._exit(0)
        except OSError as e:
            os._exit(e.errno)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code:
        raise OSError(code, os.strerror(code))
attempt("setpgid", own_group)
"##;

fn session_policy(dir: &std::path::Path) -> Policy {
    let mut policy = writing(&[dir]);
    policy.processes = ProcessAccess::Full;
    policy.pid_namespace = true;
    policy
}

#[tokio::test]
async fn a_program_may_start_a_session_of_its_own_where_a_pid_namespace_holds_the_run() {
    assert!(user_namespaces_work(), "this host must allow user namespaces for this test");
    let dir = scratch();
    let out = dir.path().join("helper.pid");
    let spec = probe_spec(session_policy(dir.path()), dir.path(), SESSION_BODY, &[s(&out)]);
    let running = tokio::spawn(async move { probe_run(&spec).await.expect(RUNS) });
    // The helper, found by its argument while the run waits for it, as this process sees it.
    let helper = wait_for_process_with_arg(&s(&out)).await;
    let p = running.await.unwrap();
    let line = p.ok_text("setsid_child");
    assert_eq!(line.trim(), "True", "the helper is in a session of its own: {line}");
    p.ok("setpgid");
    let line = p.outcome.enforcement.line(Guarantee::ProcessGroup).unwrap();
    assert_eq!(line.via, [Via::Session, Via::PidNamespace]);
    // The run has ended: its namespace, and the helper's session with it, is gone.
    assert!(wait_until_dead(helper).await, "the helper's session {helper} outlived the run");
}

/// Without user namespaces the group is what ends the run: setsid stays denied, and a
/// program asking for a session of its own is told so (an error, not a helper that
/// escapes).
#[tokio::test]
async fn without_user_namespaces_sessions_stay_denied() {
    under("no-userns", "helper_sessions_denied");
}

#[tokio::test]
#[ignore = "helper of without_user_namespaces_sessions_stay_denied; runs under skillbox-hostsim"]
async fn helper_sessions_denied() {
    let Some(_) = inner() else { return };
    assert!(!user_namespaces_work(), "the profile must refuse user namespaces");
    let dir = scratch();
    let out = dir.path().join("helper.pid");
    let p = probe_weaker(session_policy(dir.path()), dir.path(), SESSION_BODY, &[s(&out)]).await;
    p.failed("setsid_child");
    p.err("setpgid", &[EPERM]);
    assert!(!out.exists(), "a helper started a session of its own");
    let tree = p.outcome.enforcement.line(Guarantee::TreeKill).unwrap();
    assert_eq!(tree.via, [Via::Supervisor, Via::Seccomp], "{tree:?}");
}

// ---------------------------------------------------------------------------------------
// the supervisor
// ---------------------------------------------------------------------------------------

/// Without user namespaces, nothing of a run survives skillbox being killed with SIGKILL:
/// the supervisor kills the run's group. A helper process (this test binary again, under
/// the profile) runs a run whose first process starts a background process, and is killed.
#[tokio::test]
async fn without_user_namespaces_the_supervisor_ends_a_run_whose_runtime_was_killed() {
    let dir = scratch();
    let mut helper = std::process::Command::new(hostsim())
        .args(["no-userns", "--"])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "helper_killed_runtime", "--ignored", "--nocapture"])
        .env(INNER, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let leader = wait_for_pid(&dir.path().join("leader.pid")).await;
    let background = wait_for_pid(&dir.path().join("bg.pid")).await;
    assert!(is_running(leader) && is_running(background), "control: the run is alive");
    let _ = helper.kill();
    let _ = helper.wait();
    let leader_dead = wait_until_dead(leader).await;
    let background_dead = wait_until_dead(background).await;
    for pid in [leader, background] {
        if is_running(pid) {
            // SAFETY: kill takes plain integers; these are processes this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    assert!(leader_dead, "the run's leader {leader} survived the runtime");
    assert!(background_dead, "the run's background process {background} survived the runtime");
}

#[tokio::test]
#[ignore = "helper of without_user_namespaces_the_supervisor_ends_a_run_whose_runtime_was_killed"]
async fn helper_killed_runtime() {
    let Some(dir) = inner().map(PathBuf::from) else { return };
    let mut spec = ChildSpec::new(SH, &dir);
    spec.args = vec![
        "-c".into(),
        "read -r p _ < /proc/self/stat; echo $p > leader.pid; \
         /bin/sh -c 'read -r p _ < /proc/self/stat; echo $p > bg.pid; exec /bin/sleep 60' & wait"
            .into(),
    ];
    spec.policy = session_policy(&dir);
    spec.allow_weaker = true;
    spec.timeout = Duration::from_secs(90);
    let _ = run(&spec).await;
}

/// The run cannot signal the supervisor, or it could kill it and then skillbox: Landlock's
/// signal scope keeps it out of reach (the plan uses the supervisor only where that holds).
#[tokio::test]
async fn without_user_namespaces_the_run_cannot_signal_the_supervisor() {
    under("no-userns", "helper_supervisor_out_of_reach");
}

#[tokio::test]
#[ignore = "helper of without_user_namespaces_the_run_cannot_signal_the_supervisor"]
async fn helper_supervisor_out_of_reach() {
    let Some(_) = inner() else { return };
    let dir = scratch();
    // A first run starts the supervisor, a child of this process running this binary.
    let first = probe_weaker(session_policy(dir.path()), dir.path(), "", &[]).await;
    let tree = first.outcome.enforcement.line(Guarantee::TreeKill).unwrap();
    assert_eq!(tree.via, [Via::Supervisor, Via::Seccomp], "{tree:?}");
    let supervisor = children_of_self()
        .into_iter()
        .find(|pid| is_running(*pid))
        .expect("the supervisor is a child of this process");
    let body = r##"
import signal
attempt("kill", lambda: os.kill(int(ARGS[0]), signal.SIGKILL))
attempt("stop", lambda: os.kill(int(ARGS[0]), signal.SIGSTOP))
"##;
    let p =
        probe_weaker(session_policy(dir.path()), dir.path(), body, &[supervisor.to_string()]).await;
    p.err("kill", &[EPERM]);
    p.err("stop", &[EPERM]);
    let state = proc_state(supervisor);
    assert!(matches!(state, Some('S' | 'R')), "the supervisor {supervisor} is hurt: {state:?}");
}

/// The children of this process, from `/proc/self/task/*/children`.
fn children_of_self() -> Vec<i32> {
    let mut pids = Vec::new();
    for task in fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            pids.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    pids
}

// ---------------------------------------------------------------------------------------
// the watchdog's process count
// ---------------------------------------------------------------------------------------

/// A program that starts 40 sleeping processes, one after another, gives the watchdog a
/// second to see them, and ends them.
const MANY_BODY: &str = r##"
import subprocess, time
started, refused = [], 0
for _ in range(40):
    try:
        started.append(subprocess.Popen(["/bin/sleep", "61"]))
    except OSError:
        refused += 1
print(f"started\tOK\t{str(len(started)).encode().hex()}", flush=True)
print(f"refused\tOK\t{str(refused).encode().hex()}", flush=True)
time.sleep(1)
for p in started:
    p.kill()
    p.wait()
"##;

/// Without user namespaces and without a pids cgroup (as `nobody`), a process count is held
/// by the watchdog: the run is stopped with the `processes` limit; as root a pids cgroup
/// holds it and a fork past it fails. Either way nothing of the run is left.
#[tokio::test]
async fn without_user_namespaces_a_process_count_still_holds() {
    under("no-userns", "helper_process_count");
}

/// The same in a container that mounts the cgroups read-only: root gets the watchdog alone
/// (it is exempt from `RLIMIT_NPROC`), and the run is stopped with the `processes` limit.
#[tokio::test]
async fn without_user_namespaces_or_cgroups_a_process_count_still_holds() {
    under("docker-default", "helper_process_count");
}

#[tokio::test]
#[ignore = "helper of without_user_namespaces_a_process_count_still_holds"]
async fn helper_process_count() {
    let Some(_) = inner() else { return };
    let dir = scratch();
    let mut policy = writing(&[dir.path()]);
    policy.processes = ProcessAccess::Limited;
    policy.pid_namespace = true;
    policy.rlimits.processes = Some(6);
    let mut spec = probe_spec(policy, dir.path(), MANY_BODY, &[]);
    spec.allow_weaker = true;
    spec.timeout = Duration::from_secs(60);
    // The run's processes are found by their mark, not by their command line: the same
    // helper runs under two profiles at once.
    let mark = s(dir.path());
    spec.env.push((MARK.into(), mark.clone().into()));
    let outcome = run(&spec).await.unwrap();
    let line = outcome.enforcement.line(Guarantee::Processes).unwrap().clone();
    let p = parse(outcome);
    if hosts::facts().cgroups {
        assert_eq!(line.via, [Via::PidsCgroup], "{line:?}");
        let refused: u32 = p.ok_text("refused").parse().unwrap();
        assert!(refused > 0, "the pids cgroup let 40 processes start\n{}", p.context());
    } else {
        // Root is exempt from RLIMIT_NPROC: the watchdog alone.
        let via: &[Via] = if is_root() { &[Via::Watchdog] } else { &[Via::Watchdog, Via::Rlimits] };
        assert_eq!(line.via, via, "{line:?}");
        assert_eq!(p.outcome.limit, Some(Limit::Processes), "{}", p.context());
        let seen = p.outcome.processes_peak.unwrap_or(0);
        assert!(seen > 6, "the watchdog stopped the run at {seen} processes");
    }
    // Nothing of the run is left.
    let left = wait_until_none_marked(&mark).await;
    assert!(left.is_empty(), "processes of the run were left: {left:?}");
}

/// A first process that starts more processes than its count allows and exits before the
/// watchdog's next look (a shell forks ten in a few milliseconds; the watchdog looks every
/// 10 ms, and a fork bomb can keep it off the CPU for longer): the processes it left are
/// counted when it exits, and the run is stopped with the `processes` limit, not reported a
/// success. Nothing of it is left.
#[tokio::test]
async fn without_user_namespaces_what_the_first_process_leaves_is_counted() {
    under("no-userns", "helper_count_at_exit");
}

/// The same in a container that mounts the cgroups read-only, where root's count is the
/// watchdog's too.
#[tokio::test]
async fn without_user_namespaces_or_cgroups_what_the_first_process_leaves_is_counted() {
    under("docker-default", "helper_count_at_exit");
}

#[tokio::test]
#[ignore = "helper of without_user_namespaces_what_the_first_process_leaves_is_counted"]
async fn helper_count_at_exit() {
    let Some(_) = inner() else { return };
    let dir = scratch();
    let mut policy = writing(&[dir.path()]);
    policy.processes = ProcessAccess::Limited;
    policy.pid_namespace = true;
    policy.rlimits.processes = Some(4);
    let mut spec = skillbox_sandbox::ChildSpec::new(SH, dir.path());
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/sleep 62 & done; exit 0";
    spec.args = vec!["-c".into(), script.into()];
    spec.policy = policy;
    spec.allow_weaker = true;
    spec.timeout = Duration::from_secs(60);
    let mark = s(dir.path());
    spec.env.push((MARK.into(), mark.clone().into()));
    let outcome = run(&spec).await.unwrap();
    let line = outcome.enforcement.line(Guarantee::Processes).unwrap().clone();
    if hosts::facts().cgroups {
        // Root has a pids cgroup here: forks past the count fail, and the shell exits.
        eprintln!("!!! as root a pids cgroup holds the count here; the watchdog is not used");
        assert_eq!(line.via, [Via::PidsCgroup], "{line:?}");
        let peak = outcome.processes_peak.unwrap_or(0);
        assert!(peak <= 4, "the pids cgroup let {peak} processes run");
    } else {
        // Root is exempt from RLIMIT_NPROC: the watchdog alone.
        let via: &[Via] = if is_root() { &[Via::Watchdog] } else { &[Via::Watchdog, Via::Rlimits] };
        assert_eq!(line.via, via, "{line:?}");
        assert_eq!(outcome.limit, Some(Limit::Processes), "{outcome:?}");
        let seen = outcome.processes_peak.unwrap_or(0);
        assert!(seen > 4, "the watchdog counted {seen} processes");
    }
    let left = wait_until_none_marked(&mark).await;
    assert!(left.is_empty(), "processes of the run were left: {left:?}");
}

// ---------------------------------------------------------------------------------------
// truncation below Landlock ABI 3
// ---------------------------------------------------------------------------------------

const TRUNCATE_BODY: &str = r##"
readable, writable = ARGS[0], ARGS[1]
attempt("open_rdonly_trunc", lambda: os.close(os.open(readable, os.O_RDONLY | os.O_TRUNC)))
attempt("truncate_path", lambda: os.truncate(readable, 0))
# struct open_how: flags, mode, resolve (u64 each); flags O_RDONLY | O_TRUNC.
how = ctypes.create_string_buffer((os.O_RDONLY | os.O_TRUNC).to_bytes(8, "little") + bytes(16), 24)
path = ctypes.create_string_buffer(readable.encode())
attempt("openat2_trunc", lambda: sc(437, -100, ctypes.addressof(path), ctypes.addressof(how), 24))
attempt("write_trunc_granted", lambda: write(writable, b"new"))
def ftrunc():
    with open(writable, "r+b") as f:
        os.ftruncate(f.fileno(), 1)
    return read(writable)
attempt("ftruncate_granted", ftrunc)
"##;

/// At Landlock ABI 2 (Debian 12's kernel), a file the run may only read cannot be truncated
/// by a read-only open with `O_TRUNC`, `truncate(2)` or `openat2`: seccomp stands in for
/// the truncate right Landlock gets at ABI 3. A file the run may write still can be.
#[tokio::test]
async fn below_landlock_abi_3_a_readable_file_cannot_be_truncated() {
    under("landlock-abi-2", "helper_truncation");
}

#[tokio::test]
#[ignore = "helper of below_landlock_abi_3_a_readable_file_cannot_be_truncated"]
async fn helper_truncation() {
    let Some(_) = inner() else { return };
    assert_eq!(skillbox_sandbox::landlock_abi(), 2, "the profile caps Landlock at ABI 2");
    let dir = scratch();
    let ro = subdir(dir.path(), "ro");
    let rw = subdir(dir.path(), "rw");
    let readable = ro.join("keep.txt");
    let writable = rw.join("mine.txt");
    file(&readable, b"precious");
    file(&writable, b"old content");
    let mut policy = reading(&[&ro]);
    policy.write = vec![rw.clone()];
    // Landlock ABI 2 has no signal scopes: the run needs its PID namespace to be allowed.
    policy.pid_namespace = true;
    let p =
        probe(policy, dir.path(), TRUNCATE_BODY, &[s(&readable), s(&writable)]).await.expect(RUNS);
    let files = p.outcome.enforcement.line(Guarantee::Filesystem).unwrap();
    assert_eq!(files.via, [Via::Landlock(2), Via::Seccomp], "{files:?}");
    p.err("open_rdonly_trunc", &[EPERM]);
    p.err("truncate_path", &[EPERM]);
    p.err("openat2_trunc", &[libc::ENOSYS]);
    assert_eq!(fs::read(&readable).unwrap(), b"precious", "the readable file was truncated");
    // Controls: the writable file can be rewritten and truncated.
    p.ok("write_trunc_granted");
    assert_eq!(p.ok("ftruncate_granted"), b"n");
}
