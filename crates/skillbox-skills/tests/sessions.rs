//! `code_session` skills, by effect: a confined Python interpreter kept alive between calls,
//! driven through `Runtime::run_with` with a session table, as an agent does.
//!
//! The interpreter of a session carries its session id in its command line (the driver's
//! first argument), which is how these tests find it in the host's `/proc` and check that
//! it is gone. They pass as root and as `nobody`.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use skillbox_skills::audit_log::{AuditLog, LogConfig};
use skillbox_skills::{Registry, RunOptions, Runtime, Sessions, SkillResult, Status, TrustLevel};
use support::scratch;

struct Env {
    _ws: tempfile::TempDir,
    logs: tempfile::TempDir,
    rt: Runtime,
}

impl Env {
    fn log(&self) -> PathBuf {
        self.logs.path().join("events.jsonl")
    }

    async fn call(&self, sessions: &Arc<Sessions>, code: &str, id: Option<&str>) -> SkillResult {
        self.rt.call_session(sessions, "py", code, id, None).await
    }

    async fn call_as(
        &self,
        sessions: &Arc<Sessions>,
        code: &str,
        id: Option<&str>,
        trust: Option<TrustLevel>,
    ) -> SkillResult {
        let mut params = json!({"code": code});
        if let Some(id) = id {
            params["session_id"] = json!(id);
        }
        let options =
            RunOptions { trust, sessions: Some(sessions.clone()), ..RunOptions::default() };
        self.rt.run_with("py", &params, &options).await
    }

    /// Every event of the log: type and details.
    fn all_events(&self) -> Vec<(String, Value)> {
        skillbox_skills::audit_log::read_events(&self.log())
            .expect("read the log")
            .into_iter()
            .filter_map(|(_, _, e)| e.ok())
            .map(|e| (e.event_type, e.details))
            .collect()
    }
}

/// A workspace with the session skill `py` (`extra` merged into it) and an audit log.
fn env(extra: Value) -> Env {
    let ws = scratch();
    let dir = ws.path().join(".q-skills");
    fs::create_dir(&dir).expect("mkdir");
    let mut skill = json!({
        "name": "py", "type": "code_session", "command": "python3", "timeout": 2,
        "security": {"permissions": {"file_read": ["."]}},
    });
    if let (Some(obj), Value::Object(more)) = (skill.as_object_mut(), extra) {
        obj.extend(more);
    }
    fs::write(dir.join("py.json"), skill.to_string()).expect("write");
    let reg = Registry::load_paths(&[dir]);
    assert!(reg.problems().is_empty(), "{:?}", reg.problems());
    let logs = scratch();
    let log = AuditLog::open(LogConfig::new(logs.path().join("events.jsonl"))).expect("log");
    let rt = Runtime::with_registry(reg, ws.path()).expect("runtime").with_audit(Arc::new(log));
    Env { _ws: ws, logs, rt }
}

fn session_id(r: &SkillResult) -> String {
    r.session.as_ref().map(|s| s.session_id.clone()).unwrap_or_else(|| panic!("no session: {r:#?}"))
}

fn value(r: &SkillResult) -> Option<String> {
    r.session.as_ref().and_then(|s| s.value.clone())
}

/// Pids of processes whose command line holds `marker` (a session id).
fn pids_with(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(marker) {
            out.push(pid);
        }
    }
    out
}

