//! The audit log: what is written, what `verify` catches, and that concurrent writers
//! (threads and processes) never break the chain.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use skillbox_audit::{
    read_events, verify, ActionTaken, AuditLog, Durability, EventDraft, EventType, LogConfig,
    RiskLevel,
};

const CHILD_ENV: &str = "SKILLBOX_AUDIT_TEST_CHILD_LOG";

fn draft(skill: &str, details: Value) -> EventDraft {
    EventDraft {
        event_type: EventType::SkillExecutionCompleted,
        skill_name: skill.into(),
        skill_trust_level: Some("user-verified".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: Some("e".into()),
        attempt: Some(1),
        details,
    }
}

fn log_with(dir: &Path, n: usize, max_bytes: u64) -> (PathBuf, AuditLog) {
    let path = dir.join("logs/security_events.jsonl");
    let mut c = LogConfig::new(&path);
    c.max_bytes = max_bytes;
    let log = AuditLog::open(c).unwrap();
    for i in 0..n {
        log.append(&draft("s", json!({"i": i}))).unwrap();
    }
    (path, log)
}

fn lines(p: &Path) -> Vec<String> {
    fs::read_to_string(p).unwrap().lines().map(str::to_string).collect()
}

fn write_lines(p: &Path, l: &[String]) {
    fs::write(p, l.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
}

/// The first problem's line number, asserting that there is one.
fn first_bad(p: &Path) -> (usize, String) {
    let r = verify(p).unwrap();
    let first = r.problems.first().unwrap_or_else(|| panic!("tampering not detected"));
    (first.line, first.message.clone())
}

#[test]
fn events_carry_the_old_fields_and_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let (p, _) = log_with(d.path(), 5, u64::MAX);
    let r = verify(&p).unwrap();
    assert!(r.ok() && r.events == 5 && r.last_seq == 5, "{:?}", r.problems);
    for (i, l) in lines(&p).iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        for f in [
            "timestamp",
            "event_id",
            "event_type",
            "skill_name",
            "skill_trust_level",
            "user_context",
            "details",
            "risk_level",
            "action_taken",
            "seq",
            "prev_hash",
            "hash",
        ] {
            assert!(v.get(f).is_some(), "{f} missing");
        }
        assert_eq!(v["seq"], i as u64 + 1);
    }
    assert_eq!(read_events(&p).unwrap().iter().filter(|(_, _, e)| e.is_ok()).count(), 5);
}

#[test]
fn edits_removals_insertions_and_reorders_are_caught_at_their_line() {
    let d = tempfile::tempdir().unwrap();
    let (p, _) = log_with(d.path(), 6, u64::MAX);
    let orig = lines(&p);
    let edit = |i: usize| {
        let mut l = orig.clone();
        l[i] = l[i].replacen("\"i\":", "\"i\": ", 1);
        l
    };
    let cases: Vec<(&str, Vec<String>, usize)> = vec![
        ("edit first", edit(0), 1),
        ("edit middle", edit(2), 3),
        ("edit last", edit(5), 6),
        ("delete first", orig[1..].to_vec(), 1),
        ("delete middle", [&orig[..2], &orig[3..]].concat(), 3),
        ("insert copy", [&orig[..3], &orig[2..]].concat(), 4),
        ("swap", [&orig[..1], &orig[2..3], &orig[1..2], &orig[3..]].concat(), 2),
    ];
    for (what, content, line) in cases {
        write_lines(&p, &content);
        assert_eq!(first_bad(&p).0, line, "{what}");
    }
    // Delete the last: only the head can tell.
    write_lines(&p, &orig[..5]);
    let (line, msg) = first_bad(&p);
    assert!(line == 0 && msg.contains("removed"), "{msg}");
    // Truncate mid-line: the head still names event 6, so it was removed; what is left of
    // its line is a torn line, as a crash leaves it (and reported as such).
    write_lines(&p, &orig);
    let mut bytes = fs::read(&p).unwrap();
    bytes.truncate(bytes.len() - 40);
    fs::write(&p, &bytes).unwrap();
    let (line, msg) = first_bad(&p);
    assert!(line == 0 && msg.contains("removed"), "{line} {msg}");
    let torn = verify(&p).unwrap().crash_artefacts;
    assert!(torn.len() == 1 && torn[0].line == 6 && torn[0].message.contains("torn"), "{torn:?}");
    // The head file gone: reported.
    write_lines(&p, &orig);
    fs::remove_file(d.path().join("logs/security_events.jsonl.head")).unwrap();
    assert!(first_bad(&p).1.contains("head"));
    // An empty log where events were: the head catches it.
    let (p2, _) = log_with(&d.path().join("b"), 3, u64::MAX);
    fs::write(&p2, "").unwrap();
    assert!(!verify(&p2).unwrap().ok());
}

