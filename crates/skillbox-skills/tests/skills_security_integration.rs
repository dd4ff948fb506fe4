//! The plan's integration tests (step 9), through the one execution path an agent uses:
//! `Runtime::run_with`, with the audit log on. `cargo test security_integration` runs them.
//! Each checks the effect, not only the status.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skillbox_skills::audit_log::{verify, AuditLog, LogConfig};
use skillbox_skills::{Registry, RunOptions, Runtime, SkillResult, Status, TrustLevel};
use support::{copy_tree, scratch};

struct Env {
    ws: tempfile::TempDir,
    logs: tempfile::TempDir,
    rt: Runtime,
}

impl Env {
    fn log(&self) -> PathBuf {
        self.logs.path().join("logs/security_events.jsonl")
    }

    fn events(&self, execution_id: &str) -> Vec<(String, Value)> {
        support::events(&self.log(), execution_id)
    }

    async fn run(&self, name: &str, params: Value) -> SkillResult {
        let options = RunOptions {
            retry_base_delay: Some(Duration::from_millis(20)),
            ..RunOptions::default()
        };
        self.rt.run_with(name, &params, &options).await
    }
}

/// A workspace with `src/` and `out/`, the given skills, and an audit log.
fn env(skills: &[Value]) -> Env {
    let ws = scratch();
    for d in ["src", "out"] {
        fs::create_dir(ws.path().join(d)).unwrap();
        fs::set_permissions(ws.path().join(d), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let skills_dir = ws.path().join(".q-skills");
    fs::create_dir(&skills_dir).unwrap();
    for s in skills {
        let name = s["name"].as_str().unwrap();
        fs::write(skills_dir.join(format!("{name}.json")), s.to_string()).unwrap();
    }
    let reg = Registry::load_paths(&[skills_dir]);
    assert!(reg.problems().is_empty(), "{:?}", reg.problems());
    let logs = scratch();
    let log =
        AuditLog::open(LogConfig::new(logs.path().join("logs/security_events.jsonl"))).unwrap();
    let rt = Runtime::with_registry(reg, ws.path()).unwrap().with_audit(Arc::new(log));
    Env { ws, logs, rt }
}

fn py(name: &str, code: &str, extra: Value) -> Value {
    let mut s = json!({
        "name": name, "type": "code_inline", "command": "/usr/bin/python3",
        "args": ["-I", "-c", code],
        "security": {"permissions": {"file_read": ["."], "file_write": ["out"]}},
    });
    if let (Some(obj), Value::Object(more)) = (s.as_object_mut(), extra) {
        obj.extend(more);
    }
    s
}

#[tokio::test]
async fn security_integration_etc_passwd_is_blocked() {
    let e = env(&[py("read-passwd", "print(open('/etc/passwd').read())", json!({}))]);
    let r = e.run("read-passwd", json!({})).await;
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert!(!r.stdout.contains("root:"), "/etc/passwd was read: {}", r.stdout);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(r.confinement.is_some(), "the result must say the run was confined");
    let kinds: Vec<String> = e.events(&r.execution_id).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"SandboxViolation".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn security_integration_one_gib_of_memory_is_killed() {
    let code = "x = bytearray(1024 * 1024 * 1024); open('out/survived', 'w').write(str(len(x)))";
    let limits = json!({"security": {
        "permissions": {"file_read": ["."], "file_write": ["out"]},
        "resource_limits": {"max_memory_mb": 256}}});
    let e = env(&[py("eat-memory", code, limits)]);
    let r = e.run("eat-memory", json!({})).await;
    assert_eq!(r.status, Status::LimitExceeded, "{r:#?}");
    assert_eq!(r.limit.map(|l| l.as_str()), Some("memory"));
    assert!(r.message.as_deref().unwrap_or("").contains("memory"), "{r:#?}");
    assert!(!e.ws.path().join("out/survived").exists(), "the allocation succeeded");
    let kinds: Vec<String> = e.events(&r.execution_id).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"ResourceLimitExceeded".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn security_integration_a_long_run_is_timed_out_with_its_children() {
    // A child process writes a heartbeat; after the timeout it must stop.
    let code = "import subprocess, time\n\
                subprocess.Popen(['/bin/sh', '-c', 'while true; do echo x >> out/beat; sleep 0.05; done'])\n\
                time.sleep(60)";
    let e = env(&[py(
        "sleeper",
        code,
        json!({"timeout": 1,
        "security": {"permissions": {"file_read": ["."], "file_write": ["out"], "process_spawn": "limited"}}}),
    )]);
    let t = Instant::now();
    let r = e.run("sleeper", json!({})).await;
    assert_eq!(r.status, Status::Timeout, "{r:#?}");
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}", t.elapsed());
    let beat = e.ws.path().join("out/beat");
    let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&beat);
    assert!(before > 0, "control: the child never ran");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(size(&beat), before, "a child of the timed-out run is still writing");
    let kinds: Vec<String> = e.events(&r.execution_id).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"SkillExecutionTimedOut".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn security_integration_two_failures_then_success() {
    let code = "import os\n\
                p = 'out/count'\n\
                n = int(open(p).read()) + 1 if os.path.exists(p) else 1\n\
                open(p, 'w').write(str(n))\n\
                if n < 3:\n    raise SystemExit('transient: attempt %d' % n)\n\
                print('ok after', n)";
    let e = env(&[py(
        "flaky",
        code,
        json!({"resilience": {"retry_attempts": 3,
        "error_classification": {"transient_patterns": ["transient"]}}}),
    )]);
    let r = e.run("flaky", json!({})).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(r.attempts, 3);
    assert_eq!(r.stdout.trim(), "ok after 3");
    assert_eq!(fs::read_to_string(e.ws.path().join("out/count")).unwrap(), "3");
    let ev = e.events(&r.execution_id);
    let retries: Vec<&Value> =
        ev.iter().filter(|(k, _)| k == "RetryAttempt").map(|(_, d)| d).collect();
    assert_eq!(retries.len(), 2, "{ev:?}");
    // Exponential: about 20 ms then 40 ms, each with 50-100 % jitter.
    let delays: Vec<u64> = retries.iter().map(|d| d["delay_ms"].as_u64().unwrap()).collect();
    assert!((10..=20).contains(&delays[0]) && (20..=40).contains(&delays[1]), "{delays:?}");
    assert_eq!(ev.last().map(|(k, _)| k.as_str()), Some("SkillExecutionCompleted"));
}

#[tokio::test]
async fn security_integration_a_permanent_failure_is_not_retried() {
    let e = env(&[py(
        "broken",
        "raise SystemExit('fatal: config missing')",
        json!({"resilience": {
        "retry_attempts": 5, "fallback_command": "/bin/echo fallback",
        "error_classification": {"permanent_patterns": ["fatal"]}}}),
    )]);
    let r = e.run("broken", json!({})).await;
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert_eq!(r.attempts, 1);
    assert!(r.fallback.is_none(), "a permanent failure must not fall back");
    let kinds: Vec<String> = e.events(&r.execution_id).into_iter().map(|(k, _)| k).collect();
    assert!(!kinds.iter().any(|k| k == "RetryAttempt" || k == "FallbackExecuted"), "{kinds:?}");
}

#[tokio::test]
async fn security_integration_the_fallback_executes() {
    let e = env(&[py(
        "always-fails",
        "raise SystemExit(2)",
        json!({"resilience": {
        "retry_attempts": 1,
        "fallback_commands": [
            {"command": "/bin/false"},
            {"command": "/usr/bin/python3", "args": ["-I", "-c", "open('out/fb', 'w').write('x'); print('from fallback')"]}
        ]}}),
    )]);
    let r = e.run("always-fails", json!({})).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(r.stdout.trim(), "from fallback");
    assert!(r.fallback.as_deref().unwrap_or("").starts_with("/usr/bin/python3"), "{r:#?}");
    assert_eq!(r.attempts, 2);
    assert!(e.ws.path().join("out/fb").exists());
    let fallbacks =
        e.events(&r.execution_id).into_iter().filter(|(k, _)| k == "FallbackExecuted").count();
    assert_eq!(fallbacks, 2);
}

#[tokio::test]
async fn security_integration_a_fallback_is_confined_like_the_skill() {
    let e = env(&[py(
        "fb-escape",
        "raise SystemExit(1)",
        json!({"resilience": {
        "fallback_command": "/bin/cat /etc/shadow"}}),
    )]);
    let r = e.run("fb-escape", json!({})).await;
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    assert!(r.stdout.is_empty(), "the fallback read /etc/shadow: {}", r.stdout);
}

#[tokio::test]
async fn security_integration_the_security_log_is_written_and_verifies() {
    let e = env(&[
        py("ok", "print(1)", json!({})),
        py("net", "print(1)", json!({"security": {"permissions": {"network_access": true}}})),
    ]);
    let a = e.run("ok", json!({})).await;
    let b = e.rt.run("net", &json!({}), Some(TrustLevel::Untrusted)).await;
    let c = e.run("ok", json!({"undeclared": 1})).await;
    assert_eq!((a.status, b.status, c.status), (Status::Success, Status::Denied, Status::Invalid));
    let report = verify(&e.log()).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.events, 6, "start and outcome of each of three runs");
    let kinds: Vec<String> = e.events(&b.execution_id).into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds, ["SkillExecutionStarted", "PermissionDenied"]);
    let (_, details) = &e.events(&c.execution_id)[1];
    assert!(details["message"].as_str().unwrap().contains("undeclared"), "{details}");
}

#[tokio::test]
async fn security_integration_every_example_loads_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let ws = scratch();
    copy_tree(&root, ws.path());
    let reg =
        Registry::load_paths(&[ws.path().join(".q-skills"), ws.path().join(".skillbox/skills")]);
    assert!(reg.problems().is_empty(), "{:?}", reg.problems());
    let rt = Runtime::with_registry(reg, ws.path()).unwrap();
    let cases = [
        ("count-lines", json!({"path": "src/app.py"}), Status::Success, "src/app.py"),
        ("find-todos", json!({"marker": "TODO", "ext": "py"}), Status::Success, "TODO"),
        ("python-stats", json!({"numbers": "3,1,4"}), Status::Success, "mean="),
        ("workspace-check", json!({"dir": "src"}), Status::Success, "python files: 2"),
        ("commit-message", json!({"kind": "fix", "summary": "s"}), Status::Success, "type `fix`"),
        ("review-python", json!({"focus": "security"}), Status::Success, "--- src/app.py ---"),
        ("python-repl", json!({"code": "print('repl')"}), Status::Success, "repl"),
    ];
    for (name, params, status, needle) in cases {
        let r = rt.run(name, &params, None).await;
        assert_eq!(r.status, status, "{name}: {r:#?}");
        assert!(r.stdout.contains(needle), "{name}: {}", r.stdout);
    }
    // A session skill without its code: invalid, nothing ran.
    let r = rt.run("python-repl", &json!({}), None).await;
    assert_eq!(r.status, Status::Invalid, "{r:#?}");
    // fetch-status needs the network: refused untrusted, with a clear reason.
    let r = rt
        .run("fetch-status", &json!({"url": "https://example.com"}), Some(TrustLevel::Untrusted))
        .await;
    assert_eq!(r.status, Status::Denied);
    let msg = r.message.unwrap_or_default();
    assert!(msg.contains("network_access") && msg.contains("--trust user-verified"), "{msg}");
}

