//! Builds and runs the toy agent on a copy of `examples/workspace`, and checks what it
//! printed, what it changed in the workspace, and what it recorded in the audit log.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&target).unwrap();
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn snapshot(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            out.insert(r.clone(), Vec::new());
            snapshot(root, &r, out);
        } else {
            out.insert(r, fs::read(e.path()).unwrap());
        }
    }
}

fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    snapshot(root, Path::new(""), &mut out);
    out
}

#[test]
fn the_toy_agent_lists_tools_calls_skills_and_is_refused_where_it_should_be() {
    let dir = tempfile::Builder::new().prefix("toy-agent-").tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let ws = root.join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::create_dir_all(root.join("home")).unwrap();
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../workspace"), &ws);
    let before = tree(&ws);

    let out = Command::new(env!("CARGO_BIN_EXE_toy-agent"))
        .arg(&ws)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", root.join("home"))
        .env("SKILLBOX_HOME", root.join("sb"))
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let events: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();

    // The tools: every skill of the workspace and the built-ins, each with a schema.
    let tools = &events[0];
    assert_eq!(tools["event"], "tools");
    assert_eq!(tools["workspace"], serde_json::json!(ws));
    assert_eq!(tools["problems"], serde_json::json!([]));
    let names: Vec<&str> =
        tools["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for n in ["count-lines", "lint", "format-json", "https-get", "write-tests", "echo"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let lint = tools["tools"].as_array().unwrap().iter().find(|t| t["name"] == "lint").unwrap();
    assert_eq!(lint["input_schema"]["properties"]["max_line"]["type"], "number");
    assert_eq!(lint["input_schema"]["additionalProperties"], false);

    // The calls, in order.
    let calls: Vec<&Value> = events.iter().filter(|e| e["event"] == "call").collect();
    let got: Vec<(&str, &str, bool)> = calls
        .iter()
        .map(|c| {
            (c["tool"].as_str().unwrap(), c["status"].as_str().unwrap(), c["is_error"] == true)
        })
        .collect();
    assert_eq!(
        got,
        [
            ("count-lines", "success", false),
            ("lint", "failed", true),
            ("format-json", "success", false),
            ("commit-message", "success", false),
            ("https-get", "denied", true),
            ("explain-denial", "success", false),
            ("count-lines", "invalid", true),
        ]
    );
    let app_lines = fs::read_to_string(ws.join("src/app.py")).unwrap().lines().count();
    assert_eq!(calls[0]["text"], format!("{app_lines} src/app.py\n"));
    assert_eq!(calls[0]["grant"]["file_read"], serde_json::json!([ws]));
    // A failed run's text is the reason and stderr; the findings are in its stdout.
    assert_eq!(calls[1]["stdout"], "src/app.py:12: E501 line too long (74 > 72 characters)\n");
    assert!(calls[1]["text"].as_str().unwrap().starts_with("skill `lint` exited with code 1"));
    assert!(calls[3]["text"].as_str().unwrap().contains("wrap a long line in src/app.py"));

    let denied = calls[4];
    assert_eq!(denied["trust_level"], "untrusted");
    assert_eq!(denied["denial"]["permission"], "network");
    assert_eq!(denied["denial"]["fix"], "user-verified");
    assert!(denied["grant"].is_null(), "nothing was granted: {denied}");
    // The model's text says to ask the person; the message for people (which the agent
    // hands to `explain-denial`) has the command to type.
    let text = denied["text"].as_str().unwrap();
    assert!(text.starts_with("permission denied: skill `https-get` declares network access"));
    assert!(text.contains("you cannot grant this yourself"), "{text}");
    let reason = calls[5]["input"]["message"].as_str().unwrap();
    assert!(reason.contains("skillbox trust https-get --level user-verified"), "{reason}");
    assert!(calls[5]["text"].as_str().unwrap().contains(reason), "{}", calls[5]);

    assert_eq!(calls[6]["problems"][0]["parameter"], "path");
    assert!(calls[6]["text"].as_str().unwrap().contains("does not match the pattern"));

    // Effects: the formatter's output, and nothing else.
    let after = tree(&ws);
    let changed: Vec<&PathBuf> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert_eq!(
        changed,
        ["out/formatted", "out/formatted/project.json", "out/formatted/settings.json"]
            .map(PathBuf::from)
            .iter()
            .collect::<Vec<_>>()
    );
    assert!(before.keys().all(|k| after.contains_key(k)));

    // The record: every call is in the audit log, and the chain is intact.
    let audit = events.last().unwrap();
    assert_eq!(audit["event"], "audit");
    let log_path = root.join("sb/logs/security_events.jsonl");
    assert_eq!(audit["log"], serde_json::json!(log_path));
    assert_eq!(audit["intact"], true);
    let log = fs::read_to_string(&log_path).unwrap();
    assert_eq!(audit["events"], log.lines().count() as u64);
    for c in &calls {
        let id = c["execution_id"].as_str().unwrap();
        assert!(log.contains(id), "{id} ({}) not in the log", c["tool"]);
    }
    assert!(log.contains("\"event_type\":\"PermissionDenied\""));
    assert!(log.contains("\"event_type\":\"InputValidationFailed\""));
}
