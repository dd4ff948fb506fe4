//! `skillbox mcp` driven by clients no one here wrote, and by raw bytes.
//!
//! * `official_python_sdk_session`: the official MCP Python SDK (PyPI `mcp`, installed by
//!   scripts/install-test-deps.sh) runs tests/mcp/client_session.py against the server:
//!   listing, calls, a denial, a confinement failure, a refused connection, a timeout,
//!   progress, a cancellation, ten concurrent calls and list_changed, on a 2026-07-28 and a
//!   handshake-era session, and a `code_session` skill driven over a connection of its own
//!   (state kept, sessions apart, confinement, a cancelled call interrupted, nothing left
//!   once the connection closes). This file then checks the effects again from the outside.
//! * `garbage_input_gets_protocol_errors_and_the_server_keeps_serving`: lines that are not
//!   JSON, oversized lines, wrong shapes and unknown methods, then a normal request.
//! * `killing_the_server_kills_its_runs`: SIGKILL of `skillbox mcp` in the middle of a run.
//! * `cancelled_calls_leave_no_cgroup_during_the_session_or_after_it`: twenty calls
//!   cancelled mid-run; their cgroups go while the server lives, and its exit leaves none.
//!
//! If the SDK is missing, the SDK test fails and says how to install it: it never passes
//! without having run.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::{bin, sdk_python};

/// A workspace with the skills the sessions use, and the directories around it.
struct World {
    _root: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    home: PathBuf,
    marker: String,
}