#[tokio::test]
async fn security_integration_the_circuit_opens_after_repeated_failures_and_recovers() {
    let marker = "open('out/ran', 'a').write('x'); raise SystemExit(1)";
    let Env { ws, logs, rt } = env(&[py(
        "brittle",
        marker,
        json!({"circuit_breaker": {
        "failure_threshold": 2, "recovery_timeout": 1}}),
    )]);
    // skillbox's home: where the runtime keeps the circuits' state.
    let e = Env { rt: rt.with_home(logs.path()), ws, logs };
    let ran = |e: &Env| fs::read_to_string(e.ws.path().join("out/ran")).unwrap_or_default().len();
    for _ in 0..2 {
        assert_eq!(e.run("brittle", json!({})).await.status, Status::Failed);
    }
    assert_eq!(ran(&e), 2);
    // Open: refused fast, without running.
    let r = e.run("brittle", json!({})).await;
    assert_eq!(r.status, Status::Error, "{r:#?}");
    assert!(r.message.as_deref().unwrap_or("").contains("circuit open"), "{r:#?}");
    assert_eq!(ran(&e), 2, "a run went through an open circuit");
    // After the recovery time, one run is let through; it fails, so the circuit reopens.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(e.run("brittle", json!({})).await.status, Status::Failed);
    assert_eq!(ran(&e), 3);
    assert_eq!(e.run("brittle", json!({})).await.status, Status::Error);
    assert_eq!(ran(&e), 3);
    // The state lives under the home, shared by every process.
    assert!(e.logs.path().join("state/circuits/brittle.json").exists());
}

