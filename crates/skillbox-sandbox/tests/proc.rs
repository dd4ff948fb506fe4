//! The run sees only its own processes (issue 21): `/proc` in the run is a procfs of its PID
//! namespace, so another process's command line, environment and even existence are hidden.
//! The guarantees from before hold with it: no signal and no ptrace reach outside the run.
//!
//! The test starts a long-running process with a secret on its command line (`sh -c 'sleep
//! 60' SECRET`) and in its environment; an attack program in the run looks for it: its
//! `/proc/PID`, every `/proc/*/cmdline` and `/proc/*/environ` grepped for the secret, and a
//! signal to it. Nothing finds it, and the secret is never in the run's output. Controls: the
//! run reads its own `/proc` entries (`self/status`, `self/fd`, `cpuinfo`), its pids are the
//! few of its own namespace (it is PID 1), and the same attack run where the host gives no
//! mount namespace (with weaker isolation asked for) does find the process.
//!
//! The body runs on this host and under each simulated host of [`simulate::PROFILES`];
//! without user namespaces `process-visibility` is `not-enforced` and the run is refused.
//! Runs as root and as `nobody`.

mod hosts;
mod probe;
mod simulate;
use probe::*;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skillbox_sandbox::{Guarantee, MechanismState, Via};

const ESRCH: i32 = libc::ESRCH;

const BODY: &str = r##"
# The secret comes reversed, so that the run's own command line does not hold it.
pid, secret = ARGS[0], ARGS[1][::-1].encode()
attempt("exists", lambda: str(os.path.exists(f"/proc/{pid}")))
def grep():
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        for f in ("cmdline", "environ"):
            try:
                if secret in read(f"/proc/{d}/{f}"):
                    found.append(f"{d}/{f}")
            except OSError:
                pass
    return " ".join(found) or "none"
attempt("grep", grep)
attempt("pids", lambda: " ".join(sorted(d for d in os.listdir("/proc") if d.isdigit())))
attempt("own_pid", lambda: str(os.getpid()))
attempt("signal", lambda: os.kill(int(pid), 0))
attempt("self_status", lambda: str(b"Pid:" in read("/proc/self/status")))
attempt("self_fd", lambda: " ".join(sorted(os.listdir("/proc/self/fd"))))
attempt("cpuinfo", lambda: str(len(read("/proc/cpuinfo")) > 0))
"##;

/// A process of the test's user, outside the run, with `secret` on its command line and in
/// its environment; killed when dropped.
struct Bystander(Child);

impl Bystander {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        // The shell and its sleep: the group it leads.
        // SAFETY: kill takes plain integers; the group of a process this test started.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// The attack, on the host this process runs on (`profile`: the simulated one, or `full`).
async fn attack(profile: &str) {
    let secret = unique_secret("cmdline");
    // A shell that stays (it waits for sleep) with the secret as its `$0`.
    let bystander = Bystander(
        Command::new("/bin/sh")
            .args(["-c", "/bin/sleep 60; :", &secret])
            .env("SKILLBOX_BYSTANDER", &secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    let pid = bystander.pid();
    // Control: the host shows it, with the secret, before the run looks.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| contains(&c, secret.as_bytes()))
    {
        assert!(std::time::Instant::now() < deadline, "the bystander never showed its secret");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = scratch();
    let mut policy = reading(&[dir.path()]);
    policy.pid_namespace = true;
    let reversed: String = secret.chars().rev().collect();
    let mut spec = probe_spec(policy, dir.path(), BODY, &[pid.to_string(), reversed]);
    let kept = simulate::has_user_namespaces(profile);
    if !kept {
        // (the refusal is judged against the support matrix: it names exactly what the
        // matrix says is missing here, `process-visibility` among it)
        let missing = hosts::expect(&spec).missing();
        assert!(missing.contains(&Guarantee::ProcessVisibility), "{profile}: {missing:?}");
        hosts::assert_refused(&spec).await;
        spec.allow_weaker = true;
    }
    let p = probe_run(&spec).await.expect(RUNS);
    p.assert_no_leak(&secret);
    let line = p.outcome.enforcement.line(Guarantee::ProcessVisibility).unwrap().clone();
    if !kept {
        // The host's /proc: the process is there to see, as the report says.
        assert_eq!(line.state, MechanismState::NotEnforced, "{profile}: {line:?}");
        assert_eq!(p.ok_text("exists"), "True", "{profile}");
        assert!(p.ok_text("grep").contains(&format!("{pid}/cmdline")), "{profile}");
        return;
    }
    assert_eq!(line.state, MechanismState::Enforced, "{profile}: {line:?}");
    assert_eq!(line.via, vec![Via::PidNamespace, Via::MountNamespace], "{profile}: {line:?}");
    assert_eq!(p.ok_text("exists"), "False", "{profile}: /proc/{pid} is visible in the run");
    assert_eq!(p.ok_text("grep"), "none", "{profile}: the secret was found in /proc");
    p.err("signal", &[ESRCH]);
    // The run's own processes only: it is PID 1 of its namespace, and the test process is
    // not among them.
    assert_eq!(p.ok_text("own_pid"), "1", "{profile}");
    let pids = p.ok_text("pids");
    assert!(pids.split(' ').all(|d| d.parse::<u32>().unwrap() < 100), "{profile}: {pids}");
    assert!(!pids.split(' ').any(|d| d == std::process::id().to_string()), "{profile}: {pids}");
    // Controls: its own entries work.
    assert_eq!(p.ok_text("self_status"), "True", "{profile}");
    assert!(p.ok_text("self_fd").split(' ').any(|f| f == "1"), "{profile}");
    assert_eq!(p.ok_text("cpuinfo"), "True", "{profile}");
    drop(bystander);
}

/// On this host and on every simulated one: another process and the secret on its command
/// line are out of the run's sight where the run has a mount namespace of its own, and the
/// run is refused where it cannot.
#[tokio::test]
async fn another_process_and_its_command_line_are_out_of_the_runs_sight() {
    attack("full").await;
    for profile in simulate::PROFILES {
        simulate::under(profile, "helper_attack_under_a_simulated_host");
    }
}

#[tokio::test]
#[ignore = "helper of another_process_and_its_command_line_are_out_of_the_runs_sight"]
async fn helper_attack_under_a_simulated_host() {
    let Some(profile) = simulate::profile() else { return };
    attack(&profile).await;
}
