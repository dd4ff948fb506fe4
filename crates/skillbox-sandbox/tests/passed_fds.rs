//! Descriptors passed to a long-lived program (`ChildSpec::passed_fds`) and its pid handed
//! to the caller (`ChildSpec::on_start`): what an interpreter session is built on.
//!
//! The child is a small Python program. It reads a request from fd 3, answers on fd 4 with
//! the list of its open descriptors, then waits for `SIGINT`, which the test sends to the pid
//! `on_start` gave it; the interrupt ends it with exit code 7. Each run is checked with and
//! without a PID namespace (the program is PID 1 of its own with one, and PID 1 receives
//! only the signals it handles: Python handles `SIGINT`). Dropping a run that is still going
//! kills the program, and the test's end of the answer pipe then reads end-of-file.
//!
//! The tests pass as root and as `nobody`, and under every simulated host: where the
//! support matrix refuses a run, it is checked to be refused exactly so (one loud line), and
//! where it is refused only for guarantees the suite retries without, it runs with weaker
//! isolation asked for (`hosts::RETRIED_WEAKER`).

mod common;
mod hosts;

const PYTHON: &str = "/usr/bin/python3";

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skillbox_sandbox::{ChildSpec, ExitStatus, PassedFd, Policy, StartSink};

const CHILD: &str = r#"
import os, signal, sys, time
try:
    request = os.read(3, 100)
    fds = sorted(int(x) for x in os.listdir("/proc/self/fd"))
    os.write(4, request.upper() + b" " + " ".join(map(str, fds)).encode())
    while True:
        time.sleep(0.05)
except KeyboardInterrupt:
    sys.exit(7)
"#;

/// `spec` as this host runs it: `None` where the matrix refuses it (checked to be refused
/// exactly so, on a copy without the passed descriptors, which a run takes), the spec with
/// weaker isolation asked for where it is refused for retried guarantees alone, else `spec`.
async fn here(mut spec: ChildSpec) -> Option<ChildSpec> {
    if !hosts::expect(&spec).refused() {
        return Some(spec);
    }
    let mut probe = spec.clone();
    probe.passed_fds = Vec::new();
    probe.on_start = None;
    hosts::assert_refused(&probe).await;
    if !hosts::refused_for_retried_alone(&spec) {
        return None;
    }
    spec.allow_weaker = true;
    Some(spec)
}

/// A spec for `CHILD` with two pipes passed: the test's write end of the request pipe and
/// read end of the answer pipe are returned, with a slot the pid lands in.
fn session_spec(
    pid_namespace: bool,
) -> (ChildSpec, std::io::PipeWriter, std::io::PipeReader, Arc<Mutex<Option<i32>>>) {
    let mut policy = Policy::strict();
    policy.pid_namespace = pid_namespace;
    let mut spec = ChildSpec::new(PYTHON, "/");
    spec.args = vec!["-I".into(), "-c".into(), CHILD.into()];
    spec.policy = policy;
    spec.timeout = Duration::from_secs(30);
    let (req_r, req_w) = std::io::pipe().expect("pipe");
    let (ans_r, ans_w) = std::io::pipe().expect("pipe");
    spec.passed_fds = vec![PassedFd::new(req_r.into()), PassedFd::new(ans_w.into())];
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    spec.on_start = Some(StartSink::new(move |pid| *s.lock().expect("lock") = Some(pid)));
    (spec, req_w, ans_r, slot)
}

#[tokio::test]
async fn passed_pipes_are_fds_3_and_4_and_the_pid_interrupts_the_program() {
    for pid_namespace in [true, false] {
        let (spec, mut req, mut ans, pid) = session_spec(pid_namespace);
        let Some(spec) = here(spec).await else { continue };
        let run = tokio::spawn(async move { skillbox_sandbox::run(&spec).await });
        req.write_all(b"hello").expect("write the request");
        // One write of the program, under PIPE_BUF: one read.
        let answer = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 512];
            ans.read(&mut buf).map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .await
        .expect("join")
        .expect("read the answer");
        // Only stdio and the two passed descriptors (and the listing's own, the highest).
        let fds: Vec<&str> = answer.split(' ').collect();
        assert_eq!(fds[0], "HELLO", "{answer}");
        assert_eq!(&fds[1..fds.len() - 1], ["0", "1", "2", "3", "4"], "ns {pid_namespace}");
        let pid = pid.lock().expect("lock").expect("on_start gave the pid");
        // SAFETY: kill takes plain integers; the pid is the run's unreaped first process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let out = run.await.expect("join").expect("run");
        assert_eq!(out.status, ExitStatus::Exited(7), "ns {pid_namespace}: {out:?}");
    }
}

#[tokio::test]
async fn a_dropped_run_kills_the_program_and_its_pipe_reads_eof() {
    let (spec, mut req, mut ans, pid) = session_spec(true);
    let Some(spec) = here(spec).await else { return };
    let run = tokio::spawn(async move { skillbox_sandbox::run(&spec).await });
    req.write_all(b"x").expect("write");
    let mut first = [0u8; 1];
    let mut ans = tokio::task::spawn_blocking(move || ans.read_exact(&mut first).map(|_| ans))
        .await
        .expect("join")
        .expect("the program answered");
    // The program keeps fd 4 open: only its end closes the pipe.
    let pid = pid.lock().expect("lock").expect("pid");
    assert!(common::is_running(pid), "control: the program runs");
    run.abort();
    assert!(common::wait_until_dead(pid).await, "the program outlived its dropped run");
    let rest = tokio::task::spawn_blocking(move || {
        let mut v = Vec::new();
        ans.read_to_end(&mut v).map(|_| v)
    });
    let read = tokio::time::timeout(Duration::from_secs(5), rest).await;
    assert!(read.is_ok(), "the answer pipe did not read end-of-file: a copy is still open");
}

#[tokio::test]
async fn a_spec_whose_descriptors_were_taken_cannot_start_again() {
    let (spec, _req, _ans, _pid) = session_spec(true);
    let Some(spec) = here(spec).await else { return };
    let mut short = spec.clone();
    short.args = vec!["-I".into(), "-c".into(), "pass".into()];
    let first = skillbox_sandbox::run(&short).await.expect("first run");
    assert_eq!(first.status, ExitStatus::Exited(0));
    let again = skillbox_sandbox::run(&spec).await;
    assert!(
        matches!(&again, Err(skillbox_sandbox::SandboxError::InvalidSpec(m)) if m.contains("taken")),
        "{again:?}"
    );
}

/// The parent's descriptors may be numbered far above the run's descriptor limit: the
/// passed ones still arrive as 3 and 4 (they were copied before the limit was set).
#[tokio::test]
async fn passed_descriptors_arrive_under_a_low_descriptor_limit() {
    let held: Vec<std::fs::File> =
        (0..200).map(|_| std::fs::File::open("/dev/null").expect("open")).collect();
    let (mut spec, mut req, mut ans, pid) = session_spec(true);
    spec.policy.rlimits.open_files = Some(16);
    let Some(spec) = here(spec).await else { return };
    let run = tokio::spawn(async move { skillbox_sandbox::run(&spec).await });
    req.write_all(b"low").expect("write");
    let answer = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 512];
        ans.read(&mut buf).map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .expect("join")
    .expect("read");
    assert!(answer.starts_with("LOW 0 1 2 3 4"), "{answer}");
    let pid = pid.lock().expect("lock").expect("pid");
    // SAFETY: kill takes plain integers; the pid is the run's unreaped first process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let out = run.await.expect("join").expect("run");
    assert_eq!(out.status, ExitStatus::Exited(7), "{out:?}");
    drop(held);
}