#[tokio::test]
async fn security_integration_a_runtime_without_audit_log_or_home_keeps_its_circuits() {
    let marker = "open('out/ran', 'a').write('x'); raise SystemExit(1)";
    let skill = py(
        "brittle",
        marker,
        json!({"circuit_breaker": {"failure_threshold": 2, "recovery_timeout": 600}}),
    );
    let ws = scratch();
    for d in ["out", ".q-skills"] {
        fs::create_dir(ws.path().join(d)).unwrap();
        fs::set_permissions(ws.path().join(d), fs::Permissions::from_mode(0o777)).unwrap();
    }
    fs::write(ws.path().join(".q-skills/brittle.json"), skill.to_string()).unwrap();
    let reg = Registry::load_paths(&[ws.path().join(".q-skills")]);
    let rt = Runtime::with_registry(reg, ws.path()).unwrap();
    assert!(rt.audit().is_none());
    let ran = || fs::read_to_string(ws.path().join("out/ran")).unwrap_or_default().len();
    for _ in 0..2 {
        assert_eq!(rt.run("brittle", &json!({}), None).await.status, Status::Failed);
    }
    assert_eq!(ran(), 2);
    let r = rt.run("brittle", &json!({}), None).await;
    assert_eq!(r.status, Status::Error, "{r:#?}");
    assert!(r.message.as_deref().unwrap_or("").contains("circuit open"), "{r:#?}");
    assert_eq!(ran(), 2, "a run went through an open circuit");
}