impl World {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let ws = root.path().join("ws");
        let outside = root.path().join("outside");
        let home = root.path().join("home");
        for d in [&ws.join("run"), &outside, &home] {
            fs::create_dir_all(d).unwrap();
        }
        let marker = format!("skillbox-mcp-test-{}-{}", std::process::id(), nanos());
        let w = World { _root: root, ws, outside, home, marker };
        w.write_skills();
        w
    }

    fn audit_log(&self) -> PathBuf {
        self.home.join("sb/logs/security_events.jsonl")
    }

    fn write_skills(&self) {
        let dir = self.ws.join(".skillbox/skills");
        fs::create_dir_all(&dir).unwrap();
        let m = &self.marker;
        let out = self.outside.to_str().unwrap();
        let spawn = json!({"process_spawn": "limited"});
        // Runs write their heartbeats and stamps into `run/` of the workspace.
        let spawn_write = json!({"process_spawn": "limited", "file_write": ["run"]});
        let skills = [
            json!({"name": "echo-back", "description": "Print the text", "type": "command",
                   "command": "echo", "args": ["{text}"],
                   "parameters": [{"name": "text", "type": "string", "required": true}]}),
            json!({"name": "beat", "description": "Beat until stopped", "type": "command",
                   "command": "sh",
                   "args": ["-c", "(while :; do echo x >> run/beat.hb; sleep 0.05; done) & while :; do sleep 0.05; done", m],
                   "security": {"permissions": spawn_write, "resource_limits": {"max_execution_time": 60}}}),
            json!({"name": "nap-timeout", "description": "Outlive its limit", "type": "command",
                   "command": "sh",
                   "args": ["-c", "(while :; do echo x >> run/nap.hb; sleep 0.05; done) & sleep 30", m],
                   "security": {"permissions": spawn_write, "resource_limits": {"max_execution_time": 1}}}),
            json!({"name": "slow-ok", "description": "Take two seconds", "type": "command",
                   "command": "sh",
                   "args": ["-c", "date +%s.%N > run/slow.$1.start; sleep 2; date +%s.%N > run/slow.$1.end; echo done $1", m, "{n}"],
                   "parameters": [{"name": "n", "type": "number", "required": true}],
                   "security": {"permissions": spawn_write}}),
            json!({"name": "escape-declared", "description": "Declare a write outside", "type": "command",
                   "command": "sh", "args": ["-c", "echo pwned > \"$1\"/declared", m, out],
                   "security": {"permissions": {"file_write": [out], "process_spawn": "limited"}}}),
            json!({"name": "escape-sneaky", "description": "Write outside without declaring it", "type": "command",
                   "command": "sh", "args": ["-c", "echo pwned > \"$1\"/sneaky", m, out],
                   "security": {"permissions": spawn}}),
            json!({"name": "connect-out", "description": "Connect to a local port", "type": "command",
                   "command": "python3",
                   "args": ["-I", "-c", "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)", "{port}", m],
                   "parameters": [{"name": "port", "type": "number", "required": true}]}),
            json!({"name": "progress-nap", "description": "Take two and a half seconds", "type": "command",
                   "command": "sleep", "args": ["2.5"]}),
            json!({"name": "quiet", "description": "Succeed and print nothing", "type": "command",
                   "command": "true"}),
            json!({"name": "greet-prompt", "description": "A greeting prompt", "type": "prompt_inline",
                   "prompt_template": "Greet {who} {n} times.",
                   "parameters": [{"name": "who", "type": "string", "required": true, "description": "Whom"},
                                  {"name": "n", "type": "number", "required": true}]}),
            json!({"name": "mood-prompt", "description": "A prompt with an enum argument", "type": "prompt_inline",
                   "prompt_template": "Be {mood}.",
                   "parameters": [{"name": "mood", "type": "enum", "required": true,
                                   "values": ["calm", "cheerful", "curt", "stern"]}]}),
            json!({"name": "net-https", "description": "Declares HTTPS", "type": "command",
                   "command": "true", "security": {"permissions": {"network_access": true}}}),
            json!({"name": "code-session-skill", "description": "A Python session", "type": "code_session",
                   "command": "python3", "args": [m], "timeout": 2,
                   "security": {"permissions": {"file_read": ["."]}}}),
        ];
        for s in skills {
            let name = s["name"].as_str().unwrap().to_string();
            fs::write(dir.join(format!("{name}.json")), serde_json::to_vec_pretty(&s).unwrap())
                .unwrap();
        }
    }

    fn server(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(["mcp", "--poll-ms", "200"])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("SKILLBOX_HOME", self.home.join("sb"))
            .current_dir(&self.ws);
        cmd
    }

    /// Command lines of live processes that carry this world's marker.
    fn marked_processes(&self) -> Vec<String> {
        let mut found = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().filter(|s| s.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            let Ok(cmdline) = fs::read(e.path().join("cmdline")) else { continue };
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(&self.marker) && !text.contains("client_session.py") {
                found.push(format!("{pid}: {text}"));
            }
        }
        found
    }

    fn no_marked_processes_within(&self, limit: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let left = self.marked_processes();
            if left.is_empty() || start.elapsed() > limit {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// Kills the child if a test panics while it runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn official_python_sdk_session() {
    let python = sdk_python();
    let w = World::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client_session.py");
    let child = Command::new(&python)
        .arg(&script)
        .args([bin().as_str(), w.ws.to_str().unwrap(), w.outside.to_str().unwrap(), &w.marker])
        .arg(w.audit_log())
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &w.home)
        .env("SKILLBOX_HOME", w.home.join("sb"))
        .env("LANG", "C.UTF-8")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the MCP client session did not finish in 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut stdout = String::new();
    let mut stderr = String::new();
    use std::io::Read;
    child.0.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.0.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.0.wait().unwrap();
    eprintln!("{stdout}");
    assert!(
        status.success() && stdout.lines().last() == Some("ALL OK"),
        "the client session failed ({status}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );

    // The same effects, checked again from outside the client.
    let escaped: Vec<_> = fs::read_dir(&w.outside).unwrap().flatten().map(|e| e.path()).collect();
    assert!(escaped.is_empty(), "files appeared outside the workspace: {escaped:?}");
    assert_eq!(w.no_marked_processes_within(Duration::from_secs(5)), Vec::<String>::new());
    for hb in ["beat.hb", "nap.hb"] {
        let path = w.ws.join("run").join(hb);
        let before = fs::metadata(&path).unwrap().len();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(before, fs::metadata(&path).unwrap().len(), "{hb} still grows");
    }
    let verify = Command::new(bin())
        .args(["audit", "verify", "--json", "--log"])
        .arg(w.audit_log())
        .env_clear()
        .env("HOME", &w.home)
        .output()
        .unwrap();
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stdout));
    let log = fs::read_to_string(w.audit_log()).unwrap();
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let has = |kind: &str, skill: &str| {
        events.iter().any(|e| e["event_type"] == kind && e["skill_name"] == skill)
    };
    assert!(has("SkillExecutionCancelled", "beat"), "no cancellation event");
    assert!(has("PermissionDenied", "escape-declared"), "no denial event");
    assert!(has("SkillExecutionTimedOut", "nap-timeout"), "no timeout event");
    assert!(has("SessionStarted", "code-session-skill"), "no session start event");
    assert!(has("SessionEnded", "code-session-skill"), "no session end event");
    let slow_done = events
        .iter()
        .filter(|e| e["event_type"] == "SkillExecutionCompleted" && e["skill_name"] == "slow-ok")
        .count();
    assert_eq!(slow_done, 10, "each concurrent run has its own completion event");
}

