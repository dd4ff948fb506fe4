//! `skillbox trust`, `skillbox untrust`, and the question `run` asks a person after a
//! denial. The decisions and the store live in `skillbox-skills`; this only prints and asks.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::json;
use skillbox_skills::trust::Standing;
use skillbox_skills::{Runtime, SkillResult, Status, TrustLevel};

use crate::one_line;

/// `skillbox trust NAME [--level LEVEL]`.
pub(crate) fn grant(rt: &Runtime, name: &str, level: Option<TrustLevel>, json: bool) -> u8 {
    match rt.grant(name, level) {
        Ok((subject, g)) => {
            if json {
                println!("{}", json!({"granted": subject, "grant": g}));
            } else {
                println!(
                    "granted {} to `{subject}`, pinned to {} ({}); it lapses when that content \
                     changes",
                    g.level,
                    g.digest,
                    skillbox_skills::audit_log::text::path(&g.path)
                );
            }
            0
        }
        Err(e) => {
            eprintln!("skillbox: error: {}", one_line(&e.to_string()));
            match e {
                skillbox_skills::GrantError::Lookup(_) => 4,
                _ => 7,
            }
        }
    }
}

/// `skillbox untrust NAME`.
pub(crate) fn revoke(rt: &Runtime, name: &str) -> u8 {
    match rt.revoke(name) {
        Ok((subject, g)) => {
            println!("removed the grant of {} to `{subject}`", g.level);
            0
        }
        Err(e) => {
            eprintln!("skillbox: error: {}", one_line(&e.to_string()));
            match e {
                skillbox_skills::GrantError::NoGrant(_) => 1,
                _ => 7,
            }
        }
    }
}

/// `skillbox trust --list`: every grant, and whether it still matches its skill.
pub(crate) fn list(rt: &Runtime, json: bool) -> u8 {
    let store = match rt.trust_store() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("skillbox: error: {}", one_line(&e.to_string()));
            return 7;
        }
    };
    let mut rows = Vec::new();
    for (name, g) in store.grants() {
        let state = match rt.registry().get(name) {
            Err(_) => "no such skill here".to_string(),
            Ok(skill) => match store.standing(skill, rt.workspace()) {
                Standing::Granted(..) => "holds".to_string(),
                Standing::Lapsed { now, .. } => format!("LAPSED: content is now {now}"),
                Standing::NoGrant => "no grant".to_string(),
            },
        };
        rows.push(json!({"name": name, "grant": g, "state": state}));
    }
    if json {
        println!(
            "{}",
            json!({"store": skillbox_skills::audit_log::text::path(store.path()), "grants": rows})
        );
        return 0;
    }
    if rows.is_empty() {
        println!("no grants ({})", skillbox_skills::audit_log::text::path(store.path()));
        return 0;
    }
    // The store is a file: a name or a date in it may hold a newline or a terminal escape.
    let field = |v: &serde_json::Value| one_line(v.as_str().unwrap_or_default());
    for r in &rows {
        println!(
            "{:<24} {:<15} {}  {}",
            field(&r["name"]),
            field(&r["grant"]["level"]),
            field(&r["grant"]["granted_at"]),
            field(&r["state"])
        );
    }
    0
}

/// Whether a person can be asked: stdin and stderr are terminals.
pub(crate) fn at_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// After a denial that some level would grant, asks: allow once, always (a pinned grant),
/// or deny. Returns the level to run again at, or `None` to keep the refusal.
pub(crate) fn ask_after_denial(rt: &Runtime, result: &SkillResult) -> Option<Option<TrustLevel>> {
    if result.status != Status::Denied {
        return None;
    }
    let denial = result.denial.as_ref()?;
    let level = denial.fix?;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "skillbox: {}", one_line(&denial.message()));
    let _ = write!(
        err,
        "Run `{}` at {level}? [o]nce / [a]lways (grant, pinned to its content) / [d]eny: ",
        denial.skill
    );
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).ok()?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "o" | "once" => Some(Some(level)),
        "a" | "always" => match rt.grant(&denial.skill, Some(level)) {
            Ok((subject, g)) => {
                let _ =
                    writeln!(err, "skillbox: granted {} to `{subject}` ({})", g.level, g.digest);
                // The grant now applies: run again without a per-run level.
                Some(None)
            }
            Err(e) => {
                let _ = writeln!(err, "skillbox: error: {}", one_line(&e.to_string()));
                None
            }
        },
        _ => None,
    }
}
