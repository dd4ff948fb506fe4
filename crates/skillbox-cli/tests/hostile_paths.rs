//! Paths that are not UTF-8 (issue 21): Linux allows any byte but `/` and NUL in a name, and
//! a workspace, a home or a skill file under a directory named in Latin-1 made every command
//! of skillbox panic (exit 101), `run` among them, before it had recorded anything.
//!
//! Every command runs in a world whose every path holds such bytes: the scratch root, the
//! home (and so skillbox's home and its audit log), the workspace, and one skill file's name.
//! Each must answer (no panic, no exit 101), print JSON that parses where asked for JSON, show
//! the bytes escaped (`\xFF`, as Rust's `Debug` of a path shows them), really run the skill
//! (its output file exists afterwards), and leave an audit log that verifies. Runs as root and
//! as `nobody`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

mod support;
use support::bin;

/// A name of the bytes of `s` with a Latin-1 `é` (0xE9, not UTF-8) and a lone 0xFF in it.
fn latin1(s: &str) -> PathBuf {
    let mut b = s.as_bytes().to_vec();
    b.extend_from_slice(b"-caf\xe9-\xff");
    PathBuf::from(OsStr::from_bytes(&b))
}

struct World {
    _dir: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
}

impl World {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("skillbox-hostile-").tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join(latin1("root"));
        let home = root.join(latin1("home"));
        let ws = root.join(latin1("ws"));
        fs::create_dir_all(home.join(".config/skillbox/skills")).unwrap();
        fs::create_dir_all(ws.join(".q-skills")).unwrap();
        fs::create_dir_all(ws.join("out")).unwrap();
        fs::write(ws.join(latin1("data")), b"one\ntwo\n").unwrap();
        // The skill writes a file named by bytes that are not UTF-8, and lists the workspace.
        let def = json!({
            "name": "mark",
            "description": "writes out/done and lists the workspace",
            "type": "command",
            "command": "/bin/sh",
            "args": ["-c", "ls; echo done > out/done"],
            "security": { "permissions": { "file_read": ["."], "file_write": ["out"] } }
        });
        fs::write(
            ws.join(".q-skills").join(latin1("mark")).with_extension("json"),
            serde_json::to_vec(&def).unwrap(),
        )
        .unwrap();
        // A file that does not load, so that the problems list names a path of such bytes.
        fs::write(ws.join(".q-skills").join(latin1("broken")).with_extension("json"), b"{")
            .unwrap();
        World { _dir: dir, home, ws }
    }

    fn skillbox(&self, args: &[&str]) -> Output {
        let out = Command::new(bin())
            .arg("--workspace")
            .arg(&self.ws)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("LANG", "C.UTF-8")
            .current_dir(&self.ws)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked") && out.status.code() != Some(101),
            "skillbox {args:?} panicked:\n{stderr}"
        );
        out
    }

    /// Runs a command that prints one JSON document, and returns it.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.skillbox(args);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "skillbox {args:?} printed no JSON ({e}):\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// `p` as skillbox shows it: the bytes that are not UTF-8 as `\xNN`.
fn shown(p: &Path) -> String {
    let dbg = format!("{:?}", p.as_os_str());
    dbg[1..dbg.len() - 1].to_string()
}

#[test]
fn every_command_answers_in_a_world_of_paths_that_are_not_utf8() {
    let w = World::new();
    let ws = shown(&w.ws);
    assert!(ws.contains("\\xE9") && ws.contains("\\xFF"), "{ws}");

    let list = w.json(&["list", "--json"]);
    assert_eq!(list["workspace"], ws.as_str(), "{list}");
    let mark = list["skills"].as_array().unwrap().iter().find(|s| s["name"] == "mark");
    let mark = mark.unwrap_or_else(|| panic!("mark not listed: {list}"));
    assert!(mark["path"].as_str().unwrap().starts_with(&ws), "{mark}");
    let problems = list["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["path"].as_str().unwrap().contains("broken-caf\\xE9")),
        "the broken file is not named, escaped: {list}"
    );
    let text = w.skillbox(&["list"]);
    assert!(String::from_utf8_lossy(&text.stderr).contains("broken-caf\\xE9-\\xFF.json"));

    let info = w.json(&["info", "mark", "--json"]);
    assert_eq!(info["name"], "mark", "{info}");
    w.skillbox(&["info", "mark"]);
    w.skillbox(&["validate"]);
    w.json(&["doctor", "--json"]);

    // The run really happens, and reports in JSON.
    let run = w.json(&["run", "mark", "--json"]);
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(fs::read(w.ws.join("out/done")).unwrap(), b"done\n");
    let listing = run["output"].as_str().or(run["stdout"].as_str()).unwrap_or_default();
    assert!(listing.contains("data-caf"), "{run}");
    let out = w.skillbox(&["run", "mark"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Trust: granted, listed, removed.
    let out = w.skillbox(&["trust", "mark", "--level", "user-verified"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let grants = w.json(&["trust", "--list", "--json"]);
    assert!(grants.to_string().contains("mark"), "{grants}");
    let run = w.json(&["run", "mark", "--json"]);
    assert_eq!(run["status"], "success", "{run}");
    let out = w.skillbox(&["untrust", "mark"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // The audit log recorded the runs with the workspace escaped, and is intact.
    let out = w.skillbox(&["audit", "show", "--json"]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e.to_string().contains(&ws.replace('\\', "\\\\"))),
        "no event names the workspace {ws}"
    );
    w.skillbox(&["audit", "show"]);
    let out = w.skillbox(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn the_mcp_server_serves_a_workspace_whose_path_is_not_utf8() {
    let w = World::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/hostile_paths.py");
    let out = Command::new(support::sdk_python())
        .arg(&script)
        .arg(bin())
        .arg(&w.ws)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &w.home)
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("ALL OK"), "the session failed:\n{text}");
    assert!(!text.contains("panicked"), "{text}");
    // The run happened: its file is there.
    assert_eq!(fs::read(w.ws.join("out/done")).unwrap(), b"done\n");
    let out = w.skillbox(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}