/// A raw JSON-RPC peer: lines in, lines out.
struct Raw {
    child: KillOnDrop,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Raw {
    fn start(cmd: &mut Command) -> Self {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Raw { child: KillOnDrop(child), input, output }
    }

    fn send(&mut self, line: &[u8]) {
        self.input.write_all(line).unwrap();
        self.input.write_all(b"\n").unwrap();
        self.input.flush().unwrap();
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.output.read_line(&mut line).unwrap();
        assert!(n > 0, "the server closed its output");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads until the response with `id`; returns it and what came before.
    fn recv_id(&mut self, id: i64) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let v = self.recv();
            if v["id"] == id {
                return (v, before);
            }
            before.push(v);
        }
    }

    fn initialize(&mut self) {
        self.send(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "1"}}})
            .to_string()
            .as_bytes(),
        );
        let (v, _) = self.recv_id(1);
        assert_eq!(v["result"]["serverInfo"]["name"], "skillbox", "{v}");
        self.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    }
}

/// A JSON-RPC error response to a message whose id could not be read: `code`, and an `id`
/// member that is null (JSON-RPC 2.0, section 5: it MUST be there, as null). `v["id"]` alone
/// would be null for a reply without one too.
fn assert_protocol_error(v: &Value, code: i64, what: &str) {
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert_eq!(v.get("id"), Some(&Value::Null), "{what}: the reply must carry \"id\": null: {v}");
    assert_eq!(v["jsonrpc"], "2.0", "{what}: {v}");
}