#[test]
fn a_torn_line_stays_reported_and_the_chain_continues_after_it() {
    let d = tempfile::tempdir().unwrap();
    let (p, log) = log_with(d.path(), 3, u64::MAX);
    let mut f = fs::OpenOptions::new().append(true).open(&p).unwrap();
    std::io::Write::write_all(&mut f, b"{\"seq\":4,\"prev_ha").unwrap();
    log.append(&draft("after", json!({}))).unwrap();
    log.append(&draft("after", json!({}))).unwrap();
    let r = verify(&p).unwrap();
    assert!(r.ok(), "a crash is not reported as tampering: {:?}", r.problems);
    assert_eq!(r.crash_artefacts.len(), 1, "{:?}", r.crash_artefacts);
    assert_eq!(r.crash_artefacts[0].line, 4);
    assert_eq!(r.events, 5, "events after the torn line verify");
    assert_eq!(r.last_seq, 5);
}

#[test]
fn rotation_keeps_one_chain_and_a_missing_old_file_is_caught() {
    let d = tempfile::tempdir().unwrap();
    let (p, _) = log_with(d.path(), 60, 4096);
    let r = verify(&p).unwrap();
    assert!(r.ok(), "{:?}", r.problems);
    assert!(r.files.len() > 3, "no rotation happened: {:?}", r.files);
    assert_eq!(r.events, 60);
    // Tampering in an old file is caught there.
    let old = r.files[1].clone();
    let mut l = lines(&old);
    l[0] = l[0].replacen("\"s\"", "\"t\"", 1);
    write_lines(&old, &l);
    let bad = verify(&p).unwrap();
    assert_eq!(bad.problems[0].file, old);
    // The oldest file removed: the log no longer starts at event 1.
    fs::remove_file(&r.files[0]).unwrap();
    let bad = verify(&p).unwrap();
    assert!(bad.problems.iter().any(|x| x.message.contains("missing")), "{:?}", bad.problems);
}

#[test]
fn values_cannot_break_a_line_or_forge_an_event() {
    let d = tempfile::tempdir().unwrap();
    let (p, log) = log_with(d.path(), 0, u64::MAX);
    let hostile = [
        "a\nb",
        "x\r\n{\"seq\":999,\"event_type\":\"SkillExecutionCompleted\"}",
        "\u{2028}\u{2029}",
        "nul\u{0}byte",
        "\"},\"hash\":\"00\"}",
    ];
    for h in hostile {
        let mut e = draft(h, json!({"message": h, "param": h}));
        e.skill_trust_level = Some(h.into());
        log.append(&e).unwrap();
    }
    assert_eq!(lines(&p).len(), hostile.len());
    let r = verify(&p).unwrap();
    assert!(r.ok() && r.events == hostile.len() as u64, "{:?}", r.problems);
    let skills: Vec<String> =
        read_events(&p).unwrap().into_iter().map(|(_, _, e)| e.unwrap().skill_name).collect();
    assert_eq!(skills, hostile);
}