#[test]
fn security_integration_the_host_offers_every_required_mechanism() {
    let ws = scratch();
    let report = skillbox_skills::host_report(ws.path());
    // The kernel's mechanisms; cgroups depend on the user (none are writable by nobody).
    for m in report.mechanisms.iter().filter(|m| !m.name.ends_with("-cgroup")) {
        assert!(m.available, "this host lacks {}: {} (fix: {:?})", m.name, m.found, m.fix);
    }
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.ready());
    for level in &report.levels {
        let entries = level.enforcement.as_ref().expect("a level is refused on this host");
        let state =
            |n: &str| entries.iter().find(|e| e.mechanism.as_str() == n).map(|e| e.state.as_str());
        assert_eq!(state("filesystem"), Some("enforced"), "{}", level.trust_level);
        assert_eq!(state("side-doors"), Some("enforced"), "{}", level.trust_level);
    }
}

#[tokio::test]
async fn security_integration_the_cpu_share_holds_where_a_cpu_cgroup_exists() {
    let code = "import time, resource\n\
                t = time.time()\n\
                while time.time() - t < 1.0: pass\n\
                r = resource.getrusage(resource.RUSAGE_SELF)\n\
                print(r.ru_utime + r.ru_stime)";
    let e = env(&[py(
        "burn",
        code,
        json!({"security": {
        "permissions": {"file_read": ["."]}, "resource_limits": {"max_cpu_percent": 20}}}),
    )]);
    let r = e.run("burn", json!({})).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let cpu: f64 = r.stdout.trim().parse().unwrap();
    let state = r
        .enforcement
        .iter()
        .find(|m| m.mechanism.as_str() == "cpu-share")
        .map(|m| m.state.as_str());
    if skillbox_skills::host_report(e.ws.path())
        .mechanisms
        .iter()
        .any(|m| m.name == "cpu-cgroup" && m.available)
    {
        assert_eq!(state, Some("enforced"));
        assert!(cpu < 0.45, "20% of one CPU for 1 s of wall time, but the run used {cpu} s");
    } else {
        // No cpu cgroup (an unprivileged run): the share is not enforced, and says so.
        eprintln!("!!! no cpu cgroup here: checking that the CPU share is reported not-enforced");
        assert_eq!(state, Some("not-enforced"));
        // Control: without a quota the loop gets what the same loop gets outside skillbox
        // now (on a loaded machine both get less than a CPU; a 20% quota would give 0.2 s).
        let bare = std::process::Command::new("python3").args(["-c", code]).output().unwrap();
        let bare: f64 = String::from_utf8_lossy(&bare.stdout).trim().parse().unwrap();
        assert!(
            cpu > 0.25 && cpu > 0.5 * bare,
            "control: without a quota the loop gets the CPU ({cpu} s; {bare} s outside skillbox)"
        );
    }
}