#[test]
fn garbage_input_gets_protocol_errors_and_the_server_keeps_serving() {
    let w = World::new();
    let mut raw = Raw::start(w.server().stderr(Stdio::null()));
    raw.initialize();

    raw.send(b"this is not json {");
    assert_protocol_error(&raw.recv(), -32700, "not JSON");

    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    raw.send(deep.as_bytes());
    assert_protocol_error(&raw.recv(), -32700, "100,000 nested arrays");

    let huge =
        format!(r#"{{"jsonrpc":"2.0","id":9,"method":"x","params":"{}"}}"#, "a".repeat(5 << 20));
    raw.send(huge.as_bytes());
    let v = raw.recv();
    assert_protocol_error(&v, -32600, "an oversized line");
    assert!(v["error"]["message"].as_str().unwrap().contains("exceeds the limit"), "{v}");

    // JSON of the wrong shape: answered by the SDK, its replies completed on their way out.
    for wrong in [
        &br#"{"no":"jsonrpc"}"#[..],
        b"[]",
        b"[1, 2]",
        b"42",
        b"null",
        br#"{"jsonrpc":"2.0","id":2}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":5}"#,
        br#"{"jsonrpc":"1.0","id":4,"method":"ping"}"#,
    ] {
        raw.send(wrong);
        assert_protocol_error(&raw.recv(), -32600, &String::from_utf8_lossy(wrong));
    }

    raw.send(br#"{"jsonrpc":"2.0","id":3,"method":"no/such/method"}"#);
    let (v, _) = raw.recv_id(3);
    assert_eq!(v["error"]["code"], -32601, "{v}");

    raw.send(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo-back","arguments":"not an object"}}"#);
    let (v, _) = raw.recv_id(4);
    assert!(v["error"]["code"].is_i64(), "wrong argument shape is a protocol error: {v}");

    raw.send(
        br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"../../etc/passwd","arguments":{}}}"#,
    );
    let (v, _) = raw.recv_id(5);
    assert_eq!(v["error"]["code"], -32602, "{v}");

    raw.send(b"\x00\x01\x02\xff\xfe");
    assert_protocol_error(&raw.recv(), -32700, "binary garbage");

    // Still serving, and serving correctly.
    raw.send(br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo-back","arguments":{"text":"still here"}}}"#);
    let (v, _) = raw.recv_id(6);
    assert_eq!(v["result"]["isError"], false, "{v}");
    assert_eq!(v["result"]["content"][0]["text"], "still here\n", "{v}");
    assert!(raw.child.0.try_wait().unwrap().is_none(), "the server exited");
}

#[test]
fn killing_the_server_kills_its_runs() {
    let w = World::new();
    let mut raw = Raw::start(w.server().stderr(Stdio::null()));
    raw.initialize();
    raw.send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"beat","arguments":{}}}"#);
    let hb = w.ws.join("run/beat.hb");
    let start = Instant::now();
    while fs::metadata(&hb).map(|m| m.len()).unwrap_or(0) < 10 {
        assert!(start.elapsed() < Duration::from_secs(20), "the run never started beating");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!w.marked_processes().is_empty(), "the run is alive");
    // SAFETY: kill(2) with a pid of our own child and a plain signal number.
    let r = unsafe { libc::kill(raw.child.0.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(r, 0);
    let _ = raw.child.0.wait();
    let left = w.no_marked_processes_within(Duration::from_secs(5));
    assert!(left.is_empty(), "processes outlived the killed server: {left:?}");
    let before = fs::metadata(&hb).unwrap().len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(before, fs::metadata(&hb).unwrap().len(), "the heartbeat still grows");
}

#[test]
fn agent_skills_reach_mcp_clients_as_instructions_and_scripts() {
    let w = World::new();
    let dir = w.ws.join(".agents/skills/greeter");
    fs::create_dir_all(dir.join("scripts")).unwrap();
    fs::write(
        dir.join("SKILL.md"),
        "---\nname: greeter\ndescription: Greets people. Use when asked to greet.\n---\nCall greeter--hello with a name.\n",
    )
    .unwrap();
    fs::write(dir.join("scripts/hello.sh"), "echo \"hello, $1\"\n").unwrap();
    let mut raw = Raw::start(w.server().stderr(Stdio::null()));
    raw.initialize();
    raw.send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#);
    let (v, _) = raw.recv_id(2);
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"greeter") && names.contains(&"greeter--hello"), "{names:?}");
    raw.send(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"greeter","arguments":{}}}"#);
    let (v, _) = raw.recv_id(3);
    // The instructions, then the tool that runs each script.
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Call greeter--hello with a name.\n"), "{v}");
    assert!(text.contains("- `greeter--hello` runs scripts/hello.sh\n"), "{v}");
    raw.send(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"greeter--hello","arguments":{"args":"'Ada Lovelace'"}}}"#);
    let (v, _) = raw.recv_id(4);
    assert_eq!(v["result"]["content"][0]["text"], "hello, Ada Lovelace\n", "{v}");
    assert_eq!(v["result"]["structuredContent"]["trust_origin"], "default", "{v}");
}

/// Mount points of the cgroup hierarchies (v1 and v2).
fn cgroup_mounts() -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
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

/// Every directory named `skillbox-<pid>-<n>` (the groups process `pid` made for its runs)
/// under any cgroup mount.
fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("skillbox-{pid}-");
    let mut found = Vec::new();
    let mut stack: Vec<(PathBuf, usize)> = cgroup_mounts().into_iter().map(|m| (m, 0)).collect();
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
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

/// Reads `ready\n` from the FIFO `f`, waiting at most 30 s.
fn wait_ready(f: &mut fs::File, what: &str) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll reads and writes only the one pollfd passed.
    let n = unsafe { libc::poll(&mut pfd, 1, 30_000) };
    assert_eq!(n, 1, "{what} never said it was running");
    let mut line = [0u8; 6];
    f.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"ready\n", "{what}");
}

