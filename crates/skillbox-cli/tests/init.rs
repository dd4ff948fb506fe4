//! `skillbox init`: the new skill validates and runs as written, its declaration grants the
//! least (a script of it that tries to read the workspace, write, or reach the network is
//! refused by the kernel), existing files are never written over, and bad names are refused
//! on one line. Also `info`'s parameter lines (enum values, descriptions) and that it prints
//! no empty enforcement line.

mod support;
use support::bin;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn sb(ws: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("SKILLBOX_HOME", home.join("sb"))
        .env("LANG", "C.UTF-8")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn world() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let ws = d.path().join("ws");
    let home = d.path().join("home");
    fs::create_dir_all(&ws).unwrap();
    fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [d.path(), &ws, &home] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (d, ws, home)
}

#[test]
fn a_new_json_skill_validates_and_runs_as_written() {
    let (_d, ws, home) = world();
    let out = sb(&ws, &home, &["init", "greet"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = ws.join(".skillbox/skills/greet.json");
    assert!(text(&out).contains(file.to_str().unwrap()), "{}", text(&out));
    let v = sb(&ws, &home, &["validate", file.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    // The command it prints works as printed.
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("try it:  skillbox run greet --params '").map(String::from))
        .unwrap_or_else(|| panic!("no run line: {}", text(&out)));
    let params = line.trim_end_matches('\'');
    let run = sb(&ws, &home, &["run", "greet", "--params", params]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello\n");
    // It declares the least, and says so.
    let info = sb(&ws, &home, &["info", "greet", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let d = &v["declared"]["permissions"];
    assert_eq!(d["file_read"], serde_json::json!([]), "{v}");
    assert_eq!(d["file_write"], serde_json::json!([]), "{v}");
    assert_eq!(d["network"], "none", "{v}");
    assert_eq!(d["process_spawn"], "none", "{v}");
}

#[test]
fn a_new_agent_skill_runs_and_its_script_gets_no_more_than_it_declares() {
    let (_d, ws, home) = world();
    fs::write(ws.join("notes.txt"), "workspace notes").unwrap();
    let out = sb(&ws, &home, &["init", "csv-summary", "--agent-skill"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = ws.join(".agents/skills/csv-summary");
    assert!(dir.join("SKILL.md").is_file() && dir.join("scripts/main.py").is_file());
    let run = sb(&ws, &home, &["run", "csv-summary--main", "--params", r#"{"args": "a b"}"#]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "2 word(s)\na\nb\n");
    // The instructions name the tool a model calls.
    let md = fs::read_to_string(dir.join("SKILL.md")).unwrap();
    assert!(md.contains("csv-summary--main"), "{md}");

    // The person's script, grown to try more than declared: the kernel refuses each.
    let script = dir.join("scripts/main.py");
    let mut body = fs::read_to_string(&script).unwrap();
    body.push_str(
        r#"
def attempt(name, f):
    try:
        f()
        print(name, "ALLOWED")
    except OSError as e:
        print(name, "refused", e.errno)
attempt("read", lambda: open("notes.txt").read())
attempt("write", lambda: open("planted.txt", "w").write("x"))
import socket
attempt("net", lambda: socket.create_connection(("127.0.0.1", 9), timeout=1))
"#,
    );
    fs::write(&script, body).unwrap();
    let run = sb(&ws, &home, &["run", "csv-summary--main", "--params", r#"{"args": "x"}"#]);
    let out = String::from_utf8_lossy(&run.stdout);
    // Refused by the sandbox (EACCES by Landlock, ENOENT or EROFS where a mount namespace
    // confines files, EPERM or EACCES by seccomp), not merely failed: a closed port's
    // ECONNREFUSED would mean the socket was allowed.
    for (what, errnos) in [
        ("read", &[libc::EACCES, libc::ENOENT][..]),
        ("write", &[libc::EACCES, libc::EROFS, libc::ENOENT][..]),
        ("net", &[libc::EPERM, libc::EACCES][..]),
    ] {
        let errno: Option<i32> = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{what} refused ")))
            .and_then(|e| e.parse().ok());
        assert!(errno.is_some_and(|e| errnos.contains(&e)), "{what}: {}", text(&run));
    }
    assert!(!out.contains("ALLOWED"), "{}", text(&run));
    assert!(!ws.join("planted.txt").exists());
}

#[test]
fn init_never_writes_over_a_file_and_refuses_bad_names_on_one_line() {
    let (_d, ws, home) = world();
    assert_eq!(sb(&ws, &home, &["init", "greet"]).status.code(), Some(0));
    let file = ws.join(".skillbox/skills/greet.json");
    fs::write(&file, "{\"mine\": true}").unwrap();
    let again = sb(&ws, &home, &["init", "greet"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(fs::read_to_string(&file).unwrap(), "{\"mine\": true}");
    // An Agent Skill directory that exists, even empty, is not used.
    fs::create_dir_all(ws.join(".agents/skills/taken")).unwrap();
    let out = sb(&ws, &home, &["init", "taken", "--agent-skill"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!ws.join(".agents/skills/taken/SKILL.md").exists());

    let long = "a".repeat(50);
    for (name, why) in [
        ("Greet", "lowercase"),
        ("../x", "lowercase"),
        ("a--b", "--"),
        ("a-", "start or end"),
        ("bad\u{1b}[31m", "lowercase"),
        (long.as_str(), "49"),
    ] {
        let out = sb(&ws, &home, &["init", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{name:?}: {err}");
        assert!(err.contains(why) && !err.contains('\u{1b}'), "{name:?}: {err}");
    }
    assert!(!ws.join("x.json").exists() && !ws.join(".skillbox/x.json").exists());
}

#[test]
fn info_shows_enum_values_and_descriptions_and_no_empty_lines() {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/workspace");
    let (_d, _, home) = world();
    let out = sb(&ws, &home, &["info", "find-todos"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("parameter:   marker (enum, required), one of: TODO, FIXME, XXX"), "{t}");
    let out = sb(&ws, &home, &["info", "count-lines"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("path (string, required): A relative path inside the workspace"), "{t}");
    for l in t.lines() {
        assert!(!l.trim_end().ends_with(':'), "an empty line: {l:?}\n{t}");
    }
}

#[test]
fn a_name_too_long_for_agents_tool_names_is_warned_of_not_refused() {
    let (_d, ws, home) = world();
    let dir = ws.join(".skillbox/skills");
    fs::create_dir_all(&dir).unwrap();
    let long = "a".repeat(50);
    let fits = "b".repeat(49);
    for n in [&long, &fits] {
        fs::write(
            dir.join(format!("{n}.json")),
            format!(r#"{{"name": "{n}", "type": "command", "command": "true"}}"#),
        )
        .unwrap();
    }
    let out = sb(&ws, &home, &["validate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let warned: Vec<&str> = err.lines().filter(|l| l.contains("agents cap a tool name")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains(&long) && warned[0].contains("50 characters"), "{err}");
    let run = sb(&ws, &home, &["run", &long]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run));
}