#[tokio::test]
async fn security_integration_a_fork_bomb_is_contained_where_a_pids_cgroup_exists() {
    // Each shell forks two more, forever; at user-verified a run may hold 5 processes.
    let limited = json!({"file_read": ["."], "process_spawn": "limited"});
    let bomb = json!({"name": "bomb", "type": "command", "command": "/bin/sh",
        "args": ["-c", "b() { b & b & wait; }; b"], "timeout": 3,
        "security": {"permissions": limited}});
    let probe = json!({"name": "probe", "type": "command", "command": "/bin/true",
        "security": {"permissions": limited}});
    let e = env(&[bomb, probe]);
    // Where the count is not enforced, the bomb is not set off: it would really run.
    let r = e.run("probe", json!({})).await;
    let state = r
        .enforcement
        .iter()
        .find(|m| m.mechanism.as_str() == "processes")
        .map(|m| m.state.as_str());
    if state != Some("enforced") {
        eprintln!(
            "!!! no pids cgroup here: checking that the process count is reported not-enforced"
        );
        assert_eq!(state, Some("not-enforced"), "{r:#?}");
        return;
    }
    let t = Instant::now();
    let r = e.run("bomb", json!({})).await;
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let detail =
        r.enforcement.iter().find(|m| m.mechanism.as_str() == "processes").unwrap().detail.clone();
    if detail.starts_with("supervision") {
        // The watchdog (no pids cgroup, no user namespace): it stops the run itself.
        assert_eq!(r.status, Status::LimitExceeded, "{r:#?}");
        assert_eq!(r.limit.map(|l| l.as_str()), Some("processes"), "{r:#?}");
        return;
    }
    assert!(r.stderr.contains("fork"), "the shell should report failed forks: {}", r.stderr);
    if detail.starts_with("pids cgroup") {
        let peak = r.usage.as_ref().and_then(|u| u.processes_peak).expect("peak counted");
        assert!(peak <= 5, "the run held {peak} processes at once: {r:#?}");
    } else {
        // RLIMIT_NPROC in the run's own user namespace (non-root without a pids cgroup):
        // the kernel keeps no peak, so count what a run manages to hold at once.
        assert!(detail.starts_with("RLIMIT_NPROC 5 in the run's own user namespace"), "{detail}");
    }
}