/// What the issue reported: calls cancelled mid-run left their (empty) cgroups for the
/// server's whole life, and its exit left them too. Twenty calls are cancelled while their
/// shell and its background `sleep` run: each call's groups are gone shortly after, while
/// the session goes on; when the client closes the session, the server exits and nothing
/// named after its pid is left under any cgroup mount. Only a server that can create
/// cgroups (root, or delegated) makes groups; elsewhere this says so and checks nothing.
#[test]
fn cancelled_calls_leave_no_cgroup_during_the_session_or_after_it() {
    let w = World::new();
    let fifo = w.ws.join("run/ready.fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    // Open for reading and writing, so that opening does not wait and reading waits for
    // a run's line instead of seeing an end.
    let mut ready = fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
    let skill = json!({"name": "says-ready", "description": "Say it runs, then wait",
        "type": "command", "command": "sh",
        "args": ["-c", "sleep 30 & echo ready > run/ready.fifo; wait", &w.marker],
        "security": {"permissions": {"process_spawn": "limited", "file_write": ["run"]},
                     "resource_limits": {"max_execution_time": 60}}});
    fs::write(w.ws.join(".skillbox/skills/says-ready.json"), skill.to_string()).unwrap();

    let mut raw = Raw::start(w.server().stderr(Stdio::null()));
    raw.initialize();
    let server = raw.child.0.id();
    let mut cancelled: Vec<PathBuf> = Vec::new();
    for i in 0..20 {
        let id = 100 + i;
        let call = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": "says-ready", "arguments": {}}});
        raw.send(call.to_string().as_bytes());
        wait_ready(&mut ready, &format!("call {id}"));
        let groups: Vec<PathBuf> = cgroups_of(server)
            .into_iter()
            .filter(|g| fs::read_to_string(g.join("cgroup.procs")).is_ok_and(|s| !s.is_empty()))
            .collect();
        if groups.is_empty() {
            // SAFETY: geteuid has no failure mode and no memory effects.
            assert!(unsafe { libc::geteuid() } != 0, "as root, call {id} ran in no cgroup");
            eprintln!(
                "!!! NOT CHECKED: this user cannot create cgroups (no writable or delegated \
                 hierarchy), so the server makes none for its runs and none can be left"
            );
            return;
        }
        cancelled.extend(groups);
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                            "params": {"requestId": id, "reason": "test"}});
        raw.send(cancel.to_string().as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left: Vec<&PathBuf> = cancelled.iter().filter(|g| g.exists()).collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(left.is_empty(), "cancelled calls' groups left during the session: {left:?}");
    assert_eq!(w.no_marked_processes_within(Duration::from_secs(5)), Vec::<String>::new());

    // The client ends the session: the server exits by itself.
    let Raw { mut child, input, output } = raw;
    drop(input);
    drop(output);
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not exit when its input closed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.0.wait().unwrap().success(), "the server's exit");
    assert_eq!(cgroups_of(server), Vec::<PathBuf>::new(), "groups left after the server exited");
}

#[test]
fn calls_to_unknown_tools_are_recorded_at_a_bounded_rate() {
    // A model probing for tools: every probe is refused, and the log shows it, without
    // growing by a line per probe past the rate.
    let w = World::new();
    let mut raw = Raw::start(w.server().stderr(Stdio::null()));
    raw.initialize();
    let long = "x".repeat(100_000);
    let mut names: Vec<String> = vec!["no-such-tool".into(), "../etc".into(), "a\nb".into(), long];
    names.extend((0..46).map(|i| format!("probe-{i}")));
    for (i, name) in names.iter().enumerate() {
        let id = 100 + i as i64;
        raw.send(
            json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                   "params": {"name": name, "arguments": {}}})
            .to_string()
            .as_bytes(),
        );
        let (v, _) = raw.recv_id(id);
        assert!(v["error"]["message"].as_str().unwrap().contains("unknown tool"), "{v}");
    }
    // Closing the session ends the server, which writes the count of what it left out.
    drop(raw.input);
    let status = raw.child.0.wait().unwrap();
    assert!(status.success(), "the server did not exit cleanly: {status:?}");
    let log = fs::read_to_string(w.audit_log()).unwrap();
    let events: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let refused: Vec<&Value> =
        events.iter().filter(|e| e["event_type"] == "InputValidationFailed").collect();
    let one_by_one = refused.iter().filter(|e| e["details"]["suppressed"].is_null()).count();
    let counted: u64 = refused.iter().filter_map(|e| e["details"]["suppressed"].as_u64()).sum();
    assert_eq!(one_by_one, 20, "{log}");
    assert_eq!(one_by_one as u64 + counted, names.len() as u64, "every probe is accounted for");
    assert!(refused.iter().any(|e| e["skill_name"] == "no-such-tool"), "{log}");
    assert!(refused.iter().any(|e| e["skill_name"] == "\"a\\nb\""), "{log}");
    assert!(log.lines().all(|l| l.len() < 4000), "a probe's name was not cut");
    let verify =
        Command::new(bin()).args(["audit", "verify", "--log"]).arg(w.audit_log()).output().unwrap();
    assert!(verify.status.success(), "{verify:?}");
}

