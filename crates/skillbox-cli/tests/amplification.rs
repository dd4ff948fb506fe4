//! Templates and arguments that repeat a parameter or the context files (issue 18, item 1),
//! through the real binary: each is refused with a message that says what would be too
//! large, and skillbox's own peak memory stays small (measured with `wait4`'s rusage), on
//! the CLI and over MCP, where the server keeps serving afterwards.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod support;
use support::bin;

/// Peak resident memory skillbox may reach on these refusals, in KiB: far below the
/// gigabyte the unbounded renders took, far above what a refusal needs.
const PEAK_LIMIT_KIB: i64 = 150 * 1024;

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-amp-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("ws/.q-skills")).unwrap();
        fs::create_dir_all(root.join("home")).unwrap();
        let w = World { _dir: dir, root };
        let ctx = "c".repeat(10 * 1024);
        fs::write(w.ws().join("notes.txt"), ctx).unwrap();
        w.skill(json!({"name": "conv", "type": "conversation",
            "prompt_template": "{context_files}".repeat(60_000),
            "context_files": {"patterns": ["notes.txt"]}}));
        w.skill(json!({"name": "inline", "type": "prompt_inline",
            "prompt_template": "{x}".repeat(200_000),
            "parameters": [{"name": "x", "type": "string"}]}));
        w.skill(json!({"name": "argbomb", "type": "command", "command": "echo",
            "args": ["{x}".repeat(1000), "{x}".repeat(1000)],
            "parameters": [{"name": "x", "type": "string"}]}));
        w.skill(json!({"name": "small", "type": "prompt_inline", "prompt_template": "{x}{x}",
            "parameters": [{"name": "x", "type": "string"}]}));
        let _ = Command::new("chmod").args(["-R", "a+rwX"]).arg(&w.root).status();
        w
    }

    fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    fn skill(&self, def: Value) {
        let name = def["name"].as_str().unwrap().to_string();
        fs::write(self.ws().join(format!(".q-skills/{name}.json")), def.to_string()).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", self.root.join("home"))
            .env("SKILLBOX_HOME", self.root.join("home/sb"))
            .current_dir(self.ws());
        c
    }
}

/// Runs `c` to its end: exit code, stdout, and the peak resident memory of the process in
/// KiB (its own `ru_maxrss`, from `wait4`).
// The child is reaped with wait4 (for its rusage), which clippy does not see.
#[allow(clippy::zombie_processes)]
fn run_measured(mut c: Command) -> (i32, String, i64) {
    let mut child =
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child spawned above, writing only to `status` and `usage`.
    let r = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as i32, "wait4: {}", std::io::Error::last_os_error());
    (libc::WEXITSTATUS(status), out, usage.ru_maxrss)
}

#[test]
fn repeated_context_files_and_parameters_are_refused_before_they_are_rendered() {
    let w = World::new();
    let x4k = json!({"x": "v".repeat(4096)}).to_string();
    let x64k = json!({"x": "v".repeat(64 * 1024)}).to_string();
    let cases: [(&str, Option<&str>, i32, &str); 3] = [
        ("conv", None, 7, "the prompt would be"),
        ("inline", Some(&x4k), 4, "the prompt would be"),
        ("argbomb", Some(&x64k), 4, "argument 1 of the command would be"),
    ];
    for (name, params, code, says) in cases {
        let mut args = vec!["run", name, "--json"];
        if let Some(p) = params {
            args.extend(["--params", p]);
        }
        let (got, stdout, peak) = run_measured(w.cmd(&args));
        let v: Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(got, code, "{name}: {v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{name}: {v}");
        assert!(v["stdout"].as_str().unwrap().is_empty(), "{name}: something was rendered");
        assert!(peak < PEAK_LIMIT_KIB, "{name}: skillbox peaked at {peak} KiB");
    }
    // Control: the same parameter, not repeated past the limit, renders.
    let (code, stdout, _) = run_measured(w.cmd(&["run", "small", "--json", "--params", &x64k]));
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["stdout"].as_str().unwrap().len(), 2 * 64 * 1024);
}

#[test]
fn over_mcp_an_amplifying_call_is_refused_and_the_server_keeps_serving() {
    let w = World::new();
    let mut child = w
        .cmd(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    let mut call = |id: i64, method: &str, params: Value| -> Value {
        writeln!(
            input,
            "{}",
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        )
        .unwrap();
        input.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(output.read_line(&mut line).unwrap() > 0, "the server closed its output");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    };
    call(
        1,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    for (id, name, args) in [
        (2, "inline", json!({"x": "v".repeat(4096)})),
        (3, "conv", json!({})),
        (4, "argbomb", json!({"x": "v".repeat(64 * 1024)})),
    ] {
        let r = call(id, "tools/call", json!({"name": name, "arguments": args}));
        assert_eq!(
            r["result"]["isError"],
            true,
            "{name}: {}",
            r.to_string().chars().take(500).collect::<String>()
        );
        let text = r["result"]["content"][0]["text"].as_str().unwrap_or_default();
        assert!(text.contains("would be"), "{name}: {text}");
        assert!(text.len() < 10_000, "{name}: the refusal carries a render");
    }
    let r = call(5, "tools/call", json!({"name": "small", "arguments": {"x": "ok"}}));
    assert_eq!(r["result"]["content"][0]["text"], "okok", "{r}");
    // The server's peak memory, while it still runs.
    let status = fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let hwm: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    assert!(hwm < PEAK_LIMIT_KIB, "the server peaked at {hwm} KiB");
    drop(input);
    assert!(child.wait().unwrap().success());
}