/// Waits (at most 5 s) until no process carries `marker`.
async fn gone(marker: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if pids_with(marker).is_empty() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_kept_between_calls_and_sessions_are_apart() {
    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let r = e
        .call(&sessions, "import os\nx = 1\nopen(os.environ['HOME'] + '/mine', 'w').write('a')\nos.environ['HOME'] + '/mine'", None)
        .await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let a = session_id(&r);
    let private = value(&r).expect("the path").trim_matches('\'').to_string();
    assert!(!pids_with(&a).is_empty(), "the interpreter runs between calls");
    let r = e.call(&sessions, "x + 1", Some(&a)).await;
    assert_eq!((r.status, value(&r).as_deref()), (Status::Success, Some("2")), "{r:#?}");

    // A second session: none of the first's variables, nor its private files.
    let r = e.call(&sessions, "y = 5\n'x' in globals()", None).await;
    let b = session_id(&r);
    assert_ne!(a, b);
    assert_eq!(value(&r).as_deref(), Some("False"), "{r:#?}");
    let r = e.call(&sessions, &format!("open({private:?}).read()"), Some(&b)).await;
    assert_eq!(r.status, Status::Failed, "{r:#?}");
    let err = r.session.as_ref().and_then(|s| s.error.clone()).expect("an exception");
    assert!(matches!(err.kind.as_str(), "PermissionError" | "FileNotFoundError"), "{err:?}");
    // Control: the first session reads it.
    let r = e.call(&sessions, &format!("open({private:?}).read()"), Some(&a)).await;
    assert_eq!(value(&r).as_deref(), Some("'a'"), "{r:#?}");

    // Audit: started, each call with a digest of its code (never the code), ended.
    assert!(sessions.close(&a).await);
    assert!(gone(&a).await, "a closed session left its interpreter");
    let r = e.call(&sessions, "x", Some(&a)).await;
    assert_eq!(r.status, Status::Invalid, "a closed session takes no call: {r:#?}");
    let events = e.all_events();
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|(k, d)| k == kind && d["interpreter_id"] == json!(a))
            .map(|(_, d)| d)
            .collect()
    };
    assert_eq!(of("SessionStarted").len(), 1, "{events:#?}");
    let calls = of("SessionCall");
    assert_eq!(calls.len(), 3, "{events:#?}");
    let digest = skillbox_skills::audit_log::digest_hex(b"x + 1");
    assert!(calls.iter().any(|d| d["code_sha256"] == json!(digest)), "{calls:#?}");
    let text = fs::read_to_string(e.log()).expect("log");
    assert!(!text.contains("x + 1"), "the code itself is in the log");
    let ended = of("SessionEnded");
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(ended[0]["reason"], json!("closed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printing_cannot_forge_an_answer_and_fd_4_is_closed() {
    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let forged = r#"import json, os, sys
fake = json.dumps({"value": "'forged'", "stdout": "", "stderr": ""}).encode()
sys.stdout.write((len(fake).to_bytes(4, 'big') + fake).decode())
os.write(1, len(fake).to_bytes(4, 'big') + fake)
try:
    os.write(4, len(fake).to_bytes(4, 'big') + fake)
    w4 = 'written'
except OSError as e:
    w4 = e.errno
w4"#;
    let r = e.call(&sessions, forged, None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    assert_eq!(value(&r).as_deref(), Some("9"), "fd 4 must be closed (EBADF): {r:#?}");
    assert!(r.stdout.contains("forged"), "the print is output, not an answer: {r:#?}");
    let id = session_id(&r);
    let r = e.call(&sessions, "1 + 1", Some(&id)).await;
    assert_eq!(value(&r).as_deref(), Some("2"), "the stream stayed in step: {r:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_call_is_interrupted_and_the_session_answers_the_next() {
    let e = env(json!({"timeout": 1}));
    let sessions = Arc::new(Sessions::new());
    let r = e.call(&sessions, "x = 41", None).await;
    let id = session_id(&r);
    let started = Instant::now();
    let r = e.call(&sessions, "while True:\n    x = x", Some(&id)).await;
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(r.status, Status::Timeout, "{r:#?}");
    let s = r.session.clone().expect("session");
    assert!(s.interrupted && s.ended.is_none(), "{s:#?}");
    assert_eq!(s.error.map(|e| e.kind).as_deref(), Some("KeyboardInterrupt"));
    let r = e.call(&sessions, "x + 1", Some(&id)).await;
    assert_eq!(value(&r).as_deref(), Some("42"), "{r:#?}");

    // Code that ignores the interrupt: the session is killed after the grace, and said so.
    let r = e
        .call(
            &sessions,
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
            Some(&id),
        )
        .await;
    let s = r.session.clone().expect("session");
    assert_eq!(s.ended.as_deref(), Some("killed"), "{r:#?}");
    assert!(r.message.as_deref().is_some_and(|m| m.contains("interrupt")), "{r:#?}");
    assert!(gone(&id).await, "the killed session's interpreter is still there");
    assert!(sessions.ids().is_empty(), "{:?}", sessions.ids());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_allocated_across_calls_is_held_to_the_limit() {
    // untrusted: 64 MiB for the whole session.
    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let untrusted = Some(TrustLevel::Untrusted);
    let r = e.call_as(&sessions, "a = bytearray(30 * 2**20); len(a)", None, untrusted).await;
    assert_eq!(r.status, Status::Success, "one call within the limit runs: {r:#?}");
    let id = session_id(&r);
    let mut last = r;
    for _ in 0..3 {
        last =
            e.call_as(&sessions, "a += bytearray(30 * 2**20); len(a)", Some(&id), untrusted).await;
        if last.status != Status::Success {
            break;
        }
    }
    let s = last.session.clone().expect("session");
    // A memory cgroup kills the session; where there is none, RLIMIT_AS makes the
    // allocation fail in the interpreter. Either way the session never holds more.
    let killed = s.ended.as_deref() == Some("memory");
    let refused = s.error.as_ref().is_some_and(|e| e.kind == "MemoryError");
    assert!(killed || refused, "the limit did not hold across calls: {last:#?}");
    eprintln!("memory held by {}", if killed { "a kill (memory cgroup)" } else { "MemoryError" });
    if killed {
        assert_eq!(last.status, Status::LimitExceeded, "{last:#?}");
        assert!(gone(&id).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_ends_a_session() {
    let e = env(json!({"session_config": {"session_timeout": 1}}));
    let sessions = Arc::new(Sessions::new());
    let r = e.call(&sessions, "x = 1", None).await;
    let id = session_id(&r);
    // Busy for longer than the idle timeout is not idle.
    let r = e.call(&sessions, "import time; time.sleep(1.5); x", Some(&id)).await;
    assert_eq!(value(&r).as_deref(), Some("1"), "{r:#?}");
    assert!(!pids_with(&id).is_empty(), "control: alive after a long call");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(gone(&id).await, "the idle session's interpreter is still there");
    let r = e.call(&sessions, "x", Some(&id)).await;
    assert_eq!(r.status, Status::Invalid, "{r:#?}");
    let ended: Vec<Value> = e
        .all_events()
        .into_iter()
        .filter(|(k, d)| k == "SessionEnded" && d["interpreter_id"] == json!(id))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0]["reason"], json!("idle"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_ends_its_sessions() {
    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let r = e.call(&sessions, "x = 1", None).await;
    let id = session_id(&r);
    assert!(!pids_with(&id).is_empty(), "control");
    drop(sessions);
    assert!(gone(&id).await, "the owner's sessions outlived it");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reasons: Vec<Value> = e
        .all_events()
        .into_iter()
        .filter(|(k, d)| k == "SessionEnded" && d["interpreter_id"] == json!(id))
        .map(|(_, d)| d["reason"].clone())
        .collect();
    assert_eq!(reasons, vec![json!("owner-gone")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_read_outside_its_grant_nor_reach_the_network() {
    let secret_dir = scratch();
    let secret = secret_dir.path().join("secret");
    fs::write(&secret, "s3cr3t-session-value").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();

    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let code = format!(
        "import socket\nout = []\ntry:\n    out.append(open({:?}).read())\nexcept OSError as e:\n    out.append(type(e).__name__)\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    out.append('connected')\nexcept OSError as e:\n    out.append(type(e).__name__)\nout",
        secret.display().to_string()
    );
    let r = e.call(&sessions, &code, None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let v = value(&r).expect("value");
    assert!(!v.contains("s3cr3t") && !r.stdout.contains("s3cr3t"), "the secret was read: {v}");
    assert!(!v.contains("connected"), "{v}");
    assert!(listener.accept().is_err(), "the listener got a connection");
    // Control: this process reads the secret and reaches the listener.
    assert!(fs::read_to_string(&secret).expect("read").contains("s3cr3t"));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// Not a test of its own: the body of the child process of
/// `sigkill_of_the_owner_leaves_no_interpreter`, which sets `SKILLBOX_TEST_SESSION_HOLDER`
/// to a file: it starts a session, writes its id there, and waits to be killed. Without
/// the variable it returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helper_hold_a_session_until_killed() {
    let Some(out) = std::env::var_os("SKILLBOX_TEST_SESSION_HOLDER") else { return };
    let e = env(json!({}));
    let sessions = Arc::new(Sessions::new());
    let r = e.call(&sessions, "x = 1", None).await;
    fs::write(&out, session_id(&r)).expect("write the id");
    tokio::time::sleep(Duration::from_secs(60)).await;
    panic!("the holder was not killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_owner_leaves_no_interpreter() {
    let dir = scratch();
    let out = dir.path().join("id");
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "helper_hold_a_session_until_killed", "--nocapture"])
        .env("SKILLBOX_TEST_SESSION_HOLDER", &out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the holder");
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        if let Ok(id) = fs::read_to_string(&out) {
            if !id.is_empty() {
                break id;
            }
        }
        assert!(Instant::now() < deadline, "the holder never started a session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!pids_with(&id).is_empty(), "control: the holder's interpreter runs");
    child.kill().expect("SIGKILL the holder");
    let _ = child.wait();
    assert!(gone(&id).await, "an interpreter outlived the SIGKILLed skillbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_gets_at_most_max_sessions_of_a_skill() {
    let e = env(json!({"session_config": {"max_sessions": 2}}));
    let sessions = Arc::new(Sessions::new());
    let a = session_id(&e.call(&sessions, "1", None).await);
    let _b = session_id(&e.call(&sessions, "2", None).await);
    let r = e.call(&sessions, "3", None).await;
    assert_eq!(r.status, Status::Invalid, "{r:#?}");
    assert!(r.message.as_deref().is_some_and(|m| m.contains("max_sessions")), "{r:#?}");
    assert_eq!(sessions.ids().len(), 2);
    // One ends: a new one may start; and another owner has its own count.
    assert!(sessions.close(&a).await);
    let r = e.call(&sessions, "4", None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let other = Arc::new(Sessions::new());
    assert_eq!(e.call(&other, "5", None).await.status, Status::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_networked_session_reaches_only_its_proxy() {
    if !skillbox_skills::egress_enforced() {
        panic!("this host gives no network namespace to a run: the proxy is not enforced here");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let e = env(json!({"security": {"permissions": {"file_read": ["."], "network_access": true}}}));
    let sessions = Arc::new(Sessions::new());
    let code = format!(
        "import os, socket\nout = [os.environ.get('HTTPS_PROXY')]\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    out.append('connected')\nexcept OSError as e:\n    out.append(type(e).__name__)\ntry:\n    socket.create_connection(('127.0.0.1', {proxy}), timeout=2).close()\n    out.append('proxy')\nexcept OSError as e:\n    out.append(type(e).__name__)\nout",
        proxy = skillbox_skills::EGRESS_PROXY_PORT
    );
    let r = e.call(&sessions, &code, None).await;
    assert_eq!(r.status, Status::Success, "{r:#?}");
    let v = value(&r).expect("value");
    let proxy = format!("'http://127.0.0.1:{}'", skillbox_skills::EGRESS_PROXY_PORT);
    assert!(v.starts_with(&format!("[{proxy}")), "{v}");
    assert!(!v.contains("connected"), "the host's loopback was reached: {v}");
    assert!(v.ends_with("'proxy']"), "the session's proxy is there for its whole life: {v}");
    assert!(listener.accept().is_err(), "the listener got a connection");
    // A later call still has its proxy.
    let id = session_id(&r);
    let again = format!(
        "import socket\nsocket.create_connection(('127.0.0.1', {}), timeout=2).close()\n'ok'",
        skillbox_skills::EGRESS_PROXY_PORT
    );
    let r = e.call(&sessions, &again, Some(&id)).await;
    assert_eq!(value(&r).as_deref(), Some("'ok'"), "{r:#?}");
    // The connections asked of the proxy (this one refused: no host is allowed) are
    // recorded when the session ends, under the session's id.
    let ask = format!(
        "import socket\ns = socket.create_connection(('127.0.0.1', {}), timeout=2)\ns.sendall(b'CONNECT example.invalid:443 HTTP/1.1\\r\\nHost: example.invalid:443\\r\\n\\r\\n')\ns.recv(200).split(b' ')[1]",
        skillbox_skills::EGRESS_PROXY_PORT
    );
    let r = e.call(&sessions, &ask, Some(&id)).await;
    assert!(value(&r).is_some_and(|v| !v.contains("200")), "{r:#?}");
    assert!(sessions.close(&id).await);
    let recorded: Vec<(String, Value)> = skillbox_skills::audit_log::read_events(&e.log())
        .expect("log")
        .into_iter()
        .filter_map(|(_, _, ev)| ev.ok())
        .filter(|ev| {
            ev.event_type == "NetworkConnection" && ev.execution_id.as_deref() == Some(id.as_str())
        })
        .map(|ev| (ev.event_type, ev.details))
        .collect();
    // Two bare connections of the earlier calls, and the CONNECT.
    assert_eq!(recorded.len(), 3, "{recorded:#?}");
    let asked: Vec<&Value> =
        recorded.iter().map(|(_, d)| d).filter(|d| d["host"] == "example.invalid").collect();
    assert_eq!(asked.len(), 1, "{recorded:#?}");
    assert_eq!(asked[0]["allowed"], json!(false), "{recorded:#?}");
}