/// `skillbox-hostsim`, built beside this test binary (scripts/test.sh builds it).
fn hostsim() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join("skillbox-hostsim");
    assert!(path.is_file(), "{} is missing: run `cargo build -p skillbox-hostsim`", path.display());
    path
}

/// On a host without user namespaces (Ubuntu 24.04's AppArmor rule, simulated), a call whose
/// grant needs a guarantee the host cannot keep is a tool error that says so in words a model
/// can act on, and names what is missing in `structuredContent.unsupported`; started with
/// `--allow-weaker-isolation`, the server runs it, and the audit log records the weakening.
#[test]
fn a_host_that_cannot_keep_a_guarantee_is_a_tool_error_unless_the_server_opts_in() {
    let w = World::new();
    let call = |extra: &[&str]| -> (Value, Value, Value) {
        let mut cmd = Command::new(hostsim());
        cmd.args(["ubuntu-24.04", "--"]).arg(bin()).args(["mcp", "--poll-ms", "200"]);
        cmd.args(extra)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &w.home)
            .env("SKILLBOX_HOME", w.home.join("sb"))
            .current_dir(&w.ws)
            .stderr(Stdio::null());
        let mut raw = Raw::start(&mut cmd);
        raw.initialize();
        raw.send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo-back","arguments":{"text":"hi"}}}"#);
        let called = raw.recv_id(2).0;
        raw.send(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"code-session-skill","arguments":{"code":"6 * 7"}}}"#);
        let session = raw.recv_id(4).0;
        raw.send(br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#);
        let listed = raw.recv_id(3).0;
        let echo = listed["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "echo-back")
            .cloned()
            .unwrap();
        (called, echo["annotations"].clone(), session)
    };
    let (v, hints, session) = call(&[]);
    // A session is refused the same way, before its interpreter starts.
    let s = &session["result"];
    assert_eq!(s["isError"], true, "{session}");
    assert!(!s["structuredContent"]["unsupported"].as_array().unwrap().is_empty(), "{session}");
    assert!(s["content"][0]["text"].as_str().unwrap().contains("tell the person"), "{session}");
    // Refused there, so a call changes nothing.
    assert_eq!(hints["readOnlyHint"], true, "{hints}");
    let r = &v["result"];
    assert_eq!(r["isError"], true, "{v}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("cannot enforce") && text.contains("tell the person"), "{text}");
    assert!(text.contains("skillbox mcp --allow-weaker-isolation"), "{text}");
    let missing = r["structuredContent"]["unsupported"].as_array().unwrap();
    assert!(!missing.is_empty(), "{v}");
    assert!(missing.iter().all(|g| text.contains(g.as_str().unwrap())), "{text}");

    let (v, hints, session) = call(&["--allow-weaker-isolation"]);
    let s = &session["result"];
    assert_eq!(s["structuredContent"]["session"]["value"], "42", "{session}");
    assert!(!s["structuredContent"]["enforcement"].as_array().unwrap().is_empty(), "{session}");
    // Run without a mount namespace, it could change the modes of files it may only read.
    assert_eq!(hints["readOnlyHint"], false, "{hints}");
    assert_eq!(hints["destructiveHint"], true, "{hints}");
    let r = &v["result"];
    assert_eq!(r["isError"], false, "{v}");
    assert_eq!(r["content"][0]["text"], "hi\n", "{v}");
    let log = fs::read_to_string(w.audit_log()).unwrap();
    assert!(log.contains("\"IsolationWeakened\""), "{log}");
}