#[tokio::test]
async fn security_integration_a_run_holds_at_most_its_process_count_at_once() {
    // Forks 20 children that each sleep, and counts how many forks the kernel allowed.
    let code = "import os, time\n\
                kids = []\n\
                for i in range(20):\n\
                \x20   try:\n\
                \x20       pid = os.fork()\n\
                \x20   except OSError:\n\
                \x20       continue\n\
                \x20   if pid == 0:\n\
                \x20       time.sleep(1.5)\n\
                \x20       os._exit(0)\n\
                \x20   kids.append(pid)\n\
                print(len(kids))\n\
                for k in kids: os.waitpid(k, 0)";
    let e = env(&[py(
        "spawner",
        code,
        json!({"security": {"permissions": {"file_read": ["."], "process_spawn": "limited"}}}),
    )]);
    let r = e.run("spawner", json!({})).await;
    let state = r.enforcement.iter().find(|m| m.mechanism.as_str() == "processes").unwrap();
    if state.detail.starts_with("supervision") {
        // The watchdog (no pids cgroup, no user namespace) stops the run instead of failing
        // its forks.
        assert_eq!(r.status, Status::LimitExceeded, "{r:#?}");
        assert_eq!(r.limit.map(|l| l.as_str()), Some("processes"), "{r:#?}");
        return;
    }
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let forked: u32 = r.stdout.trim().parse().unwrap();
    if state.state.as_str() == "enforced" {
        // 5 at user-verified: the first process and 4 children (threads count too, and
        // the interpreter has none here).
        assert!(forked <= 4, "{forked} children alive at once under a limit of 5: {r:#?}");
        assert!(forked >= 1, "control: some forks are allowed");
    } else {
        eprintln!("!!! the process count is not enforced here: {}", state.detail);
        assert_eq!(forked, 20, "control: unbounded, every fork succeeds");
    }
}

/// The kernel counter behind `max_disk_io_mb`'s total does not see tmpfs: a workspace there
/// cannot show the limit, and the test must say why instead of passing or failing obscurely.
fn assert_not_tmpfs(p: &Path) {
    let fs_type = std::process::Command::new("/usr/bin/stat")
        .args(["-f", "-c", "%T"])
        .arg(p)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    assert_ne!(
        fs_type,
        "tmpfs",
        "{} is on tmpfs, whose writes the kernel's write_bytes counter does not see: set TMPDIR \
         to a directory on a disk to test the disk-write limit",
        p.display()
    );
}

