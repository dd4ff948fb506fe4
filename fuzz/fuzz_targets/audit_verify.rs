//! The audit log read back from any bytes: `verify` and `read_events` (what `skillbox audit
//! verify` and `skillbox audit show` run), then `AuditLog::open` and one `append` (what the
//! next run does to a log it finds).
//!
//! Input: the current file `audit.jsonl`, then optionally `==> audit.000001.jsonl <==` (a
//! rotated file) and `==> audit.jsonl.head <==` (the head), each with its bytes.
//!
//! Beyond "no panic": every problem is one line without raw control characters; a log that
//! verifies with no crash artefact reads back as exactly its events; a log that verifies
//! takes an append and still verifies, with one event more.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use skillbox_audit::{
    read_events, verify, ActionTaken, AuditLog, EventDraft, EventType, LogConfig, RiskLevel,
};
use skillbox_fuzz::{assert_one_safe_line, file, put, scratch, sections};

/// The names a log's files have, as the input names them.
const FILES: [&str; 3] = ["audit.jsonl", "audit.000001.jsonl", "audit.jsonl.head"];

fn draft() -> EventDraft {
    EventDraft {
        event_type: EventType::SkillExecutionStarted,
        skill_name: "fuzz".into(),
        skill_trust_level: Some("untrusted".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: None,
        attempt: Some(1),
        details: json!({"fuzz": true}),
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch().join("audit");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch is writable");
    let sections = sections(data, FILES[0]);
    for name in FILES {
        put(&dir.join(name), file(&sections, name));
    }
    let log: PathBuf = dir.join(FILES[0]);

    let report = verify(&log).expect("the files are readable");
    for p in report.problems.iter().chain(&report.crash_artefacts) {
        assert_one_safe_line("a problem with the log", &p.to_string());
    }
    let events = read_events(&log).expect("the files are readable");
    for (_, _, e) in &events {
        if let Err(why) = e {
            assert_one_safe_line("why a line is not an event", why);
        }
    }
    if report.ok() && report.crash_artefacts.is_empty() {
        let bad: Vec<_> = events.iter().filter(|(_, _, e)| e.is_err()).collect();
        assert!(bad.is_empty(), "the log verifies but lines do not read back: {bad:?}");
        assert_eq!(events.len() as u64, report.events, "events read back");
    }

    let mut config = LogConfig::new(&log);
    // Small, so that appends rotate too.
    config.max_bytes = 4096;
    let appended = AuditLog::open(config).and_then(|w| w.append(&draft()));
    if report.ok() {
        let seq = appended.expect("a log that verifies takes an append");
        let after = verify(&log).expect("the files are readable");
        assert!(after.ok(), "the log verified, and does not after an append: {:?}", after.problems);
        assert_eq!(after.events, report.events + 1, "events after an append");
        assert_eq!(after.last_seq, seq);
    }
});
