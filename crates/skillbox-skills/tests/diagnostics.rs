//! What an embedding agent sees through `tracing`: a span per run (`skill_run`, with the
//! skill, the execution id and the trust level) with debug events at its decision, spawn,
//! wait and audit steps, and warnings for a shadowed skill, a skill file that failed to load,
//! a lapsed grant and a circuit state that cannot be kept. Without a subscriber the library
//! prints nothing.
//!
//! These run as root in CI and again as `nobody` (scripts/test.sh).

mod support;

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use skillbox_skills::audit_log::{AuditLog, LogConfig};
use skillbox_skills::{Registry, Runtime, Status, TrustLevel};
use support::{scratch, write, Capture};
use tracing::Level;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
    rt.expect("tokio").block_on(f)
}

/// A workspace whose `.q-skills` holds `skills`, and a runtime over them.
fn workspace(skills: &[Value]) -> (tempfile::TempDir, Runtime) {
    let ws = scratch();
    for s in skills {
        let name = s["name"].as_str().expect("name");
        write(&ws.path().join(format!(".q-skills/{name}.json")), &s.to_string());
    }
    let registry = Registry::load_paths(&[ws.path().join(".q-skills")]);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    let rt = Runtime::with_registry(registry, ws.path()).expect("runtime");
    (ws, rt)
}

/// A command skill that fails, with a circuit breaker that opens at the first failure.
fn brittle() -> Value {
    json!({
        "name": "brittle", "type": "command", "command": "false",
        "circuit_breaker": {"failure_threshold": 1, "recovery_timeout": 600},
    })
}

#[test]
fn a_run_is_a_span_with_debug_events_at_each_step() {
    let (_ws, rt) = workspace(&[json!({
        "name": "hello", "type": "command", "command": "echo", "args": ["hi"],
    })]);
    let logs = scratch();
    let log = AuditLog::open(LogConfig::new(logs.path().join("events.jsonl"))).expect("log");
    let rt = rt.with_audit(Arc::new(log));

    let (r, seen) = Capture::during(|| block_on(rt.run("hello", &json!({}), None)));
    assert_eq!(r.status, Status::Success, "{r:?}");
    let runs: Vec<usize> =
        (0..seen.spans.len()).filter(|&i| seen.spans[i].name == "skill_run").collect();
    assert_eq!(runs.len(), 1, "{:?}", seen.spans);
    let span = &seen.spans[runs[0]];
    assert_eq!(span.fields.get("skill").map(String::as_str), Some("hello"));
    assert_eq!(span.fields.get("execution_id"), Some(&r.execution_id));
    assert_eq!(span.fields.get("trust_level").map(String::as_str), Some("user-verified"));
    for step in
        ["trust level decided", "declaration granted", "spawning", "child ended", "audit: recorded"]
    {
        let events = seen.find(Level::DEBUG, step);
        assert!(!events.is_empty(), "no `{step}` event: {:#?}", seen.events);
        assert!(events.iter().all(|e| e.span == Some(runs[0])), "`{step}` is in the run's span");
    }
    // The start and the outcome are both recorded.
    assert!(seen.find(Level::DEBUG, "audit: recorded").len() >= 2);
    assert!(seen.find(Level::WARN, "").is_empty(), "{:#?}", seen.events);
}

