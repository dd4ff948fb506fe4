//! `skillbox audit show` and `skillbox audit verify`.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use skillbox_skills::audit_log::text::path as path_text;
use skillbox_skills::audit_log::{read_events, verify, Event, EventType};

use crate::output::terminal_safe;
use crate::AuditCommand;

/// The log path: `$SKILLBOX_AUDIT_LOG`, else under the skillbox home.
pub(crate) fn default_path() -> anyhow::Result<PathBuf> {
    skillbox_skills::default_audit_path(|k| std::env::var_os(k))
        .context("no place for the audit log: set SKILLBOX_HOME or SKILLBOX_AUDIT_LOG")
}

pub(crate) fn run(cmd: AuditCommand) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::Verify { log, json } => {
            let path = match log {
                Some(p) => p,
                None => default_path()?,
            };
            let report = verify(&path)?;
            if json {
                let v = serde_json::json!({
                    "ok": report.ok(),
                    "files": report.files.iter().map(|f| path_text(f)).collect::<Vec<_>>(),
                    "events": report.events,
                    "last_seq": report.last_seq,
                    "problems": report.problems.iter().map(|p| serde_json::json!({
                        "file": path_text(&p.file), "line": p.line, "message": p.message,
                    })).collect::<Vec<_>>(),
                    "crash_artefacts": report.crash_artefacts.iter().map(|p| serde_json::json!({
                        "file": path_text(&p.file), "line": p.line, "message": p.message,
                    })).collect::<Vec<_>>(),
                });
                println!("{v}");
            } else if report.ok() {
                println!(
                    "ok: {} events in {} file(s), chain intact up to event {}, head matches",
                    report.events,
                    report.files.len(),
                    report.last_seq
                );
                // What a killed writer leaves: not an edit, but worth seeing.
                for a in &report.crash_artefacts {
                    println!("  crash artefact (not a problem): {a}");
                }
            } else {
                if let Some(first) = report.problems.first() {
                    println!("FAILED: first bad line: {first}");
                }
                for p in report.problems.iter().skip(1) {
                    println!("  also: {p}");
                }
                println!("{} problem(s); {} events verified", report.problems.len(), report.events);
            }
            Ok(u8::from(!report.ok()))
        }
        AuditCommand::Show { skill, event_type, risk, since, json, log } => {
            let path = match log {
                Some(p) => p,
                None => default_path()?,
            };
            let min_risk = risk;
            let mut bad = 0;
            let mut rows = Vec::new();
            for (file, line, ev) in read_events(&path)? {
                let ev = match ev {
                    Ok(e) => e,
                    Err(e) => {
                        bad += 1;
                        eprintln!("skillbox: audit: {}:{line}: {e}", path_text(&file));
                        continue;
                    }
                };
                if skill.as_ref().is_some_and(|s| *s != ev.skill_name)
                    || event_type.as_ref().is_some_and(|t| !t.eq_ignore_ascii_case(&ev.event_type))
                    || min_risk.is_some_and(|m| risk_rank(&ev.risk_level).unwrap_or(0) < m)
                    || since.is_some_and(|t| !after(&ev, t))
                {
                    continue;
                }
                rows.push(ev);
            }
            if json {
                for ev in &rows {
                    println!("{}", serde_json::to_string(ev)?);
                }
            } else {
                println!(
                    "{:<6} {:<27} {:<24} {:<8} {:<10} {:<18} SKILL",
                    "SEQ", "TIME", "EVENT", "RISK", "ACTION", "LEVEL"
                );
                for ev in &rows {
                    let msg = ev.details.get("message").and_then(|m| m.as_str()).unwrap_or("");
                    println!(
                        "{:<6} {:<27} {:<24} {:<8} {:<10} {:<18} {}{}",
                        ev.seq,
                        ev.timestamp,
                        ev.event_type,
                        ev.risk_level,
                        ev.action_taken,
                        ev.skill_trust_level.as_deref().unwrap_or("-"),
                        terminal_safe(&ev.skill_name).replace('\n', " "),
                        if msg.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", terminal_safe(msg).replace('\n', " "))
                        }
                    );
                }
            }
            if bad > 0 {
                eprintln!(
                    "skillbox: audit: {bad} line(s) do not verify; run `skillbox audit verify`"
                );
            }
            Ok(u8::from(bad > 0))
        }
    }
}

/// `--risk` (a clap value parser: a bad value is a usage error), and an event's risk level.
pub(crate) fn risk_rank(r: &str) -> Result<u8, String> {
    match r.to_ascii_lowercase().as_str() {
        "low" => Ok(0),
        "medium" => Ok(1),
        "high" => Ok(2),
        "critical" => Ok(3),
        _ => Err(format!("{r:?} is not one of Low, Medium, High, Critical")),
    }
}

/// `--since`: an RFC 3339 time, or a duration back from now. A clap value parser, so that a
/// bad value is a usage error (exit 2) like any other.
pub(crate) fn parse_since(s: &str) -> Result<SystemTime, String> {
    if let Ok(t) = humantime_rfc3339(s) {
        return Ok(t);
    }
    let d: Duration = parse_duration(s).map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time (2026-11-25T10:00:00Z) nor a duration such as 1h, 30m or 2days")
    })?;
    SystemTime::now().checked_sub(d).ok_or_else(|| format!("{s:?} reaches back before 1970"))
}

/// `--event-type`: one of the log's event types, in any case. A clap value parser: an
/// unknown type is a usage error, not an empty listing.
pub(crate) fn parse_event_type(s: &str) -> Result<String, String> {
    EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .find(|t| t.eq_ignore_ascii_case(s))
        .map(str::to_string)
        .ok_or_else(|| {
            let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("{s:?} is not an event type; one of: {}", all.join(", "))
        })
}

fn after(ev: &Event, t: SystemTime) -> bool {
    humantime_rfc3339(&ev.timestamp).is_ok_and(|ts| ts >= t)
}

fn humantime_rfc3339(s: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339_weak(s)
}

fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}
