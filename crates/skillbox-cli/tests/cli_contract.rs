//! The `skillbox` command's contract (names, flags, JSON fields, exit codes), run as a real
//! process against copies of the shipped examples, with effects checked.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod support;
use support::bin;

struct Env {
    home: tempfile::TempDir,
    ws: tempfile::TempDir,
}

fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o777)).unwrap();
    d
}

fn copy(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace")
}

impl Env {
    fn new() -> Self {
        let ws = open_dir();
        copy(&examples(), ws.path());
        Env { home: open_dir(), ws }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.home.path())
            .env("SKILLBOX_HOME", self.home.path().join("sb"))
            .env("SKILLBOX_RETRY_BASE_MS", "10")
            .current_dir(self.ws.path())
            .output()
            .unwrap()
    }

    fn run_json(&self, args: &[&str]) -> (i32, Value) {
        let out = self.cmd(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().count(), 1, "one JSON object expected, got: {text}");
        (out.status.code().unwrap(), serde_json::from_str(&text).unwrap())
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn list_shows_every_example_and_exits_zero() {
    let e = Env::new();
    let out = e.cmd(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for name in [
        "count-lines",
        "find-todos",
        "python-stats",
        "python-repl",
        "commit-message",
        "review-python",
        "fetch-status",
        "workspace-check",
        "echo",
        "explain-denial",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let (_, v) = e.run_json(&["list", "--json"]);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["skills"].as_array().unwrap().iter().all(|s| s["trust_level"].is_string()));
}

#[test]
fn broken_files_are_named_and_the_good_ones_still_load() {
    let e = Env::new();
    let dir = e.ws.path().join(".q-skills");
    fs::write(dir.join("trailing-comma.json"), r#"{"name": "a", "type": "command",}"#).unwrap();
    fs::write(
        dir.join("bad-timeout.json"),
        r#"{"name": "b", "type": "command", "command": "true", "timeout": "soon"}"#,
    )
    .unwrap();
    fs::write(dir.join("no-command.json"), r#"{"name": "c", "type": "command"}"#).unwrap();
    fs::write(dir.join("not-utf8.json"), b"{\"name\": \"d\xff\"}").unwrap();
    fs::write(dir.join("nested.json"), "[".repeat(100_000)).unwrap();
    let big = fs::File::create(dir.join("huge.json")).unwrap();
    big.set_len(50 * 1024 * 1024).unwrap();
    let out = e.cmd(&["list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    for (file, what) in [
        ("trailing-comma.json", "not valid JSON"),
        ("bad-timeout.json", "field `timeout`"),
        ("no-command.json", "field `command`"),
        ("not-utf8.json", "not valid UTF-8"),
        ("nested.json", "not valid JSON"),
        ("huge.json", "limited to"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file} not named:\n{err}"));
        assert!(line.contains(what), "{file}: {line}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("count-lines"),
        "good skills must still load"
    );
}

#[test]
fn each_example_type_runs() {
    let e = Env::new();
    let cases: [(&str, &str, &str); 6] = [
        ("count-lines", r#"{"path": "src/app.py"}"#, "src/app.py"),
        ("find-todos", r#"{"marker": "TODO", "ext": "py"}"#, "TODO"),
        ("python-stats", r#"{"numbers": "1,2,3"}"#, "mean=2"),
        ("workspace-check", r#"{"dir": "src"}"#, "python files: 2"),
        ("commit-message", r#"{"kind": "docs", "summary": "typo"}"#, "type `docs`"),
        ("review-python", r#"{"focus": "readability"}"#, "def mean_of"),
    ];
    for (name, params, needle) in cases {
        // --workspace after the subcommand, then before it.
        let ws = e.ws.path().to_str().unwrap();
        let (code, v) = e.run_json(&["run", name, "--params", params, "--json", "--workspace", ws]);
        assert_eq!((code, v["status"].as_str()), (0, Some("success")), "{name}: {v}");
        assert!(v["stdout"].as_str().unwrap().contains(needle), "{name}: {v}");
        for field in ["exit_code", "stdout", "stderr", "duration_ms", "execution_id"] {
            assert!(v.get(field).is_some(), "{name}: no {field}");
        }
        let out = e.cmd(&["--workspace", ws, "run", name, "--params", params]);
        assert_eq!(out.status.code(), Some(0));
    }
    // A code_session skill: one call in a fresh session, the value of its last expression
    // in `session.value`; without `code` the input is invalid.
    let params = r#"{"code": "x = 20\nx * 2 + 2"}"#;
    let (code, v) = e.run_json(&["run", "python-repl", "--params", params, "--json"]);
    assert_eq!((code, v["status"].as_str()), (0, Some("success")), "{v}");
    assert_eq!(v["session"]["value"], "42", "{v}");
    let (code, v) = e.run_json(&["run", "python-repl", "--json"]);
    assert_eq!((code, v["status"].as_str()), (4, Some("invalid")), "{v}");
}

#[test]
fn a_hostile_parameter_stays_inert() {
    let e = Env::new();
    fs::write(
        e.ws.path().join(".q-skills/say.json"),
        r#"{"name": "say", "type": "command", "command": "printf", "args": ["%s\n", "{v}"],
            "parameters": [{"name": "v", "type": "string", "required": true}],
            "security": {"permissions": {"process_spawn": "none"}}}"#,
    )
    .unwrap();
    for value in
        ["$(touch pwned); rm -rf ~", "`touch pwned2`", "a\n{\"seq\":1}", "; touch pwned3 #"]
    {
        let params = serde_json::json!({ "v": value }).to_string();
        let (code, v) = e.run_json(&["run", "say", "--params", &params, "--json"]);
        assert_eq!(code, 0, "{v}");
        assert_eq!(v["stdout"].as_str().unwrap(), format!("{value}\n"));
    }
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(!e.ws.path().join(f).exists(), "{f} was created");
        assert!(!e.home.path().join(f).exists(), "{f} was created");
    }
    let (code, v) = e.run_json(&["run", "say", "--params", r#"{"v": "a\u0000b"}"#, "--json"]);
    assert_eq!((code, v["status"].as_str()), (4, Some("invalid")), "{v}");
    let (code, v) = e.run_json(&["run", "say", "--params", r#"{"v": "x", "w": 1}"#, "--json"]);
    assert_eq!(code, 4);
    assert!(v["message"].as_str().unwrap().contains("`w`"), "{v}");
    let out = e.cmd(&["run", "say", "--params", "[1]"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("--params"));
}

#[test]
fn untrusted_network_skill_is_refused_with_the_fix() {
    let e = Env::new();
    let args = [
        "run",
        "fetch-status",
        "--trust",
        "untrusted",
        "--params",
        r#"{"url": "https://example.com"}"#,
    ];
    let out = e.cmd(&args);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("network_access") && err.contains("--trust user-verified"), "{err}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let (_, v) = e.run_json(&json_args);
    assert_eq!(v["status"], "denied");
    assert!(v["exit_code"].is_null(), "nothing ran: {v}");
}

#[test]
fn invalid_names_are_refused_before_any_file_is_read() {
    let e = Env::new();
    for name in ["../x", "a/b", "", "é"] {
        let out = Command::new(bin())
            .args(["--workspace", "/nonexistent/ws", "run", name])
            .env("HOME", e.home.path())
            .env("SKILLBOX_HOME", e.home.path().join("sb"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{name}");
        assert!(stderr(&out).contains("not a valid skill name"), "{name}: {}", stderr(&out));
    }
    let out = e.cmd(&["run", "no-such-skill"]);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn aliases_shadowing_and_info() {
    let e = Env::new();
    let (code, v) = e.run_json(&["run", "wc", "--params", r#"{"path": "src/util.py"}"#, "--json"]);
    assert_eq!((code, v["skill"].as_str()), (0, Some("count-lines")), "{v}");
    let global = e.home.path().join("sb/skills");
    fs::create_dir_all(&global).unwrap();
    fs::write(
        global.join("count-lines.json"),
        r#"{"name": "count-lines", "type": "prompt_inline", "prompt": "x"}"#,
    )
    .unwrap();
    fs::write(
        e.ws.path().join(".q-skills/echo.json"),
        r#"{"name": "echo", "type": "prompt_inline", "prompt": "mine"}"#,
    )
    .unwrap();
    let out = e.cmd(&["list"]);
    let err = stderr(&out);
    assert!(
        err.contains("count-lines")
            && err.contains("shadows")
            && err.contains("sb/skills/count-lines.json"),
        "{err}"
    );
    assert!(err.contains("builtin:echo"), "{err}");
    let (_, v) = e.run_json(&["info", "count-lines", "--json"]);
    assert_eq!(v["source"], "workspace");
    assert!(v["grant"]["limits"]["max_memory_mb"].is_number(), "{v}");
    let (_, v) = e.run_json(&["info", "fetch-status", "--trust", "untrusted", "--json"]);
    assert_eq!(v["denial"]["permission"], "network");
}

#[test]
fn validate_names_problems() {
    let e = Env::new();
    let good = e.ws.path().join(".q-skills/count-lines.json");
    assert_eq!(e.cmd(&["validate", good.to_str().unwrap()]).status.code(), Some(0));
    let bad = e.ws.path().join("bad.json");
    fs::write(&bad, r#"{"name": "x", "type": "enum-of-nothing"}"#).unwrap();
    let out = e.cmd(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("field `type`"), "{}", stderr(&out));
}

#[test]
fn terminal_escapes_are_escaped_unless_raw() {
    let e = Env::new();
    fs::write(
        e.ws.path().join(".q-skills/esc.json"),
        r#"{"name": "esc", "type": "command", "command": "printf", "args": ["\u001b]0;pwned\u0007red\n"]}"#,
    )
    .unwrap();
    let out = e.cmd(&["run", "esc"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('\u{1b}'), "escape reached the terminal: {text:?}");
    assert!(text.contains("\\u{1b}"), "{text:?}");
    let out = e.cmd(&["run", "esc", "--raw"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

#[test]
fn runs_are_audited_and_the_log_verifies() {
    let e = Env::new();
    e.cmd(&["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#]);
    e.cmd(&[
        "run",
        "fetch-status",
        "--trust",
        "untrusted",
        "--params",
        r#"{"url": "https://example.com"}"#,
    ]);
    let out = e.cmd(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = e.cmd(&["audit", "show", "--json", "--event-type", "PermissionDenied"]);
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["skill_name"], "fetch-status");
    // One edited byte is caught, and the line is named.
    let log = e.home.path().join("sb/logs/security_events.jsonl");
    let text = fs::read_to_string(&log).unwrap().replacen("count-lines", "count-linez", 1);
    fs::write(&log, text).unwrap();
    let out = e.cmd(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("security_events.jsonl:1"), "{text}");
    // Only the cause: the events after the edited one are not reported as removed.
    assert!(text.contains("1 problem(s)") && !text.contains("removed"), "{text}");
}

#[test]
fn bad_audit_filters_are_usage_errors() {
    let e = Env::new();
    e.cmd(&["run", "count-lines", "--params", r#"{"path": "src/app.py"}"#]);
    for (flag, value) in
        [("--since", "yesterday"), ("--risk", "severe"), ("--event-type", "PermisionDenied")]
    {
        let out = e.cmd(&["audit", "show", flag, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains(value), "{flag}: {err}");
        assert!(out.stdout.is_empty(), "{flag}: printed events");
    }
    // The good spellings still filter (the control).
    let out = e.cmd(&[
        "audit",
        "show",
        "--since",
        "1h",
        "--risk",
        "low",
        "--event-type",
        "skillexecutionstarted",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("count-lines"));
}

#[test]
fn doctor_reports_a_ready_host() {
    let e = Env::new();
    let out = e.cmd(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "this host lacks a required mechanism:\n{text}");
    for level in ["untrusted:", "user-verified:", "system-trusted:"] {
        assert!(text.contains(level), "{text}");
    }
}

#[test]
fn the_shipped_broken_examples_are_reported_file_by_file() {
    let e = Env::new();
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/broken");
    let out = e.cmd(&["--workspace", ws.to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("hello") && text.contains("summarize"), "{text}");
    let err = stderr(&out);
    for f in [
        "trailing-comma.json",
        "bad-timeout.json",
        "no-command.json",
        "enum-without-values.json",
        "bad-pattern.json",
        "bad-name.json",
        "zz-duplicate.json",
        "not-utf8.json",
    ] {
        assert_eq!(err.lines().filter(|l| l.contains(f)).count(), 1, "{f}:\n{err}");
    }
}

/// Runs `cmd` to completion; returns its exit code, its peak resident memory in KiB (from
/// the kernel's rusage) and its stdout.
// The child is reaped with wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn run_measured(cmd: &mut Command) -> (i32, u64, String) {
    use std::io::Read;
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: rusage is plain data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 reaps our own child and writes only to `status` and `usage`, both on
    // this stack.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64, stdout)
}

#[test]
fn an_output_flood_does_not_grow_skillbox() {
    let e = Env::new();
    fs::write(
        e.ws.path().join(".q-skills/flood.json"),
        r#"{"name": "flood", "type": "command", "command": "head", "args": ["-c", "1073741824", "/dev/zero"],
            "security": {"permissions": {"process_spawn": "none"}, "resource_limits": {"max_execution_time": 60}}}"#,
    )
    .unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["run", "flood", "--json"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", e.home.path())
        .env("SKILLBOX_HOME", e.home.path().join("sb"))
        .current_dir(e.ws.path());
    let (code, rss_kib, stdout) = run_measured(&mut cmd);
    eprintln!("skillbox peak RSS during a 1 GiB flood: {rss_kib} KiB");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(code, 0, "{}", &stdout[..stdout.len().min(500)]);
    assert_eq!(v["stdout_truncated"], true);
    assert!(v["stdout"].as_str().unwrap().contains("bytes of output omitted"));
    // 1 GiB went through; skillbox kept 1 MiB of it. 50 MiB is the documented bound.
    assert!(rss_kib < 50 * 1024, "skillbox peaked at {rss_kib} KiB during a 1 GiB flood");
}

#[test]
fn dash_p_types_values_as_the_skill_declares_them() {
    let e = Env::new();
    fs::write(
        e.ws.path().join(".skillbox/skills/typed.json"),
        r#"{"name": "typed", "type": "command", "command": "echo", "args": ["{n}", "{b}", "{s}"],
            "parameters": [
              {"name": "n", "type": "number", "required": true},
              {"name": "b", "type": "boolean", "required": true},
              {"name": "s", "type": "string", "required": true}],
            "security": {"permissions": {"file_read": [], "process_spawn": "none"}}}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "typed"];
        all.extend_from_slice(args);
        let out = e.cmd(&all);
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), text_of(&out))
    };
    // Typed: a number and a boolean pass the type check (as strings they would not).
    let (code, stdout, all) = run(&["-p", "n=3", "-p", "b=true", "-p", "s=12"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(stdout, "3 true 12\n");
    // -p wins over the same key in --params.
    let (code, stdout, all) =
        run(&["--params", r#"{"n": 1, "b": false, "s": "x"}"#, "--param", "s=y z"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(stdout, "1 false y z\n");
    // A value that is not of the declared type is refused by the parameter check, by name.
    for (bad, param) in [("n=three", "`n`"), ("b=yes", "`b`")] {
        let mut args = vec!["-p", "n=1", "-p", "b=true", "-p", "s=x"];
        args.extend_from_slice(&["-p", bad]);
        let (code, _, all) = run(&args);
        assert_eq!(code, Some(4), "{bad}: {all}");
        assert!(all.contains(param), "{bad}: {all}");
    }
    // No `=`: a usage error.
    let (code, _, all) = run(&["-p", "n3"]);
    assert_eq!(code, Some(2), "{all}");
}

#[test]
fn an_unknown_skill_name_suggests_the_closest() {
    let e = Env::new();
    let out = e.cmd(&["run", "cout-lines"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text_of(&out).contains("did you mean `count-lines`?"), "{}", text_of(&out));
    let out = e.cmd(&["info", "fnid-todos"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(text_of(&out).contains("did you mean `find-todos`?"), "{}", text_of(&out));
}

fn text_of(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `skillbox ARGS` in the examples' copy with stdin, stdout and stderr on a pseudo-terminal
/// (Python's `pty`), and `extra_env`: everything the terminal showed.
fn at_terminal(e: &Env, args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let program = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", program, &bin()])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", e.home.path())
        .env("SKILLBOX_HOME", e.home.path().join("sb"))
        .env("TERM", "xterm")
        .current_dir(e.ws.path());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn status_lines_are_coloured_only_at_a_terminal_and_never_with_no_color() {
    let e = Env::new();
    let ok = ["run", "count-lines", "-p", "path=src/app.py"];
    let bad = ["run", "count-lines", "-p", "path=../etc/passwd"];
    let t = at_terminal(&e, &ok, &[]);
    assert!(t.contains("\u{1b}[1;32msuccess\u{1b}[0m"), "{t:?}");
    let t = at_terminal(&e, &bad, &[]);
    assert!(t.contains("\u{1b}[1;31minvalid\u{1b}[0m"), "{t:?}");
    for (k, v) in [("NO_COLOR", "1"), ("TERM", "dumb")] {
        let t = at_terminal(&e, &ok, &[(k, v)]);
        assert!(t.contains("success") && !t.contains('\u{1b}'), "{k}={v}: {t:?}");
    }
    // A pipe gets plain text.
    let out = e.cmd(&ok);
    assert!(!String::from_utf8_lossy(&out.stderr).contains('\u{1b}'));
}

#[test]
fn typos_are_refused_in_security_and_warned_of_elsewhere() {
    let e = Env::new();
    let dir = e.ws.path().join(".skillbox/skills");
    fs::write(
        dir.join("typo-sec.json"),
        r#"{"name": "typo-sec", "type": "command", "command": "true",
            "security": {"permissions": {"file_wirte": ["out"]}}}"#,
    )
    .unwrap();
    fs::write(
        dir.join("typo-top.json"),
        r#"{"name": "typo-top", "type": "command", "command": "echo", "args": ["{a}"],
            "paramters": [{"name": "a", "type": "string"}]}"#,
    )
    .unwrap();
    let out = e.cmd(&["validate"]);
    let err = String::from_utf8_lossy(&out.stderr);
    let all = text_of(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    // Refused, one line naming the file, the field and the likely key.
    let refusal =
        all.lines().find(|l| l.contains("typo-sec.json")).unwrap_or_else(|| panic!("{all}"));
    assert!(
        refusal.contains("security.permissions") && refusal.contains("did you mean `file_write`?"),
        "{refusal}"
    );
    // Loaded, with a warning naming the file and the key.
    let warning = err.lines().find(|l| l.contains("paramters")).unwrap_or_else(|| panic!("{err}"));
    assert!(
        warning.starts_with("skillbox: warning: ") && warning.contains("typo-top.json"),
        "{warning}"
    );
    assert!(warning.contains("did you mean `parameters`?"), "{warning}");
    // `run` warns too, and the skill runs (the key is ignored, so `{a}` stays as written).
    let out = e.cmd(&["run", "typo-top"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `parameters`?"));
    // The other skills still load.
    let out = e.cmd(&["run", "count-lines", "-p", "path=src/app.py"]);
    assert_eq!(out.status.code(), Some(0), "{}", text_of(&out));
}

/// At a terminal, a run's output shows as it comes: the first line is on the terminal while
/// the skill still sleeps, and nothing is shown twice. Elsewhere it comes once, at the end.
#[test]
fn output_shows_as_it_comes_at_a_terminal() {
    let e = Env::new();
    fs::write(
        e.ws.path().join(".skillbox/skills/slow-talk.json"),
        r#"{"name": "slow-talk", "type": "command", "command": "sh",
            "args": ["-c", "echo first; echo err-line >&2; sleep 2; printf 'second\\n'; printf 'caf\\303'; sleep 0.2; printf '\\251\\n'"],
            "security": {"permissions": {"process_spawn": "limited"}}}"#,
    )
    .unwrap();
    // When each piece of text reached the terminal, in seconds from the start.
    let program = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
start = time.monotonic()
seen, out = {}, b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    for word in [b"first", b"second", b"success"]:
        if word in out and word not in seen:
            seen[word] = time.monotonic() - start
os.waitpid(pid, 0)
for word, t in seen.items():
    print(word.decode(), round(t, 2))
print("TRANSCRIPT", out.decode("utf-8", "replace").replace("\r\n", "\n").replace("\n", "|"))
"#;
    let out = Command::new("python3")
        .args(["-c", program, &bin(), "run", "slow-talk"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", e.home.path())
        .env("SKILLBOX_HOME", e.home.path().join("sb"))
        .env("NO_COLOR", "1")
        .current_dir(e.ws.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let at = |w: &str| -> f64 {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{w} ")))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{w} never shown: {report}"))
    };
    assert!(at("first") + 1.5 <= at("second"), "not shown as it came: {report}");
    assert!(at("second") <= at("success"), "{report}");
    let transcript = report.lines().find_map(|l| l.strip_prefix("TRANSCRIPT ")).unwrap();
    assert_eq!(transcript.matches("first").count(), 1, "shown twice: {transcript}");
    assert_eq!(transcript.matches("err-line").count(), 1, "stderr shown twice: {transcript}");
    // A character split across two writes is shown whole.
    assert!(transcript.contains("café|"), "{transcript}");

    // Piped: the same output, once, after the run.
    let piped = e.cmd(&["run", "slow-talk"]);
    assert_eq!(String::from_utf8_lossy(&piped.stdout), "first\nsecond\ncafé\n");
}