#[test]
fn secrets_never_reach_the_file() {
    let d = tempfile::tempdir().unwrap();
    let (p, log) = log_with(d.path(), 0, u64::MAX);
    let secrets = [
        "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
        "AKIAIOSFODNN7EXAMPLE",
        "s3cr3t-passw0rd",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    ];
    log.append(&draft(
        "s",
        json!({
            "GITHUB_TOKEN": secrets[0],
            "message": format!("auth failed for {} with password={}", secrets[1], secrets[2]),
            "stderr": format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----", secrets[3]),
        }),
    ))
    .unwrap();
    let text = fs::read_to_string(&p).unwrap();
    for s in secrets {
        assert!(!text.contains(s), "{s} leaked: {text}");
    }
    assert!(text.contains("[REDACTED]"));
    assert!(verify(&p).unwrap().ok());
}

#[test]
fn fsync_durability_appends_and_verifies() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("l.jsonl");
    let mut c = LogConfig::new(&path);
    c.durability = Durability::Fsync;
    let log = AuditLog::open(c).unwrap();
    for _ in 0..5 {
        log.append(&draft("s", json!({}))).unwrap();
    }
    assert!(verify(&path).unwrap().ok());
}

#[test]
fn a_lost_head_is_rebuilt_from_the_last_valid_line() {
    let d = tempfile::tempdir().unwrap();
    let (p, log) = log_with(d.path(), 3, u64::MAX);
    drop(log);
    let head = d.path().join("logs/security_events.jsonl.head");
    fs::remove_file(&head).unwrap();
    assert!(!verify(&p).unwrap().ok(), "a missing head must be reported");
    let log = AuditLog::open(LogConfig::new(&p)).unwrap();
    log.append(&draft("s", json!({}))).unwrap();
    let r = verify(&p).unwrap();
    assert!(r.ok() && r.last_seq == 4, "{:?}", r.problems);
}

#[test]
fn many_threads_append_without_breaking_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let (p, log) = log_with(d.path(), 0, 64 * 1024);
    let log = Arc::new(log);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..500 {
                    log.append(&draft(&format!("t{t}"), json!({"i": i}))).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let r = verify(&p).unwrap();
    assert!(r.ok(), "{:?}", r.problems.first());
    assert_eq!((r.events, r.last_seq), (4000, 4000));
}

/// Not a test on its own: the body of each child process of the test below.
#[test]
fn child_appender() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let mut c = LogConfig::new(PathBuf::from(path));
    c.max_bytes = 64 * 1024;
    let log = AuditLog::open(c).unwrap();
    for i in 0..500 {
        log.append(&draft(&format!("p{}", std::process::id()), json!({"i": i}))).unwrap();
    }
}

#[test]
fn many_processes_append_without_breaking_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("logs/security_events.jsonl");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_appender", "--test-threads=1"])
                .env(CHILD_ENV, &path)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let r = verify(&path).unwrap();
    assert!(r.ok(), "{:?}", r.problems.first());
    assert_eq!((r.events, r.last_seq), (2000, 2000));
    assert!(r.files.len() > 1, "the processes were meant to rotate the log");
    // Every line parses: nothing interleaved.
    for f in &r.files {
        for l in lines(f) {
            serde_json::from_str::<Value>(&l).unwrap();
        }
    }
}

#[test]
fn a_log_over_one_read_chunk_verifies_and_an_edit_past_it_is_found_at_its_line() {
    // About 5 MB: more than the 4 MiB `verify` reads at a time, and enough for every thread.
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("big.jsonl");
    let mut c = LogConfig::new(&path);
    c.max_bytes = u64::MAX;
    let log = AuditLog::open(c).unwrap();
    for i in 0..5000 {
        log.append(&draft("s", json!({"i": i, "pad": "p".repeat(900)}))).unwrap();
    }
    let r = verify(&path).unwrap();
    assert!(r.ok() && r.events == 5000 && r.last_seq == 5000, "{:?}", r.problems.first());
    let mut l = lines(&path);
    assert!(l.iter().map(|x| x.len() + 1).sum::<usize>() > 4 << 20);
    l[4800] = l[4800].replacen("\"i\":", "\"i\": ", 1);
    write_lines(&path, &l);
    let r = verify(&path).unwrap();
    // The edited line, and only it: the next one follows it in the chain as it was.
    let found: Vec<(usize, bool)> =
        r.problems.iter().map(|p| (p.line, p.message.contains("edited"))).collect();
    assert_eq!(found, [(4801, true)], "{:?}", r.problems);
    assert_eq!(r.events, 4999);
}