#[tokio::test]
async fn security_integration_many_small_files_are_stopped_at_the_total_disk_writes() {
    // 4096 files of 1 MiB, each under the 4 MiB per-file limit, 4 GiB in all unchecked.
    let code = "import os\nfor i in range(4096):\n    with open(f'out/f{i}', 'wb') as f:\n        f.write(b'x' * 1048576)\nopen('out/survived', 'w').write('yes')";
    let limits = json!({"security": {
        "permissions": {"file_read": ["."], "file_write": ["out"]},
        "resource_limits": {"max_disk_io_mb": 4}}});
    let e = env(&[py("fill-disk", code, limits)]);
    assert_not_tmpfs(e.ws.path());
    let r = e.run("fill-disk", json!({})).await;
    assert_eq!(r.status, Status::LimitExceeded, "{r:#?}");
    assert_eq!(r.limit.map(|l| l.as_str()), Some("disk-write"));
    assert!(r.message.as_deref().unwrap_or("").contains("total disk writes (4 MiB)"), "{r:#?}");
    assert!(!e.ws.path().join("out/survived").exists(), "the writer ran to its end");
    let mut total = 0;
    for f in fs::read_dir(e.ws.path().join("out")).unwrap().flatten() {
        let len = f.metadata().unwrap().len();
        assert!(len <= 1 << 20, "a file past its own size: {len}");
        total += len;
    }
    // Stopped within one poll interval of writes past 4 MiB (about 100 MiB here): far below
    // the 4 GiB it tried. Not before the total: the count can hold a few KiB more than the
    // files' data, so a look right after the fourth file ends the run with exactly 4 MiB on
    // disk (seen as nobody on a loaded machine).
    assert!((4 << 20..1 << 30).contains(&total), "{total} bytes on disk");
    let usage = r.usage.as_ref().expect("usage");
    assert!(usage.bytes_written > 4 << 20, "stopped by the count: {usage:?}");
    let line =
        r.enforcement.iter().find(|l| l.mechanism.as_str() == "disk-writes").expect("reported");
    assert!(line.enforced && line.detail.contains("not a kernel quota"), "{line:?}");
    let kinds: Vec<String> = e.events(&r.execution_id).into_iter().map(|(k, _)| k).collect();
    assert!(kinds.contains(&"ResourceLimitExceeded".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn security_integration_bytes_written_are_reported() {
    let code = "for i in range(3):\n    with open(f'out/f{i}', 'wb') as f:\n        f.write(b'x' * 1048576)\nprint('x' * 100000)";
    let e = env(&[py("write-three", code, json!({}))]);
    assert_not_tmpfs(e.ws.path());
    let r = e.run("write-three", json!({})).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let written = r.usage.as_ref().expect("usage").bytes_written;
    // Three fresh MiB, page-granular, plus perhaps a few metadata pages; stdout not counted.
    assert!((3 << 20..4 << 20).contains(&written), "{written} bytes counted for 3 MiB");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["usage"]["bytes_written"], json!(written));
}

/// Threat model 7: a protected name planted in a writable directory that held none (here
/// `out/aN/.git` and `out/aN/.claude`, by every attempt of a skill that fails and is
/// retried) is taken away after each attempt; each is one `SandboxViolation` event with
/// its path and attempt, and the result lists them all.
#[tokio::test]
async fn security_integration_planted_entries_are_taken_and_recorded_per_attempt() {
    let code = "import os\n\
                n = len([d for d in os.listdir('out') if d.startswith('a')])\n\
                os.makedirs(f'out/a{n}/.git/hooks')\n\
                open(f'out/a{n}/.claude', 'w').write('{}')\n\
                open(f'out/a{n}/kept.txt', 'w').write('kept')\n\
                raise SystemExit(1)";
    let e = env(&[py("plant", code, json!({"resilience": {"retry_attempts": 1}}))]);
    let r = e.run("plant", json!({})).await;
    assert_eq!((r.status, r.attempts), (Status::Failed, 2), "{r:#?}");
    let out = e.ws.path().join("out");
    for n in ["a0", "a1"] {
        assert_eq!(fs::read_to_string(out.join(n).join("kept.txt")).unwrap(), "kept");
        assert!(!out.join(n).join(".git").exists(), "{n}/.git is still there");
        assert!(!out.join(n).join(".claude").exists(), "{n}/.claude is still there");
    }
    let planted = r.planted.as_ref().expect("the result lists what was planted");
    assert_eq!(planted.count, 4, "{planted:#?}");
    let mut paths: Vec<PathBuf> = planted.entries.iter().map(|p| p.path.clone()).collect();
    paths.sort();
    let want: Vec<PathBuf> =
        ["a0/.claude", "a0/.git", "a1/.claude", "a1/.git"].iter().map(|p| out.join(p)).collect();
    assert_eq!(paths, want);
    assert!(planted.entries.iter().all(|p| p.action == "removed"), "{planted:#?}");
    assert!(planted.message.contains("planted 4 protected entries"), "{}", planted.message);

    let events = skillbox_skills::audit_log::read_events(&e.log()).unwrap();
    let mut seen: Vec<(u32, String)> = events
        .into_iter()
        .filter_map(|(_, _, ev)| ev.ok())
        .filter(|ev| ev.execution_id.as_deref() == Some(r.execution_id.as_str()))
        .filter(|ev| ev.event_type == "SandboxViolation")
        .map(|ev| (ev.attempt.unwrap_or(0), ev.details["path"].as_str().unwrap_or("").to_string()))
        .collect();
    seen.sort();
    let at = |a: u32, p: &str| (a, out.join(p).to_string_lossy().into_owned());
    assert_eq!(
        seen,
        vec![at(1, "a0/.claude"), at(1, "a0/.git"), at(2, "a1/.claude"), at(2, "a1/.git")]
    );
    assert!(verify(&e.log()).unwrap().ok(), "the audit chain verifies");
}