#[test]
fn loading_through_the_runtime_warns_of_shadowed_skills_and_bad_files() {
    let ws = scratch();
    let skill = |tag: &str| {
        json!({"name": "dup", "description": tag, "type": "command",
                                   "command": "true"})
    };
    write(&ws.path().join(".q-skills/dup.json"), &skill("low").to_string());
    write(&ws.path().join(".skillbox/skills/dup.json"), &skill("high").to_string());
    write(&ws.path().join(".q-skills/broken.json"), "{ not json");
    let logs = scratch();
    let open = || {
        let log = LogConfig::new(logs.path().join("events.jsonl"));
        Runtime::open_with_audit(ws.path(), log).expect("runtime")
    };

    let (rt, seen) = Capture::during(open);
    let (_, reloaded) = Capture::during(|| rt.reloaded().expect("reloaded"));
    for seen in [seen, reloaded] {
        let shadowed = seen.find(Level::WARN, "skill shadowed");
        let ours = shadowed.iter().find(|e| e.fields.get("skill").is_some_and(|s| s == "dup"));
        let ours = ours.unwrap_or_else(|| panic!("{:#?}", seen.events));
        assert!(ours.fields["winner"].contains(".skillbox/skills/dup.json"), "{ours:?}");
        assert!(ours.fields["hidden"].contains(".q-skills/dup.json"), "{ours:?}");
        let problems = seen.find(Level::WARN, "skill file problem");
        assert!(
            problems
                .iter()
                .any(|e| e.fields["file_problem"].contains("broken.json: not valid JSON")),
            "{:#?}",
            seen.events
        );
    }
}

#[test]
fn a_circuit_state_that_cannot_be_kept_is_a_warning_and_the_run_goes_ahead() {
    let (_ws, rt) = workspace(&[brittle()]);
    let home = scratch();
    // A file where the directory of the states should be: no state can be read or written,
    // whoever runs the test.
    write(&home.path().join("state/circuits"), "not a directory");
    let rt = rt.with_home(home.path());

    for _ in 0..2 {
        let (r, seen) = Capture::during(|| block_on(rt.run("brittle", &json!({}), None)));
        assert_eq!(r.status, Status::Failed, "it ran: {r:?}");
        for what in ["circuit breaker not consulted", "circuit breaker not updated"] {
            let warned = seen.find(Level::WARN, what);
            assert_eq!(warned.len(), 1, "{what}: {:#?}", seen.events);
            assert!(warned[0].fields["error"].contains("brittle.json"), "{:?}", warned[0]);
        }
    }
}

#[test]
fn a_lapsed_grant_is_a_warning() {
    let skill = json!({"name": "s", "type": "command", "command": "true"});
    let (ws, rt) = workspace(std::slice::from_ref(&skill));
    let home = scratch();
    let rt = rt.with_home(home.path());
    rt.grant("s", Some(TrustLevel::SystemTrusted)).expect("grant");
    // The skill changes after the grant: the grant lapses.
    let changed = json!({"name": "s", "type": "command", "command": "true", "description": "x"});
    write(&ws.path().join(".q-skills/s.json"), &changed.to_string());

    let (r, seen) = Capture::during(|| block_on(rt.run("s", &json!({}), None)));
    assert_eq!(r.trust_level, Some(TrustLevel::UserVerified), "{r:?}");
    let warned = seen.find(Level::WARN, "trust grant lapsed");
    assert_eq!(warned.len(), 1, "{:#?}", seen.events);
    assert_eq!(Some(&warned[0].fields["notice"]), r.notice.as_ref());
}

const HELPER_ENV: &str = "SKILLBOX_DIAGNOSTICS_HELPER";

#[test]
fn without_a_subscriber_the_library_prints_nothing() {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "quiet_helper", "--ignored", "--nocapture"])
        .env(HELPER_ENV, "1")
        .output()
        .expect("helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "printed on stderr");
}

/// Every warning and a run, with no subscriber: run by the test above, which reads what the
/// process printed.
#[test]
#[ignore = "run by without_a_subscriber_the_library_prints_nothing in a process of its own"]
fn quiet_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let ws = scratch();
    write(&ws.path().join(".q-skills/brittle.json"), &brittle().to_string());
    write(&ws.path().join(".skillbox/skills/brittle.json"), &brittle().to_string());
    write(&ws.path().join(".q-skills/broken.json"), "{ not json");
    let home = scratch();
    write(&home.path().join("state/circuits"), "not a directory");
    let log = LogConfig::new(home.path().join("events.jsonl"));
    let rt = Runtime::open_with_audit(ws.path(), log).expect("runtime").with_home(home.path());
    let r = block_on(rt.run("brittle", &json!({}), None));
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(Path::new(&home.path().join("events.jsonl")).exists());
}
