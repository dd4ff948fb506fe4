//! Audit log appends from one process and from 8 in parallel, at the documented durability,
//! and `audit verify`, in events per second.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;
use skillbox_audit::{
    verify, ActionTaken, AuditLog, Durability, EventDraft, EventType, LogConfig, RiskLevel,
};

use crate::stats::thousands;
use crate::Bench;

/// An event shaped like the one that closes a successful run (about 1 KB on disk).
pub fn draft() -> EventDraft {
    EventDraft {
        event_type: EventType::SkillExecutionCompleted,
        skill_name: "count-lines".into(),
        skill_trust_level: Some("user-verified".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: Some("0b5c7f1e-2f7e-4c3e-9d7a-1f1b2c3d4e5f".into()),
        attempt: Some(1),
        details: json!({
            "status": "success", "message": null, "attempts": 1, "fallback": null,
            "limit": null, "exit_code": 0, "signal": null, "duration_ms": 3,
            "usage": {"wall_ms": 3, "cpu_ms": 1, "max_rss_kib": 2048, "processes_peak": 1},
            "grant": {"file_read": ["/home/user/project"], "file_write": [],
                      "network": "none", "process_spawn": "none",
                      "limits": {"max_execution_time": 5.0, "max_memory_mb": 64,
                                 "max_cpu_percent": 50, "max_disk_io_mb": 100,
                                 "max_processes": 5, "max_open_files": 50}},
            "denial": null, "problems": [], "stdout_bytes": 12, "stderr_bytes": 0,
            "not_enforced": []
        }),
    }
}

/// Appends `n` events to the log at `path` (the 8-process worker, and the one-process run).
pub fn append_n(path: &Path, n: u64, durability: Durability) {
    let mut config = LogConfig::new(path);
    config.durability = durability;
    config.max_bytes = u64::MAX;
    let log = AuditLog::open(config).unwrap();
    let d = draft();
    for _ in 0..n {
        log.append(&d).unwrap();
    }
}

fn rate(events: u64, secs: f64) -> String {
    format!("{} events/s", thousands(events as f64 / secs))
}

/// The audit section.
pub fn audit(b: &mut Bench) {
    println!("\n### Audit log\n");
    let n: u64 = if b.quick { 20_000 } else { 200_000 };
    let dir = tempfile::Builder::new().prefix("skillbox-bench-audit-").tempdir().unwrap();
    println!(
        "Events shaped like a run's closing event (about {} bytes a line). Default durability \
         (`Durability::Write`, the documented one: one `write(2)` per event under an `flock`, \
         no fsync); `Durability::Fsync` for comparison. Rotation is off so that one file holds \
         every event.",
        {
            let p = dir.path().join("size.jsonl");
            append_n(&p, 1, Durability::Write);
            std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0)
        }
    );
    let one = dir.path().join("one.jsonl");
    let t = Instant::now();
    append_n(&one, n, Durability::Write);
    let one_secs = t.elapsed().as_secs_f64();

    let eight = dir.path().join("eight.jsonl");
    let t = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .arg("__audit-append")
                .arg(&eight)
                .arg((n / 8).to_string())
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        assert!(w.wait().unwrap().success());
    }
    let eight_secs = t.elapsed().as_secs_f64();

    let nf = n / 100;
    let fsync = dir.path().join("fsync.jsonl");
    let t = Instant::now();
    append_n(&fsync, nf, Durability::Fsync);
    let fsync_secs = t.elapsed().as_secs_f64();

    let mut verify_secs = Vec::new();
    for path in [&one, &eight, &one, &eight, &one, &eight] {
        let t = Instant::now();
        let r = verify(path).unwrap();
        verify_secs.push(t.elapsed().as_secs_f64());
        assert!(r.ok(), "{:?}", r.problems.first());
        assert_eq!(r.events, n);
    }
    let best = |odd: usize| {
        let mut v: Vec<f64> = verify_secs.iter().skip(odd).step_by(2).copied().collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (v_one, v_eight) = (best(0), best(1));

    let t = Instant::now();
    let st = Command::new(&b.skillbox)
        .args(["audit", "verify", "--log"])
        .arg(&one)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    let cli_secs = t.elapsed().as_secs_f64();
    assert!(st.success());

    let r1 = n as f64 / one_secs;
    println!("\n| what | events | time | rate | ratio vs 1 process |");
    println!("|---|---:|---:|---:|---:|");
    let row = |what: &str, ev: u64, secs: f64| {
        println!(
            "| {what} | {} | {:.3} s | {} | {:.2}x |",
            thousands(ev as f64),
            secs,
            rate(ev, secs),
            ev as f64 / secs / r1
        );
    };
    row("append, 1 process, default durability", n, one_secs);
    row("append, 8 processes at once, default durability", n, eight_secs);
    row("append, 1 process, `Durability::Fsync`", nf, fsync_secs);
    row("`verify` (library) of the 1-process log, median of 3", n, v_one);
    row("`verify` (library) of the 8-process log, median of 3", n, v_eight);
    row("`skillbox audit verify --log` (new process), 1-process log", n, cli_secs);
    b.verdicts.add(
        ">= 100,000 audit events/s from one process",
        rate(n, one_secs),
        r1 >= 100_000.0,
    );
    let vr = n as f64 / v_one;
    b.verdicts.add("`audit verify` >= 500,000 events/s", rate(n, v_one), vr >= 500_000.0);
}