const FORK_ENV: &str = "SKILLBOX_AUDIT_TEST_FORK_LOG";

/// Not a test on its own: the body of the process of the test below. Appends, forks a
/// child that appends once, waits for it, appends again.
#[test]
fn fork_child() {
    let Some(path) = std::env::var_os(FORK_ENV) else { return };
    let log = AuditLog::open(LogConfig::new(PathBuf::from(path))).unwrap();
    log.append(&draft("before-fork", json!({}))).unwrap();
    // SAFETY: the child only appends to the log (its own mutex, malloc, system calls) and
    // leaves with `_exit`; this process runs one test thread.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork failed");
    if child == 0 {
        let code = match log.append(&draft("in-child", json!({}))) {
            Ok(_) => 0,
            Err(_) => 1,
        };
        // SAFETY: ends the forked child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above; `status` is a valid out-pointer.
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child failed");
    log.append(&draft("after-fork", json!({}))).unwrap();
    println!("child-pid={child}");
}

/// An append made by a child forked from a process that already appended records the
/// child's own process id and a fresh event id: neither is carried over by the fork.
#[test]
fn a_forked_child_records_its_own_pid_and_ids() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("fork.jsonl");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "fork_child", "--test-threads=1", "--nocapture"])
        .env(FORK_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let child: u32 = stdout
        .lines()
        .find_map(|l| l.split("child-pid=").nth(1))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {stdout}"));
    let events: Vec<skillbox_audit::Event> =
        read_events(&path).unwrap().into_iter().map(|(_, _, e)| e.unwrap()).collect();
    let seen: Vec<(&str, u32)> =
        events.iter().map(|e| (e.skill_name.as_str(), e.user_context.pid)).collect();
    let parent = events[0].user_context.pid;
    assert_ne!(parent, child);
    assert_eq!(seen, [("before-fork", parent), ("in-child", child), ("after-fork", parent)]);
    let ids: std::collections::HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), 3, "an event id was reused across the fork");
    assert!(verify(&path).unwrap().ok());
}

/// One cause, one problem: an edited event is reported alone (the events after it still
/// link to it as it was), also when it is the first; a removal beside the edit is still
/// reported for itself.
#[test]
fn an_edited_event_is_reported_alone_and_a_removal_beside_it_too() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("log.jsonl");
    let log = AuditLog::open(LogConfig::new(&path)).unwrap();
    for i in 0..6 {
        log.append(&draft("s", json!({"i": i}))).unwrap();
    }
    let original = lines(&path);
    let edit = |l: &str| l.replacen("\"i\":", "\"i\": ", 1);
    let problems = |l: &[String]| -> Vec<(usize, String)> {
        write_lines(&path, l);
        let r = verify(&path).unwrap();
        r.problems.iter().map(|p| (p.line, p.message.clone())).collect()
    };

    // A middle event edited: its line only.
    let mut l = original.clone();
    l[2] = edit(&l[2]);
    let got = problems(&l);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].0 == 3 && got[0].1.contains("edited"), "{got:?}");

    // The first event edited: its line only, not "the log starts at event 2".
    let mut l = original.clone();
    l[0] = edit(&l[0]);
    let got = problems(&l);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].0 == 1 && got[0].1.contains("edited"), "{got:?}");

    // An edit and, right after it, a removed event: both causes.
    let mut l = original.clone();
    l[2] = edit(&l[2]);
    l.remove(3);
    let got = problems(&l);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].0 == 3 && got[0].1.contains("edited"), "{got:?}");
    assert!(got[1].0 == 4 && got[1].1.contains("removed"), "{got:?}");
}
