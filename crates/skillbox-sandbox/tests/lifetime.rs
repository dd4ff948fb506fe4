//! The whole tree ends with the run (threat model 5): a double-forked daemon cannot leave
//! the run's group and dies with it, and nothing of a run survives the runtime itself being
//! killed.
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
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skillbox_sandbox::{run, ChildSpec, ProcessAccess};

// ---------------------------------------------------------------------------------------
// the whole tree ends with the run
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_double_forked_daemon_dies_with_the_run_and_cannot_leave_the_group() {
    let work = scratch();
    let w = work.path();
    let heartbeat = w.join("heartbeat");
    let pid_file = w.join("daemon.pid");
    let body = r##"
import time
hb, pidfile = ARGS[0], ARGS[1]
attempt("setsid", lambda: os.setsid())
attempt("setpgid", lambda: os.setpgid(0, 0))
attempt("setpgid_other", lambda: os.setpgid(0, 1))
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        # The daemon: tries to leave the group, then beats until killed.
        tried = []
        for name, f in (("setsid", os.setsid), ("setpgid", lambda: os.setpgid(0, 0))):
            try:
                f()
                tried.append(name + "=ok")
            except OSError as e:
                tried.append(f"{name}={e.errno}")
        with open(pidfile + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {os.getpgrp()} {os.getsid(0)} {' '.join(tried)}\n")
        os.rename(pidfile + ".tmp", pidfile)
        os.close(1)
        os.close(2)
        while True:
            with open(hb, "a") as f:
                f.write(".")
            time.sleep(0.05)
    os._exit(0)
os.waitpid(pid, 0)
deadline = time.time() + 10
while time.time() < deadline and (not os.path.exists(hb) or os.path.getsize(hb) < 4):
    time.sleep(0.05)
attempt("heartbeat_seen", lambda: str(os.path.getsize(hb)))
attempt("own_group", lambda: f"{os.getpgrp()} {os.getsid(0)}")
"##;
    let mut policy = writing(&[w]);
    policy.processes = ProcessAccess::Full;
    let mut spec = probe_spec(policy, w, body, &[s(&heartbeat), s(&pid_file)]);
    spec.timeout = Duration::from_secs(60);
    let mark = s(w);
    spec.env.push((MARK.into(), mark.clone().into()));
    let Some(p) = probe_run(&spec).await else { return };

    // The run's first process leads its session: these fail whatever the mechanism.
    p.err("setsid", &[EPERM]);
    p.err("setpgid", &[EPERM]);
    p.err("setpgid_other", &[EPERM]);
    // Control: the daemon was alive and beating while the run lasted.
    let beats: u64 = p.ok_text("heartbeat_seen").parse().unwrap();
    assert!(beats >= 4, "the daemon never beat");
    let line = fs::read_to_string(&pid_file).expect("the daemon wrote its pid");
    let f: Vec<&str> = line.split_whitespace().collect();
    if hosts::expect(&spec).pid_namespace {
        // The PID namespace holds every process of the run, so programs may start sessions
        // of their own (Python's start_new_session, Node's detached): the daemon did.
        assert_eq!(f[3..], ["setsid=ok", &format!("setpgid={EPERM}")], "{line}");
        assert_eq!(f[2], f[0], "the daemon leads a session of its own: {line}");
    } else {
        // The process group is what kills the run: setsid and setpgid are denied, and the
        // daemon is still in the run's group and session.
        assert_eq!(f[3..], [format!("setsid={EPERM}"), format!("setpgid={EPERM}")], "{line}");
        assert_eq!(
            format!("{} {}", f[1], f[2]),
            p.ok_text("own_group"),
            "the daemon left the group"
        );
    }

    let left = wait_until_none_marked(&mark).await;
    assert!(left.is_empty(), "processes of the run outlived it (the daemon among them): {left:?}");
    let first = fs::metadata(&heartbeat).unwrap().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = fs::metadata(&heartbeat).unwrap().len();
    assert_eq!(first, second, "the heartbeat still grows after the run ended");
}

/// Threat model 5, "the runtime itself being killed": with `pid_namespace`, the run's first
/// process dies with the thread that started it, and the kernel then kills the rest of its
/// namespace. Runs `run()` in a helper process (this test binary again), kills that helper
/// with SIGKILL, and checks the run's processes.
#[tokio::test]
async fn nothing_of_the_run_survives_the_runtime_being_killed() {
    let dir = scratch();
    // Where the matrix refuses the run for `file-metadata` and `process-visibility` alone,
    // that refusal is checked here, and the helper runs it with weaker isolation asked for.
    let tested = hosts::as_tested(&killed_run(dir.path())).await;
    if hosts::expect(&tested).refused() {
        // The helper's run would be refused before anything starts: check that here.
        assert!(hosts::run(&killed_run(dir.path())).await.is_none());
        return;
    }
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "runtime_killed_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Both have started (each writes its pid, of whichever PID namespace it is in).
    wait_for_pid(&dir.path().join("leader.pid")).await;
    wait_for_pid(&dir.path().join("bg.pid")).await;
    let mark = s(dir.path());
    // Control: the run's leader and its background process are seen from here. A process
    // in the middle of its `exec` (the background one, after writing its pid) can miss one
    // reading of its environment, so look again for up to 2 s before concluding.
    let mut alive = marked(&mark);
    let looking = std::time::Instant::now();
    while alive.len() < 2 && looking.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        alive = marked(&mark);
    }
    assert!(alive.len() >= 2, "the run's processes are not seen from the host: {alive:?}");
    let _ = helper.kill();
    let _ = helper.wait();
    let left = wait_until_none_marked(&mark).await;
    for pid in &left {
        // SAFETY: kill takes plain integers; these are processes this test started.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    assert!(left.is_empty(), "processes of the run survived the runtime: {left:?} of {alive:?}");
}

const HELPER_ENV: &str = "SKILLBOX_CONFINE_HELPER_DIR";

#[tokio::test]
#[ignore = "helper of nothing_of_the_run_survives_the_runtime_being_killed; does nothing alone"]
async fn runtime_killed_helper() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else { return };
    let _ = run(&hosts::weaker(&killed_run(&PathBuf::from(dir)))).await;
}

/// The run the helper starts and is killed in: a shell and a background process, which
/// write the pids the test sees to `leader.pid` and `bg.pid` in `dir`.
fn killed_run(dir: &Path) -> ChildSpec {
    let mut spec = ChildSpec::new(SH, dir);
    // The pids are only a sign that each has started: the test finds the processes by MARK.
    spec.args = vec![
        "-c".into(),
        "echo $$ > leader.pid; /bin/sh -c 'echo $$ > bg.pid; exec /bin/sleep 30' & wait".into(),
    ];
    spec.env.push((MARK.into(), s(dir).into()));
    let mut policy = writing(&[dir]);
    policy.processes = ProcessAccess::Full;
    policy.pid_namespace = true;
    spec.policy = policy;
    spec.timeout = Duration::from_secs(60);
    spec
}
