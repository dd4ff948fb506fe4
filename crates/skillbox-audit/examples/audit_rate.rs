//! Events per second: appends from one process (both durabilities) and `verify`.
//!
//! `cargo run --release -p skillbox-audit --example audit_rate [N]`

use std::time::Instant;

use serde_json::json;
use skillbox_audit::{
    verify, ActionTaken, AuditLog, Durability, EventDraft, EventType, LogConfig, RiskLevel,
};

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("skillbox-audit-rate-{}", std::process::id()));
    let draft = EventDraft {
        event_type: EventType::SkillExecutionCompleted,
        skill_name: "count-lines".into(),
        skill_trust_level: Some("user-verified".into()),
        risk_level: RiskLevel::Low,
        action_taken: ActionTaken::Allowed,
        execution_id: Some("0b5c7f1e-2f7e-4c3e-9d7a-1f1b2c3d4e5f".into()),
        attempt: Some(1),
        details: json!({"status": "success", "exit_code": 0, "duration_ms": 3,
                        "usage": {"wall_ms": 3, "cpu_ms": 1, "max_rss_kib": 2048}}),
    };
    for (name, durability, count) in
        [("write (default)", Durability::Write, n), ("fsync", Durability::Fsync, n / 100)]
    {
        let path = dir.join(format!("{name}.jsonl").replace([' ', '(', ')'], ""));
        let mut config = LogConfig::new(&path);
        config.durability = durability;
        let log = AuditLog::open(config).expect("open");
        let t = Instant::now();
        for _ in 0..count {
            log.append(&draft).expect("append");
        }
        let secs = t.elapsed().as_secs_f64();
        println!("append, {name:<16} {count:>8} events  {:>10.0} events/s", count as f64 / secs);
        let t = Instant::now();
        let report = verify(&path).expect("verify");
        assert!(report.ok(), "{:?}", report.problems.first());
        let secs = t.elapsed().as_secs_f64();
        println!(
            "verify                  {:>8} events  {:>10.0} events/s",
            report.events,
            report.events as f64 / secs
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
